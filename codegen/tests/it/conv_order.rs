//! Native conv kernels sum each output in the documented order, bit for
//! bit: from zero, kernel row by kernel row, column by column (the taps
//! inside the input), input channel by input channel, one fused
//! multiply-add per term, then the bias, and where the spec fuses them, a
//! residual's add and a ReLU. The expected value is that chain
//! written out in `f32` from the layouts (input HWC, weights `[K, C, Fh, Fw]`),
//! not computed by the kernel. Shapes are padded and mostly small images
//! under many channels, so the kernel's rows are blocks of output channels
//! and its narrow classes of border columns run down the columns
//! (`conv::down_columns`), with tiles of every row count, pairs of blocks
//! (AVX-512's wide tile) and partial blocks; some are strided, and larger
//! images under few channels have rows that are output rows, which the
//! kernel is called on in two parts, as threads split them. Ungrouped
//! convolutions with undilated columns take one tap per kernel row, its
//! depth running over the row's columns (`conv::native_taps`); grouped or
//! dilated ones, one tap per kernel tap: both are drawn.

use crate::{call_rows, Buffers};
use cnnjit_codegen::conv::ConvSpec;
use cnnjit_codegen::native::Isa;
use cnnjit_codegen::{Epilogue, Jit, Kernel};
use cnnjit_ir::Activation;
use proptest::prelude::*;

/// A padded conv (without its ISA): input `[h, w, c]`, `k` outputs, in 1
/// or 2 groups, dilated by 1 or 2.
fn spec() -> impl Strategy<Value = ConvSpec> {
    conv((1usize..40, 1usize..24, 1usize..6, 1usize..72), 1usize..3)
}

/// A padded conv on a small image under whole vectors of channels and more
/// weights than input, ungrouped, which a native kernel computes on a
/// zero-padded copy of its input (`ConvSpec::pads_input`).
fn small_spec() -> impl Strategy<Value = ConvSpec> {
    let channels = (1usize..4).prop_map(|c| 4 * c);
    conv((1usize..8, 1usize..8, channels, 16usize..72), 1usize..2)
}

/// A padded conv with `[h, w, c per group, k per group]` drawn from `sizes`
/// and its groups from `groups`, strided and dilated by 1 or 2.
fn conv(
    sizes: impl Strategy<Value = (usize, usize, usize, usize)>,
    groups: impl Strategy<Value = usize>,
) -> impl Strategy<Value = ConvSpec> {
    (
        sizes,
        prop_oneof![Just(3usize), Just(5)],
        (1usize..3, 1usize..3, groups),
        any::<bool>(),
    )
        .prop_filter_map(
            "the padded input holds the kernel",
            |((h, w, c, k), f, (s, d, groups), fused)| {
                let pad = f / 2;
                let span = d * (f - 1) + 1;
                let out = |n: usize| (n + 2 * pad).checked_sub(span).map(|n| n / s + 1);
                Some(ConvSpec {
                    input: [h, w, c * groups],
                    output: [out(h)?, out(w)?, k * groups],
                    kernel: [f; 2],
                    stride: [s; 2],
                    dilation: [d; 2],
                    pad: [pad; 2],
                    groups,
                    epilogue: if fused {
                        vec![Epilogue::Add, Epilogue::Act(Activation::Relu)]
                    } else {
                        vec![]
                    },
                    native: None,
                    slice: None,
                })
            },
        )
}

/// A small float: sums stay far from overflow, and rounding differs
/// between summation orders.
fn value() -> impl Strategy<Value = f32> {
    -4.0f32..4.0
}

/// A spec with its input, `[K, C, Fh, Fw]` weights, bias and shortcut
/// (HWC, as the output).
type Case = (ConvSpec, [Vec<f32>; 4]);

fn case(spec: impl Strategy<Value = ConvSpec>) -> impl Strategy<Value = Case> {
    spec.prop_flat_map(|spec| {
        let [h, w, c] = spec.input;
        let [ho, wo, k] = spec.output;
        let weights = k * c / spec.groups * spec.kernel[0] * spec.kernel[1];
        let buffers =
            [h * w * c, weights, k, ho * wo * k].map(|n| prop::collection::vec(value(), n));
        (Just(spec), buffers)
    })
}

/// The documented chain for every output, HWC.
fn chain(spec: &ConvSpec, [input, weight, bias, extra]: &[Vec<f32>; 4]) -> Vec<f32> {
    let [h, w, c] = spec.input;
    let [ho, wo, k] = spec.output;
    let [fh, fw] = spec.kernel;
    let (cg, kg) = (c / spec.groups, k / spec.groups);
    let inside = |o: usize, t: usize, axis: usize, n: usize| {
        let i = (o * spec.stride[axis] + t * spec.dilation[axis]) as i64 - spec.pad[axis] as i64;
        (0..n as i64).contains(&i).then_some(i as usize)
    };
    let mut out = vec![0.0; ho * wo * k];
    for oy in 0..ho {
        for ox in 0..wo {
            for co in 0..k {
                let first = co / kg * cg;
                let mut sum = 0.0f32;
                for ky in 0..fh {
                    let Some(iy) = inside(oy, ky, 0, h) else {
                        continue;
                    };
                    for kx in 0..fw {
                        let Some(ix) = inside(ox, kx, 1, w) else {
                            continue;
                        };
                        for ci in 0..cg {
                            let x = input[(iy * w + ix) * c + first + ci];
                            let wt = weight[((co * cg + ci) * fh + ky) * fw + kx];
                            sum = x.mul_add(wt, sum);
                        }
                    }
                }
                let at = (oy * wo + ox) * k + co;
                let biased = sum + bias[co];
                out[at] = if spec.epilogue.is_empty() {
                    biased
                } else {
                    (biased + extra[at]).max(0.0)
                };
            }
        }
    }
    out
}

/// `spec`'s output from the compiled kernel, called on its rows
/// `[0, split)` and then `[split, rows)` (`split` clamped), as two threads
/// would share them out.
fn run(spec: &ConvSpec, [input, weight, bias, extra]: &[Vec<f32>; 4], split: usize) -> Vec<f32> {
    let kernel = Kernel::Conv(spec.clone());
    let lengths = kernel.lengths();
    let mut jit = Jit::new().expect("a JIT for this host");
    let id = jit.compile(&kernel).expect("the kernel compiles");
    let program = jit.finish().expect("the program links");
    let weights = kernel.pack_weights(weight, None);
    // The bias, packed per group and block of output channels (zero past
    // each group's channels), a layout `packing.rs` checks.
    let mut params = vec![0.0; lengths.params];
    let bias = spec.pack_vector(bias);
    params[..bias.len()].copy_from_slice(&bias);
    let mut output = vec![f32::NAN; lengths.output];
    // NaN, so that a padded copy that leaves any of it unwritten shows.
    let mut scratch = vec![f32::NAN; lengths.scratch];
    let split = split.min(lengths.rows);
    for rows in [0..split, split..lengths.rows] {
        let buffers = Buffers {
            input,
            weights: &weights,
            params: &params,
            extra,
            output: &mut output,
            scratch: &mut scratch,
        };
        call_rows(&program, id, &lengths, buffers, rows);
    }
    output
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn native_convs_sum_in_the_documented_order(
        (spec, buffers) in case(spec()),
        split in 0usize..24,
    ) {
        sums_in_the_documented_order(&spec, &buffers, split, |_| Ok(()))?;
    }

    /// The padding's zero terms add nothing: a padded copy's sums are the
    /// chain's, the taps outside the input skipped.
    #[test]
    fn convs_on_a_padded_copy_sum_in_the_documented_order(
        (spec, buffers) in case(small_spec()),
        split in 0usize..8,
    ) {
        sums_in_the_documented_order(&spec, &buffers, split, |spec| {
            prop_assert!(spec.pads_input(), "{:?}", spec);
            Ok(())
        })?;
    }
}

/// Asserts that `spec` gives the documented chain on every native ISA of
/// the host, each ISA's spec first checked by `check`.
fn sums_in_the_documented_order(
    spec: &ConvSpec,
    buffers: &[Vec<f32>; 4],
    split: usize,
    check: impl Fn(&ConvSpec) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let expected = chain(spec, buffers);
    for isa in Isa::on_host() {
        let spec = ConvSpec {
            native: Some(isa),
            ..spec.clone()
        };
        check(&spec)?;
        let got = run(&spec, buffers, split);
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            // The ReLU, and the padding's zero terms, may keep either
            // zero's sign.
            prop_assert!(
                g.to_bits() == e.to_bits() || (*g == 0.0 && *e == 0.0),
                "{isa} {spec:?}: element {i}: kernel {g:e}, chain {e:e}"
            );
        }
    }
    Ok(())
}

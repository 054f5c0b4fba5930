//! The native epilogue (`native_epilogue`) gives bit for bit what the
//! generated `f32x4` epilogue gives, through whole conv kernels on every
//! native ISA of the host: the same spec compiled by a JIT that always uses
//! the native epilogue and by one that never does, run on the same buffers, every output
//! element compared by its bits (NaN with NaN: an operation on two NaNs may
//! keep either's payload). The tiles, parameters and shortcuts mix ordinary
//! values with NaN, infinities, signed zeros, huge values and the edges of
//! `exp`'s, `tanh`'s and gelu's erf's clamps; shapes leave partial tiles (rows) and
//! partial blocks (channels), and some write a channel slice.

use crate::{call_rows, Buffers};
use cnnjit_codegen::conv::ConvSpec;
use cnnjit_codegen::native::Isa;
use cnnjit_codegen::native_epilogue::Use;
use cnnjit_codegen::{ChannelSlice, Epilogue, Jit, Kernel};
use cnnjit_ir::Activation;
use proptest::prelude::*;

/// A float that is ordinary three times in four, else special.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -4.0f32..4.0,
        1 => -100.0f32..100.0,
        1 => prop::sample::select(vec![
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e30,
            -1e30,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            -87.0,
            88.0,
            -88.5,
            89.0,
            7.905_311,
            -7.905_311,
            // gelu's erf clamp, 4 sqrt 2 either side.
            5.656_854,
            -5.656_854,
            1e-30,
            // exp's reduced argument either side of EXP_TINY (2^-30), and
            // swish's and sigmoid's inputs whose r^4 would be subnormal.
            9.3e-10,
            -9.4e-10,
            1e-12,
            -3e-20,
        ]),
    ]
}

fn values(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(value(), n)
}

fn step() -> impl Strategy<Value = Epilogue> {
    prop_oneof![
        Just(Epilogue::Affine),
        Just(Epilogue::PRelu),
        Just(Epilogue::Add),
        prop::sample::select(vec![
            Activation::Relu,
            Activation::Relu6,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Swish,
            Activation::HardSwish,
            Activation::HardSigmoid,
            Activation::Gelu,
        ])
        .prop_map(Epilogue::Act),
        (-2.0f32..2.0).prop_map(|slope| Epilogue::Act(Activation::LeakyRelu(slope))),
    ]
}

/// A conv spec (without its ISA) with an epilogue drawn from `epilogue`
/// and fewer than `channels` output channels.
fn spec(
    epilogue: impl Strategy<Value = Vec<Epilogue>>,
    channels: usize,
) -> impl Strategy<Value = ConvSpec> {
    (
        (1usize..4, 1usize..20, 1usize..4, 1usize..channels),
        prop_oneof![Just(1usize), Just(3)],
        epilogue,
        (0usize..4, 0usize..3, any::<bool>()),
    )
        .prop_map(|((h, w, c, k), kernel, epilogue, (first, more, sliced))| {
            let pad = kernel / 2;
            let slice = (sliced && !epilogue.contains(&Epilogue::Add)).then_some(ChannelSlice {
                first,
                total: first + k + more,
            });
            ConvSpec {
                input: [h, w, c],
                output: [h, w, k],
                kernel: [kernel; 2],
                stride: [1, 1],
                dilation: [1, 1],
                pad: [pad; 2],
                groups: 1,
                epilogue,
                native: None,
                slice,
            }
        })
}

/// A spec drawn from `spec` and buffers of the lengths it needs: input,
/// `[K, C, Fh, Fw]` weights, packed params, shortcut.
fn case(spec: impl Strategy<Value = ConvSpec>) -> impl Strategy<Value = (ConvSpec, [Vec<f32>; 4])> {
    spec.prop_flat_map(|spec| {
        let lengths = Kernel::Conv(spec.clone()).lengths();
        let weights = spec.output[2] * spec.input[2] * spec.kernel[0] * spec.kernel[1];
        // The native packing's params are at least as long as the
        // Cranelift one's; draw for the longer.
        let params = Kernel::Conv(ConvSpec {
            native: Some(Isa::Avx2),
            ..spec.clone()
        })
        .lengths()
        .params
        .max(lengths.params);
        (
            Just(spec),
            [
                values(lengths.input),
                values(weights),
                values(params),
                values(lengths.extra),
            ],
        )
    })
}

/// Marks output elements the kernel must not write (a NaN payload no
/// arithmetic produces).
const UNTOUCHED: u32 = 0x7fc0_dead;

/// `spec`'s output from a JIT that applies the epilogue with `code`.
fn run(spec: &ConvSpec, [input, weight, params, extra]: &[Vec<f32>; 4], code: Use) -> Vec<f32> {
    let kernel = Kernel::Conv(spec.clone());
    let lengths = kernel.lengths();
    let mut jit = Jit::with_native_epilogue(code).expect("a JIT for this host");
    let id = jit.compile(&kernel).expect("the kernel compiles");
    let program = jit.finish().expect("the program links");
    let weights = kernel.pack_weights(weight, None);
    let mut output = vec![f32::from_bits(UNTOUCHED); lengths.output];
    let mut scratch = vec![0.0; lengths.scratch];
    let buffers = Buffers {
        input,
        weights: &weights,
        params,
        extra,
        output: &mut output,
        scratch: &mut scratch,
    };
    call_rows(&program, id, &lengths, buffers, 0..lengths.rows);
    output
}

/// Runs `spec` on every native ISA of the host with each epilogue code,
/// asserting the outputs equal bit for bit (NaN with NaN) and every
/// element the layout names written.
fn agree_bitwise(spec: &ConvSpec, buffers: &[Vec<f32>; 4]) -> Result<(), TestCaseError> {
    for isa in Isa::on_host() {
        let spec = ConvSpec {
            native: Some(isa),
            ..spec.clone()
        };
        let native = run(&spec, buffers, Use::Always);
        let generated = run(&spec, buffers, Use::Never);
        for (i, (n, g)) in native.iter().zip(&generated).enumerate() {
            prop_assert!(
                n.to_bits() == g.to_bits() || (n.is_nan() && g.is_nan()),
                "{isa}: element {i}: native {n:e} ({:#x}), generated {g:e} ({:#x})",
                n.to_bits(),
                g.to_bits()
            );
        }
        // Both wrote the same elements, every one the layout names.
        let written = native.iter().filter(|x| x.to_bits() != UNTOUCHED).count();
        let [h, w, k] = spec.output;
        prop_assert_eq!(written, h * w * k, "{}", isa);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_native_epilogue_equals_the_generated_one_bitwise(
        (spec, buffers) in case(spec(prop::collection::vec(step(), 0..4), 40)),
    ) {
        agree_bitwise(&spec, &buffers)?;
    }

    /// The bias alone or then a residual's add, and then at most one ReLU
    /// or ReLU6, which a fused tile whose columns are all written applies
    /// in registers (`finish_tile`): up to 80 channels, so whole 16- and
    /// 32-column tiles are common.
    #[test]
    fn plain_epilogues_in_registers_equal_the_generated_one_bitwise(
        (spec, buffers) in case(spec(
            prop::sample::select(vec![
                Vec::new(),
                vec![Epilogue::Act(Activation::Relu)],
                vec![Epilogue::Act(Activation::Relu6)],
                vec![Epilogue::Add],
                vec![Epilogue::Add, Epilogue::Act(Activation::Relu)],
                vec![Epilogue::Add, Epilogue::Act(Activation::Relu6)],
            ]),
            80,
        )),
    ) {
        agree_bitwise(&spec, &buffers)?;
    }
}

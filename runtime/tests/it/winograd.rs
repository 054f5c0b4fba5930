//! The numerics of every 3x3 convolution algorithm, measured against a
//! convolution computed in `f64` (written here, independent of every
//! kernel): the largest error over the output, relative to the output's
//! largest magnitude. Each algorithm has the tolerance its measured error
//! needs, with a margin (BENCHMARKS.md, "Winograd", has the figures on the
//! benchmark layers):
//!
//! | algorithm | measured (28x28x128 -> 128) | tolerance |
//! |-----------|-----------------------------|-----------|
//! | direct    | 1.5e-6                      | 5e-6      |
//! | F(2x2)    | 5.4e-7                      | 5e-6      |
//! | F(4x4)    | 9.0e-6                      | 3e-5      |
//!
//! Each algorithm is also checked within its documented worst-case bound
//! (`codegen::winograd`'s "Numerics") on a layer with one input of 1e4, and
//! `Options::winograd` against its effect: without Winograd an outlier moves
//! only the outputs of its 3x3 window, with F(4x4) those of its tiles.
//!
//! The native ISAs run the same operations as the Cranelift kernel (the
//! GEMM tiles and the transforms, `codegen::native_winograd`), so each
//! agrees with it bitwise on random kernels.
//!
//! Run with `--nocapture` to see the measured errors.

#![cfg(feature = "jit")]

use cnnjit_codegen::algorithm::Algorithm;
use cnnjit_codegen::conv::ConvSpec;
use cnnjit_codegen::native::Isa;

use cnnjit_codegen::winograd::WinogradSpec;
use cnnjit_codegen::{ChannelSlice, Epilogue, Jit, Kernel};
use cnnjit_ir::Activation;
use cnnjit_runtime::jit::{call_kernel, scratch_len, Buffers, Extra};
use cnnjit_runtime::params::random_weights;
use cnnjit_runtime::report::Path;
use cnnjit_runtime::{Model, Options, Winograd};
use proptest::prelude::*;

/// A 3x3 stride-1 convolution of `[h, w, c]` to `k` channels with padding `pad`.
fn spec(input: [usize; 3], k: usize, pad: usize, epilogue: Vec<Epilogue>) -> ConvSpec {
    let out = |n: usize| n + 2 * pad - 2;
    ConvSpec {
        input,
        output: [out(input[0]), out(input[1]), k],
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        pad: [pad; 2],
        groups: 1,
        epilogue,
        native: None,
        slice: None,
    }
}

/// A deterministic pseudo-random sequence uniform in `[-bound, bound)`.
fn values(n: usize, seed: u64, bound: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
        })
        .collect()
}

/// `spec`'s convolution (plus bias) in `f64`, HWC, PyTorch's weight layout.
fn conv_f64(spec: &ConvSpec, input: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f64> {
    let [h, w, c] = spec.input;
    let [ho, wo, k] = spec.output;
    let mut out = vec![0.0; ho * wo * k];
    for oy in 0..ho {
        for ox in 0..wo {
            for ko in 0..k {
                let mut acc = f64::from(bias[ko]);
                for ky in 0..3 {
                    for kx in 0..3 {
                        let iy = (oy + ky) as i64 - spec.pad[0] as i64;
                        let ix = (ox + kx) as i64 - spec.pad[1] as i64;
                        if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                            continue;
                        }
                        let at = (iy as usize * w + ix as usize) * c;
                        for ci in 0..c {
                            acc += f64::from(input[at + ci])
                                * f64::from(weight[((ko * c + ci) * 3 + ky) * 3 + kx]);
                        }
                    }
                }
                out[(oy * wo + ox) * k + ko] = acc;
            }
        }
    }
    out
}

/// Compiles and runs `kernel` on one thread.
fn run(kernel: &Kernel, input: &[f32], weight: &[f32], params: &[f32], extra: &[f32]) -> Vec<f32> {
    let lengths = kernel.lengths();
    let mut jit = Jit::new().expect("a JIT for this host");
    let id = jit.compile(kernel).expect("the kernel compiles");
    let program = jit.finish().expect("the program links");
    let weights = kernel.pack_weights(weight, None);
    let mut output = vec![0.0; lengths.output];
    let mut scratch = vec![0.0; scratch_len(&lengths, None)];
    let buffers = Buffers {
        input,
        weights: &weights,
        params,
        extra: Extra::Buffer(extra),
        output: &mut output,
        scratch: &mut scratch,
    };
    call_kernel(&program, id, &lengths, buffers, None).expect("the buffers fit");
    output
}

/// The kernels of every algorithm for `spec`, on the Cranelift tile and on
/// each native ISA (where the host lacks one, the Cranelift tile again).
fn kernels(spec: &ConvSpec) -> Vec<Kernel> {
    let mut kernels = vec![Kernel::Conv(spec.clone())];
    for native in [None, Some(Isa::Avx2), Some(Isa::Avx512)] {
        let spec = ConvSpec {
            native,
            ..spec.clone()
        };
        for tile in [2, 4] {
            kernels.push(Kernel::Winograd(
                WinogradSpec::of_conv(&spec, tile).expect("a 3x3 stride-1 conv"),
            ));
        }
    }
    kernels
}

fn tolerance(kernel: &Kernel) -> f64 {
    match kernel.algorithm() {
        Algorithm::Winograd { tile: 4 } => 3e-5,
        _ => 5e-6,
    }
}

/// He-initialised weights, inputs in [-1, 1), a small bias.
fn error_of_every_algorithm(input_dims: [usize; 3], k: usize, pad: usize, seed: u64) {
    let spec = spec(input_dims, k, pad, Vec::new());
    let c = input_dims[2];
    let input = values(input_dims.iter().product(), seed, 1.0);
    let he = (6.0 / (9 * c) as f32).sqrt();
    let weight = values(k * c * 9, seed + 1, he);
    let bias = values(k, seed + 2, 0.1);
    let want = conv_f64(&spec, &input, &weight, &bias);
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for kernel in kernels(&spec) {
        let params = kernel.pack_vector(&bias);
        let got = run(&kernel, &input, &weight, &params, &[]);
        let error = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (f64::from(*g) - w).abs())
            .fold(0.0, f64::max)
            / scale;
        eprintln!(
            "{input_dims:?} -> {k}, pad {pad}: {:?}, tile {}: error {error:.2e} of the output's scale",
            kernel.algorithm(),
            kernel.tile()
        );
        assert!(
            error <= tolerance(&kernel),
            "{kernel:?}: error {error:e} of the output's scale"
        );
    }
}

#[test]
fn every_algorithm_is_within_its_tolerance_of_f64() {
    error_of_every_algorithm([28, 28, 128], 128, 1, 1);
    error_of_every_algorithm([13, 11, 37], 19, 0, 2);
    error_of_every_algorithm([7, 9, 5], 3, 1, 3);
    // `U` of 8 MiB or more, so runs of tiles across tile rows
    // (`WinogradSpec::runs`): F(4x4) on 9x11x256 has 3 x 3 tiles in runs of
    // 4 and 5, cut by the bottom and right edges; on 5x7x512 to 256, F(2x2)'s
    // 3 x 4 tiles are two runs of 6, F(4x4)'s 2 x 2 two of 2.
    error_of_every_algorithm([9, 11, 256], 256, 1, 4);
    error_of_every_algorithm([5, 7, 512], 256, 1, 5);
}

#[test]
fn the_epilogue_follows_the_output_transform() {
    // Bias, relu, then a residual add, as a ResNet block's second conv with
    // its shortcut: the same as the f64 convolution with those applied.
    let steps = vec![Epilogue::Act(Activation::Relu), Epilogue::Add];
    let spec = spec([9, 10, 12], 6, 1, steps);
    let input = values(9 * 10 * 12, 7, 1.0);
    let weight = values(6 * 12 * 9, 8, 0.3);
    let bias = values(6, 9, 0.5);
    let extra = values(9 * 10 * 6, 10, 1.0);
    let want: Vec<f64> = conv_f64(&spec, &input, &weight, &bias)
        .iter()
        .zip(&extra)
        .map(|(y, e)| y.max(0.0) + f64::from(*e))
        .collect();
    for kernel in kernels(&spec).into_iter().skip(1) {
        let params = kernel.pack_vector(&bias);
        let got = run(&kernel, &input, &weight, &params, &extra);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (f64::from(*g) - w).abs() <= 1e-5,
                "{kernel:?}: element {i} is {g}, want {w}"
            );
        }
    }
}

/// `u`, the unit roundoff of `f32`.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// `gamma(n) = n u / (1 - n u)`, the bound on `n` successive roundings.
fn gamma(n: usize) -> f64 {
    n as f64 * U / (1.0 - n as f64 * U)
}

/// The error bound of every output of `kernel` (the module doc of
/// `codegen::winograd`, "Numerics"): `gamma(N) c_m P W_k`, with `P` the
/// largest `|input|` of the output's tile's patch (the direct kernel: of its
/// 3x3 window), `W_k` the sum of `|weights|` of its channel, and `c_m`, `N`:
/// direct 1 and `9C + 1`; F(2x2) 16 and `C + 20`; F(4x4) 7744/9 and `C + 20`.
fn bounds(spec: &ConvSpec, kernel: &Kernel, input: &[f32], weight: &[f32]) -> Vec<f64> {
    let [h, w, c] = spec.input;
    let [ho, wo, k] = spec.output;
    let (m, c_m, n) = match kernel.algorithm() {
        Algorithm::Winograd { tile: 2 } => (2, 16.0, c + 20),
        Algorithm::Winograd { tile: 4 } => (4, 7744.0 / 9.0, c + 20),
        _ => (1, 1.0, 9 * c + 1),
    };
    let alpha = m + 2;
    let largest = |oy: usize, ox: usize| {
        // The patch of the tile holding output (oy, ox), inside the input.
        let (ty, tx) = (oy / m * m, ox / m * m);
        let mut p = 0.0f64;
        for iy in (ty..ty + alpha).filter_map(|y| y.checked_sub(spec.pad[0])) {
            for ix in (tx..tx + alpha).filter_map(|x| x.checked_sub(spec.pad[1])) {
                if iy < h && ix < w {
                    let at = (iy * w + ix) * c;
                    for v in &input[at..at + c] {
                        p = p.max(f64::from(v.abs()));
                    }
                }
            }
        }
        p
    };
    let sums: Vec<f64> = weight
        .chunks(c * 9)
        .map(|g| g.iter().map(|x| f64::from(x.abs())).sum())
        .collect();
    let mut out = Vec::with_capacity(ho * wo * k);
    for oy in 0..ho {
        for ox in 0..wo {
            let p = largest(oy, ox);
            out.extend(sums.iter().map(|s| gamma(n) * c_m * p * s));
        }
    }
    out
}

#[test]
fn an_outlier_errs_within_the_documented_bound() {
    // 16x16x64 -> 64 with one input of 1e4: every output of every algorithm
    // is within its bound, which for F(4x4) is relative to the outlier in the
    // outlier's tiles and to the inputs of order one elsewhere.
    let spec = spec([16, 16, 64], 64, 1, Vec::new());
    let mut input = values(16 * 16 * 64, 11, 1.0);
    input[(7 * 16 + 6) * 64 + 5] = 1e4;
    let weight = values(64 * 64 * 9, 12, (6.0f32 / (9.0 * 64.0)).sqrt());
    let bias = vec![0.0; 64];
    let want = conv_f64(&spec, &input, &weight, &bias);
    for kernel in kernels(&spec) {
        let params = kernel.pack_vector(&bias);
        let got = run(&kernel, &input, &weight, &params, &[]);
        let bound = bounds(&spec, &kernel, &input, &weight);
        let mut worst = 0.0f64;
        for (i, ((g, w), b)) in got.iter().zip(&want).zip(&bound).enumerate() {
            let error = (f64::from(*g) - w).abs();
            worst = worst.max(error / b);
            assert!(
                error <= *b,
                "{:?}: output {i} errs by {error:e}, over its bound {b:e}",
                kernel.algorithm()
            );
        }
        eprintln!(
            "{:?}: the largest error is {worst:.1e} of its bound",
            kernel.algorithm()
        );
    }
}

/// A model of one `side x side x c -> c` 3x3 convolution with `winograd`.
fn one_conv(side: usize, c: usize, winograd: Winograd) -> Model {
    let source = format!("Net({side}x{side}x{c}) {{ conv({c}, 3x3, pad = 1) }}");
    let graph = cnnjit_lang::compile_source(&source)
        .expect("the net compiles")
        .remove(0)
        .graph;
    let weights = random_weights(&graph, 5);
    // The static cost model of AVX2's rates (Cranelift's where the host
    // lacks AVX2), whatever the user's `cnnjit tune` cache says.
    let options = Options {
        winograd,
        native_isa: Some(Isa::Avx2),
        tuned: false,
        ..Options::default()
    };
    Model::with_options(graph, &weights, options).expect("a model")
}

/// The outputs of `model` on `input` and on `input` with `outlier` at pixel
/// (7, 6), channel 5.
fn with_and_without(model: &mut Model, input: &[f32], outlier: f32) -> (Vec<f32>, Vec<f32>) {
    let mut moved = input.to_vec();
    moved[(7 * 16 + 6) * 64 + 5] = outlier;
    (
        model.forward(input).unwrap(),
        model.forward(&moved).unwrap(),
    )
}

/// Whether output pixel `(y, x)` is outside the 3x3 window of input (7, 6).
fn outside_window(pixel: usize) -> bool {
    let (y, x) = (pixel / 16, pixel % 16);
    y.abs_diff(7) > 1 || x.abs_diff(6) > 1
}

#[test]
fn options_bound_the_winograd_tile() {
    for (winograd, allowed) in [
        (Winograd::Any, [4, 2]),
        (Winograd::F2x2Only, [2, 0]),
        (Winograd::Off, [0, 0]),
    ] {
        let report = one_conv(56, 128, winograd).kernels();
        let tile = match &report.steps[0].path {
            Path::Compiled {
                algorithm: Algorithm::Winograd { tile },
                ..
            } => *tile,
            Path::Compiled { .. } => 0,
            other => panic!("{winograd:?}: {other:?}"),
        };
        // VGG's 56x56x128 layer: F(4x4), F(2x2) when bounded to it, then
        // direct (`choice`'s tests, by hand; on AVX-512's rates the direct
        // kernel beats F(2x2)).
        assert_eq!(tile, allowed[0], "{winograd:?}");
    }
}

#[test]
fn an_outlier_moves_its_window_without_winograd_and_its_tiles_with_it() {
    let input = values(16 * 16 * 64, 13, 1.0);
    for outlier in [1e4, f32::MAX] {
        let mut model = one_conv(16, 64, Winograd::Off);
        let (before, after) = with_and_without(&mut model, &input, outlier);
        assert!(after.iter().all(|y| y.is_finite()), "{outlier}: not finite");
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            if outside_window(i / 64) {
                assert_eq!(a.to_bits(), b.to_bits(), "{outlier}: output {i} moved");
            }
        }
    }
    // F(4x4), which the cost model picks for this layer, spreads it across
    // the outputs of the tiles whose 6x6 patch holds it (rows 4..12 and
    // columns 4..8, with pad 1), and no further.
    let mut model = one_conv(16, 64, Winograd::Any);
    assert!(matches!(
        model.kernels().steps[0].path,
        Path::Compiled {
            algorithm: Algorithm::Winograd { tile: 4 },
            ..
        }
    ));
    let (_, after) = with_and_without(&mut model, &input, f32::MAX);
    assert!(
        after.iter().any(|y| !y.is_finite()),
        "f32::MAX stays finite through F(4x4)"
    );
    let (before, after) = with_and_without(&mut model, &input, 1e4);
    let in_tiles = |pixel: usize| (4..12).contains(&(pixel / 16)) && (4..8).contains(&(pixel % 16));
    let mut moved = 0;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if !in_tiles(i / 64) {
            assert_eq!(a.to_bits(), b.to_bits(), "output {i} moved");
        } else if outside_window(i / 64) && a != b {
            moved += 1;
        }
    }
    assert!(
        moved > 0,
        "no output of the outlier's tiles outside its window moved"
    );
}

/// A random Winograd kernel's spec (no native ISA yet) and its buffers:
/// F(2x2) or F(4x4) on images whose tiles the bottom and right edges cut,
/// channel counts with tails of every ISA's vectors, padding 0 or 1, and
/// a fused epilogue of the kinds networks put after a 3x3 conv, and, one
/// time in two where the epilogue has no add, the output written into a
/// channel slice of a wider tensor (as a concat's branch).
fn winograd_cases() -> impl Strategy<Value = (WinogradSpec, [Vec<f32>; 4])> {
    let epilogues = prop::sample::select(vec![
        vec![],
        vec![Epilogue::Act(Activation::Relu)],
        vec![Epilogue::Affine, Epilogue::Act(Activation::Relu6)],
        vec![Epilogue::Add, Epilogue::Act(Activation::Relu)],
        vec![Epilogue::Affine, Epilogue::Act(Activation::Swish)],
        vec![Epilogue::PRelu],
    ]);
    (
        prop::sample::select(vec![2usize, 4]),
        (3usize..12, 3usize..12, 1usize..40),
        1usize..40,
        0usize..2,
        epilogues,
        (any::<bool>(), 0usize..3, 0usize..3),
        any::<u64>(),
    )
        .prop_map(
            |(tile, (h, w, c), k, pad, epilogue, (sliced, first, after), seed)| {
                let conv = spec([h, w, c], k, pad, epilogue);
                let mut winograd = WinogradSpec::of_conv(&conv, tile).expect("a 3x3 stride-1 conv");
                if sliced && !winograd.epilogue.contains(&Epilogue::Add) {
                    winograd.slice = Some(ChannelSlice {
                        first,
                        total: first + k + after,
                    });
                }
                // The bias and each step's per-channel vectors, unpadded: each
                // kernel pads them to its own blocks.
                let vectors = 1 + winograd
                    .epilogue
                    .iter()
                    .map(|step| match step {
                        Epilogue::Affine => 2,
                        Epilogue::PRelu => 1,
                        _ => 0,
                    })
                    .sum::<usize>();
                let buffers = [
                    values(h * w * c, seed, 1.0),
                    values(k * c * 9, seed ^ 1, 0.3),
                    values(vectors * k, seed ^ 2, 1.0),
                    values(winograd.output.iter().product(), seed ^ 3, 1.0),
                ];
                (winograd, buffers)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Each native ISA the host has, its GEMM tiles and its transforms,
    /// equals the Cranelift kernel bitwise.
    #[test]
    fn the_isas_agree_with_cranelift_bitwise((spec, [input, weight, vectors, extra]) in winograd_cases()) {
        let k = spec.output[2];
        let bits = |native: Option<Isa>| {
            let kernel = Kernel::Winograd(WinogradSpec { native, ..spec.clone() });
            let params: Vec<f32> = vectors.chunks(k).flat_map(|v| kernel.pack_vector(v)).collect();
            let extra = &extra[..kernel.lengths().extra];
            run(&kernel, &input, &weight, &params, extra)
                .into_iter()
                .map(f32::to_bits)
                .collect::<Vec<_>>()
        };
        let cranelift = bits(None);
        for isa in Isa::on_host() {
            prop_assert_eq!(&bits(Some(isa)), &cranelift, "{}", isa);
        }
    }
}

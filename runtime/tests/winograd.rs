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
//! Run with `--nocapture` to see the measured errors.

#![cfg(feature = "jit")]

use cnnjit_compiler::codegen::algorithm::Algorithm;
use cnnjit_compiler::codegen::conv::ConvSpec;
use cnnjit_compiler::codegen::vector::Act;
use cnnjit_compiler::codegen::winograd::WinogradSpec;
use cnnjit_compiler::codegen::{Epilogue, Jit, Kernel};
use cnnjit_runtime::jit::{call_kernel, scratch_len, Buffers};

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
        native: false,
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
        extra,
        output: &mut output,
        scratch: &mut scratch,
    };
    call_kernel(&program, id, &lengths, buffers, None).expect("the buffers fit");
    output
}

/// The kernels of every algorithm for `spec`, on the Cranelift tile and on
/// the native one (where the host lacks it, the Cranelift tile again).
fn kernels(spec: &ConvSpec) -> Vec<Kernel> {
    let mut kernels = vec![Kernel::Conv(spec.clone())];
    for native in [false, true] {
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
            "{input_dims:?} -> {k}, pad {pad}: {:?}, native {}: error {error:.2e} of the output's scale",
            kernel.algorithm(),
            matches!(&kernel, Kernel::Winograd(w) if w.native)
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
}

#[test]
fn the_epilogue_follows_the_output_transform() {
    // Bias, relu, then a residual add, as a ResNet block's second conv with
    // its shortcut: the same as the f64 convolution with those applied.
    let steps = vec![Epilogue::Act(Act::Relu), Epilogue::Add];
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

//! Depthwise convolution on every path: Cranelift's `f32x4` tiles and the
//! native row kernels of each ISA the host has
//! (`cnnjit_codegen::native_depthwise`). They sum every output in the same
//! order, one fused multiply-add per term, so they must agree bitwise; and
//! each must agree with the reference kernel (summing in `f64`) within the
//! rounding bound of its sum.

#![cfg(feature = "jit")]

use cnnjit_codegen::depthwise::DepthwiseSpec;
use cnnjit_codegen::native::Isa;
use cnnjit_codegen::{Epilogue, Jit, Kernel};
use cnnjit_ir::{Activation, Conv2d, Hw, Padding};
use cnnjit_runtime::jit::{call_kernel, scratch_len, Buffers, Extra};
use cnnjit_runtime::reference::{self, Dims};
use proptest::prelude::*;

/// One random depthwise layer and its data.
#[derive(Clone, Debug)]
struct Case {
    spec: DepthwiseSpec,
    input: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// The shortcut, for an `Add` epilogue.
    extra: Vec<f32>,
}

/// Values in `[-1, 1)`, from a seed.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Epilogues of every kind the native kernel applies in registers: none,
/// ReLU, ReLU6, the transcendental ones (a sigmoid, a swish, as
/// EfficientNet's depthwise layers end), and a residual add.
fn epilogues() -> impl Strategy<Value = Vec<Epilogue>> {
    prop::sample::select(vec![
        vec![],
        vec![Epilogue::Act(Activation::Relu)],
        vec![Epilogue::Act(Activation::Relu6)],
        vec![Epilogue::Act(Activation::Sigmoid)],
        vec![Epilogue::Act(Activation::Swish)],
        vec![Epilogue::Act(Activation::Relu), Epilogue::Add],
        vec![Epilogue::Add, Epilogue::Act(Activation::Swish)],
    ])
}

/// Kernels 3 and 5 (and 1 to 5 by 1 to 5), strides 1 and 2, dilation 1 and
/// 2, padding up to the dilated half kernel, 1 to 40 channels (whole and
/// partial vectors of every width), images from 1x1 to 10x30.
fn cases() -> impl Strategy<Value = Case> {
    (
        (1usize..=40, 1usize..=10, 1usize..=30),
        prop_oneof![
            prop::sample::select(vec![[3, 3], [5, 5]]),
            (1usize..=5, 1usize..=5).prop_map(|(a, b)| [a, b]),
        ],
        (1usize..=2, 1usize..=2, 1usize..=2, 1usize..=2),
        (0usize..=4, 0usize..=4),
        epilogues(),
        any::<u64>(),
    )
        .prop_filter_map(
            "the kernel fits the padded input",
            |((c, h, w), kernel, (sy, sx, dy, dx), (py, px), epilogue, seed)| {
                let (stride, dilation) = ([sy, sx], [dy, dx]);
                let pad = [
                    py.min((kernel[0] - 1) * dy / 2),
                    px.min((kernel[1] - 1) * dx / 2),
                ];
                let out = |n: usize, a: usize| {
                    let span = (n + 2 * pad[a]).checked_sub(dilation[a] * (kernel[a] - 1) + 1)?;
                    Some(span / stride[a] + 1)
                };
                let output = [out(h, 0)?, out(w, 1)?];
                let spec = DepthwiseSpec {
                    channels: c,
                    input: [h, w],
                    output,
                    kernel,
                    stride,
                    dilation,
                    pad,
                    epilogue,
                    slice: None,
                    native: None,
                };
                Some(Case {
                    input: values(h * w * c, seed),
                    weight: values(c * kernel[0] * kernel[1], seed ^ 1),
                    bias: values(c, seed ^ 2),
                    extra: values(output[0] * output[1] * c, seed ^ 3),
                    spec,
                })
            },
        )
}

impl Case {
    /// The layer as the reference kernel's convolution (symmetric padding:
    /// the bottom and right padding only add rows the output does not read).
    fn op(&self) -> Conv2d {
        let s = &self.spec;
        let hw = |[h, w]: [usize; 2]| Hw {
            h: h as u32,
            w: w as u32,
        };
        Conv2d {
            out_channels: s.channels as u32,
            kernel: hw(s.kernel),
            stride: hw(s.stride),
            dilation: hw(s.dilation),
            padding: Padding {
                top: s.pad[0] as u32,
                left: s.pad[1] as u32,
                bottom: s.pad[0] as u32,
                right: s.pad[1] as u32,
            },
            groups: s.channels as u32,
            bias: true,
            depthwise: true,
        }
    }

    /// The reference kernel's convolution (plus bias) of `input`, `weight`,
    /// `bias`.
    fn reference(&self, input: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
        let s = &self.spec;
        let dims = Dims::new(s.input[0], s.input[1], s.channels);
        let mut out = vec![0.0; s.output[0] * s.output[1] * s.channels];
        let got = reference::conv2d(&self.op(), input, dims, weight, Some(bias), &mut out)
            .expect("the reference accepts the layer");
        assert_eq!([got.h, got.w], s.output);
        out
    }

    /// The kernel on `native` (Cranelift's tiles if `None`), one thread.
    fn run(&self, native: Option<Isa>) -> Vec<f32> {
        let kernel = Kernel::Depthwise(DepthwiseSpec {
            native,
            ..self.spec.clone()
        });
        let lengths = kernel.lengths();
        let mut jit = Jit::new().expect("a JIT for this host");
        let id = jit.compile(&kernel).expect("the kernel compiles");
        let program = jit.finish().expect("the program links");
        let weights = kernel.pack_weights(&self.weight, None);
        let params = kernel.pack_vector(&self.bias);
        let mut output = vec![f32::NAN; lengths.output];
        let mut scratch = vec![0.0; scratch_len(&lengths, None)];
        let buffers = Buffers {
            input: &self.input,
            weights: &weights,
            params: &params,
            extra: Extra::Buffer(&self.extra[..lengths.extra]),
            output: &mut output,
            scratch: &mut scratch,
        };
        call_kernel(&program, id, &lengths, buffers, None).expect("the buffers fit");
        output
    }
}

/// `f64` ReLU and ReLU6, the sigmoid, the swish and the add of the epilogue.
fn epilogue(steps: &[Epilogue], x: f64, shortcut: f32) -> f64 {
    steps.iter().fold(x, |x, step| match step {
        Epilogue::Act(Activation::Relu) => x.max(0.0),
        Epilogue::Act(Activation::Relu6) => x.clamp(0.0, 6.0),
        Epilogue::Act(Activation::Sigmoid) => 1.0 / (1.0 + (-x).exp()),
        Epilogue::Act(Activation::Swish) => x / (1.0 + (-x).exp()),
        Epilogue::Add => x + f64::from(shortcut),
        other => unreachable!("no case draws {other:?}"),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Each native ISA the host has equals Cranelift's depthwise bitwise.
    #[test]
    fn the_isas_agree_with_cranelift_bitwise(case in cases()) {
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let cranelift = bits(case.run(None));
        for isa in Isa::on_host() {
            prop_assert_eq!(&bits(case.run(Some(isa))), &cranelift, "{}", isa);
        }
    }

    /// Every path against the reference kernel: each output within the
    /// rounding bound of its sum of `n` terms (`(n + 2) 2^-24` times the sum of
    /// their magnitudes, the bias's included; a swish's slope, at most 1.1,
    /// times that), the sigmoid's own error (`1e-6`) added where it runs and
    /// the swish's (`1e-6` relative to its input, at least `1e-6`).
    #[test]
    fn every_path_agrees_with_the_reference(case in cases()) {
        let want = case.reference(&case.input, &case.weight, &case.bias);
        let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
        let magnitude = case.reference(&abs(&case.input), &abs(&case.weight), &abs(&case.bias));
        let terms = (case.spec.kernel[0] * case.spec.kernel[1]) as f64;
        let steps = &case.spec.epilogue;
        let sigmoid = if steps.contains(&Epilogue::Act(Activation::Sigmoid)) { 1e-6 } else { 0.0 };
        let swish = steps.contains(&Epilogue::Act(Activation::Swish));
        for native in std::iter::once(None).chain(Isa::on_host().into_iter().map(Some)) {
            let got = case.run(native);
            prop_assert_eq!(got.len(), want.len());
            for (i, (&got, &want)) in got.iter().zip(&want).enumerate() {
                let shortcut = case.extra[i];
                let before = f64::from(want);
                let want = epilogue(steps, before, shortcut);
                // ReLU, ReLU6, the sigmoid and the add do not widen an error;
                // a swish widens it by its slope.
                let (slope, own) = if swish {
                    (1.1, 1e-6 * (before.abs() + f64::from(shortcut.abs()) + 1.0))
                } else {
                    (1.0, 0.0)
                };
                let bound = slope * (terms + 2.0) * f64::from(f32::EPSILON) / 2.0
                    * f64::from(magnitude[i])
                    + sigmoid
                    + own
                    + f64::from(f32::EPSILON) * want.abs();
                prop_assert!(
                    (f64::from(got) - want).abs() <= bound,
                    "{:?}: output {} is {}, want {} (bound {:e})", native, i, got, want, bound
                );
            }
        }
    }
}

/// Small integers: every sum is exact, so each path must compute exactly
/// the hand-checked values. A 3x3 depthwise on a 1x4 image of 20 channels,
/// padding 1, weights all 1: output pixel `x` of channel `c` sums the inputs
/// `x - 1 ..= x + 1` (clipped) of channel `c`, plus the bias 1.
#[test]
fn every_path_sums_a_row_exactly() {
    let c = 20;
    let spec = DepthwiseSpec {
        channels: c,
        input: [1, 4],
        output: [1, 4],
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        pad: [1, 1],
        epilogue: vec![],
        slice: None,
        native: None,
    };
    // Input pixel `x`, channel `ch`: `x + ch`.
    let input: Vec<f32> = (0..4)
        .flat_map(|x| (0..c).map(move |ch| (x + ch) as f32))
        .collect();
    let case = Case {
        spec,
        input,
        weight: vec![1.0; c * 9],
        bias: vec![1.0; c],
        extra: vec![],
    };
    // By hand: pixel 0 sums x = 0, 1; pixels 1, 2 sum three; pixel 3 sums 2, 3.
    let want: Vec<f32> = (0..4)
        .flat_map(|x: usize| {
            (0..c).map(move |ch| {
                let xs = x.saturating_sub(1)..=(x + 1).min(3);
                1.0 + xs.map(|i| (i + ch) as f32).sum::<f32>()
            })
        })
        .collect();
    for native in std::iter::once(None).chain(Isa::on_host().into_iter().map(Some)) {
        assert_eq!(case.run(native), want, "{native:?}");
    }
}

//! gelu's compiled erf (Eigen's rational approximation, clamped at +-4)
//! against the reference kernel's (`f64` erf, rounded once), through a 1x1
//! depthwise kernel with unit weights and no bias (whose output before the
//! epilogue is its input), on Cranelift's tiles and each native ISA of the
//! host: within 3e-7 max(1, |x|) everywhere (measured largest 1.9e-7, on a
//! grid of [-10, 10]), infinities and NaN as the reference gives them
//! (+inf to +inf; -inf to NaN, as `-inf (1 + erf(-inf))` is).

#![cfg(feature = "jit")]

use cnnjit_codegen::depthwise::DepthwiseSpec;
use cnnjit_codegen::native::Isa;
use cnnjit_codegen::{Epilogue, Jit, Kernel};
use cnnjit_ir::Activation;
use cnnjit_runtime::jit::{call_kernel, scratch_len, Buffers, Extra};
use cnnjit_runtime::reference::activate;
use proptest::prelude::*;

/// gelu of `xs` by the kernel on `native` (Cranelift's tiles if `None`).
fn compiled(xs: &[f32], native: Option<Isa>) -> Vec<f32> {
    let c = xs.len();
    let kernel = Kernel::Depthwise(DepthwiseSpec {
        channels: c,
        input: [1, 1],
        output: [1, 1],
        kernel: [1, 1],
        stride: [1, 1],
        dilation: [1, 1],
        pad: [0, 0],
        epilogue: vec![Epilogue::Act(Activation::Gelu)],
        slice: None,
        native,
    });
    let lengths = kernel.lengths();
    let mut jit = Jit::new().expect("a JIT for this host");
    let id = jit.compile(&kernel).expect("the kernel compiles");
    let program = jit.finish().expect("the program links");
    let weights = kernel.pack_weights(&vec![1.0; c], None);
    let params = kernel.pack_vector(&vec![0.0; c]);
    let mut output = vec![0.0; lengths.output];
    let mut scratch = vec![0.0; scratch_len(&lengths, None)];
    let extra = vec![0.0; lengths.extra];
    let buffers = Buffers {
        input: xs,
        weights: &weights,
        params: &params,
        extra: Extra::Buffer(&extra),
        output: &mut output,
        scratch: &mut scratch,
    };
    call_kernel(&program, id, &lengths, buffers, None).expect("the buffers fit");
    output
}

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -8.0f32..8.0,
        2 => -1e4f32..1e4,
        1 => prop::sample::select(vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            f32::MAX,
            f32::MIN,
            1e-30,
            -1e-30,
            5.656_854,
            -5.656_854,
        ]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn compiled_gelu_is_within_its_bound_of_the_reference(
        xs in prop::collection::vec(value(), 1..40),
    ) {
        for native in std::iter::once(None).chain(Isa::on_host().into_iter().map(Some)) {
            let got = compiled(&xs, native);
            for (&x, &y) in xs.iter().zip(&got) {
                let want = activate(Activation::Gelu, x);
                if want.is_nan() || want.is_infinite() {
                    prop_assert!(
                        y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan()),
                        "gelu({x}) = {y}, the reference {want} ({native:?})"
                    );
                } else {
                    let bound = 3e-7 * f64::from(x.abs()).max(1.0);
                    prop_assert!(
                        (f64::from(y) - f64::from(want)).abs() <= bound,
                        "gelu({x}) = {y}, the reference {want} ({native:?})"
                    );
                }
            }
        }
    }
}

//! Depthwise convolutions, one thread, Cranelift's `f32x4` tiles against the
//! native row kernels of each ISA the host has
//! (`cnnjit::codegen::native_depthwise`): MobileNetV1's 112x112x32 and
//! 56x56x128 3x3 stride-1 layers and its 112x112x64 stride-2 one, and
//! EfficientNet-B0's 5x5 stride-1 28x28x240 layer, each with a fused ReLU6,
//! the 5x5 one also with a swish, and EfficientNet-B0's 14x14x672 5x5 layer
//! with a swish (four of each row's 14 columns are border pixels, one call
//! each); the native kernels apply every epilogue in registers.
//! Throughput is FLOPs (2 per multiply-add, the padding's taps included as
//! the network's figures count them).
//!
//! `cargo bench --bench native_depthwise`.

use cnnjit::codegen::depthwise::DepthwiseSpec;
use cnnjit::codegen::native::Isa;
use cnnjit::codegen::{Epilogue, Jit, Kernel};
use cnnjit::ir::Activation;
use cnnjit::runtime::jit::{call_kernel, scratch_len, Buffers, Extra};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;

/// A `kernel x kernel` depthwise layer on `side x side x channels`, `same`
/// padding, then `act`.
fn layer(
    side: usize,
    channels: usize,
    kernel: usize,
    stride: usize,
    act: Activation,
) -> DepthwiseSpec {
    let out = (side - 1) / stride + 1;
    DepthwiseSpec {
        channels,
        input: [side, side],
        output: [out, out],
        kernel: [kernel; 2],
        stride: [stride; 2],
        dilation: [1, 1],
        pad: [kernel / 2; 2],
        epilogue: vec![Epilogue::Act(act)],
        slice: None,
        native: None,
    }
}

fn depthwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("depthwise");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for (name, spec) in [
        ("112x112x32_3x3_s1", layer(112, 32, 3, 1, Activation::Relu6)),
        ("56x56x128_3x3_s1", layer(56, 128, 3, 1, Activation::Relu6)),
        ("112x112x64_3x3_s2", layer(112, 64, 3, 2, Activation::Relu6)),
        ("28x28x240_5x5_s1", layer(28, 240, 5, 1, Activation::Relu6)),
        (
            "28x28x240_5x5_s1_swish",
            layer(28, 240, 5, 1, Activation::Swish),
        ),
        (
            "14x14x672_5x5_s1_swish",
            layer(14, 672, 5, 1, Activation::Swish),
        ),
    ] {
        let [ho, wo] = spec.output;
        let macs = (ho * wo * spec.channels * spec.kernel[0] * spec.kernel[1]) as u64;
        group.throughput(Throughput::Elements(2 * macs));
        let [h, w] = spec.input;
        let input = cnnjit::check::random_input(h * w * spec.channels, 1);
        let weight =
            cnnjit::check::random_input(spec.channels * spec.kernel[0] * spec.kernel[1], 2);
        let bias = cnnjit::check::random_input(spec.channels, 3);
        let paths = std::iter::once(None).chain(Isa::on_host().into_iter().map(Some));
        for native in paths {
            let kernel = Kernel::Depthwise(DepthwiseSpec {
                native,
                ..spec.clone()
            });
            let lengths = kernel.lengths();
            let mut jit = Jit::new().expect("a JIT for this host");
            let id = jit.compile(&kernel).expect("the kernel compiles");
            let program = jit.finish().expect("the program links");
            let weights = kernel.pack_weights(&weight, None);
            let params = kernel.pack_vector(&bias);
            let mut output = vec![0.0; lengths.output];
            let mut scratch = vec![0.0; scratch_len(&lengths, None)];
            let path = native.map_or("cranelift", Isa::name);
            group.bench_function(format!("{name}/{path}"), |bench| {
                bench.iter(|| {
                    let buffers = Buffers {
                        input: &input,
                        weights: &weights,
                        params: &params,
                        extra: Extra::NONE,
                        output: &mut output,
                        scratch: &mut scratch,
                    };
                    call_kernel(&program, id, &lengths, buffers, None).expect("the buffers fit")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, depthwise);
criterion_main!(benches);

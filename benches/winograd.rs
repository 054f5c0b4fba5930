//! Every algorithm for the 3x3 convolution + ReLU of benches/nets/layers.cnn
//! (56x56x128 -> 128 and 28x28x256 -> 256), one thread, kernel alone:
//! direct, Winograd F(2x2, 3x3) and F(4x4, 3x3). Throughput is effective
//! FLOPs (the direct convolution's `2 MACs`), so the figures compare.
//!
//! `cargo bench --bench winograd`.

use cnnjit::codegen::conv::ConvSpec;
use cnnjit::codegen::winograd::WinogradSpec;
use cnnjit::codegen::{Epilogue, Jit, Kernel};
use cnnjit::ir::Activation;
use cnnjit::runtime::jit::{call_kernel, scratch_len, Buffers};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;

fn conv3x3(side: usize, channels: usize) -> ConvSpec {
    ConvSpec {
        input: [side, side, channels],
        output: [side, side, channels],
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        pad: [1, 1],
        groups: 1,
        epilogue: vec![Epilogue::Act(Activation::Relu)],
        native: None,
        slice: None,
    }
}

fn algorithms(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv3x3_relu");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (side, channels) in [(56, 128), (28, 256)] {
        let spec = conv3x3(side, channels);
        let macs = (side * side * channels * channels * 9) as u64;
        group.throughput(Throughput::Elements(2 * macs));
        let mut kernels = vec![("direct", Kernel::Conv(spec.clone()))];
        let native = ConvSpec {
            native: cnnjit::codegen::native::Isa::best(),
            ..spec.clone()
        };
        kernels.push(("direct-native", Kernel::Conv(native.clone())));
        for (name, conv, tile) in [
            ("F2x2", &spec, 2),
            ("F4x4", &spec, 4),
            ("F4x4-native", &native, 4),
        ] {
            let w = WinogradSpec::of_conv(conv, tile).expect("a 3x3 stride-1 conv");
            kernels.push((name, Kernel::Winograd(w)));
        }
        for (name, kernel) in kernels {
            let lengths = kernel.lengths();
            let mut jit = Jit::new().expect("a JIT for this host");
            let id = jit.compile(&kernel).expect("the kernel compiles");
            let program = jit.finish().expect("the program links");
            let input = cnnjit::check::random_input(lengths.input, 1);
            let weight = cnnjit::check::random_input(channels * channels * 9, 2);
            let weights = kernel.pack_weights(&weight, None);
            let params = kernel.pack_vector(&vec![0.1; channels]);
            let mut output = vec![0.0; lengths.output];
            let mut scratch = vec![0.0; scratch_len(&lengths, None)];
            group.bench_function(format!("{name}/{side}x{side}x{channels}"), |b| {
                b.iter(|| {
                    let buffers = Buffers {
                        input: std::hint::black_box(&input),
                        weights: &weights,
                        params: &params,
                        extra: &[],
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

criterion_group!(benches, algorithms);
criterion_main!(benches);

//! Packing ResNet-50's largest weights, one thread, each call into a fresh
//! buffer as `Model::new` does (so the page faults of new memory count):
//! the 1x1 GEMM and direct layouts, and Winograd F(4x4)'s transformed one,
//! with a folded bn's factors. Throughput is packed floats.
//!
//! `cargo bench --bench packing`.

use cnnjit::codegen::conv::ConvSpec;
use cnnjit::codegen::native;
use cnnjit::codegen::winograd::WinogradSpec;
use cnnjit::codegen::Kernel;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;

/// A `kernel x kernel` conv from `side x side x channels` to `outputs`
/// channels, padded to keep the size at stride 1.
fn conv(side: usize, channels: usize, outputs: usize, kernel: usize, stride: usize) -> ConvSpec {
    let pad = kernel / 2;
    let out = (side + 2 * pad - kernel) / stride + 1;
    ConvSpec {
        input: [side, side, channels],
        output: [out, out, outputs],
        kernel: [kernel, kernel],
        stride: [stride, stride],
        dilation: [1, 1],
        pad: [pad, pad],
        groups: 1,
        epilogue: Vec::new(),
        native: native::Isa::best(),
        slice: None,
    }
}

fn packers(c: &mut Criterion) {
    let mut group = c.benchmark_group("pack_weights");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let layers = [
        ("1x1/7x7x2048-512", conv(7, 2048, 512, 1, 1), false),
        ("3x3s2/28x28x128-128", conv(28, 128, 128, 3, 2), false),
        ("F4x4/14x14x256-256", conv(14, 256, 256, 3, 1), true),
        ("F4x4/7x7x512-512", conv(7, 512, 512, 3, 1), true),
    ];
    for (name, spec, winograd) in layers {
        let [fh, fw] = spec.kernel;
        let weight = cnnjit::check::random_input(spec.output[2] * spec.input[2] * fh * fw, 1);
        let scale: Vec<f64> = (0..spec.output[2])
            .map(|k| 1.0 + k as f64 / 1024.0)
            .collect();
        let kernel = if winograd {
            Kernel::Winograd(WinogradSpec::of_conv(&spec, 4).expect("a 3x3 stride-1 conv"))
        } else {
            Kernel::Conv(spec)
        };
        group.throughput(Throughput::Elements(kernel.lengths().weights as u64));
        group.bench_function(name, |b| {
            b.iter(|| kernel.pack_weights(std::hint::black_box(&weight), Some(&scale)))
        });
    }
    group.finish();
}

criterion_group!(benches, packers);
criterion_main!(benches);

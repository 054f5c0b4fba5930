//! Dense layers as a whole model step, one thread: the native GEMV of each
//! ISA the host has against the Cranelift tile (`Options::native_tile`
//! off), on MobileNetV1's classifier (1024 -> 1000, 4 MB of weights) and a
//! 4096 -> 4096 layer (64 MB, AlexNet's and VGG16's fc7). Throughput is the
//! weights' bytes, each read once per call: a GEMV runs at the rate its
//! weights stream from memory (`cnnjit peak`'s triad is the roof).
//!
//! `cargo bench --bench gemv`.

use cnnjit::codegen::native::Isa;
use cnnjit::{Model, Options};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;

fn gemv(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemv");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (inputs, outputs) in [(1024, 1000), (4096, 4096)] {
        let source = format!("Dense(1x1x{inputs}) {{ flatten, dense({outputs}) }}");
        let graph = cnnjit::lang::compile_source(&source)
            .expect("a valid net")
            .remove(0)
            .graph;
        let input = cnnjit::check::random_input(inputs, 1);
        group.throughput(Throughput::Bytes((4 * inputs * outputs) as u64));
        let paths = Isa::on_host()
            .into_iter()
            .map(|isa| {
                let options = Options {
                    native_isa: Some(isa),
                    threads: 1,
                    ..Options::default()
                };
                (isa.name(), options)
            })
            .chain([(
                "cranelift",
                Options {
                    native_tile: false,
                    threads: 1,
                    ..Options::default()
                },
            )]);
        for (path, options) in paths {
            let weights = cnnjit::runtime::params::random_weights(&graph, 2);
            let mut model = Model::with_options(graph.clone(), &weights, options).unwrap();
            group.bench_function(format!("{inputs}x{outputs}/{path}"), |bench| {
                bench.iter(|| model.forward(std::hint::black_box(&input)).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, gemv);
criterion_main!(benches);

//! Dense layers over a batch, one thread: a 4096 -> 4096 layer (64 MB of
//! weights, AlexNet's and VGG16's fc7) on 32 images, run as a batch
//! (`cnnjit::runtime::batch`: each block's weights read once for the chunk)
//! on each ISA the host has, against the same 32 images one by one through
//! the native GEMV (`forward` per image, the weights read 32 times).
//! Throughput is the images' multiply-accumulates.
//!
//! `cargo bench --bench dense_batch`.

use cnnjit::codegen::native::Isa;
use cnnjit::{Model, Options};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;

fn dense_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("dense_batch");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    let (features, batch) = (4096, 32);
    let source = format!("Dense(1x1x{features}) {{ flatten, dense({features}), relu }}");
    let graph = cnnjit::lang::compile_source(&source)
        .expect("a valid net")
        .remove(0)
        .graph;
    let inputs = cnnjit::check::random_input(features * batch, 1);
    let mut outputs = vec![0.0; features * batch];
    group.throughput(Throughput::Elements((features * features * batch) as u64));
    let weights = cnnjit::runtime::params::random_weights(&graph, 2);
    for isa in Isa::on_host() {
        let options = Options {
            native_isa: Some(isa),
            threads: 1,
            ..Options::default()
        };
        let mut model = Model::with_options(graph.clone(), &weights, options).unwrap();
        group.bench_function(format!("batch{batch}/{}", isa.name()), |bench| {
            bench.iter(|| {
                model
                    .forward_batch(std::hint::black_box(&inputs), &mut outputs)
                    .unwrap()
            })
        });
        group.bench_function(format!("one_by_one{batch}/{}", isa.name()), |bench| {
            bench.iter(|| {
                for (x, y) in inputs
                    .chunks_exact(features)
                    .zip(outputs.chunks_exact_mut(features))
                {
                    model.forward_into(std::hint::black_box(x), y).unwrap()
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, dense_batch);
criterion_main!(benches);

//! The reference path's speed: `cnnjit::Model` (the reference kernels, one
//! obvious loop nest per layer) with random weights, one image at a time, on
//! LeNet-5 and ResNet-18. This is the baseline the JIT is measured against.
//!
//! ResNet-18 takes seconds per image on this path, so its group takes few,
//! flat samples (`cargo bench --bench reference` runs in about a minute).

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use std::time::Duration;

const LENET5: &str = include_str!("../examples/nets/lenet5.cnn");
const RESNET: &str = include_str!("../examples/nets/resnet.cnn");

/// The net called `name` in `source`, with random weights (seed 0).
fn model(source: &str, name: &str) -> cnnjit::Model {
    let graph = cnnjit::compiler::compile_source(source)
        .expect("the net compiles")
        .into_iter()
        .find(|n| n.graph.name == name)
        .unwrap_or_else(|| panic!("the source defines {name}"))
        .graph;
    cnnjit::Model::random(graph, 0).expect("random weights fit the net")
}

/// Deterministic input in [-0.5, 0.5), as `cnnjit compare --bench` uses.
fn input(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn bench_net(c: &mut Criterion, group: &str, source: &str, name: &str, slow: bool) {
    let mut model = model(source, name);
    let x = input(model.input_len());
    let mut y = vec![0.0; model.output_len()];
    let mut group = c.benchmark_group(group);
    if slow {
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_secs(5));
    }
    group.bench_function(format!("{name} batch 1"), |b| {
        b.iter(|| {
            model
                .forward_into(std::hint::black_box(&x), &mut y)
                .expect("forward runs")
        })
    });
    group.finish();
}

fn reference(c: &mut Criterion) {
    bench_net(c, "reference", LENET5, "LeNet5", false);
    bench_net(c, "reference", RESNET, "ResNet18", true);
}

criterion_group!(benches, reference);
criterion_main!(benches);

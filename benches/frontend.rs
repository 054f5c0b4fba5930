//! The front end's cost in a user's build: parse + expand + shapes + cost +
//! plan, as the `cnn!` macro runs them, for the largest networks of the
//! lecture (target: under 20 ms each).

use criterion::{criterion_group, criterion_main, Criterion};

const RESNET: &str = include_str!("../examples/nets/resnet.cnn");
const EFFICIENTNET: &str = include_str!("../examples/nets/efficientnet_b0.cnn");

fn frontend(c: &mut Criterion) {
    let mut group = c.benchmark_group("frontend");
    // resnet.cnn holds ResNet-18/34/50/152; compile the file, then keep ResNet-152.
    group.bench_function("resnet.cnn (18, 34, 50, 152)", |b| {
        b.iter(|| cnnjit::lang::compile_source(std::hint::black_box(RESNET)).unwrap())
    });
    // The blocks (everything before the first net), then ResNet-152 alone.
    let blocks = RESNET.split("/// ResNet-18").next().unwrap();
    let resnet152 = RESNET
        .split("/// ResNet-152")
        .nth(1)
        .expect("resnet.cnn defines ResNet-152");
    let src = format!("{blocks}/// ResNet-152{resnet152}");
    assert_eq!(cnnjit::lang::compile_source(&src).unwrap().len(), 1);
    group.bench_function("ResNet-152", |b| {
        b.iter(|| cnnjit::lang::compile_source(std::hint::black_box(&src)).unwrap())
    });
    group.bench_function("EfficientNet-B0", |b| {
        b.iter(|| cnnjit::lang::compile_source(std::hint::black_box(EFFICIENTNET)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, frontend);
criterion_main!(benches);

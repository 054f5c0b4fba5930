//! The JIT against its slow twin, one image at a time with random weights:
//! the layers of benches/nets/layers.cnn (the 3x3 conv + ReLU on 56x56x128
//! and on 28x28x256, MobileNet's depthwise-separable block, the 1x3 + 3x1
//! pair, two 1x1 convs, the small-image 1x1 convs on 7x7x1024 and
//! 14x14x256, the 7x7x512 3x3 conv and the 7x7x1024 separable block, a squeeze-excite scale and an unfused add, a dense +
//! softmax head, a four-branch concat, GoogLeNet's lrn, AlexNet's fc6) and
//! whole LeNet-5, MobileNetV1, ResNet-18, ResNet-50 and VGG16. The JIT runs with the widest native GEMM tile the
//! host has (group `native`: AVX-512 or AVX2; pure Cranelift where the host
//! has neither) and in pure Cranelift (group `cranelift`); the 3x3 conv on
//! 56x56x128 and the 1x1 conv on 28x28x256 also run on each ISA, direct
//! (no Winograd) on one thread (groups `avx2` and `avx512`, the next
//! narrower where the host lacks one). The separable pairs and MobileNetV1 also run as `separate`:
//! each pair as two JIT kernels (`Options::fuse_separable` off), against the
//! fused one. The reference path takes seconds per image on the large nets,
//! so it is timed on the layers, LeNet-5 and ResNet-18 only, with few flat
//! samples.
//!
//! `cargo bench --bench jit_vs_reference` (`-- native/` for one group alone).

use cnnjit::codegen::native::Isa;
use cnnjit::{Model, Options, Winograd};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use std::time::Duration;

const LAYERS: &str = include_str!("nets/layers.cnn");
const LENET5: &str = include_str!("../examples/nets/lenet5.cnn");
const MOBILENET: &str = include_str!("../examples/nets/mobilenet_v1.cnn");
const RESNET: &str = include_str!("../examples/nets/resnet.cnn");
const VGG: &str = include_str!("../examples/nets/vgg16.cnn");

/// The two JIT paths.
const JIT: &[&str] = &["native", "cranelift"];
/// The JIT paths and the reference.
const WITH_REFERENCE: &[&str] = &["native", "cranelift", "reference"];
/// The native tile on each ISA.
const ISAS: &[&str] = &["avx2", "avx512"];
/// Every way a separable pair runs.
const PAIRS: &[&str] = &["native", "cranelift", "separate", "reference"];

/// The options a benchmark group builds its model with.
fn options(backend: &str) -> Options {
    match backend {
        "native" => Options::default(),
        "cranelift" => Options {
            native_tile: false,
            ..Options::default()
        },
        "avx2" | "avx512" => Options {
            native_isa: Some(if backend == "avx2" {
                Isa::Avx2
            } else {
                Isa::Avx512
            }),
            threads: 1,
            winograd: Winograd::Off,
            ..Options::default()
        },
        "separate" => Options {
            fuse_separable: false,
            ..Options::default()
        },
        _ => Options {
            reference: true,
            ..Options::default()
        },
    }
}

/// The net called `name` in `source` with random weights (seed 0).
fn model(source: &str, name: &str, options: Options) -> Model {
    let graph = cnnjit::lang::compile_source(source)
        .expect("the net compiles")
        .into_iter()
        .find(|n| n.graph.name == name)
        .unwrap_or_else(|| panic!("the source defines {name}"))
        .graph;
    let weights = cnnjit::runtime::params::random_weights(&graph, 0);
    Model::with_options(graph, &weights, options).expect("random weights fit the net")
}

fn bench(c: &mut Criterion, source: &str, name: &str, backends: &[&str]) {
    for &backend in backends {
        let mut model = model(source, name, options(backend));
        let x = cnnjit::check::random_input(model.input_len(), 1);
        let mut y = vec![0.0; model.output_len()];
        let mut group = c.benchmark_group(backend);
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(2));
        group.bench_function(name, |b| {
            b.iter(|| {
                model
                    .forward_into(std::hint::black_box(&x), &mut y)
                    .expect("forward runs")
            })
        });
        group.finish();
    }
}

fn jit_vs_reference(c: &mut Criterion) {
    for layer in ["Conv3x3_56", "Conv3x3_28", "Conv1x1_56", "Conv1x1_28"] {
        bench(c, LAYERS, layer, WITH_REFERENCE);
    }
    for layer in ["Conv3x3_56", "Conv1x1_28"] {
        bench(c, LAYERS, layer, ISAS);
    }
    for layer in [
        "ScaleAdd28",
        "DenseSoftmax",
        "Concat28",
        "Lrn56",
        "Dense9216",
    ] {
        bench(c, LAYERS, layer, WITH_REFERENCE);
    }
    for layer in ["DwSep112", "Conv1x3_3x1"] {
        bench(c, LAYERS, layer, PAIRS);
    }
    // The small-image layers: pointwise ones over runs of pixels, the 3x3
    // on a padded copy, the pair run whole by blocks of channels; too slow
    // for the reference's loops.
    for layer in ["Conv1x1_7", "Conv1x1_14", "Conv3x3_7"] {
        bench(c, LAYERS, layer, JIT);
        bench(c, LAYERS, layer, ISAS);
    }
    bench(c, LAYERS, "DwSep7", &PAIRS[..3]);
    bench(c, LENET5, "LeNet5", WITH_REFERENCE);
    bench(c, RESNET, "ResNet18", WITH_REFERENCE);
    bench(c, MOBILENET, "MobileNetV1", &PAIRS[..3]);
    bench(c, RESNET, "ResNet50", JIT);
    bench(c, VGG, "VGG16", JIT);
}

criterion_group!(benches, jit_vs_reference);
criterion_main!(benches);

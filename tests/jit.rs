//! The JIT against its slow twin: property tests over random shapes,
//! strides, pads, dilations, groups, odd channel counts and fused epilogues
//! (JIT == reference within 1e-4 of the output's scale), every example network, and
//! outputs bitwise identical for any thread count. Every property runs both
//! code paths: convolutions on the native AVX2 tile (where the host has it)
//! and in pure Cranelift.

use cnnjit::check::{jit_against_reference, random_input};
use cnnjit::runtime::model::Backend;
use cnnjit::{Model, Options};
use proptest::prelude::*;

/// Compiles `source`'s only net, or `None` if the random layer does not fit its input.
fn graph(source: &str) -> Option<cnnjit::Graph> {
    cnnjit::compiler::compile_source(source)
        .ok()
        .map(|mut nets| nets.remove(0).graph)
}

fn assert_agrees(source: &str, seed: u64, threads: usize) {
    let Some(graph) = graph(source) else { return };
    for native_tile in [true, false] {
        let options = Options {
            threads,
            native_tile,
            ..Options::default()
        };
        let a = jit_against_reference(&graph, seed, options).unwrap();
        assert!(
            matches!(a.backend, Backend::Jit { compiled_steps, .. } if compiled_steps > 0),
            "{source}: {:?}",
            a.backend
        );
        assert!(
            a.within_tolerance,
            "{source}, native tile {native_tile}: max abs {:e}, max rel {:e}",
            a.max_abs, a.max_rel
        );
    }
}

const EPILOGUES: &[&str] = &[
    "",
    ", relu",
    ", bn, relu",
    ", bn",
    ", relu6",
    ", leaky_relu(0.1)",
    ", tanh",
    ", sigmoid",
    ", swish",
    ", hard_swish",
    ", hard_sigmoid",
    ", relu, bn",
    ", bn, relu, bn, tanh",
    ", dropout(0.2), identity, relu",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn conv_equals_reference(
        (h, w) in (1u32..12, 1u32..12),
        c in 1u32..11,
        k_per_group in 1u32..40,
        groups in 1u32..4,
        (fh, fw) in (1u32..5, 1u32..5),
        (sh, sw) in (1u32..4, 1u32..4),
        (ph, pw) in (0u32..3, 0u32..3),
        (dh, dw) in (1u32..3, 1u32..3),
        bias in any::<bool>(),
        epilogue in 0..EPILOGUES.len(),
        seed in any::<u64>(),
    ) {
        let (c, k) = (c * groups, k_per_group * groups);
        let source = format!(
            "Net({h}x{w}x{c}) {{ conv({k}, {fh}x{fw}, stride = ({sh}, {sw}), pad = ({ph}, {pw}), dilation = ({dh}, {dw}), groups = {groups}, bias = {bias}){} }}",
            EPILOGUES[epilogue]
        );
        assert_agrees(&source, seed, 1);
    }

    #[test]
    fn dwconv_and_same_padding_equal_reference(
        (h, w) in (1u32..14, 1u32..14),
        c in 1u32..20,
        multiplier in 1u32..3,
        f in 1u32..6,
        s in 1u32..3,
        epilogue in 0..EPILOGUES.len(),
        seed in any::<u64>(),
    ) {
        let source = format!(
            "Net({h}x{w}x{c}) {{ dwconv({f}x{f}, stride = {s}, pad = same, multiplier = {multiplier}){} }}",
            EPILOGUES[epilogue]
        );
        assert_agrees(&source, seed, 2);
    }

    #[test]
    fn dense_equals_reference(
        (h, w, c) in (1u32..5, 1u32..5, 1u32..7),
        n in 1u32..40,
        bias in any::<bool>(),
        epilogue in 0..EPILOGUES.len(),
        seed in any::<u64>(),
    ) {
        // A dense after flatten reads its weights in PyTorch's (C, H, W) order.
        let source = format!(
            "Net({h}x{w}x{c}) {{ flatten, dense({n}, bias = {bias}){}, dense(3) }}",
            EPILOGUES[epilogue]
        );
        assert_agrees(&source, seed, 1);
    }

    #[test]
    fn pools_equal_reference(
        (h, w) in (1u32..12, 1u32..12),
        c in 1u32..11,
        max in any::<bool>(),
        (fh, fw) in (1u32..5, 1u32..5),
        (sh, sw) in (1u32..4, 1u32..4),
        (ph, pw) in (0u32..3, 0u32..3),
        ceil in any::<bool>(),
        include_pad in any::<bool>(),
        epilogue in 0..EPILOGUES.len(),
        seed in any::<u64>(),
    ) {
        // PyTorch allows padding up to half the window.
        let (ph, pw) = (ph.min(fh / 2), pw.min(fw / 2));
        let kind = if max { "maxpool" } else { "avgpool" };
        let extra = if max { String::new() } else { format!(", count_include_pad = {include_pad}") };
        let source = format!(
            "Net({h}x{w}x{c}) {{ conv({c}, 1x1), {kind}({fh}x{fw}, stride = ({sh}, {sw}), pad = ({ph}, {pw}), ceil = {ceil}{extra}){}, global_{kind}{} }}",
            EPILOGUES[epilogue], EPILOGUES[(epilogue + 3) % EPILOGUES.len()]
        );
        assert_agrees(&source, seed, 1);
    }

    #[test]
    fn conv_add_relu_fuses_and_equals_reference(
        (h, w) in (2u32..10, 2u32..10),
        c in 1u32..13,
        seed in any::<u64>(),
    ) {
        let source = format!(
            "Net({h}x{w}x{c}) {{ conv({c}, 3x3, pad = 1), relu, residual {{ conv({c}, 3x3, pad = 1), bn, relu, conv({c}, 3x3, pad = 1), bn }}, relu }}"
        );
        assert_agrees(&source, seed, 2);
    }
}

#[test]
fn every_example_network_agrees_with_reference() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nets");
    // The largest nets take long on the reference path in a debug build; their
    // layers are covered by the smaller ones and by the property tests.
    let skip = [
        "VGG16",
        "ZFNet",
        "AlexNet",
        "ResNet34",
        "ResNet50",
        "ResNet152",
        "GoogLeNet",
        "MobileNetV1",
        "MobileNetV1_075",
        "EfficientNetB0",
        "MobileNetV2",
    ];
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for net in cnnjit::compiler::compile_source(&text).unwrap() {
            if skip.contains(&net.graph.name.as_ref()) {
                continue;
            }
            for native_tile in [true, false] {
                let options = Options {
                    native_tile,
                    ..Options::default()
                };
                let a = jit_against_reference(&net.graph, 3, options).unwrap();
                assert!(
                    a.within_tolerance,
                    "{}, native tile {native_tile}: max abs {:e}, max rel {:e}",
                    net.graph.name, a.max_abs, a.max_rel
                );
            }
        }
    }
}

#[test]
fn outputs_are_bitwise_identical_for_any_thread_count() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/nets/mobilenet_v1.cnn"
    ))
    .unwrap();
    let graph = cnnjit::compiler::compile_source(&text)
        .unwrap()
        .into_iter()
        .find(|n| n.graph.name == "MobileNetV1_025")
        .unwrap()
        .graph;
    let weights = cnnjit::runtime::params::random_weights(&graph, 5);
    let input = random_input(224 * 224 * 3, 9);
    let outputs: Vec<Vec<f32>> = [1, 2, 3]
        .iter()
        .map(|&threads| {
            let mut model = Model::with_options(
                graph.clone(),
                &weights,
                Options {
                    threads,
                    ..Options::default()
                },
            )
            .unwrap();
            model.forward(&input).unwrap()
        })
        .collect();
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

//! The JIT against its slow twin: property tests over random shapes,
//! strides, pads, dilations, groups, odd channel counts and fused epilogues
//! (JIT == reference within 1e-4 of the output's scale), every example network, and
//! outputs bitwise identical for any thread count.

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
    assert_agrees_in(source, seed, threads, None);
}

/// [`assert_agrees`], and the JIT compiled exactly `kernels` distinct kernels
/// if given (a fused separable pair is one).
fn assert_agrees_in(source: &str, seed: u64, threads: usize, kernels: Option<usize>) {
    let Some(graph) = graph(source) else { return };
    let a = jit_against_reference(&graph, seed, threads).unwrap();
    assert!(
        matches!(a.backend, Backend::Jit { compiled_steps, kernels: n, .. }
            if compiled_steps > 0 && kernels.is_none_or(|k| k == n)),
        "{source}: {:?}",
        a.backend
    );
    assert!(
        a.within_tolerance,
        "{source}: max abs {:e}, max rel {:e}",
        a.max_abs, a.max_rel
    );
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
        k_per_group in 1u32..12,
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn depthwise_pointwise_fuses_and_equals_reference(
        (h, w) in (1u32..14, 1u32..14),
        c in 1u32..20,
        k in 1u32..20,
        f in 1u32..6,
        s in 1u32..3,
        residual in any::<bool>(),
        (first, second) in (0..EPILOGUES.len(), 0..EPILOGUES.len()),
        seed in any::<u64>(),
    ) {
        // MobileNetV2's projection adds the block's input: same shape, stride 1.
        let pair = |k: u32, s: u32| format!(
            "dwconv({f}x{f}, stride = {s}, pad = same){}, conv({k}, 1x1){}",
            EPILOGUES[first], EPILOGUES[second]
        );
        let body = if residual {
            format!("residual {{ {} }}", pair(c, 1))
        } else {
            pair(k, s)
        };
        assert_agrees_in(&format!("Net({h}x{w}x{c}) {{ {body} }}"), seed, 2, Some(1));
    }

    #[test]
    fn one_by_k_then_k_by_one_fuses_and_equals_reference(
        (h, w) in (1u32..14, 1u32..14),
        (c, m, n) in (1u32..12, 1u32..12, 1u32..12),
        k in prop::sample::select(vec![3u32, 5, 7]),
        (pad, s, d) in (0u32..4, 1u32..3, 1u32..3),
        (first, second) in (0..EPILOGUES.len(), 0..EPILOGUES.len()),
        threads in 1usize..3,
        seed in any::<u64>(),
    ) {
        let source = format!(
            "Net({h}x{w}x{c}) {{ conv({m}, 1x{k}, pad = (0, {})){}, conv({n}, {k}x1, pad = ({pad}, 0), stride = ({s}, 1), dilation = ({d}, 1)){} }}",
            k / 2, EPILOGUES[first], EPILOGUES[second]
        );
        assert_agrees_in(&source, seed, threads, Some(1));
    }
}

#[test]
fn separable_pairs_run_unfused_when_asked() {
    let source = "Net(9x7x5) { dwconv(3x3, pad = same), bn, relu, conv(6, 1x1), relu, conv(4, 1x3, pad = (0, 1)), relu, conv(3, 3x1, pad = (1, 0)) }";
    let graph = graph(source).unwrap();
    let weights = cnnjit::runtime::params::random_weights(&graph, 1);
    let input = random_input(9 * 7 * 5, 2);
    let run = |fuse_separable| {
        let mut model = Model::with_options(
            graph.clone(),
            &weights,
            Options {
                fuse_separable,
                ..Options::default()
            },
        )
        .unwrap();
        let kernels = match model.backend() {
            Backend::Jit { kernels, .. } => *kernels,
            other => panic!("{other:?}"),
        };
        (kernels, model.forward(&input).unwrap())
    };
    let (fused, unfused) = (run(true), run(false));
    assert_eq!((fused.0, unfused.0), (2, 4));
    let scale = unfused.1.iter().fold(0f32, |m, x| m.max(x.abs()));
    for (a, b) in fused.1.iter().zip(&unfused.1) {
        assert!((a - b).abs() <= 1e-5 * scale.max(1.0), "{a} vs {b}");
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
            let a = jit_against_reference(&net.graph, 3, 0).unwrap();
            assert!(
                a.within_tolerance,
                "{}: max abs {:e}, max rel {:e}",
                net.graph.name, a.max_abs, a.max_rel
            );
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

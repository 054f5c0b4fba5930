//! The JIT against its slow twin: property tests over random shapes,
//! strides, pads, dilations, groups, odd channel counts and fused epilogues
//! (JIT == reference within 1e-4 of the output's scale; Winograd F(4x4)
//! errs by about 1e-5 of it, runtime/tests/winograd.rs), every example
//! network (the four slowest on smaller inputs), and outputs bitwise identical
//! for any thread count. Every property runs every code path: convolutions
//! on each native tile's ISA the host has (AVX2, AVX-512) and in pure
//! Cranelift ([`paths`]).

use cnnjit::check::{jit_against_reference, lively_weights, random_input, Agreement};
use cnnjit::codegen::algorithm::Algorithm;
use cnnjit::codegen::choice::MEASURED;
use cnnjit::codegen::conv::ConvSpec;
use cnnjit::codegen::native::Isa;
use cnnjit::runtime::model::Backend;
use cnnjit::{Graph, Model, Options};
use proptest::prelude::*;

/// Compiles `source`'s only net.
fn graph(source: &str) -> Graph {
    cnnjit::lang::compile_source(source)
        .unwrap_or_else(|e| panic!("{source}: {e}"))
        .remove(0)
        .graph
}

/// Compiles `source`'s only net, or rejects the case (as `prop_assume!`
/// does) if a random layer does not fit its input; proptest fails a
/// property whose rejections exceed its limit.
fn fits(source: &str) -> Result<Graph, TestCaseError> {
    match cnnjit::lang::compile_source(source) {
        Ok(mut nets) => Ok(nets.remove(0).graph),
        Err(e) => Err(TestCaseError::reject(format!("{source}: {e}"))),
    }
}

/// Every way the JIT compiles convolutions here, named: on each native ISA
/// the host has, and in pure Cranelift.
fn paths() -> Vec<(String, Options)> {
    let native = Isa::on_host().into_iter().map(|isa| {
        let options = Options {
            native_isa: Some(isa),
            ..Options::default()
        };
        assert_eq!(options.native(), Some(isa));
        (format!("native {isa}"), options)
    });
    let cranelift = Options {
        native_tile: false,
        ..Options::default()
    };
    native
        .chain([("pure Cranelift".to_string(), cranelift)])
        .collect()
}

/// Where the JIT serves (x86-64, the `jit` feature), a model not asked for
/// the reference kernels must run compiled code: a Cranelift failure falling
/// back to the reference would otherwise compare the reference with itself.
const JIT_SUPPORTED: bool = cfg!(all(target_arch = "x86_64", feature = "jit"));

/// `backend` ran at least one compiled step and, if given, exactly
/// `kernels` distinct kernels, where the host has the JIT.
fn assert_compiled(backend: &Backend, kernels: Option<usize>, what: &str) {
    assert!(
        !JIT_SUPPORTED
            || matches!(backend, Backend::Jit { compiled_steps, kernels: n, .. }
                if *compiled_steps > 0 && kernels.is_none_or(|k| k == *n)),
        "{what}: {backend:?}"
    );
}

fn assert_agrees(source: &str, seed: u64, threads: usize) -> Result<Graph, TestCaseError> {
    let graph = fits(source)?;
    assert_agrees_in(&graph, source, seed, threads, None);
    Ok(graph)
}

/// The JIT agrees with the reference on `graph` (compiled from `source`)
/// on every [`paths`], having compiled at least one step,
/// and exactly `kernels` distinct kernels if given (a fused separable pair
/// is one).
fn assert_agrees_in(
    graph: &Graph,
    source: &str,
    seed: u64,
    threads: usize,
    kernels: Option<usize>,
) {
    assert_agrees_on(graph, source, seed, threads, &|_| kernels);
}

/// [`assert_agrees_in`] where the count of distinct kernels depends on the
/// path's options.
fn assert_agrees_on(
    graph: &Graph,
    source: &str,
    seed: u64,
    threads: usize,
    kernels: &dyn Fn(&Options) -> Option<usize>,
) {
    for (path, options) in paths() {
        let options = Options { threads, ..options };
        let a = jit_against_reference(graph, seed, options).unwrap();
        assert_compiled(&a.backend, kernels(&options), source);
        assert!(
            a.within_tolerance,
            "{source}, {path}: max abs {:e}, max rel {:e}",
            a.max_abs, a.max_rel
        );
    }
}

/// `input` raised, if need be, to the smallest extent that a window of
/// `taps` taps `dilation` apart fits with `pad` on each side: the random
/// layer then always fits, and the smallest inputs still come up.
fn fitting(input: u32, taps: u32, dilation: u32, pad: u32) -> u32 {
    input.max((dilation * (taps - 1) + 1).saturating_sub(2 * pad))
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
    ", prelu",
    ", bn, prelu, bn",
    ", gelu",
    ", affine",
    ", affine(bias = false), gelu",
    ", bn, gelu, affine(weight = false)",
];

/// Concat branches on an input of any channels, keeping its height and
/// width, `{k}` their channels where they choose them: the first six can
/// be written in place, the last three cannot.
const BRANCHES: &[&str] = &[
    "conv({k}, 1x1)",
    "conv({k}, 3x3, pad = 1)",
    "conv({k}, 1x1), relu, conv({k}, 5x5, pad = 2)",
    "dwconv(3x3, pad = same)",
    "dwconv(3x3, pad = same), conv({k}, 1x1)",
    "maxpool(3x3, stride = 1, pad = 1)",
    "identity",
    "residual { dwconv(3x3, pad = same) }",
    "conv({k}, 1x1), softmax",
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
        let (h, w) = (fitting(h, fh, dh, ph), fitting(w, fw, dw, pw));
        let source = format!(
            "Net({h}x{w}x{c}) {{ conv({k}, {fh}x{fw}, stride = ({sh}, {sw}), pad = ({ph}, {pw}), dilation = ({dh}, {dw}), groups = {groups}, bias = {bias}){} }}",
            EPILOGUES[epilogue]
        );
        assert_agrees(&source, seed, 1)?;
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
        assert_agrees(&source, seed, 2)?;
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
        assert_agrees(&source, seed, 1)?;
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
        let (h, w) = (fitting(h, fh, 1, ph), fitting(w, fw, 1, pw));
        let kind = if max { "maxpool" } else { "avgpool" };
        let extra = if max { String::new() } else { format!(", count_include_pad = {include_pad}") };
        let source = format!(
            "Net({h}x{w}x{c}) {{ conv({c}, 1x1), {kind}({fh}x{fw}, stride = ({sh}, {sw}), pad = ({ph}, {pw}), ceil = {ceil}{extra}){}, global_{kind}{} }}",
            EPILOGUES[epilogue], EPILOGUES[(epilogue + 3) % EPILOGUES.len()]
        );
        assert_agrees(&source, seed, 1)?;
    }

    #[test]
    fn winograd_convs_equal_reference(
        (h, w) in (4usize..14, 4usize..14),
        (c, k) in (30usize..44, 30usize..44),
        pad in 0usize..2,
        bias in any::<bool>(),
        epilogue in 0..EPILOGUES.len(),
        residual in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // A residual's conv keeps the shape: k = c, pad 1.
        let (k, pad) = if residual { (c, 1) } else { (k, pad) };
        let spec = ConvSpec {
            input: [h, w, c],
            output: [h + 2 * pad - 2, w + 2 * pad - 2, k],
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [pad; 2],
            groups: 1,
            epilogue: Vec::new(),
            native: None,
            slice: None,
        };
        // Shapes the cost model gives to a direct kernel are tested above.
        prop_assume!(matches!(MEASURED.choose(&spec, 4), Algorithm::Winograd { .. }));
        let conv = format!("conv({k}, 3x3, pad = {pad}, bias = {bias}){}", EPILOGUES[epilogue]);
        let source = if residual {
            format!("Net({h}x{w}x{c}) {{ residual {{ {conv} }}, relu }}")
        } else {
            format!("Net({h}x{w}x{c}) {{ {conv} }}")
        };
        assert_agrees(&source, seed, 2)?;
    }

    #[test]
    fn add_and_scale_equal_reference(
        (h, w) in (2u32..10, 2u32..10),
        (c, k) in (1u32..13, 1u32..13),
        per_channel in any::<bool>(),
        epilogue in 0..EPILOGUES.len(),
        seed in any::<u64>(),
    ) {
        // A strided `auto` residual's projection is computed after its body,
        // and its step adds the body in its epilogue (no add step of its
        // own); a scale multiplies by a gate per channel (squeeze-excite) or
        // per element.
        let gate = if per_channel { "global_avgpool, " } else { "" };
        let source = format!(
            "Net({h}x{w}x{c}) {{ residual(shortcut = auto) {{ conv({k}, 3x3, pad = 1, stride = 2), bn }}{}, scale {{ {gate}conv({k}, 1x1), sigmoid }}{} }}",
            EPILOGUES[epilogue], EPILOGUES[(epilogue + 3) % EPILOGUES.len()]
        );
        let net = assert_agrees(&source, seed, 2)?;
        let weights = cnnjit::runtime::params::random_weights(&net, seed);
        let report = Model::new(net, &weights).unwrap().kernels();
        let algorithms: Vec<&str> = report.steps.iter().map(|s| s.algorithm()).collect();
        prop_assert!(!algorithms.contains(&"add") && algorithms.contains(&"scale"), "{:?}", algorithms);
        let projection = report.steps.iter().find(|s| s.kind == "conv" && s.fused.contains(&"residual"));
        prop_assert!(!JIT_SUPPORTED || projection.is_some(), "{:?}", report.steps);
    }

    #[test]
    fn shuffles_and_slices_between_kernels_equal_reference(
        (h, w) in (1u32..8, 1u32..8),
        (groups, per_group) in (1u32..5, 1u32..6),
        (first, count) in (0u32..64, 0u32..64),
        (k, m) in (1u32..9, 1u32..4),
        epilogue in 0..EPILOGUES.len(),
        seed in any::<u64>(),
    ) {
        // ShuffleNet's pattern around compiled kernels: a shuffle of a
        // conv's output, a concat of one of its slices and a conv of
        // another, a shuffle of a conv's output again. `shuffle` and `slice`
        // run on the reference kernels between compiled steps.
        let c = groups * per_group;
        let first = first % c;
        let count = 1 + count % (c - first);
        let source = format!(
            "Net({h}x{w}x3) {{ conv({c}, 1x1){}, shuffle({groups}), concat {{ [slice({first}, {count})], [slice(0, {c}), conv({k}, 3x3, pad = 1){}] }}, conv({}, 1x1), shuffle({groups}) }}",
            EPILOGUES[epilogue], EPILOGUES[(epilogue + 3) % EPILOGUES.len()], groups * m
        );
        assert_agrees(&source, seed, 2)?;
    }

    #[test]
    fn deconvs_and_upsamples_between_kernels_equal_reference(
        (h, w) in (1u32..6, 1u32..6),
        (c, k) in (1u32..9, 1u32..9),
        (f, stride, pad) in (1u32..4, 1u32..3, 0u32..2),
        (scale, bilinear) in (1u32..4, any::<bool>()),
        epilogue in 0..EPILOGUES.len(),
        seed in any::<u64>(),
    ) {
        // U-Net's and FPN's patterns around compiled kernels: a deconv of
        // a conv's output; a concat of a compiled 1x1 conv (written in place)
        // with branches that go down a level and back up (bilinear
        // upsample, and a deconv whose stride is its kernel); an upsample
        // added to a lateral 1x1 conv. `deconv` and `upsample` run on the
        // reference kernels between compiled steps, their bn and activations
        // after them.
        let (out_h, out_w) = ((h - 1) * stride + f, (w - 1) * stride + f);
        prop_assume!(out_h > 2 * pad && out_w > 2 * pad);
        prop_assume!((out_h - 2 * pad) % scale == 0 && (out_w - 2 * pad) % scale == 0);
        let s = scale;
        let source = format!(
            "Net({h}x{w}x3) {{ conv({c}, 3x3, pad = 1){}, deconv({k}, {f}x{f}, stride = {stride}, pad = {pad}){}, \
             concat {{ [conv({c}, 1x1){}], [maxpool({s}x{s}), upsample({s}, bilinear = {bilinear})], [maxpool({s}x{s}), deconv({k}, {s}x{s}, stride = {s})] }}, \
             residual(shortcut = [conv({k}, 1x1)]) {{ maxpool({s}x{s}), conv({k}, 1x1), upsample({s}) }} }}",
            EPILOGUES[epilogue], EPILOGUES[(epilogue + 1) % EPILOGUES.len()], EPILOGUES[(epilogue + 2) % EPILOGUES.len()]
        );
        assert_agrees(&source, seed, 2)?;
    }

    #[test]
    fn softmax_after_a_kernel_equals_reference(
        (h, w) in (1u32..6, 1u32..6),
        (c, k) in (1u32..13, 1u32..40),
        dense in any::<bool>(),
        epilogue in 0..EPILOGUES.len(),
        seed in any::<u64>(),
    ) {
        // Over the channels of each pixel after a conv, or of one vector after
        // a dense layer; whatever follows the softmax runs on the reference.
        let layer = if dense { format!("flatten, dense({k})") } else { format!("conv({k}, 1x1)") };
        let source = format!("Net({h}x{w}x{c}) {{ {layer}, relu, softmax{} }}", EPILOGUES[epilogue]);
        assert_agrees(&source, seed, 2)?;
    }

    #[test]
    fn concat_equals_reference(
        (h, w) in (1u32..8, 1u32..8),
        c in 1u32..9,
        (a, b) in (1u32..13, 1u32..13),
        epilogue in 0..EPILOGUES.len(),
        seed in any::<u64>(),
    ) {
        // Three branches of odd widths, one the input itself, then an epilogue.
        let source = format!(
            "Net({h}x{w}x{c}) {{ concat {{ [relu], [conv({a}, 1x1)], [conv({b}, 3x3, pad = 1)] }}{}, conv(3, 1x1) }}",
            EPILOGUES[epilogue]
        );
        let net = assert_agrees(&source, seed, 2)?;
        let weights = cnnjit::runtime::params::random_weights(&net, seed);
        let report = Model::new(net, &weights).unwrap().kernels();
        prop_assert!(report.steps.iter().any(|s| s.algorithm() == "concat"));
    }

    #[test]
    fn concat_in_place_equals_reference(
        (h, w) in (1u32..9, 1u32..9),
        c in 1u32..12,
        branches in prop::collection::vec((0..BRANCHES.len(), 1u32..21, 0..EPILOGUES.len()), 2..5),
        relu_after in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // Branches of odd widths: those a conv, dwconv or pool ends write
        // their channels of the concat's output in place; the others (the
        // input itself, a residual, a softmax) keep the copy.
        let branches: Vec<String> = branches
            .iter()
            .map(|&(kind, k, epilogue)| {
                let branch = BRANCHES[kind].replace("{k}", &k.to_string());
                format!("[{branch}{}]", EPILOGUES[epilogue])
            })
            .collect();
        let after = if relu_after { ", relu" } else { "" };
        let source = format!(
            "Net({h}x{w}x{c}) {{ concat {{ {} }}{after}, conv(3, 1x1) }}",
            branches.join(", ")
        );
        assert_agrees(&source, seed, 2)?;
    }

    #[test]
    fn winograd_writes_its_concat_slice_in_place(
        (h, w) in (4usize..12, 4usize..12),
        (c, k) in (30usize..44, 30usize..44),
        epilogue in 0..EPILOGUES.len(),
        seed in any::<u64>(),
    ) {
        let spec = ConvSpec {
            input: [h, w, c],
            output: [h, w, k],
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [1; 2],
            groups: 1,
            epilogue: Vec::new(),
            native: None,
            slice: None,
        };
        prop_assume!(matches!(MEASURED.choose(&spec, 4), Algorithm::Winograd { .. }));
        let source = format!(
            "Net({h}x{w}x{c}) {{ concat {{ [conv(5, 1x1)], [conv({k}, 3x3, pad = 1){}], [maxpool(3x3, stride = 1, pad = 1)] }} }}",
            EPILOGUES[epilogue]
        );
        let net = cnnjit::lang::compile_source(&source).unwrap().remove(0);
        prop_assert!(net.plan.values.iter().filter(|v| v.slice.is_some()).count() == 3);
        assert_agrees(&source, seed, 2)?;
    }

    #[test]
    fn lrn_equals_reference(
        (h, w) in (1u32..6, 1u32..6),
        c in 1u32..24,
        size in 1u32..12,
        (alpha, k) in (0.0f32..3.0, 0.05f32..3.0),
        beta in prop_oneof![Just(0.75f32), Just(0.5), Just(1.0), 0.01f32..2.0],
        one_pixel in any::<bool>(),
        epilogue in 0..EPILOGUES.len(),
        seed in any::<u64>(),
    ) {
        // Odd and even sizes, windows wider than the channels, AlexNet's beta
        // and the others the kernel special-cases beside general ones; over a
        // volume's pixels or one pixel (lrn needs a volume: on a flat vector
        // it does not compile).
        let pool = if one_pixel { "global_avgpool, " } else { "" };
        let source = format!(
            "Net({h}x{w}x{c}) {{ {pool}lrn(size = {size}, alpha = {alpha:?}, beta = {beta:?}, k = {k:?}){} }}",
            EPILOGUES[epilogue]
        );
        assert_agrees(&source, seed, 2)?;
    }

    /// A block whose add's shortcut dies there (the output of the layer
    /// before it: not the image, not read by the add's anchor, and the
    /// block's step not the net's last)
    /// writes its output over the shortcut (`plan::Step::over`), for each
    /// kernel family that adds a shortcut: a direct 3x3 (or Winograd, as
    /// the cost model picks), a 1x1 over runs of pixels, a depthwise conv,
    /// a fused depthwise + pointwise pair. The step is compiled and the
    /// kernel reads the shortcut from its output; the reference kernels add
    /// a copy of it; both agree on every path.
    #[test]
    fn a_block_written_over_its_shortcut_equals_reference(
        (h, w) in (2u32..12, 2u32..12),
        c in 1u32..48,
        body in 0usize..4,
        epilogue in 0..EPILOGUES.len(),
        seed in any::<u64>(),
    ) {
        let ep = EPILOGUES[epilogue];
        let body = match body {
            0 => format!("conv({c}, 3x3, pad = 1){ep}"),
            1 => format!("conv({c}, 1x1){ep}"),
            2 => format!("dwconv(3x3, pad = 1){ep}"),
            _ => format!("dwconv(3x3, pad = 1), relu, conv({c}, 1x1){ep}"),
        };
        // The body's first layer reads the shortcut, so its add is in a later step.
        let source = format!(
            "Net({h}x{w}x{c}) {{ conv({c}, 1x1), relu, residual {{ conv({c}, 1x1), relu, {body} }}{}, conv({c}, 1x1) }}",
            EPILOGUES[(epilogue + 1) % EPILOGUES.len()]
        );
        let net = assert_agrees(&source, seed, 2)?;
        let plan = cnnjit::ir::plan::plan(&net).unwrap();
        prop_assert!(plan.steps.iter().any(|s| s.over.is_some()), "{source}: no step over its shortcut");
        let weights = cnnjit::runtime::params::random_weights(&net, seed);
        let report = Model::new(net, &weights).unwrap().kernels();
        let compiled = report.steps.iter().any(|s| s.fused.contains(&"residual"));
        prop_assert!(!JIT_SUPPORTED || compiled, "{source}: {report}");
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
        assert_agrees(&source, seed, 2)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    /// Dense layers large enough to split across threads (`C K` at least
    /// `jit::PARALLEL_WORK`), their outputs not a multiple of 16 or of the
    /// native GEMV's 64 (a full block and a tail), any epilogue and a
    /// softmax or not: on every path (the native GEMV of each ISA, the
    /// Cranelift tile) within the reference's tolerance, and bitwise
    /// identical on 1, 2 and 3 threads, which split the blocks of output
    /// channels.
    #[test]
    fn large_dense_layers_agree_and_split_bitwise(
        c in 700u32..1100,
        k in 380u32..700,
        epilogue in 0..EPILOGUES.len(),
        softmax in any::<bool>(),
        seed in any::<u64>(),
    ) {
        prop_assume!(k % 16 != 0);
        let softmax = if softmax { ", softmax" } else { "" };
        let source = format!("Net(1x1x{c}) {{ flatten, dense({k}){}{softmax} }}", EPILOGUES[epilogue]);
        let net = fits(&source)?;
        assert_agrees_in(&net, &source, seed, 2, None);
        let weights = lively_weights(&net, seed);
        let input = random_input(net.input_shape().len() as usize, seed);
        for (path, options) in paths() {
            let outputs: Vec<Vec<u32>> = (1..=3)
                .map(|threads| {
                    let options = Options { threads, ..options };
                    let mut model = Model::with_options(net.clone(), &weights, options).unwrap();
                    model.forward(&input).unwrap().iter().map(|x| x.to_bits()).collect()
                })
                .collect();
            prop_assert_eq!(&outputs[0], &outputs[1], "{}: 1 and 2 threads", path);
            prop_assert_eq!(&outputs[0], &outputs[2], "{}: 1 and 3 threads", path);
        }
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
        let source = format!("Net({h}x{w}x{c}) {{ {body} }}");
        // One fused kernel, but where the intermediate is one pixel wide: a
        // row of the 1x1 is then a one-pixel GEMV, packed unlike the 1x1 on a
        // native ISA, and the pair runs as two kernels (`SeparableSpec::new`).
        // Nor where a small image's halves may run apart, which needs the
        // depthwise half's `c f^2` MACs a pixel to be at most an eighth of
        // the pointwise half's `c k` (`f = 1`, `k >= 8`): then any count.
        let one_pixel_wide = (if residual { w } else { w.div_ceil(s) }) == 1;
        let cheap = 8 * f * f <= if residual { c } else { k };
        let kernels = (!one_pixel_wide && !cheap).then_some(1);
        assert_agrees_in(&fits(&source)?, &source, seed, 2, kernels);
    }

    #[test]
    fn one_by_k_then_k_by_one_fuses_and_equals_reference(
        (h, w) in (1u32..14, 1u32..14),
        (c, m, n) in (1u32..12, 1u32..12, 1u32..12),
        k in prop::sample::select(vec![3u32, 5, 7]),
        padded in any::<bool>(),
        (pad, s, d) in (0u32..4, 1u32..3, 1u32..3),
        (first, second) in (0..EPILOGUES.len(), 0..EPILOGUES.len()),
        threads in 1usize..3,
        seed in any::<u64>(),
    ) {
        let h = fitting(h, k, d, pad);
        let first_pad = if padded { k / 2 } else { 0 };
        let w = fitting(w, k, 1, first_pad);
        let source = format!(
            "Net({h}x{w}x{c}) {{ conv({m}, 1x{k}, pad = (0, {first_pad})){}, conv({n}, {k}x1, pad = ({pad}, 0), stride = ({s}, 1), dilation = ({d}, 1)){} }}",
            EPILOGUES[first], EPILOGUES[second]
        );
        // One fused kernel, unless the first half's columns are padded and
        // it calls a native tile (`SeparableSpec::new`, tested there): then
        // two wherever lowering gives it the native tile. Nor where a small
        // image's halves may run apart, which needs the first half's MACs
        // (`h` rows of `k c m` a pixel) to be at most an eighth of the
        // second's (at most `h + 2 pad` rows of `k m n`): then any count.
        let cheap = 8 * c * h <= n * (h + 2 * pad);
        let kernels = |options: &Options| {
            ((!padded || options.native().is_none()) && !cheap).then_some(1)
        };
        assert_agrees_on(&fits(&source)?, &source, seed, threads, &kernels);
    }
}

/// The JIT's output on `graph` (random weights and input from `seed`) on
/// `threads` threads.
fn forward_on(graph: &Graph, seed: u64, threads: usize) -> Vec<f32> {
    let weights = lively_weights(graph, seed);
    let input = random_input(graph.input_shape().len() as usize, seed ^ 1);
    let options = Options {
        threads,
        ..Options::default()
    };
    let mut model = Model::with_options(graph.clone(), &weights, options).unwrap();
    assert_compiled(model.backend(), None, &graph.name);
    model.forward(&input).unwrap()
}

/// The JIT agrees with the reference on `source` on every path on
/// `threads` threads, and its outputs on one, two and three threads are
/// bitwise identical.
fn assert_agrees_on_any_threads(source: &str, seed: u64, threads: usize) {
    let graph = graph(source);
    assert_agrees_in(&graph, source, seed, threads, None);
    let one = forward_on(&graph, seed, 1);
    for threads in [2, 3] {
        assert_eq!(
            one,
            forward_on(&graph, seed, threads),
            "{source}, {threads} threads"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// A pointwise convolution runs over runs of pixels spanning image
    /// rows (`ConvSpec::over_pixels`: one run of the whole image where its
    /// weights outweigh its input, else runs of whole rows), on its own,
    /// adding a residual shortcut, or writing its slice of a concat in
    /// place.
    #[test]
    fn pointwise_convs_over_pixels_equal_reference(
        (h, w) in (1u32..=16, 1u32..=16),
        (c, k) in (1u32..48, 1u32..96),
        form in 0..3,
        epilogue in 0..EPILOGUES.len(),
        threads in 1usize..=3,
        seed in any::<u64>(),
    ) {
        let ep = EPILOGUES[epilogue];
        let body = match form {
            0 => format!("conv({k}, 1x1){ep}"),
            1 => format!("residual {{ conv({c}, 1x1){ep} }}, relu"),
            _ => format!("concat {{ [conv(3, 1x1)], [conv({k}, 1x1), relu], [maxpool(3x3, stride = 1, pad = 1)] }}{ep}"),
        };
        assert_agrees_on_any_threads(&format!("Net({h}x{w}x{c}) {{ {body} }}"), seed, threads);
    }

    /// A depthwise + pointwise pair on a small image whose pointwise
    /// weights outweigh the intermediate runs apart (`SeparableSpec::new`),
    /// the pointwise half by blocks of output channels; larger images, or
    /// fewer output channels, as a pair by blocks of rows.
    #[test]
    fn small_image_pairs_equal_reference(
        (h, w) in (1u32..=16, 1u32..=16),
        (c, k) in (1u32..24, 1u32..320),
        form in 0..3,
        (first, second) in (0..EPILOGUES.len(), 0..EPILOGUES.len()),
        threads in 1usize..=3,
        seed in any::<u64>(),
    ) {
        let pair = |k: u32| format!(
            "dwconv(3x3, pad = same){}, conv({k}, 1x1){}",
            EPILOGUES[first], EPILOGUES[second]
        );
        let body = match form {
            0 => pair(k),
            1 => format!("residual {{ {} }}", pair(c)),
            _ => format!("concat {{ [{}], [identity] }}", pair(k)),
        };
        assert_agrees_on_any_threads(&format!("Net({h}x{w}x{c}) {{ {body} }}"), seed, threads);
    }
}

/// Layers large enough that threads split them (`jit::PARALLEL_WORK`), in
/// each form: a 7x7 pointwise convolution as one run of 49 pixels by blocks
/// of channels, a 14x14 one whose runs are merged rows (AVX-512: runs of
/// 98, two rows to split), a residual one, and a depthwise + pointwise
/// pair on a 7x7 image, which runs apart.
#[test]
fn small_spatial_layers_split_across_threads_bitwise() {
    for (i, source) in [
        "Net(7x7x96) { conv(160, 1x1), relu }",
        "Net(14x14x96) { conv(24, 1x1), bn, relu }",
        "Net(7x7x128) { residual { conv(128, 1x1), bn }, relu }",
        "Net(7x7x96) { dwconv(3x3, pad = same), bn, relu, conv(192, 1x1), bn, relu }",
    ]
    .into_iter()
    .enumerate()
    {
        assert_agrees_on_any_threads(source, i as u64, 2);
    }
}

/// A pair whose second half is `1x1` or `kx1` runs over blocks of rows
/// whose pixels fill whole tiles (AVX2: 6 pixels, so 6 rows of 7, 3 of 4
/// or 2, 1 of 6; AVX-512: 14 pixels, so 2 rows of 7, 14 of 3, 7 of 4 or 2;
/// Cranelift: 4 pixels, so 4 rows of 7, 1 of 4): whole blocks
/// only, a shorter last block, one block taller than the tensor's rows,
/// threads splitting the blocks, and for `kx1` the rows two blocks share,
/// padding rows (dilated, and more than the kernel's half) zeroed in the ring.
#[test]
fn separable_pairs_run_over_blocks_of_rows() {
    let pairs = [
        "dwconv(3x3, pad = same), bn, relu, conv(20, 1x1), relu",
        "conv(5, 1x3, pad = (0, 1)), relu, conv(7, 3x1, pad = (1, 0))",
        "conv(5, 1x3, pad = (0, 1)), conv(7, 3x1, pad = (3, 0), dilation = (2, 1)), relu",
    ];
    for (h, w) in [
        (12, 7),
        (13, 7),
        (5, 7),
        (9, 4),
        (10, 4),
        (7, 2),
        (4, 6),
        (1, 5),
        (29, 3),
    ] {
        for pair in pairs {
            for threads in 1..=3 {
                let source = format!("Net({h}x{w}x6) {{ {pair} }}");
                let seed = h as u64 * 31 + w as u64;
                // A padded 1x3 first half on a native tile runs apart
                // (`SeparableSpec::new`).
                let row_pair = pair.starts_with("conv");
                let kernels =
                    |options: &Options| (!row_pair || options.native().is_none()).then_some(1);
                assert_agrees_on(&graph(&source), &source, seed, threads, &kernels);
            }
        }
    }
}

/// A step written over its shortcut that its kernel would not add (a
/// softmax before the add) runs on the reference kernels beside compiled
/// ones, adding a copy of the shortcut staged in the working memory (which
/// `exec`'s tests check against a plan that keeps the shortcut apart).
#[test]
fn a_step_over_its_shortcut_on_the_reference_kernels_agrees() {
    let source = "Net(4x4x8) { conv(8, 1x1), relu, residual { conv(8, 1x1), relu, conv(8, 1x1), softmax }, relu, conv(8, 1x1) }";
    for threads in 1..=2 {
        assert_agrees_on(&graph(source), source, 7, threads, &|_| None);
    }
}

#[test]
fn separable_pairs_run_unfused_when_asked() {
    // The 1x3 unpadded: padded, it runs apart on a native tile anyway
    // (`SeparableSpec::new`).
    let source = "Net(9x7x5) { dwconv(3x3, pad = same), bn, relu, conv(6, 1x1), relu, conv(4, 1x3), relu, conv(3, 3x1, pad = (1, 0)) }";
    let graph = graph(source);
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

/// The example nets whose reference run at full size takes over 30 s in the
/// debug test profile (ResNet-50 31 s, ResNet-34 46 s, VGG16 155 s on two
/// busy cores; ResNet-18, ZFNet and AlexNet, 17 to 27 s, run at full size),
/// each with the side of the square input it runs on instead: every layer of
/// the net, on the same kernel families, at a tenth of the work or less.
const REDUCED: &[(&str, u32)] = &[
    ("VGG16", 48),
    ("ResNet34", 64),
    ("ResNet50", 64),
    ("ResNet152", 64),
];

/// Every net of examples/nets, with the text of its file.
fn example_nets() -> Vec<(String, Graph)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nets");
    let mut nets = Vec::new();
    for file in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        for net in cnnjit::lang::compile_source(&text).unwrap() {
            nets.push((text.clone(), net.graph));
        }
    }
    assert!(nets.len() >= 24, "only {} example nets", nets.len());
    nets
}

/// Every example net but the [`REDUCED`] ones, at full size, the reference
/// against the JIT on every [`paths`].
#[test]
fn every_example_network_agrees_with_reference() {
    for (_, graph) in example_nets() {
        if REDUCED.iter().all(|&(name, _)| name != &*graph.name) {
            agrees_on_every_path(&graph);
        }
    }
}

/// The [`REDUCED`] example nets, on their smaller inputs.
#[test]
fn the_slowest_example_networks_agree_on_smaller_inputs() {
    let nets = example_nets();
    for &(name, side) in REDUCED {
        let (text, graph) = nets
            .iter()
            .find(|(_, graph)| *graph.name == *name)
            .unwrap_or_else(|| panic!("no example net {name}"));
        agrees_on_every_path(&reduced(text, graph, side));
    }
}

/// The net `graph` of the file `text`, compiled again on a `side` x `side`
/// input: its header `Name(HxWxC` is rewritten.
fn reduced(text: &str, graph: &Graph, side: u32) -> Graph {
    let cnnjit::Shape::Volume { h, w, c } = graph.input_shape() else {
        panic!("{}: not an image input", graph.name)
    };
    let header = format!("{}({h}x{w}x{c}", graph.name);
    assert_eq!(text.matches(&header).count(), 1, "{header}");
    let smaller = text.replace(&header, &format!("{}({side}x{side}x{c}", graph.name));
    cnnjit::lang::compile_source(&smaller)
        .unwrap()
        .into_iter()
        .find(|n| n.graph.name == graph.name)
        .unwrap()
        .graph
}

/// `graph` on the reference kernels, once, against the JIT on every
/// [`paths`]: the JIT compiled steps and agrees within tolerance.
fn agrees_on_every_path(graph: &Graph) {
    let name = &graph.name;
    let weights = lively_weights(graph, 3);
    let input = random_input(graph.input_shape().len() as usize, 3);
    let reference = Options {
        reference: true,
        ..Options::default()
    };
    let expected = Model::with_options(graph.clone(), &weights, reference)
        .and_then(|mut model| model.forward(&input))
        .unwrap();
    for (path, options) in paths() {
        let mut jit = Model::with_options(graph.clone(), &weights, options).unwrap();
        let actual = jit.forward(&input).unwrap();
        let a = Agreement::between(&actual, &expected, jit.backend().clone());
        assert_compiled(&a.backend, None, name);
        assert!(
            a.within_tolerance,
            "{name}, {path}: max abs {:e}, max rel {:e}",
            a.max_abs, a.max_rel
        );
    }
}

/// Threads split a kernel's rows, never a reduction: MobileNetV1_025's
/// convolutions, and a net whose lrn, concat copies and dense layers (split
/// by blocks of output channels) are each large enough to split
/// (`jit::PARALLEL_WORK`).
#[test]
fn outputs_are_bitwise_identical_for_any_thread_count() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/nets/mobilenet_v1.cnn"
    ))
    .unwrap();
    let mobilenet = cnnjit::lang::compile_source(&text)
        .unwrap()
        .into_iter()
        .find(|n| n.graph.name == "MobileNetV1_025")
        .unwrap()
        .graph;
    let split = graph(
        "Split(96x96x64) {
            lrn(size = 5), residual { conv(64, 1x1) }, concat { [maxpool(2x2)], [avgpool(2x2)] },
            global_avgpool, flatten, dense(4200), relu, dense(1000), softmax,
        }",
    );
    for graph in [mobilenet, split] {
        let weights = cnnjit::runtime::params::random_weights(&graph, 5);
        let input = random_input(graph.input_shape().len() as usize, 9);
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
        assert_eq!(outputs[0], outputs[1], "{}", graph.name);
        assert_eq!(outputs[0], outputs[2], "{}", graph.name);
    }
}

/// The native tiles and GEMVs sum each output in the same order on every
/// ISA, so a network whose convolutions take the same algorithms has bitwise
/// identical outputs on each ISA the host has: direct, 1x1 and Winograd
/// F(2x2) and F(4x4) convolutions, a dense layer, rows of 28 (AVX2: 4 tiles
/// of 6 and one of 4; AVX-512: 2 of 14) and of 7, with even and odd numbers
/// of full 16-channel blocks, with and without a partial one (AVX-512 takes
/// pairs of full blocks on its wide tile). Each ISA has its own cost model,
/// which may pick another algorithm for a layer (here the static models pick
/// F(4x4) for `conv5` on AVX2 and direct on AVX-512), so the algorithms are
/// pinned by measured choices, as `cnnjit tune` would cache them. Where the
/// host has fewer than two ISAs there is nothing to compare, which the test
/// prints.
#[test]
fn outputs_are_bitwise_identical_on_every_isa() {
    use cnnjit::codegen::choice::{ChoiceKey, Pick, Tuned};
    let graph = graph(
        "Isas(28x28x20) {
            conv(64, 3x3, pad = 1), relu, conv(64, 3x3, pad = 1), conv(48, 1x1),
            conv(24, 3x3, stride = 2, pad = 1), relu,
            conv(33, 3x3, pad = 1), global_avgpool, flatten, dense(10),
        }",
    );
    // Each conv's shape (ChoiceKey's text after the ISA) and its pinned pick.
    let pins = [
        ("28x28x20>28x28x64 k3x3 s1x1 d1x1 p1x1 g1", Pick::F4),
        ("28x28x64>28x28x64 k3x3 s1x1 d1x1 p1x1 g1", Pick::F2),
        ("28x28x64>28x28x48 k1x1 s1x1 d1x1 p0x0 g1", Pick::Direct),
        ("28x28x48>14x14x24 k3x3 s2x2 d1x1 p1x1 g1", Pick::Direct),
        ("14x14x24>14x14x33 k3x3 s1x1 d1x1 p1x1 g1", Pick::F4),
    ];
    let expected = [
        "winograd-f4x4",
        "winograd-f2x2",
        "1x1-gemm",
        "direct",
        "winograd-f4x4",
        "global-pool",
        "gemv",
    ];
    let weights = cnnjit::runtime::params::random_weights(&graph, 7);
    let input = random_input(graph.input_shape().len() as usize, 8);
    let isas = Isa::on_host();
    if isas.len() < 2 {
        eprintln!("note: this host runs {isas:?}; nothing to compare");
    }
    let outputs: Vec<(Isa, Vec<u32>)> = isas
        .into_iter()
        .map(|isa| {
            let mut tuned = Tuned::new();
            for (shape, pick) in pins {
                let key = ChoiceKey::parse(&format!("{} {shape}", isa.name())).expect("a key");
                tuned.insert(key, pick);
            }
            let options = Options {
                native_isa: Some(isa),
                ..Options::default()
            };
            let mut budget = cnnjit::runtime::memory::Budget::new(None);
            let mut model =
                Model::with_tuned(graph.clone(), &weights, options, &tuned, &mut budget).unwrap();
            let algorithms: Vec<&str> = model
                .kernels()
                .steps
                .iter()
                .map(|s| s.algorithm())
                .collect();
            let named: Vec<String> = expected
                .iter()
                .map(|a| match *a {
                    "winograd-f4x4" | "winograd-f2x2" | "global-pool" => a.to_string(),
                    _ => format!("{a}-{isa}"),
                })
                .collect();
            assert_eq!(algorithms, named, "{isa}");
            let bits = model
                .forward(&input)
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            (isa, bits)
        })
        .collect();
    for pair in outputs.windows(2) {
        assert_eq!(pair[0].1, pair[1].1, "{} against {}", pair[0].0, pair[1].0);
    }
}

/// AlexNet's and GoogLeNet's every step runs compiled code (GoogLeNet's lrn
/// included), and which steps split across threads: none of LeNet-5's
/// (waking a thread would cost more than its layers take), every dense layer
/// of AlexNet (by blocks of output channels: fc6's 4096 outputs are 512
/// blocks of 8) and GoogLeNet's lrn (by pixels), whose MACs (zero) alone
/// would not split it.
#[test]
fn every_step_runs_compiled_and_large_kernels_split() {
    use cnnjit::codegen::lower::{lower, Capabilities};
    use cnnjit::runtime::jit::{self, Lowering, PARALLEL_WORK};
    use cnnjit::runtime::params::{load_params, random_weights, LoadOptions};
    let net = |file: &str, name: &str| {
        let path = format!("{}/examples/nets/{file}.cnn", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        let graph = cnnjit::lang::compile_source(&text)
            .unwrap()
            .into_iter()
            .find(|n| n.graph.name == name)
            .unwrap()
            .graph;
        let plan = cnnjit::ir::plan::plan(&graph).unwrap();
        let weights = random_weights(&graph, 1);
        let params = load_params(&graph, &plan, &weights, LoadOptions::default()).unwrap();
        let mut budget = cnnjit::runtime::memory::Budget::new(None);
        let winograd = Options::default().winograd.largest_tile();
        let lowered = lower(&graph, &plan, &Capabilities::host(None, winograd, true));
        let compiled = jit::compile(&graph, &lowered, &[], &params, &weights, &mut budget, 2);
        let compiled = compiled.unwrap();
        let reference = compiled
            .steps
            .iter()
            .filter(|l| matches!(l, Lowering::Reference(_)));
        assert_eq!(reference.count(), 0, "{name}");
        // (anchor kind, rows, splits) of each compiled step.
        plan.steps
            .iter()
            .zip(compiled.steps)
            .filter_map(|(step, lowering)| match lowering {
                Lowering::Kernel(l) => Some((
                    graph.node(step.nodes[0]).op.kind(),
                    l.lengths.rows,
                    l.work >= PARALLEL_WORK,
                )),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let lenet = net("lenet5", "LeNet5");
    assert!(lenet.iter().all(|&(_, _, split)| !split), "{lenet:?}");
    let alexnet = net("alexnet", "AlexNet");
    let dense: Vec<_> = alexnet.iter().filter(|s| s.0 == "dense").collect();
    assert_eq!(
        dense,
        [
            &("dense", 512, true),
            &("dense", 512, true),
            &("dense", 125, true)
        ]
    );
    let googlenet = net("googlenet", "GoogLeNet");
    let lrn: Vec<_> = googlenet.iter().filter(|s| s.0 == "lrn").collect();
    assert_eq!(lrn, [&("lrn", 56 * 56, true), &("lrn", 56 * 56, true)]);
}

/// Cranelift compiles a net's kernels on any number of threads into the same
/// program: GoogLeNet's (many distinct specs, concat copies, lrn, pools) on
/// one thread and on three give every step the same kernel ids, each kernel
/// the same machine code, and every step the same packed weights and vectors.
#[test]
fn the_program_is_the_same_for_any_compile_thread_count() {
    use cnnjit::codegen::lower::{lower, Capabilities};
    use cnnjit::runtime::jit::{self, Lowering};
    use cnnjit::runtime::params::{load_params, random_weights, LoadOptions};
    let path = format!("{}/examples/nets/googlenet.cnn", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let graph = cnnjit::lang::compile_source(&text)
        .unwrap()
        .into_iter()
        .find(|n| n.graph.name == "GoogLeNet")
        .unwrap()
        .graph;
    let plan = cnnjit::ir::plan::plan(&graph).unwrap();
    let weights = random_weights(&graph, 5);
    let params = load_params(&graph, &plan, &weights, LoadOptions::default()).unwrap();
    let winograd = Options::default().winograd.largest_tile();
    let lowered = lower(&graph, &plan, &Capabilities::host(None, winograd, true));
    let compile = |threads| {
        let mut budget = cnnjit::runtime::memory::Budget::new(None);
        jit::compile(
            &graph,
            &lowered,
            &[],
            &params,
            &weights,
            &mut budget,
            threads,
        )
        .unwrap()
    };
    let (one, three) = (compile(1), compile(3));
    assert!(one.kernels > 20, "{} distinct kernels", one.kernels);
    assert_eq!(one.kernels, three.kernels);
    assert_eq!(one.program.len(), one.kernels);
    // (kernel ids, packed weights, packed vectors) of each step.
    let steps = |c: &jit::Compiled| {
        (c.steps.iter())
            .map(|step| match step {
                Lowering::Kernel(l) => {
                    let then = l.then.as_ref().map(|(id, _)| *id);
                    (
                        vec![Some(l.kernel), then],
                        l.weights.clone(),
                        l.params.clone(),
                    )
                }
                Lowering::Concat(branches) => (
                    branches.iter().map(|b| Some(b.kernel)).collect(),
                    Vec::new(),
                    Vec::new(),
                ),
                Lowering::Reference(_) | Lowering::InNext => (Vec::new(), Vec::new(), Vec::new()),
            })
            .collect::<Vec<_>>()
    };
    let (steps_one, steps_three) = (steps(&one), steps(&three));
    assert!(
        steps_one == steps_three,
        "kernel ids or packed operands differ"
    );
    let ids = steps_one.iter().flat_map(|(ids, ..)| ids.iter().flatten());
    let mut seen = 0;
    for &id in ids {
        let code = one.program.code(id);
        assert!(!code.is_empty());
        assert!(
            code == three.program.code(id),
            "kernel {id:?}'s code differs"
        );
        seen += 1;
    }
    assert!(seen >= one.kernels);
}

/// `Model::kernels` names what each step runs, in agreement with the backend
/// and with the reference twin; `Model::profile` times every step.
#[test]
fn kernel_report_and_profile_cover_every_step() {
    let net = graph(
        "Net(12x12x3) {
            conv(8, 3x3, pad = 1), bn, relu, dwconv(3x3), relu6, conv(16, 1x1),
            lrn(size = 3), maxpool(2x2), lrn(size = 3, k = 0.0), global_avgpool,
            flatten, dense(5), softmax,
        }",
    );
    let weights = cnnjit::runtime::params::random_weights(&net, 3);
    let cranelift = Options {
        native_tile: false,
        ..Options::default()
    };
    let mut jit = Model::with_options(net.clone(), &weights, cranelift).unwrap();
    let report = jit.kernels();
    assert_eq!(report.steps.len(), jit.plan().steps.len());
    let Backend::Jit { compiled_steps, .. } = *jit.backend() else {
        panic!("no JIT: {:?}", jit.backend())
    };
    assert_eq!(report.compiled_steps(), compiled_steps);
    let algorithms: Vec<&str> = report.steps.iter().map(|s| s.algorithm()).collect();
    // By hand: a 3x3 conv; a depthwise conv feeding only a 1x1 conv over 10x10
    // pixels, so the two run as one fused kernel at the second step; an lrn, a
    // pool, an lrn whose base can be zero (k = 0: the reference keeps
    // PyTorch's 0/0), a global pool, a dense layer; the softmax follows it on
    // a kernel of its own, in place, so the step lists it as fused.
    assert_eq!(
        algorithms,
        [
            "direct",
            "in next",
            "dw+pw",
            "lrn",
            "pool",
            "reference",
            "global-pool",
            "gemv"
        ]
    );
    assert_eq!(report.steps[0].fused, ["bn", "relu"]);
    assert_eq!(report.steps[7].fused, ["softmax"]);
    assert!(report.steps[7].unfused.is_empty());
    // 10x10x16 outputs of 8 channels each.
    assert_eq!(report.steps[2].macs, 10 * 10 * 16 * 8);
    let table = report.to_string();
    assert!(table.contains("(no JIT kernel for lrn: k <= 0)"), "{table}");

    let profile = jit.profile(&random_input(jit.input_len(), 1), 3).unwrap();
    assert_eq!(profile.kernels, report);
    assert_eq!(profile.step_ms.len(), report.steps.len());
    assert_eq!(profile.runs, 3);

    let reference = Options {
        reference: true,
        ..Options::default()
    };
    let slow = Model::with_options(net, &weights, reference).unwrap();
    let report = slow.kernels();
    assert_eq!(report.compiled_steps(), 0);
    assert!(report.steps.iter().all(|s| matches!(
        &s.path,
        cnnjit::runtime::report::Path::Reference { reason } if reason.contains("Options::reference")
    )));
}

/// prelu is a per-channel epilogue of the kernel before it, its slopes read
/// by the anchor's channels; past a flatten (one slope per feature) it is
/// left to the reference kernels, and a prelu with no kernel before it (the
/// input's) runs there with the reason named. Each agrees with the reference.
#[test]
fn prelu_is_fused_per_channel_or_runs_on_the_reference() {
    let source = "Net(6x6x3) {
        prelu, conv(5, 3x3), bn, prelu, maxpool(2x2), prelu, flatten, prelu, dense(4), prelu,
    }";
    let net = graph(source);
    assert_agrees_in(&net, source, 7, 1, None);
    let weights = cnnjit::check::lively_weights(&net, 7);
    let cranelift = Options {
        native_tile: false,
        ..Options::default()
    };
    let jit = Model::with_options(net, &weights, cranelift).unwrap();
    let report = jit.kernels();
    let algorithms: Vec<&str> = report.steps.iter().map(|s| s.algorithm()).collect();
    // By hand: the first prelu anchors a step of its own; conv, bn and prelu
    // one kernel; the pool's prelu, the flatten and the prelu after it (whose
    // 2x2x5 = 20 slopes are not the pool's 5 channels) one pool kernel with
    // the last prelu unfused; the dense with its prelu (4 slopes).
    assert_eq!(algorithms, ["reference", "direct", "pool", "gemv"]);
    assert!(
        report.to_string().contains("(no JIT kernel for prelu)"),
        "{report}"
    );
    assert_eq!(report.steps[1].fused, ["bn", "prelu"]);
    assert_eq!(report.steps[2].fused, ["prelu", "flatten"]);
    assert_eq!(report.steps[2].unfused, ["prelu"]);
    assert_eq!(report.steps[3].fused, ["prelu"]);
}

/// A bn past a flatten in a conv's step has a scale and a shift per feature
/// (2x2x3 = 12), not per conv channel (3): it runs on the reference kernels
/// after the kernel instead of failing to pack.
#[test]
fn a_bn_past_a_flatten_is_left_to_the_reference() {
    let source = "Net(4x4x2) { conv(3, 3x3), flatten, bn }";
    let net = graph(source);
    assert_agrees_in(&net, source, 3, 1, None);
}

/// Depthwise layers run the native row kernel of each ISA the host has
/// (the report names it) and sum as Cranelift's depthwise does: a net of
/// depthwise layers only (3x3 and 5x5, strides 1 and 2, a dilation, the
/// native kernel's own epilogues and one it leaves to the shared one, 19
/// channels) gives bitwise the same output on every path, pure Cranelift
/// included.
#[test]
fn depthwise_layers_are_bitwise_alike_on_every_path() {
    let net = graph(
        "Net(13x21x19) {
            dwconv(3x3, pad = same), relu6, dwconv(5x5, stride = 2, pad = same), relu,
            dwconv(3x3, dilation = 2, pad = same), sigmoid, dwconv(3x3, pad = same),
        }",
    );
    let weights = cnnjit::runtime::params::random_weights(&net, 11);
    let input = random_input(net.input_shape().len() as usize, 12);
    let runs: Vec<(String, Vec<u32>)> = paths()
        .into_iter()
        .map(|(path, options)| {
            let mut model = Model::with_options(net.clone(), &weights, options).unwrap();
            let report = model.kernels();
            for step in &report.steps {
                assert_eq!(step.algorithm(), "depthwise", "{path}: {step:?}");
                let isa = step.tile().and_then(|tile| tile.isa);
                assert_eq!(isa, options.native(), "{path}: {step:?}");
            }
            let bits = model
                .forward(&input)
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            (path, bits)
        })
        .collect();
    for pair in runs.windows(2) {
        assert_eq!(pair[0].1, pair[1].1, "{} against {}", pair[0].0, pair[1].0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Max pools over NaNs, signed zeros and repeated values at random
    /// places give the reference's bits (a NaN for a NaN) on every path: a
    /// window without a NaN takes one `maxps` per tap, a window with one
    /// the exact max. Zeros compare equal whatever their sign: the compiled
    /// pool adds its zero bias, so a -0 max comes out +0 (as it did before
    /// the `maxps` path).
    #[test]
    fn max_pools_over_nans_and_zeros_equal_reference(
        (h, w, c) in (1u32..9, 1u32..9, 1u32..21),
        (f, s, p) in (1u32..4, 1u32..3, 0u32..2),
        cells in proptest::collection::vec(0u8..24, 8 * 8 * 20),
        seed in any::<u64>(),
    ) {
        let p = p.min(f / 2);
        let (h, w) = (fitting(h, f, 1, p), fitting(w, f, 1, p));
        let source = format!("Net({h}x{w}x{c}) {{ maxpool({f}x{f}, stride = {s}, pad = {p}) }}");
        let graph = graph(&source);
        let weights = cnnjit::runtime::params::random_weights(&graph, seed);
        // One in 24 a NaN; zeros of both signs and a few repeated values.
        let input: Vec<f32> = (0..(h * w * c) as usize)
            .map(|i| match cells[i % cells.len()] {
                0 => f32::NAN,
                1..=5 => 0.0,
                6..=10 => -0.0,
                11..=14 => 1.0,
                v => -f32::from(v),
            })
            .collect();
        let reference = Options { reference: true, ..Options::default() };
        let want = Model::with_options(graph.clone(), &weights, reference)
            .unwrap()
            .forward(&input)
            .unwrap();
        for (path, options) in paths() {
            let mut model = Model::with_options(graph.clone(), &weights, options).unwrap();
            assert_compiled(model.backend(), None, &path);
            let got = model.forward(&input).unwrap();
            let same = |(g, w): (&f32, &f32)| {
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()) || (*g == 0.0 && *w == 0.0)
            };
            prop_assert!(got.iter().zip(&want).all(same), "{}: {:?} against {:?}", path, got, want);
        }
    }
}

/// A NaN in a max pool's window makes its output NaN wherever in the
/// window it is met (first, middle or last), as in the reference and
/// PyTorch, on every path: a plain `maxps` keeps whichever operand comes
/// second, so a NaN met before larger values would be lost.
#[test]
fn max_pools_keep_nans() {
    let graph = graph("Net(4x5x6) { maxpool(3x3, stride = 1, pad = 1), relu }");
    let weights = cnnjit::runtime::params::random_weights(&graph, 1);
    // Channel by channel, over the 4x5 pixels p (row-major): a NaN last in
    // its windows; a NaN among ones; a NaN met before larger values; -inf
    // with one 5; a ramp; -inf alone.
    let pixel = |p: usize, c: usize| match c {
        0 => [-1.0, f32::NAN][usize::from(p == 19)],
        1 => [1.0, f32::NAN][usize::from(p == 6)],
        2 => [2.0, f32::NAN][usize::from(p == 0)],
        3 => [f32::NEG_INFINITY, 5.0][usize::from(p == 18)],
        4 => p as f32 * 0.25 - 2.0,
        _ => f32::NEG_INFINITY,
    };
    let input: Vec<f32> = (0..20 * 6).map(|i| pixel(i / 6, i % 6)).collect();
    let reference = Options {
        reference: true,
        ..Options::default()
    };
    let want = Model::with_options(graph.clone(), &weights, reference)
        .unwrap()
        .forward(&input)
        .unwrap();
    assert!(want.iter().any(|v| v.is_nan()) && want.iter().any(|v| !v.is_nan()));
    for (path, options) in paths() {
        let mut model = Model::with_options(graph.clone(), &weights, options).unwrap();
        assert_compiled(model.backend(), None, &path);
        let got = model.forward(&input).unwrap();
        let same = |(g, w): (&f32, &f32)| g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
        assert!(
            got.iter().zip(&want).all(same),
            "{path}: {got:?} against {want:?}"
        );
    }
}

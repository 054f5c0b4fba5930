//! The printer against the compiler: a net compiled, printed and compiled
//! again is the same graph (every node's op, shape and inputs), for random
//! nets and every example net; expansion creates nodes in the order
//! `print::order` gives for the tree it returns; and the layer table agrees
//! with `Op::kind`.

use cnnjit_ir::{Graph, Shape};
use cnnjit_lang::dsl::{self, layers, print};
use cnnjit_lang::expand::{expand_net, Expanded};
use proptest::prelude::*;
use std::path::Path;

/// Every net of `text`, expanded.
fn expand_all(text: &str) -> syn::Result<Vec<Expanded>> {
    let items = dsl::parse_source(text)?;
    items
        .nets
        .iter()
        .map(|net| expand_net(net, &items.blocks))
        .collect()
}

/// What differs between two graphs' nodes (ops, shapes, inputs), if anything.
fn difference(a: &Graph, b: &Graph) -> Option<String> {
    if a.nodes.len() != b.nodes.len() {
        return Some(format!("{} nodes, then {}", a.nodes.len(), b.nodes.len()));
    }
    a.nodes
        .iter()
        .zip(b.nodes.iter())
        .enumerate()
        .find_map(|(i, (x, y))| {
            (x.op != y.op || x.output != y.output || x.inputs != y.inputs).then(|| {
                format!(
                    "node {i}: {:?} {} {:?}, then {:?} {} {:?}",
                    x.op, x.output, x.inputs, y.op, y.output, y.inputs
                )
            })
        })
}

/// `expanded`'s order and round trip: a failure message, or `None`.
fn round_trip(expanded: &Expanded) -> Result<(), String> {
    let graph = &expanded.graph;
    let created: Vec<usize> = (1..graph.nodes.len()).collect();
    if print::order(&expanded.items) != created {
        return Err(format!(
            "the expander's tree {:?} is not in creation order",
            expanded.items
        ));
    }
    let text = print::graph(graph, &expanded.items).map_err(|e| e.to_string())?;
    let again = expand_all(&text).map_err(|e| format!("{text}\ndoes not compile: {e}"))?;
    match difference(graph, &again[0].graph) {
        Some(d) => Err(format!("{text}\ncompiles to another graph: {d}")),
        None => Ok(()),
    }
}

#[test]
fn every_example_net_prints_to_itself() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nets");
    let mut nets = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/nets") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "cnn") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a .cnn file");
        for expanded in expand_all(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            round_trip(&expanded).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            nets += 1;
        }
    }
    assert!(nets >= 20, "only {nets} example nets");
}

/// Every word and alias of the table builds an op that `Op::kind` names by
/// the row's name, and that `layers::written` writes with that row.
#[test]
fn the_table_agrees_with_op_kind() {
    for row in layers::LAYERS {
        let needed: Vec<&str> = row
            .positional
            .iter()
            .filter(|p| p.omitted == layers::Omitted::Needed)
            .map(|p| match p.ty {
                layers::Ty::Dims => "1x1",
                _ => "2",
            })
            .collect();
        for word in std::iter::once(row.name).chain(row.aliases.iter().copied()) {
            let call = format!("{word}({})", needed.join(", "));
            let expanded = ["8x8x4", "16"]
                .iter()
                .find_map(|input| {
                    expand_all(&format!("N({input}) {{ {call} }}"))
                        .ok()
                        .map(|mut nets| nets.remove(0))
                })
                .unwrap_or_else(|| panic!("`{call}` compiles on no input"));
            let node = &expanded.graph.nodes[1];
            assert_eq!(node.op.kind(), row.name, "{call}");
            let input = expanded.graph.input_shape();
            let (written, _) = layers::written(&node.op, input).expect("a layer");
            assert_eq!(written.name, row.name, "{call}");
            let printed = print::layer(&node.op, input).expect("a layer");
            assert_eq!(printed.split('(').next(), Some(row.name), "{call}");
        }
    }
}

#[test]
fn layers_are_written_with_the_arguments_that_differ_from_their_defaults() {
    let cases = [
        (
            "conv(8, 3x3, stride = 2, pad = 1, bias = false)",
            "conv(8, 3x3, stride = 2, pad = 1, bias = false)",
        ),
        (
            "conv(8, 1x3, stride = 1, pad = valid, dilation = 1, groups = 1, bias = true)",
            "conv(8, 1x3)",
        ),
        (
            "conv(8, 3, stride = (1, 2), pad = (1, 0), dilation = 2x2)",
            "conv(8, 3x3, stride = 1x2, pad = (1, 0), dilation = 2)",
        ),
        (
            "dwconv(3x3, stride = 2, pad = same, multiplier = 2)",
            "dwconv(3x3, stride = 2, pad = 1, multiplier = 2)",
        ),
        ("conv(4, 2x2, pad = same)", "conv(4, 2x2, pad = same)"),
        ("maxpool(2x2, stride = 2)", "maxpool(2x2)"),
        (
            "avgpool(3x3, stride = 1, pad = 1, count_include_pad = false)",
            "avgpool(3x3, stride = 1, pad = 1, count_include_pad = false)",
        ),
        ("batchnorm(eps = 1e-5)", "bn"),
        ("bn(eps = 0.001)", "bn(eps = 0.001)"),
        ("leaky_relu(0.01)", "leaky_relu"),
        ("leaky_relu(-0.2)", "leaky_relu(-0.2)"),
        ("dropout(0.5)", "dropout"),
        (
            "lrn(5, alpha = 1e-4, beta = 0.75, k = 2)",
            "lrn(size = 5, k = 2.0)",
        ),
        ("silu", "swish"),
        ("shuffle(2)", "shuffle(2)"),
        ("slice(1, 3)", "slice(1, 3)"),
        ("slice(0, (1 + 1) * 2)", "slice(0, 4)"),
        ("upsample(2)", "upsample(2)"),
        (
            "upsample(3, bilinear = true)",
            "upsample(3, bilinear = true)",
        ),
        ("upsample(2, bilinear = false)", "upsample(2)"),
        ("deconv(8, 2x2, stride = 2)", "deconv(8, 2x2, stride = 2)"),
        (
            "deconv(8, 3x3, stride = 2, pad = 1, bias = false)",
            "deconv(8, 3x3, stride = 2, pad = 1, bias = false)",
        ),
        (
            "deconv(8, 3, stride = (2, 1), pad = 0)",
            "deconv(8, 3x3, stride = 2x1)",
        ),
    ];
    for (source, expected) in cases {
        let expanded = expand_all(&format!("N(9x9x4) {{ {source} }}"))
            .unwrap_or_else(|e| panic!("{source}: {e}"))
            .remove(0);
        let op = expanded.graph.nodes[1].op;
        let input = Shape::Volume { h: 9, w: 9, c: 4 };
        assert_eq!(
            print::layer(&op, input).as_deref(),
            Ok(expected),
            "{source}"
        );
    }
}

// ------------------------------------------------------------ random nets

/// A float as a test writes it: shortest, or with a few digits.
fn float(range: std::ops::Range<f32>) -> impl Strategy<Value = String> {
    (range, any::<bool>()).prop_map(|(x, short)| {
        if short {
            format!("{x:?}")
        } else {
            format!("{x:.3}")
        }
    })
}

fn size() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u32..4).prop_map(|n| n.to_string()),
        (1u32..4, 1u32..4).prop_map(|(h, w)| format!("{h}x{w}")),
        (1u32..4, 1u32..4).prop_map(|(h, w)| format!("({h}, {w})")),
    ]
}

/// `, key = value` or nothing.
fn opt(key: &'static str, value: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop::option::of(value).prop_map(move |v| v.map_or(String::new(), |v| format!(", {key} = {v}")))
}

fn pad() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("same".to_string()),
        Just("valid".to_string()),
        (0u32..2).prop_map(|p| p.to_string()),
        (0u32..2, 0u32..2).prop_map(|(a, b)| format!("({a}, {b})")),
    ]
}

fn bools() -> impl Strategy<Value = String> {
    any::<bool>().prop_map(|b| b.to_string())
}

/// One layer that often fits a small volume.
fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (1u32..9, size(), opt("stride", size()), opt("pad", pad()), opt("dilation", size()), opt("groups", Just("1".to_string())), opt("bias", bools()))
            .prop_map(|(k, f, s, p, d, g, b)| format!("conv({k}, {f}{s}{p}{d}{g}{b})")),
        2 => (size(), opt("stride", size()), opt("pad", pad()), opt("multiplier", (1u32..3).prop_map(|m| m.to_string())), opt("bias", bools()))
            .prop_map(|(f, s, p, m, b)| format!("dwconv({f}{s}{p}{m}{b})")),
        1 => (prop::sample::select(&["maxpool", "avgpool"][..]), 1u32..4, opt("stride", size()), opt("pad", Just("same".to_string())), opt("ceil", bools()))
            .prop_map(|(w, k, s, p, c)| format!("{w}({k}x{k}{s}{p}{c})")),
        1 => (1u32..4, opt("count_include_pad", bools()))
            .prop_map(|(k, c)| format!("avgpool({k}x{k}, stride = 1, pad = {}{c})", k / 2)),
        1 => opt("eps", float(1e-7..1.0)).prop_map(|e| format!("bn({})", e.trim_start_matches(", "))),
        3 => prop::sample::select(&["bn", "batchnorm", "relu", "relu6", "tanh", "sigmoid", "swish", "silu", "hard_swish", "hardswish", "hard_sigmoid", "identity", "leaky_relu", "prelu", "dropout", "softmax"][..])
            .prop_map(str::to_string),
        1 => float(-1.0..1.0).prop_map(|a| format!("leaky_relu({a})")),
        1 => float(0.0..0.99).prop_map(|p| format!("dropout({p})")),
        1 => (1u32..6, opt("alpha", float(1e-5..1.0)), opt("beta", float(0.1..1.0)), opt("k", float(0.5..3.0)))
            .prop_map(|(n, a, b, k)| format!("lrn(size = {n}{a}{b}{k})")),
        1 => (1u32..9, 1u32..3).prop_map(|(c, s)| format!("blk({c}, {s})")),
        1 => (1u32..4).prop_map(|g| format!("shuffle({g})")),
        1 => (0u32..3, 1u32..4).prop_map(|(f, n)| format!("slice({f}, {n})")),
        1 => (1u32..3, any::<bool>()).prop_map(|(s, b)| format!("upsample({s}, bilinear = {b})")),
        1 => (1u32..9, 1u32..4, 1u32..3, 0u32..2)
            .prop_map(|(k, f, s, p)| format!("deconv({k}, {f}x{f}, stride = {s}, pad = {p})")),
    ]
}

/// A layer, composites nested a few levels deep, sometimes labelled.
fn layer() -> impl Strategy<Value = String> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        let seq = prop::collection::vec(inner.clone(), 0..4).prop_map(|v| v.join(", "));
        prop_oneof![
            (1u32..3, seq.clone()).prop_map(|(n, s)| format!("repeat({n}) {{ {s} }}")),
            prop::collection::vec(seq.clone(), 1..4).prop_map(|branches| {
                let b: Vec<String> = branches.iter().map(|s| format!("[{s}]")).collect();
                format!("concat {{ {} }}", b.join(", "))
            }),
            seq.clone().prop_map(|s| format!("residual {{ {s} }}")),
            seq.clone()
                .prop_map(|s| format!("residual(shortcut = auto) {{ {s} }}")),
            (seq.clone(), seq.clone())
                .prop_map(|(s, t)| format!("residual(shortcut = [{t}]) {{ {s} }}")),
            seq.clone()
                .prop_map(|s| format!("scale {{ global_avgpool, {s} }}")),
            seq.prop_map(|s| format!("scale {{ {s} }}")),
            (prop::sample::select(&["x", "y", "stem"][..]), inner.clone())
                .prop_map(|(l, layer)| format!("{l}: {layer}")),
            inner,
        ]
    })
}

/// A net on a small volume, with a block, an optional width and head.
fn program() -> impl Strategy<Value = String> {
    (
        (4u32..14, 4u32..14, 1u32..6),
        prop::option::of(prop::sample::select(&["0.5", "2", "0.75"][..])),
        prop::collection::vec(layer(), 1..6),
        any::<bool>(),
    )
        .prop_map(|((h, w, c), width, layers, head)| {
            let width = width.map_or(String::new(), |a| format!(", width = {a}"));
            let head = if head {
                ", global_avgpool, flatten, fc(7, bias = false), softmax"
            } else {
                ""
            };
            format!(
                "block blk(c, s) {{ conv(c, 3x3, stride = s, pad = 1), bn, relu }}\npub Net({h}x{w}x{c}{width}) {{ {}{head} }}",
                layers.join(", ")
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_global_rejects: 20_000, ..ProptestConfig::default() })]

    /// `compile(print(compile(src)))` is `compile(src)`, for nets that compile.
    #[test]
    fn a_printed_net_compiles_to_its_graph(source in program()) {
        let expanded = expand_all(&source);
        prop_assume!(expanded.is_ok());
        for net in expanded.expect("assumed") {
            if let Err(e) = round_trip(&net) {
                prop_assert!(false, "{source}\nprinted as {e}");
            }
        }
    }

    /// Every finite float is written so that the parser reads the same bits.
    #[test]
    fn floats_are_written_to_reparse_to_their_bits(bits in any::<u32>()) {
        let x = f32::from_bits(bits);
        prop_assume!(x.is_finite());
        let text = print::float(x);
        let items = dsl::parse_source(&format!("N(4) {{ leaky_relu({text}) }}"));
        let value = match items.as_ref().map(|i| &i.nets[0].body.0[0].op) {
            Ok(dsl::ast::LayerOp::Call(call)) => match &call.args[0].value {
                dsl::ast::Value::Float(v) => Some(*v as f32),
                _ => None,
            },
            _ => None,
        };
        prop_assert_eq!(value.map(f32::to_bits), Some(bits), "{} read as {:?}", text, value);
    }
}

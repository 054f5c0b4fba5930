//! ConvNeXt's layers as exporters write them, on small graphs built here:
//! channels-last regions (`Transpose(0, 2, 3, 1)` ... `Transpose(0, 3, 1,
//! 2)`) with `LayerNormalization` and `MatMul`, GELU's erf form in both
//! exporters' orders, and arithmetic by a constant per channel (`affine`).
//! Numerics against ONNX Runtime are the top level's (tests/onnx_import.rs,
//! the `convnext_small` fixture).

use crate::common::{body, import, model, node, node_error, weight};
use cnnjit_import::onnx::{data_type, Attribute, NodeProto, TensorProto};

fn floats(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        float_data: values.to_vec(),
        ..TensorProto::default()
    }
}

fn scalar(name: &str, v: f32) -> TensorProto {
    floats(name, &[], &[v])
}

fn perm(p: &[i64]) -> Vec<Attribute> {
    vec![Attribute {
        name: "perm".into(),
        ints: p.to_vec(),
        ..Attribute::default()
    }]
}

fn eps(e: f32) -> Vec<Attribute> {
    vec![Attribute {
        name: "epsilon".into(),
        f: e,
        ..Attribute::default()
    }]
}

/// GELU of `x` into `y` as the legacy exporter writes it: `Div(x, sqrt 2)`,
/// `Erf`, `Add 1`, `Mul x`, `Mul 0.5` (the constants `sqrt2`, `one`, `half`).
fn gelu_legacy(x: &str, y: &str) -> Vec<NodeProto> {
    vec![
        node("Div", "", &[x, "sqrt2"], "g1", vec![]),
        node("Erf", "", &["g1"], "g2", vec![]),
        node("Add", "", &["g2", "one"], "g3", vec![]),
        node("Mul", "", &[x, "g3"], "g4", vec![]),
        node("Mul", "", &["g4", "half"], y, vec![]),
    ]
}

fn gelu_constants() -> Vec<TensorProto> {
    vec![
        scalar("sqrt2", std::f32::consts::SQRT_2),
        scalar("inv_sqrt2", std::f32::consts::FRAC_1_SQRT_2),
        scalar("one", 1.0),
        scalar("half", 0.5),
        scalar("two", 2.0),
    ]
}

/// ConvNeXt's block on `x` `[1, 4, 3, 3]` as the legacy exporter writes it:
/// permute to NHWC, LayerNorm(4, eps 1e-6), Linear(4, 8) (MatMul, then Add
/// of the bias first), GELU, Linear(8, 4), permute back, layer scale
/// `[4, 1, 1]` times it, plus `x`.
fn convnext_block() -> Vec<u8> {
    let mut nodes = vec![
        node("Transpose", "", &["x"], "t", perm(&[0, 2, 3, 1])),
        node(
            "LayerNormalization",
            "norm",
            &["t", "ln_w", "ln_b"],
            "n",
            eps(1e-6),
        ),
        node("MatMul", "", &["n", "w1"], "m1", vec![]),
        node("Add", "", &["b1", "m1"], "a1", vec![]),
    ];
    nodes.extend(gelu_legacy("a1", "g"));
    nodes.extend([
        node("MatMul", "", &["g", "w2"], "m2", vec![]),
        node("Add", "", &["b2", "m2"], "a2", vec![]),
        node("Transpose", "", &["a2"], "back", perm(&[0, 3, 1, 2])),
        node("Mul", "", &["scale", "back"], "s", vec![]),
        node("Add", "", &["s", "x"], "y", vec![]),
    ]);
    let mut weights = vec![
        weight("ln_w", &[4]),
        weight("ln_b", &[4]),
        weight("w1", &[4, 8]),
        weight("b1", &[8]),
        weight("w2", &[8, 4]),
        weight("b2", &[4]),
        weight("scale", &[4, 1, 1]),
    ];
    weights.extend(gelu_constants());
    model(17, &[1, 4, 3, 3], nodes, weights)
}

#[test]
fn a_convnext_block_is_layernorm_pointwise_convs_gelu_and_a_layer_scale() {
    let imported = import(&convnext_block()).unwrap();
    assert_eq!(
        body(&imported),
        [
            "residual {",
            "norm: layernorm(eps = 1e-6),",
            "conv(8, 1x1), gelu,",
            "conv(4, 1x1), affine(bias = false),",
            "},"
        ]
    );
    let names: Vec<(&str, &[usize])> = (imported.tensors.iter())
        .map(|t| (t.name.as_str(), t.dims.as_slice()))
        .collect();
    assert_eq!(
        names,
        [
            ("norm.weight", &[4][..]),
            ("norm.bias", &[4]),
            ("conv1.weight", &[8, 4, 1, 1]),
            ("conv1.bias", &[8]),
            ("conv2.weight", &[4, 8, 1, 1]),
            ("conv2.bias", &[4]),
            ("affine1.weight", &[4]),
        ]
    );
    // `w1` [4, 8] holds 0.1 (i 8 + j + 1) at row i, column j; the conv's
    // output channel j reads input channel i with that weight: channel 0's
    // weights are w1's column 0, [0.1, 0.9, 1.7, 2.5].
    let w = &imported.tensors[2].values;
    for (got, want) in w[..4].iter().zip([0.1, 0.9, 1.7, 2.5]) {
        assert!((got - want).abs() < 1e-6, "{w:?}");
    }
    // The layer scale [4, 1, 1] is the affine's factor per channel.
    assert_eq!(imported.tensors[6].values, [0.1, 0.2, 0.3, 0.4]);
    // PyTorch's count: LayerNorm 2 x 4, Linear 4 x 8 + 8 and 8 x 4 + 4,
    // the layer scale 4.
    assert_eq!(imported.net.figures.params, 8 + 40 + 36 + 4);
}

/// `x` `[1, 4, 3, 3]` through `nodes` into `y`, with `weights` and GELU's
/// constants.
fn arithmetic(nodes: Vec<NodeProto>, mut weights: Vec<TensorProto>) -> Vec<u8> {
    weights.extend(gelu_constants());
    model(17, &[1, 4, 3, 3], nodes, weights)
}

#[test]
fn gelu_in_every_order_exporters_write_is_gelu() {
    let dynamo = vec![
        node("Div", "", &["x", "sqrt2"], "g1", vec![]),
        node("Erf", "", &["g1"], "g2", vec![]),
        node("Add", "", &["g2", "one"], "g3", vec![]),
        node("Mul", "", &["half", "g3"], "g4", vec![]),
        node("Mul", "", &["x", "g4"], "y", vec![]),
    ];
    let times_inverse_then_halved = vec![
        node("Mul", "", &["x", "inv_sqrt2"], "g1", vec![]),
        node("Erf", "", &["g1"], "g2", vec![]),
        node("Add", "", &["one", "g2"], "g3", vec![]),
        node("Mul", "", &["g3", "x"], "g4", vec![]),
        node("Div", "", &["g4", "two"], "y", vec![]),
    ];
    for nodes in [gelu_legacy("x", "y"), dynamo, times_inverse_then_halved] {
        let imported = import(&arithmetic(nodes, vec![])).unwrap();
        assert_eq!(body(&imported), ["gelu,"]);
        assert!(imported.tensors.is_empty());
    }
    // In a channels-last region too, between the transposes.
    let mut nodes = vec![node("Transpose", "", &["x"], "t", perm(&[0, 2, 3, 1]))];
    nodes.extend(gelu_legacy("t", "g"));
    nodes.push(node("Transpose", "", &["g"], "y", perm(&[0, 3, 1, 2])));
    assert_eq!(
        body(&import(&arithmetic(nodes, vec![])).unwrap()),
        ["gelu,"]
    );
}

#[test]
fn a_gelu_that_is_not_finished_or_erf_elsewhere_is_an_error_naming_the_node() {
    // erf(x / sqrt 2) + 1 times 3: not gelu's half.
    let nodes = vec![
        node("Div", "", &["x", "sqrt2"], "g1", vec![]),
        node("Erf", "", &["g1"], "g2", vec![]),
        node("Add", "", &["g2", "one"], "g3", vec![]),
        node("Mul", "m", &["g3", "three"], "y", vec![]),
    ];
    let (name, _, why) = node_error(import(&arithmetic(nodes, vec![scalar("three", 3.0)])));
    assert_eq!(name, "m");
    assert!(why.contains("gelu"), "{why}");
    // Erf of data not divided by sqrt 2.
    let nodes = vec![node("Erf", "e", &["x"], "y", vec![])];
    let (name, op, why) = node_error(import(&arithmetic(nodes, vec![])));
    assert_eq!((name.as_str(), op.as_str()), ("e", "Erf"));
    assert!(why.contains("GELU"), "{why}");
}

#[test]
fn input_normalisation_is_one_affine() {
    // (x - mean) / std with mean [1, 2, 3, 4] and std [2, 4, 5, 8] per
    // channel ([1, 4, 1, 1]): x / std - mean / std, factors [0.5, 0.25, 0.2,
    // 0.125] and shifts [-0.5, -0.5, -0.6, -0.5].
    let nodes = vec![
        node("Sub", "", &["x", "mean"], "c", vec![]),
        node("Div", "normalise", &["c", "std"], "y", vec![]),
    ];
    let weights = vec![
        floats("mean", &[1, 4, 1, 1], &[1.0, 2.0, 3.0, 4.0]),
        floats("std", &[1, 4, 1, 1], &[2.0, 4.0, 5.0, 8.0]),
    ];
    let imported = import(&arithmetic(nodes, weights)).unwrap();
    assert_eq!(body(&imported), ["normalise: affine,"]);
    let (w, b) = (&imported.tensors[0], &imported.tensors[1]);
    assert_eq!(
        (w.name.as_str(), b.name.as_str()),
        ("normalise.weight", "normalise.bias")
    );
    assert_eq!(w.values, [0.5, 0.25, 0.2, 0.125]);
    for (got, want) in b.values.iter().zip([-0.5, -0.5, -0.6, -0.5]) {
        assert!((got - want).abs() < 1e-6, "{:?}", b.values);
    }
}

#[test]
fn a_scalar_or_per_channel_constant_is_an_affine_and_another_shape_an_error() {
    // x * 2 + [1, 2, 3, 4]: one affine, the scalar repeated per channel.
    let nodes = vec![
        node("Mul", "", &["x", "two"], "m", vec![]),
        node("Add", "", &["m", "shift"], "y", vec![]),
    ];
    let weights = vec![floats("shift", &[4, 1, 1], &[1.0, 2.0, 3.0, 4.0])];
    let imported = import(&arithmetic(nodes, weights)).unwrap();
    assert_eq!(body(&imported), ["affine,"]);
    assert_eq!(imported.tensors[0].values, [2.0; 4]);
    assert_eq!(imported.tensors[1].values, [1.0, 2.0, 3.0, 4.0]);
    // x + 3 alone is a shift.
    let nodes = vec![node("Add", "", &["x", "three"], "y", vec![])];
    let imported = import(&arithmetic(nodes, vec![scalar("three", 3.0)])).unwrap();
    assert_eq!(body(&imported), ["affine(weight = false),"]);
    // [4] against NCHW broadcasts along the width; [4, 3, 3] is per element.
    for dims in [&[4][..], &[4, 3, 3]] {
        let n: i64 = dims.iter().product();
        let nodes = vec![node("Mul", "m", &["x", "c"], "y", vec![])];
        let weights = vec![floats("c", dims, &vec![1.0; n as usize])];
        let (name, _, why) = node_error(import(&arithmetic(nodes, weights)));
        assert_eq!(name, "m");
        assert!(
            why.contains(&format!("{dims:?}")) && why.contains("[4, 1, 1] or [1, 4, 1, 1]"),
            "{why}"
        );
    }
}

#[test]
fn a_layer_norm_over_flat_features_and_a_convnext_head() {
    // ConvNeXt's head: global average pooling, LayerNorm2d (a region around
    // one LayerNormalization on the 1x1 volume), Flatten, Linear.
    let nodes = vec![
        node("GlobalAveragePool", "", &["x"], "p", vec![]),
        node("Transpose", "", &["p"], "t", perm(&[0, 2, 3, 1])),
        node(
            "LayerNormalization",
            "",
            &["t", "ln_w", "ln_b"],
            "n",
            eps(1e-6),
        ),
        node("Transpose", "", &["n"], "b", perm(&[0, 3, 1, 2])),
        node("Flatten", "", &["b"], "f", vec![]),
        node("Gemm", "", &["f", "w", "bias"], "y", vec![]),
    ];
    let weights = vec![
        weight("ln_w", &[4]),
        weight("ln_b", &[4]),
        weight("w", &[4, 2]),
        weight("bias", &[2]),
    ];
    let imported = import(&arithmetic(nodes, weights)).unwrap();
    assert_eq!(
        body(&imported),
        [
            "global_avgpool, layernorm(eps = 1e-6),",
            "flatten,",
            "dense(2),"
        ]
    );
    // A LayerNormalization over flat features.
    let bytes = model(
        17,
        &[1, 4],
        vec![node("LayerNormalization", "", &["x", "ln_w"], "y", vec![])],
        vec![weight("ln_w", &[4])],
    );
    let imported = import(&bytes).unwrap();
    assert_eq!(body(&imported), ["layernorm,"]);
    // No B: a zero bias.
    assert_eq!(imported.tensors[1].values, [0.0; 4]);
}

#[test]
fn what_a_channels_last_region_cannot_hold_is_an_error_naming_the_node() {
    let region = |inner: Vec<NodeProto>, weights: Vec<TensorProto>| {
        let mut nodes = vec![node("Transpose", "", &["x"], "t", perm(&[0, 2, 3, 1]))];
        nodes.extend(inner);
        node_error(import(&arithmetic(nodes, weights)))
    };
    // A conv of NHWC data.
    let (name, op, why) = region(
        vec![node("Conv", "c", &["t", "w"], "y", vec![])],
        vec![weight("w", &[2, 4, 1, 1])],
    );
    assert_eq!((name.as_str(), op.as_str()), ("c", "Conv"));
    assert!(why.contains("channels-last"), "{why}");
    // A constant that varies along W ([3, 1] against [1, 3, 3, 4]).
    let (name, _, why) = region(
        vec![node("Mul", "m", &["t", "c"], "y", vec![])],
        vec![floats("c", &[3, 1], &[1.0, 2.0, 3.0])],
    );
    assert_eq!(name, "m");
    assert!(why.contains("[3, 1]"), "{why}");
    // A layer norm over the width of NCHW data.
    let bytes = arithmetic(
        vec![node("LayerNormalization", "ln", &["x", "w"], "y", vec![])],
        vec![weight("w", &[3])],
    );
    let (name, _, why) = node_error(import(&bytes));
    assert_eq!(name, "ln");
    assert!(why.contains("normalises the channels"), "{why}");
    // A region never closed.
    let bytes = arithmetic(
        vec![node("Transpose", "", &["x"], "y", perm(&[0, 2, 3, 1]))],
        vec![],
    );
    let e = import(&bytes).err().expect("an NHWC output is an error");
    assert!(e.to_string().contains("never finished"), "{e}");
}

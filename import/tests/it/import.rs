//! The importer on small ONNX graphs built here, message by message: what
//! each supported pattern becomes, and an error naming the node for what the
//! language cannot say. Models exported by PyTorch are tested at the top
//! level (tests/onnx_import.rs), against ONNX Runtime's outputs.

use crate::common;

use cnnjit_import::onnx::{data_type, Attribute, NodeProto, TensorProto};
use cnnjit_import::{import_bytes_as, Error, Imported, Names};
use cnnjit_ir::Shape;
use common::{body, import, model, node, node_error, weight};

pub(crate) fn attr_ints(name: &str, ints: &[i64]) -> Attribute {
    Attribute {
        name: name.into(),
        ints: ints.to_vec(),
        ..Attribute::default()
    }
}

fn attr_f(name: &str, f: f32) -> Attribute {
    Attribute {
        name: name.into(),
        f,
        ..Attribute::default()
    }
}

fn attr_i(name: &str, i: i64) -> Attribute {
    Attribute {
        name: name.into(),
        i,
        ..Attribute::default()
    }
}

fn import_error(result: Result<Imported, Error>) -> Error {
    match result {
        Err(e) => e,
        Ok(imported) => panic!("expected an error, imported:\n{}", imported.source),
    }
}

#[test]
fn labels_come_from_node_names_that_are_identifiers() {
    let bytes = model(
        13,
        &[1, 2, 5, 5],
        vec![
            node(
                "Conv",
                "stem",
                &["x", "w", "b"],
                "c",
                vec![attr_ints("pads", &[1, 1, 1, 1])],
            ),
            node("Relu", "/relu/Relu", &["c"], "r", vec![]),
            node("Conv", "conv2", &["r", "w2"], "y", vec![]),
        ],
        vec![
            weight("w", &[3, 2, 3, 3]),
            weight("b", &[3]),
            weight("w2", &[4, 3, 1, 1]),
        ],
    );
    let imported = import(&bytes).unwrap();
    // `conv2` would clash with the default names, so it takes one.
    assert_eq!(
        body(&imported),
        [
            "stem: conv(3, 3x3, pad = 1), relu,",
            "conv(4, 1x1, bias = false),"
        ]
    );
    let names: Vec<&str> = imported.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["stem.weight", "stem.bias", "conv2.weight"]);
}

#[test]
fn node_names_longer_than_64_characters_are_not_labels() {
    let net = |name: &str| {
        model(
            13,
            &[1, 2, 3, 3],
            vec![node("Relu", name, &["x"], "y", vec![])],
            vec![],
        )
    };
    let longest = "a".repeat(64);
    assert_eq!(
        body(&import(&net(&longest)).unwrap()),
        [format!("{longest}: relu,")]
    );
    for length in [65, 65_536] {
        let imported = import(&net(&"a".repeat(length))).unwrap();
        assert_eq!(body(&imported), ["relu,"]);
        assert!(imported.net.summary().to_string().contains("relu1"));
    }
}

#[test]
fn matmul_and_add_are_a_dense_with_the_weights_transposed() {
    let bytes = model(
        13,
        &[1, 3],
        vec![
            node("MatMul", "/fc/MatMul", &["x", "w"], "m", vec![]),
            node("Add", "/fc/Add", &["m", "b"], "y", vec![]),
        ],
        vec![weight("w", &[3, 2]), weight("b", &[2])],
    );
    let imported = import(&bytes).unwrap();
    assert_eq!(body(&imported), ["dense(2),"]);
    // ONNX's [Nin, N] = [[.1, .2], [.3, .4], [.5, .6]] is PyTorch's [N, Nin].
    assert_eq!(imported.tensors[0].dims, [2, 3]);
    assert_eq!(imported.tensors[0].values, [0.1, 0.3, 0.5, 0.2, 0.4, 0.6]);
    assert_eq!(imported.tensors[1].values, [0.1, 0.2]);
}

#[test]
fn lrn_leaky_relu_and_same_padding_are_written_with_their_arguments() {
    let bytes = model(
        13,
        &[1, 4, 6, 6],
        vec![
            node(
                "LRN",
                "/lrn/LRN",
                &["x"],
                "l",
                vec![
                    attr_i("size", 3),
                    attr_f("alpha", 0.001),
                    attr_f("bias", 2.0),
                ],
            ),
            node("LeakyRelu", "", &["l"], "r", vec![attr_f("alpha", 0.2)]),
            node(
                "MaxPool",
                "/pool/MaxPool",
                &["r"],
                "y",
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("strides", &[2, 2]),
                    Attribute {
                        name: "auto_pad".into(),
                        s: b"SAME_UPPER".to_vec(),
                        ..Attribute::default()
                    },
                ],
            ),
        ],
        vec![],
    );
    assert_eq!(
        body(&import(&bytes).unwrap()),
        [
            "lrn(size = 3, alpha = 0.001, k = 2.0), leaky_relu(0.2),",
            "maxpool(2x2),"
        ]
    );
}

#[test]
fn an_unsupported_operator_is_an_error_naming_the_node() {
    let bytes = model(
        13,
        &[1, 2, 4, 4],
        vec![node("Sin", "t", &["x"], "y", vec![])],
        vec![],
    );
    let (node, op, why) = node_error(import(&bytes));
    assert_eq!((node.as_str(), op.as_str()), ("t", "Sin"));
    assert!(why.contains("not supported"), "{why}");
}

#[test]
fn asymmetric_padding_is_an_error_naming_the_node() {
    let bytes = model(
        13,
        &[1, 2, 5, 5],
        vec![node(
            "Conv",
            "odd",
            &["x", "w"],
            "y",
            vec![attr_ints("pads", &[1, 0, 0, 1])],
        )],
        vec![weight("w", &[3, 2, 3, 3])],
    );
    let (node, op, why) = node_error(import(&bytes));
    assert_eq!((node.as_str(), op.as_str()), ("odd", "Conv"));
    assert!(why.contains("neither symmetric nor `same`"), "{why}");
}

#[test]
fn pool_padding_past_half_the_kernel_is_an_error_naming_the_node() {
    let pool = |pads: &[i64]| {
        model(
            13,
            &[1, 2, 6, 6],
            vec![node(
                "MaxPool",
                "wide",
                &["x"],
                "y",
                vec![
                    attr_ints("kernel_shape", &[3, 3]),
                    attr_ints("strides", &[1, 1]),
                    attr_ints("pads", pads),
                ],
            )],
            vec![],
        )
    };
    let (node, op, why) = node_error(import(&pool(&[2, 2, 2, 2])));
    assert_eq!((node.as_str(), op.as_str()), ("wide", "MaxPool"));
    assert!(
        why.contains("pads [2, 2, 2, 2] exceed half the kernel [3, 3]"),
        "{why}"
    );
    let imported = import(&pool(&[1, 1, 1, 1])).expect("half the kernel imports");
    assert!(
        body(&imported).iter().any(|l| l.contains("pad = 1")),
        "{}",
        imported.source
    );
}

#[test]
fn a_tensor_read_across_a_block_is_an_error_not_a_wrong_net() {
    // a = relu(x); b = tanh(a); c = x + b; y = c + a: `a` is read inside the
    // first residual and again by the second, which no nesting can say.
    let bytes = model(
        13,
        &[1, 2, 3, 3],
        vec![
            node("Relu", "a", &["x"], "a", vec![]),
            node("Tanh", "b", &["a"], "b", vec![]),
            node("Add", "c", &["x", "b"], "c", vec![]),
            node("Add", "d", &["c", "a"], "y", vec![]),
        ],
        vec![],
    );
    let (node, _, why) = node_error(import(&bytes));
    assert_eq!(node, "a");
    assert!(why.contains("cannot be nested"), "{why}");
}

#[test]
fn opsets_outside_the_supported_range_are_errors() {
    for opset in [1, 6, 99] {
        let bytes = model(
            opset,
            &[1, 3],
            vec![node("Relu", "r", &["x"], "y", vec![])],
            vec![],
        );
        match import(&bytes) {
            Err(e @ Error::Opset { version }) if version == opset => {
                assert!(e.to_string().contains(&format!("opset {opset}")), "{e}")
            }
            other => panic!("opset {opset}: {:?}", other.map(|i| i.source)),
        }
    }
}

fn scalar(name: &str, v: f32) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: data_type::FLOAT,
        float_data: vec![v],
        ..TensorProto::default()
    }
}

#[test]
fn dropout_identity_hard_swish_global_max_pool_gemm_clip_and_softmax() {
    let bytes = model(
        13,
        &[1, 4, 6, 6],
        vec![
            node("Dropout", "", &["x", "ratio"], "d", vec![]),
            node("Identity", "", &["d"], "i", vec![]),
            node("HardSwish", "", &["i"], "h", vec![]),
            node("GlobalMaxPool", "", &["h"], "g", vec![]),
            node("Flatten", "", &["g"], "f", vec![]),
            node(
                "Gemm",
                "",
                &["f", "b", "c"],
                "m",
                vec![attr_f("alpha", 2.0), attr_f("beta", 0.5)],
            ),
            node("Clip", "", &["m", "lo", "hi"], "r", vec![]),
            node("Softmax", "", &["r"], "y", vec![attr_i("axis", 1)]),
        ],
        vec![
            scalar("ratio", 0.3),
            weight("b", &[4, 3]),
            weight("c", &[3]),
            scalar("lo", 0.0),
            scalar("hi", 6.0),
        ],
    );
    let imported = import(&bytes).unwrap();
    assert_eq!(
        body(&imported),
        [
            "dropout(0.3),",
            "identity, hard_swish,",
            "global_maxpool,",
            "flatten,",
            "dense(3), relu6,",
            "softmax,"
        ]
    );
    // Gemm without transB: B is [Nin, N] = [[.1, .2, .3], ...]; PyTorch's
    // weight is alpha B^T, the bias beta C.
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    let (w, bias) = (&imported.tensors[0], &imported.tensors[1]);
    assert_eq!(w.dims, [3, 4]);
    assert!(
        close(&w.values[..4], &[0.2, 0.8, 1.4, 2.0]),
        "{:?}",
        w.values
    );
    assert!(close(&bias.values, &[0.05, 0.1, 0.15]), "{:?}", bias.values);
}

#[test]
fn a_reshape_that_does_not_flatten_is_an_error() {
    let shape = TensorProto {
        name: "s".into(),
        dims: vec![4],
        data_type: data_type::INT64,
        int64_data: vec![1, 2, 2, 18],
        ..TensorProto::default()
    };
    let bytes = model(
        13,
        &[1, 4, 3, 6],
        vec![node("Reshape", "/r/Reshape", &["x", "s"], "y", vec![])],
        vec![shape],
    );
    let (node, op, why) = node_error(import(&bytes));
    assert_eq!((node.as_str(), op.as_str()), ("/r/Reshape", "Reshape"));
    assert!(why.contains("only flattens"), "{why}");
}

/// A `Constant` of one value concatenated with itself 40 times would hold
/// 2^40 values: the `Concat` that passes the limit is refused before it is
/// made (it was grown until the process ran out of memory).
#[test]
fn a_chain_of_concats_doubling_a_constant_is_refused_before_it_is_made() {
    let mut nodes = vec![node(
        "Constant",
        "c0",
        &[],
        "c0",
        vec![attr_ints("value_ints", &[1])],
    )];
    for i in 0..40 {
        let (from, to) = (format!("c{i}"), format!("c{}", i + 1));
        nodes.push(node(
            "Concat",
            &to,
            &[&from, &from],
            &to,
            vec![attr_i("axis", 0)],
        ));
    }
    nodes.push(node("Relu", "r", &["x"], "y", vec![]));
    let (name, op, why) = node_error(import(&model(13, &[1, 2], nodes, vec![])));
    assert_eq!((name.as_str(), op.as_str()), ("c25", "Concat"));
    assert_eq!(
        why,
        "the concatenation is too large: more than 16777216 elements"
    );
}

/// One `Concat` reading a 1 MB initializer 100,000 times: the constant is
/// not copied per read (it was, 100 GB before the node was even looked at).
#[test]
fn a_node_reading_one_constant_many_times_does_not_copy_it_per_read() {
    let inputs = vec!["w"; 100_000];
    let nodes = vec![
        node("Concat", "big", &inputs, "big", vec![attr_i("axis", 0)]),
        node("Relu", "r", &["x"], "y", vec![]),
    ];
    let result = import(&model(13, &[1, 2], nodes, vec![weight("w", &[1 << 18])]));
    let (name, op, why) = node_error(result);
    assert_eq!((name.as_str(), op.as_str()), ("big", "Concat"));
    assert!(why.starts_with("the concatenation is too large"), "{why}");
}

/// The model file itself is read against the machine's memory: a directory
/// is named as one, and a sparse file of a terabyte (no disk space, and more
/// than any test machine's memory) is refused before a byte is read, where
/// `std::fs::read` would abort the process.
#[test]
fn a_model_path_that_is_a_directory_or_larger_than_memory_is_an_error() {
    let dir = std::env::temp_dir().join(format!("cnnjit-import-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let huge = dir.join("huge.onnx");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let options = cnnjit_import::Options::default();
    let as_dir = cnnjit_import::import(&dir, &options).map(|_| ());
    let as_huge = cnnjit_import::import(&huge, &options).map(|_| ());
    std::fs::remove_dir_all(&dir).unwrap();

    let err = as_dir.unwrap_err().to_string();
    assert!(err.contains("it is a directory"), "{err}");
    let err = as_huge.unwrap_err().to_string();
    assert!(
        err.starts_with("cannot allocate 1,099,511,627,776 bytes for reading"),
        "{err}"
    );
}

#[test]
fn decode_errors_are_typed_and_keep_the_parser_error_as_source() {
    use cnnjit_import::{DecodeError, TensorProblem};
    let err = import_error(import(b"not protobuf"));
    assert!(
        matches!(err, Error::Decode(DecodeError::NotOnnx(_))),
        "{err:?}"
    );
    let source = std::error::Error::source(&err).expect("prost's error");
    assert_eq!(err.to_string(), format!("not an ONNX model: {source}"));

    let dense = |w: TensorProto| {
        import_error(import(&model(
            13,
            &[1, 3],
            vec![node("MatMul", "m", &["x", "w"], "y", vec![])],
            vec![w],
        )))
    };
    let mut w = weight("w", &[3, 2]);
    w.data_type = 13; // uint64
    let err = dense(w);
    assert_eq!(
        err.to_string(),
        "tensor `w` has element type 13, not float32, float64, int32 or int64"
    );
    assert!(matches!(
        err,
        Error::Decode(DecodeError::Tensor {
            ref tensor,
            problem: TensorProblem::ElementType { found: 13 },
        }) if tensor == "w"
    ));
    let mut w = weight("w", &[3, 2]);
    w.raw_data.truncate(5 * 4);
    let err = dense(w);
    assert_eq!(
        err.to_string(),
        "tensor `w` has dimensions [3, 2] but holds 5 values"
    );
    assert!(matches!(
        err,
        Error::Decode(DecodeError::Tensor {
            problem: TensorProblem::Count { values: 5, .. },
            ..
        })
    ));
}

#[test]
fn an_output_path_that_is_both_files_is_a_typed_error_naming_it() {
    use cnnjit_import::OutputProblem;
    let imported = import(&model(
        13,
        &[1, 3],
        vec![node("Relu", "r", &["x"], "y", vec![])],
        vec![],
    ))
    .unwrap();
    let path = std::env::temp_dir().join(format!("cnnjit-{}-net.safetensors", std::process::id()));
    let err = imported.save(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` would be both the net's source and its weights: the .cnn file needs another extension",
            path.display()
        )
    );
    assert!(matches!(
        err,
        Error::Output {
            path: ref p,
            problem: OutputProblem::SourceIsWeights,
        } if *p == path
    ));
    assert!(!path.exists());
}

/// A conv reading `x` `[1, 2, 4, 4]` then a `PRelu` with slope `s` of `dims`.
fn conv_then_prelu(dims: &[i64]) -> Vec<u8> {
    model(
        13,
        &[1, 2, 4, 4],
        vec![
            node("Conv", "", &["x", "w"], "c", vec![]),
            node("PRelu", "act", &["c", "s"], "y", vec![]),
        ],
        vec![weight("w", &[3, 2, 1, 1]), weight("s", dims)],
    )
}

#[test]
fn prelu_with_a_slope_per_channel_is_prelu_and_its_weight() {
    // PyTorch's nn.PReLU(3) exports its slope as [3, 1, 1]; [1, 3, 1, 1]
    // broadcasts the same way. Either is `prelu` with `weight` [3] =
    // [0.1, 0.2, 0.3] (common::weight's values).
    for dims in [&[3, 1, 1][..], &[1, 3, 1, 1]] {
        let imported = import(&conv_then_prelu(dims)).unwrap();
        // Labelled, it has a line of its own.
        assert_eq!(
            body(&imported),
            ["conv(3, 1x1, bias = false),", "act: prelu,"]
        );
        let slope = &imported.tensors[1];
        assert_eq!(slope.name, "act.weight");
        assert_eq!(slope.dims, [3]);
        assert_eq!(slope.values, [0.1, 0.2, 0.3]);
    }
}

#[test]
fn prelu_with_one_slope_is_leaky_relu() {
    let imported = import(&conv_then_prelu(&[1])).unwrap();
    assert_eq!(
        body(&imported),
        ["conv(3, 1x1, bias = false),", "act: leaky_relu(0.1),"]
    );
    assert_eq!(imported.tensors.len(), 1);
}

#[test]
fn prelu_on_features_takes_a_slope_per_feature() {
    let bytes = model(
        13,
        &[1, 3],
        vec![node("PRelu", "", &["x", "s"], "y", vec![])],
        vec![weight("s", &[3])],
    );
    let imported = import(&bytes).unwrap();
    assert_eq!(body(&imported), ["prelu,"]);
    assert_eq!(imported.tensors[0].name, "prelu1.weight");
    assert_eq!(imported.tensors[0].values, [0.1, 0.2, 0.3]);
}

#[test]
fn a_prelu_slope_not_per_channel_is_an_error_naming_the_node() {
    // [3] against [1, 3, 4, 4] broadcasts along the width (ONNX aligns
    // trailing axes); [2, 1, 1] is not the 3 channels; [3, 4, 4] is per element.
    for dims in [&[3][..], &[2, 1, 1], &[3, 4, 4]] {
        let (node, op, why) = node_error(import(&conv_then_prelu(dims)));
        assert_eq!((node.as_str(), op.as_str()), ("act", "PRelu"), "{dims:?}");
        assert!(why.contains("expected [3, 1, 1] or [1, 3, 1, 1]"), "{why}");
    }
}

/// A dense block of `layers` layers as exporters write DenseNet's: layer i
/// (a 1x1 conv of one output channel, then relu) reads the concatenation of
/// the input and every earlier layer's output, listed newest first if
/// `reversed`, and the block's output concatenates them all.
fn dense_block(layers: usize, reversed: bool) -> Vec<u8> {
    let (mut nodes, mut weights) = (Vec::new(), Vec::new());
    let mut outputs = vec!["x".to_string()];
    for i in 0..layers {
        let mut read: Vec<&str> = outputs.iter().map(String::as_str).collect();
        if reversed {
            read.reverse();
        }
        let input = match read[..] {
            [only] => only.to_string(),
            _ => {
                let cat = format!("cat{i}");
                nodes.push(node("Concat", &cat, &read, &cat, vec![attr_i("axis", 1)]));
                cat
            }
        };
        let (w, c, r) = (format!("w{i}"), format!("c{i}"), format!("r{i}"));
        nodes.push(node("Conv", &format!("conv{i}"), &[&input, &w], &c, vec![]));
        weights.push(weight(&w, &[1, outputs.len() as i64, 1, 1]));
        nodes.push(node("Relu", &format!("relu{i}"), &[&c], &r, vec![]));
        outputs.push(r);
    }
    let all: Vec<&str> = outputs.iter().map(String::as_str).collect();
    nodes.push(node("Concat", "out", &all, "y", vec![attr_i("axis", 1)]));
    model(13, &[1, 1, 4, 4], nodes, weights)
}

#[test]
fn a_dense_block_is_a_chain_of_concats() {
    // Each concatenation becomes `concat { [identity], [conv, relu] }` on the one
    // before it: 1 + 150 channels out. The walk used to copy each shared
    // branch into every block that read it, exponential in the length.
    let layers = 150;
    let imported = import(&dense_block(layers, false)).unwrap();
    let body = body(&imported);
    assert_eq!(body.iter().filter(|l| *l == "concat {").count(), layers);
    assert_eq!(body.iter().filter(|l| *l == "identity,").count(), layers);
    assert_eq!(
        imported.net.graph.output_shape().len(),
        4 * 4 * (1 + layers as u64)
    );
}

#[test]
fn a_dense_block_that_cannot_be_nested_fails_in_linear_time() {
    // Newest first, no concatenation's inputs begin with another's, so every
    // layer's output is read by every later one: 60 layers have about 2^60
    // paths, which a walk copying shared branches would never finish.
    let (node, op, why) = node_error(import(&dense_block(60, true)));
    assert!(why.contains("cannot be nested"), "{node} ({op}): {why}");
}

/// `ReduceMean` over axes 2 and 3 of ONNX's `int64` constant (opset 18 on)
/// as in the attribute (before), by positive or negative axes.
fn reduce_mean(opset: i64, axes: &[i64], keepdims: i64) -> Vec<u8> {
    let mut attributes = vec![attr_i("keepdims", keepdims)];
    let (mut inputs, mut weights) = (vec!["x"], vec![]);
    if opset < 18 {
        attributes.push(attr_ints("axes", axes));
    } else {
        inputs.push("axes");
        weights.push(TensorProto {
            name: "axes".into(),
            dims: vec![axes.len() as i64],
            data_type: data_type::INT64,
            int64_data: axes.to_vec(),
            ..TensorProto::default()
        });
    }
    let mut nodes = vec![node("ReduceMean", "", &inputs, "y", attributes)];
    if keepdims == 0 {
        nodes[0].output = vec!["m".into()];
        nodes.push(node(
            "Gemm",
            "",
            &["m", "w"],
            "y",
            vec![attr_i("transB", 1)],
        ));
        weights.push(weight("w", &[2, 4]));
    }
    model(opset, &[1, 4, 3, 5], nodes, weights)
}

#[test]
fn reduce_mean_over_height_and_width_is_global_average_pooling() {
    let imported = import(&reduce_mean(13, &[2, 3], 1)).unwrap();
    assert_eq!(body(&imported), ["global_avgpool,"]);
    // MNASNet's `x.mean([2, 3])` then its classifier: keepdims = 0.
    for (opset, axes) in [(13, [-1, -2]), (18, [2, 3])] {
        let imported = import(&reduce_mean(opset, &axes, 0)).unwrap();
        assert_eq!(
            body(&imported),
            ["global_avgpool,", "flatten,", "dense(2, bias = false),"],
            "opset {opset}"
        );
    }
}

#[test]
fn reduce_mean_over_other_axes_is_an_error_naming_the_node() {
    for axes in [&[1][..], &[3], &[1, 2, 3]] {
        let (_, op, why) = node_error(import(&reduce_mean(13, axes, 1)));
        assert_eq!(op, "ReduceMean");
        assert!(why.contains("axes 2 and 3"), "{why}");
    }
}

/// A conv net whose input is `[N, 2, H, W]` with N, H and W left open, as
/// exporters write dynamic axes: `x` symbolic, then a 3x3 conv and relu.
fn open_sizes() -> Vec<u8> {
    use cnnjit_import::onnx::Model;
    use prost::Message;
    let bytes = model(
        13,
        &[1, 2, 1, 1],
        vec![
            node(
                "Conv",
                "conv",
                &["x", "w"],
                "c",
                vec![attr_ints("pads", &[1, 1, 1, 1])],
            ),
            node("Relu", "relu", &["c"], "y", vec![]),
        ],
        vec![weight("w", &[4, 2, 3, 3])],
    );
    let mut model = Model::decode(&bytes[..]).unwrap();
    let input = &mut model.graph.as_mut().unwrap().input[0];
    let shape = input.r#type.as_mut().unwrap().tensor_type.as_mut().unwrap();
    for (i, dim) in shape.shape.as_mut().unwrap().dim.iter_mut().enumerate() {
        if i != 1 {
            (dim.dim_value, dim.dim_param) = (None, Some(["n", "", "h", "w"][i].into()));
        }
    }
    model.encode_to_vec()
}

fn import_as(bytes: &[u8], shape: Option<Shape>) -> Result<Imported, Error> {
    let names = Names {
        net: "Net",
        file: "net.onnx",
        weights: "net.safetensors",
    };
    import_bytes_as(bytes, None, &names, shape)
}

#[test]
fn open_input_sizes_are_given_by_the_input_shape() {
    let bytes = open_sizes();
    let why = import_error(import_as(&bytes, None)).to_string();
    assert!(
        why.contains("[?, 2, ?, ?]") && why.contains("--input-shape"),
        "{why}"
    );
    let shape = Shape::Volume { h: 5, w: 7, c: 2 };
    let imported = import_as(&bytes, Some(shape)).unwrap();
    assert_eq!(imported.net.graph.input_shape(), shape);
    assert_eq!(
        imported.net.graph.output_shape(),
        Shape::Volume { h: 5, w: 7, c: 4 }
    );
}

#[test]
fn an_input_shape_that_disagrees_with_a_fixed_size_is_an_error() {
    for shape in [Shape::Volume { h: 5, w: 7, c: 3 }, Shape::Flat(70)] {
        let why = import_error(import_as(&open_sizes(), Some(shape))).to_string();
        assert!(why.contains("disagrees"), "{why}");
    }
}

#[test]
fn a_flattened_nested_concat_is_nested_again() {
    // Inception-v3's cat(b1, cat(b2a, b2b)) as exporters flatten it:
    // cat(b1, b2a, b2b), where b2a and b2b fork from f inside the block.
    let bytes = model(
        13,
        &[1, 2, 3, 3],
        vec![
            node("Relu", "b1", &["x"], "b1", vec![]),
            node("Sigmoid", "f", &["x"], "f", vec![]),
            node("Relu", "b2a", &["f"], "b2a", vec![]),
            node("Tanh", "b2b", &["f"], "b2b", vec![]),
            node(
                "Concat",
                "cat",
                &["b1", "b2a", "b2b"],
                "y",
                vec![attr_i("axis", 1)],
            ),
        ],
        vec![],
    );
    let imported = import(&bytes).unwrap();
    let body = body(&imported);
    assert_eq!(
        body.iter().filter(|l| *l == "concat {").count(),
        2,
        "{body:?}"
    );
    assert_eq!(
        imported.net.graph.output_shape(),
        Shape::Volume { h: 3, w: 3, c: 6 }
    );
}

/// `x` through nodes of arithmetic reading `x` (the input) and the scalars
/// `three`, `zero`, `six` and `sixth`; the last node writes `y`.
fn arithmetic(nodes: Vec<cnnjit_import::onnx::NodeProto>) -> Vec<u8> {
    model(
        13,
        &[1, 2, 3, 3],
        nodes,
        vec![
            scalar("three", 3.0),
            scalar("zero", 0.0),
            scalar("six", 6.0),
            scalar("sixth", 1.0 / 6.0),
            scalar("nan", f32::NAN),
        ],
    )
}

#[test]
fn hard_swish_and_hard_sigmoid_written_in_arithmetic_are_the_activations() {
    let plus_three = || node("Add", "", &["x", "three"], "p", vec![]);
    let clip = || node("Clip", "", &["p", "zero", "six"], "c", vec![]);
    let cases = [
        // x * relu6(x + 3) / 6, as a converter writes hard-swish.
        (
            vec![
                plus_three(),
                clip(),
                node("Mul", "", &["x", "c"], "m", vec![]),
                node("Div", "", &["m", "six"], "y", vec![]),
            ],
            "hard_swish,",
        ),
        // x * (relu6(x + 3) * 1/6): hard-sigmoid, then the gate fused.
        (
            vec![
                plus_three(),
                clip(),
                node("Mul", "", &["sixth", "c"], "g", vec![]),
                node("Mul", "", &["g", "x"], "y", vec![]),
            ],
            "hard_swish,",
        ),
        (
            vec![
                plus_three(),
                clip(),
                node("Div", "", &["c", "six"], "y", vec![]),
            ],
            "hard_sigmoid,",
        ),
    ];
    for (nodes, want) in cases {
        let imported = import(&arithmetic(nodes)).unwrap();
        assert_eq!(body(&imported), [want]);
    }
}

#[test]
fn hard_sigmoid_is_the_activation_only_with_pytorchs_alpha_and_beta() {
    let hard_sigmoid = |alpha: Option<f32>| {
        let attributes = alpha.map(|a| attr_f("alpha", a)).into_iter().collect();
        model(
            13,
            &[1, 2, 3, 3],
            vec![node("HardSigmoid", "h", &["x"], "y", attributes)],
            vec![],
        )
    };
    let imported = import(&hard_sigmoid(Some(1.0 / 6.0))).unwrap();
    assert_eq!(body(&imported), ["h: hard_sigmoid,"]);
    // ONNX's default alpha (0.2) is not PyTorch's; a NaN is no alpha.
    for alpha in [None, Some(f32::NAN)] {
        let (node, _, why) = node_error(import(&hard_sigmoid(alpha)));
        assert_eq!(node, "h", "{why}");
    }
}

#[test]
fn arithmetic_that_is_not_hard_swish_is_an_error_naming_the_node() {
    // (x + 3 read by anything but a Clip, or x / 6, is an affine.)
    let plus_three = || node("Add", "", &["x", "three"], "p", vec![]);
    let clip = || node("Clip", "", &["p", "zero", "six"], "c", vec![]);
    for (nodes, named) in [
        (
            vec![
                plus_three(),
                clip(),
                node("Div", "d", &["c", "three"], "y", vec![]),
            ],
            "d",
        ),
        // A NaN divisor is no 6 (a NaN compares false with any bound).
        (
            vec![
                plus_three(),
                clip(),
                node("Div", "n", &["c", "nan"], "y", vec![]),
            ],
            "n",
        ),
        (
            vec![plus_three(), clip(), node("Relu", "r", &["c"], "y", vec![])],
            "r",
        ),
    ] {
        let (node, _, why) = node_error(import(&arithmetic(nodes)));
        assert_eq!(node, named, "{why}");
    }
    let why = import_error(import(&arithmetic(vec![plus_three(), {
        let mut c = clip();
        c.output = vec!["y".into()];
        c
    }])));
    assert!(why.to_string().contains("never finished"), "{why}");
}

fn padded_conv(pads: &[i64], mode: &str) -> Vec<u8> {
    let pad = TensorProto {
        name: "pads".into(),
        dims: vec![8],
        data_type: data_type::INT64,
        int64_data: pads.to_vec(),
        ..TensorProto::default()
    };
    let mode = Attribute {
        name: "mode".into(),
        s: mode.as_bytes().to_vec(),
        ..Attribute::default()
    };
    model(
        13,
        &[1, 2, 5, 5],
        vec![
            node("Pad", "pad", &["x", "pads"], "p", vec![mode]),
            node(
                "Conv",
                "conv",
                &["p", "w"],
                "c",
                vec![attr_ints("pads", &[1, 1, 1, 1])],
            ),
            node("Relu", "relu", &["c"], "y", vec![]),
        ],
        vec![pad, weight("w", &[3, 2, 3, 3])],
    )
}

#[test]
fn an_explicit_zero_pad_before_a_conv_is_the_convs_padding() {
    // pad 1 all round, then the conv's own 1: pad = 2 on a 5x5 input, 3x3
    // kernel: (5 + 4 - 3) + 1 = 7.
    let imported = import(&padded_conv(&[0, 0, 1, 1, 0, 0, 1, 1], "constant")).unwrap();
    assert_eq!(
        body(&imported),
        ["conv(3, 3x3, pad = 2, bias = false), relu,"]
    );
    assert_eq!(
        imported.net.graph.output_shape(),
        Shape::Volume { h: 7, w: 7, c: 3 }
    );
    for (pads, mode) in [
        (&[0, 1, 1, 1, 0, 0, 1, 1], "constant"),
        (&[0, 0, -1, 1, 0, 0, 1, 1], "constant"),
        (&[0, 0, 1, 1, 0, 0, 1, 1], "reflect"),
    ] {
        let (node, op, _) = node_error(import(&padded_conv(pads, mode)));
        assert_eq!((node.as_str(), op.as_str()), ("pad", "Pad"));
    }
}

pub(crate) fn int64s(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: data_type::INT64,
        int64_data: values.to_vec(),
        ..TensorProto::default()
    }
}

/// ShuffleNetV2's basic unit on `x` `[1, 4, 3, 3]`, as torch.onnx writes
/// it: the channels split in halves (`split` nodes), a conv and relu on the
/// second, the halves concatenated, then `channel_shuffle(x, 2)`: Reshape to
/// `[1, 2, 2, 3, 3]`, Transpose(0, 2, 1, 3, 4), Reshape back.
fn shuffle_unit(opset: i64, split: Vec<NodeProto>, mut weights: Vec<TensorProto>) -> Vec<u8> {
    let mut nodes = split;
    nodes.extend([
        node("Conv", "", &["b", "w"], "c", vec![]),
        node("Relu", "", &["c"], "r", vec![]),
        node("Concat", "", &["a", "r"], "cat", vec![attr_i("axis", 1)]),
        node("Reshape", "", &["cat", "grouped"], "g", vec![]),
        node(
            "Transpose",
            "",
            &["g"],
            "t",
            vec![attr_ints("perm", &[0, 2, 1, 3, 4])],
        ),
        node("Reshape", "", &["t", "back"], "y", vec![]),
    ]);
    weights.extend([
        weight("w", &[2, 2, 1, 1]),
        int64s("grouped", &[1, 2, 2, 3, 3]),
        int64s("back", &[-1, 4, 3, 3]),
    ]);
    model(opset, &[1, 4, 3, 3], nodes, weights)
}

/// A `Split` node of `x` into `a` and `b`.
fn split(inputs: &[&str], attribute: Vec<Attribute>) -> NodeProto {
    NodeProto {
        output: vec!["a".into(), "b".into()],
        ..node("Split", "", inputs, "", attribute)
    }
}

const SHUFFLE_UNIT: [&str; 10] = [
    "concat {",
    "[",
    "slice(0, 2),",
    "],",
    "[",
    "slice(2, 2),",
    "conv(2, 1x1, bias = false), relu,",
    "],",
    "},",
    "shuffle(2),",
];

#[test]
fn a_channel_split_is_two_slices_and_a_channel_shuffle_is_shuffle() {
    let axis = || vec![attr_i("axis", 1)];
    // Opset 13: the parts as an input; opset 11: as an attribute; no parts
    // at all: halves.
    let forms = [
        (
            13,
            split(&["x", "parts"], axis()),
            vec![int64s("parts", &[2, 2])],
        ),
        (
            11,
            split(&["x"], vec![attr_i("axis", 1), attr_ints("split", &[2, 2])]),
            vec![],
        ),
        (13, split(&["x"], axis()), vec![]),
        (
            18,
            split(&["x"], vec![attr_i("axis", -3), attr_i("num_outputs", 2)]),
            vec![],
        ),
    ];
    for (opset, node, weights) in forms {
        let imported = import(&shuffle_unit(opset, vec![node], weights))
            .unwrap_or_else(|e| panic!("opset {opset}: {e}"));
        assert_eq!(body(&imported), SHUFFLE_UNIT, "opset {opset}");
    }
    // The dynamo exporter's form: two Slices of the channels, `ends` past
    // the end for the second, and a Slice of H that takes it all.
    let slices = vec![
        node("Slice", "", &["x", "s0", "e0", "ax"], "a", vec![]),
        node("Slice", "", &["x", "s1", "e1", "ax"], "b0", vec![]),
        node("Slice", "", &["b0", "s0", "e1", "ax2"], "b", vec![]),
    ];
    let weights = vec![
        int64s("s0", &[0]),
        int64s("e0", &[2]),
        int64s("s1", &[-2]),
        int64s("e1", &[i64::MAX]),
        int64s("ax", &[1]),
        int64s("ax2", &[2]),
    ];
    let imported = import(&shuffle_unit(17, slices, weights)).unwrap();
    assert_eq!(body(&imported), SHUFFLE_UNIT);
}

#[test]
fn what_is_not_a_channel_split_or_shuffle_is_an_error_naming_the_node() {
    let axis = |a: i64| vec![attr_i("axis", a)];
    let parts = || vec![int64s("parts", &[2, 2])];
    let unit = |split: NodeProto, weights: Vec<TensorProto>| {
        node_error(import(&shuffle_unit(13, vec![split], weights)))
    };
    // Along the height, or into parts that do not add up.
    let (_, op, why) = unit(
        split(&["x", "parts"], axis(2)),
        vec![int64s("parts", &[1, 2])],
    );
    assert_eq!(op, "Split");
    assert!(why.contains("only the channels"), "{why}");
    let (_, op, why) = unit(
        split(&["x", "parts"], axis(1)),
        vec![int64s("parts", &[1, 2])],
    );
    assert_eq!(op, "Split");
    assert!(why.contains("add up"), "{why}");
    // A Transpose that is not a shuffle's.
    let bytes = model(
        13,
        &[1, 4, 3, 3],
        vec![node(
            "Transpose",
            "",
            &["x"],
            "y",
            vec![attr_ints("perm", &[0, 1, 3, 2])],
        )],
        vec![],
    );
    let (_, op, why) = node_error(import(&bytes));
    assert_eq!(op, "Transpose");
    assert!(why.contains("channel shuffle"), "{why}");
    // The grouped view read by something other than the Transpose.
    let mut nodes = vec![split(&["x", "parts"], axis(1))];
    nodes.extend([
        node("Concat", "", &["a", "b"], "cat", vec![attr_i("axis", 1)]),
        node("Reshape", "", &["cat", "grouped"], "g", vec![]),
        node("Relu", "", &["g"], "y", vec![]),
    ]);
    let mut weights = parts();
    weights.push(int64s("grouped", &[1, 2, 2, 3, 3]));
    let (_, op, why) = node_error(import(&model(13, &[1, 4, 3, 3], nodes, weights)));
    assert_eq!(op, "Relu");
    assert!(why.contains("shuffle(G)"), "{why}");
    // A Slice of every other channel.
    let bytes = model(
        13,
        &[1, 4, 3, 3],
        vec![node("Slice", "", &["x", "s", "e", "ax", "st"], "y", vec![])],
        vec![
            int64s("s", &[0]),
            int64s("e", &[4]),
            int64s("ax", &[1]),
            int64s("st", &[2]),
        ],
    );
    let (_, op, why) = node_error(import(&bytes));
    assert_eq!(op, "Slice");
    assert!(why.contains("step 2"), "{why}");
}

/// The dynamo exporter's head of ConvNeXt: `ReduceMean` keeping dims, a
/// `Reshape` to one dimension, and a `Gather` along axis 0 whose indices,
/// `0..n` shaped `indices_dims`, view it back (`as_strided`), then a
/// `Reshape` to `[1, C]` and a `Gemm`.
fn raveled_head(indices: &[i64], indices_dims: &[i64]) -> Vec<u8> {
    let gathered = TensorProto {
        dims: indices_dims.to_vec(),
        ..int64s("i", indices)
    };
    model(
        13,
        &[1, 4, 3, 5],
        vec![
            node(
                "ReduceMean",
                "mean",
                &["x"],
                "m",
                vec![attr_i("keepdims", 1), attr_ints("axes", &[2, 3])],
            ),
            node("Reshape", "ravel", &["m", "flat"], "r", vec![]),
            node(
                "Gather",
                "as_strided",
                &["r", "i"],
                "g",
                vec![attr_i("axis", 0)],
            ),
            node("Reshape", "view", &["g", "two"], "v", vec![]),
            node("Gemm", "fc", &["v", "w"], "y", vec![attr_i("transB", 1)]),
        ],
        vec![
            int64s("flat", &[-1]),
            gathered,
            int64s("two", &[1, 4]),
            weight("w", &[2, 4]),
        ],
    )
}

#[test]
fn a_raveled_volume_gathered_back_in_order_is_the_volume() {
    let imported = import(&raveled_head(&[0, 1, 2, 3], &[1, 4, 1, 1])).unwrap();
    assert_eq!(
        body(&imported),
        [
            "mean: global_avgpool,",
            "view: flatten,",
            "dense(2, bias = false),"
        ]
    );
    // Indices shaped as the flattening are the flatten itself.
    let imported = import(&raveled_head(&[0, 1, 2, 3], &[1, 4])).unwrap();
    assert_eq!(
        body(&imported),
        [
            "mean: global_avgpool,",
            "as_strided: flatten,",
            "dense(2, bias = false),"
        ]
    );
}

#[test]
fn a_gather_that_is_not_the_raveled_volume_in_order_is_an_error_naming_the_node() {
    for (indices, dims) in [
        (&[3, 2, 1, 0][..], &[1, 4, 1, 1][..]),
        (&[0, 1, 2, 3], &[2, 2]),
    ] {
        let (name, op, why) = node_error(import(&raveled_head(indices, dims)));
        assert_eq!(
            (name.as_str(), op.as_str()),
            ("as_strided", "Gather"),
            "{why}"
        );
    }
    // The raveled volume read by a second node besides the Gather.
    use prost::Message;
    let bytes = raveled_head(&[0, 1, 2, 3], &[1, 4, 1, 1]);
    let mut twice = cnnjit_import::onnx::Model::decode(&bytes[..]).unwrap();
    let graph = twice.graph.as_mut().unwrap();
    graph
        .node
        .push(node("Relu", "also", &["r"], "unused", vec![]));
    let (name, op, why) = node_error(import(&twice.encode_to_vec()));
    assert_eq!((name.as_str(), op.as_str()), ("ravel", "Reshape"), "{why}");
    assert!(why.contains("read 2 times"), "{why}");
}

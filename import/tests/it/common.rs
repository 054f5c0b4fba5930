//! Writing ONNX models for tests, message by message.

use cnnjit_import::onnx::{
    data_type, Attribute, GraphProto, Model, NodeProto, OperatorSetId, TensorProto, ValueInfo,
};
use cnnjit_import::{import_bytes, Error, Imported};
use prost::Message;

pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<Attribute>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: name.into(),
        op_type: op.into(),
        attribute,
        ..NodeProto::default()
    }
}

/// A float tensor whose values are 0.1, 0.2, ... (distinct, to see layouts).
pub fn weight(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    let raw = (0..n)
        .flat_map(|i| ((i + 1) as f32 * 0.1).to_le_bytes())
        .collect();
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        raw_data: raw,
        ..TensorProto::default()
    }
}

pub fn value(name: &str, dims: &[i64]) -> ValueInfo {
    use cnnjit_import::onnx::{Dimension, TensorShape, TensorType, TypeProto};
    ValueInfo {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShape {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            dim_value: Some(d),
                            dim_param: None,
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// A model reading `x` of `input` dimensions and writing `y`.
pub fn model(
    opset: i64,
    input: &[i64],
    nodes: Vec<NodeProto>,
    weights: Vec<TensorProto>,
) -> Vec<u8> {
    Model {
        ir_version: 8,
        producer_name: "test".into(),
        graph: Some(GraphProto {
            node: nodes,
            name: "g".into(),
            initializer: weights,
            input: vec![value("x", input)],
            output: vec![ValueInfo {
                name: "y".into(),
                r#type: None,
            }],
        }),
        opset_import: vec![OperatorSetId {
            domain: String::new(),
            version: opset,
        }],
    }
    .encode_to_vec()
}

/// `bytes` imported as net `Net`.
pub fn import(bytes: &[u8]) -> Result<Imported, Error> {
    import_bytes(bytes, None, "Net", "net.onnx", "net.safetensors")
}

/// The net's body: the source's lines between the braces, trimmed.
pub fn body(imported: &Imported) -> Vec<String> {
    let lines: Vec<&str> = imported.source.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("pub Net("))
        .unwrap();
    lines[start + 1..lines.len() - 1]
        .iter()
        .map(|l| l.trim().to_string())
        .collect()
}

/// The node, operator and reason of an error naming a node.
pub fn node_error(result: Result<Imported, Error>) -> (String, String, String) {
    match result {
        Err(Error::Node { node, op, why }) => (node, op, why),
        Err(other) => panic!("expected an error naming a node, got: {other}"),
        Ok(imported) => panic!("expected an error, imported:\n{}", imported.source),
    }
}

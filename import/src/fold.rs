//! Constant folding: the operators exporters leave behind to compute shapes
//! (`Shape -> Gather -> Unsqueeze -> Concat -> Reshape` for
//! `x.view(x.size(0), -1)`, `Cast`, arithmetic on sizes), evaluated on
//! constant tensors at import time so that only layers reach the net.
//!
//! [`fold`] sees a node whose inputs are all constants (a `Shape` of a layer
//! has already been turned into the layer's NCHW dimensions by the caller)
//! and returns its one output. It supports what shape arithmetic needs, not
//! every case of every operator; anything else is an error naming the node.

use crate::error::{Error, Result};
use crate::onnx::{data_type, Attribute, Data, NodeProto, Tensor};

/// The operators [`fold`] evaluates.
pub const FOLDABLE: &[&str] = &[
    "Constant",
    "ConstantOfShape",
    "Identity",
    "Cast",
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Reshape",
    "Slice",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Transpose",
];

/// The most elements a folded constant that is larger than its inputs
/// (`ConstantOfShape`, `Concat`) may hold, checked before it is made: shape
/// arithmetic needs a few, and a chain of `Concat`s each doubling a constant
/// would otherwise grow it exponentially.
pub const MAX_FOLDED_ELEMENTS: usize = 1 << 24;

/// An error about `node`.
pub fn node_error(node: &NodeProto, why: impl Into<String>) -> Error {
    let name = if node.name.is_empty() {
        node.output.first().cloned().unwrap_or_default()
    } else {
        node.name.clone()
    };
    Error::Node {
        node: name,
        op: node.op_type.clone(),
        why: why.into(),
    }
}

/// The attribute `name` of `node`.
pub fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a Attribute> {
    node.attribute.iter().find(|a| a.name == name)
}

/// Integers from the attribute `name` (opsets before 13) or from input `index`.
fn axes(node: &NodeProto, inputs: &[Option<&Tensor>], index: usize) -> Option<Vec<i64>> {
    match attr(node, "axes") {
        Some(a) => Some(a.ints.clone()),
        None => inputs.get(index).copied().flatten().map(Tensor::ints),
    }
}

/// `axis` in `[-rank, rank)` as an index.
pub fn normalise_axis(node: &NodeProto, axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(node_error(
            node,
            format!("axis {axis} is out of range for rank {rank}"),
        ));
    }
    Ok(if axis < 0 { axis + r } else { axis } as usize)
}

/// Evaluates `node` on constant `inputs` (`None` for an omitted optional one).
pub fn fold(node: &NodeProto, inputs: &[Option<&Tensor>]) -> Result<Tensor> {
    let input = |i: usize| {
        inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| node_error(node, format!("input {i} is missing")))
    };
    let dims_of = |t: &Tensor| -> Result<Vec<usize>> {
        t.ints()
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| node_error(node, "a shape has a negative dimension"))
    };
    match node.op_type.as_str() {
        "Constant" => constant(node),
        "Identity" => Ok(input(0)?.clone()),
        // A matrix's transpose (the legacy exporter's `Linear` weight on
        // NHWC data, with constant folding off).
        "Transpose" => {
            let t = input(0)?;
            let perm = attr(node, "perm").map_or_else(|| vec![1, 0], |a| a.ints.clone());
            match (&t.dims[..], &perm[..]) {
                (&[r, c], [1, 0]) => {
                    let v = t.floats();
                    let values = (0..c)
                        .flat_map(|j| (0..r).map(move |i| (i, j)))
                        .map(|(i, j)| v[i * c + j])
                        .collect();
                    Tensor::f32(vec![c, r], values)
                }
                _ => Err(node_error(
                    node,
                    format!("only a matrix's transpose is folded, not perm {perm:?} of a constant of dimensions {:?}", t.dims),
                )),
            }
        }
        "Cast" => {
            let t = input(0)?;
            let to = attr(node, "to").map_or(0, |a| a.i as i32);
            let data = match to {
                data_type::FLOAT | data_type::DOUBLE => Data::F32(t.floats()),
                // int32, int64, bool (9): shape arithmetic only.
                data_type::INT32 | data_type::INT64 | 9 => Data::I64(t.ints()),
                other => return Err(node_error(node, format!("cast to type {other}"))),
            };
            Ok(Tensor {
                dims: t.dims.clone(),
                data,
            })
        }
        "Shape" => {
            let t = input(0)?;
            Tensor::i64(
                vec![t.dims.len()],
                t.dims.iter().map(|&d| d as i64).collect(),
            )
        }
        "ConstantOfShape" => {
            let dims = dims_of(input(0)?)?;
            let count = Tensor::count(&dims)
                .filter(|&n| n <= MAX_FOLDED_ELEMENTS)
                .ok_or_else(|| node_error(node, "the shape is too large"))?;
            let value = match attr(node, "value").and_then(|a| a.t.as_ref()) {
                Some(t) => crate::onnx::tensor(t, None)?,
                None => Tensor::f32(vec![1], vec![0.0])?,
            };
            match value.data {
                Data::F32(v) if v.len() == 1 => Tensor::f32(dims, vec![v[0]; count]),
                Data::I64(v) if v.len() == 1 => Tensor::i64(dims, vec![v[0]; count]),
                _ => Err(node_error(node, "the value must hold one element")),
            }
        }
        "Gather" => {
            let (data, indices) = (input(0)?, input(1)?);
            let axis = attr(node, "axis").map_or(0, |a| a.i);
            if data.dims.len() != 1 || normalise_axis(node, axis, 1)? != 0 {
                return Err(node_error(
                    node,
                    "only gathers from a 1-D constant are folded",
                ));
            }
            let n = data.dims[0] as i64;
            let picks = indices
                .ints()
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + n } else { i };
                    (0..n)
                        .contains(&j)
                        .then_some(j as usize)
                        .ok_or_else(|| node_error(node, format!("index {i} is out of range")))
                })
                .collect::<Result<Vec<_>>>()?;
            let data = match &data.data {
                Data::F32(v) => Data::F32(picks.iter().map(|&i| v[i]).collect()),
                Data::I64(v) => Data::I64(picks.iter().map(|&i| v[i]).collect()),
            };
            Ok(Tensor {
                dims: indices.dims.clone(),
                data,
            })
        }
        "Unsqueeze" => {
            let t = input(0)?;
            let axes = axes(node, inputs, 1).ok_or_else(|| node_error(node, "no axes"))?;
            let rank = t.dims.len() + axes.len();
            let mut axes = axes
                .iter()
                .map(|&a| normalise_axis(node, a, rank))
                .collect::<Result<Vec<_>>>()?;
            axes.sort_unstable();
            let mut dims = t.dims.clone();
            for a in axes {
                if a > dims.len() {
                    return Err(node_error(node, "the axes are out of range"));
                }
                dims.insert(a, 1);
            }
            Ok(Tensor {
                dims,
                data: t.data.clone(),
            })
        }
        "Squeeze" => {
            let t = input(0)?;
            let dims = match axes(node, inputs, 1) {
                Some(axes) => {
                    let axes = axes
                        .iter()
                        .map(|&a| normalise_axis(node, a, t.dims.len()))
                        .collect::<Result<Vec<_>>>()?;
                    if axes.iter().any(|&a| t.dims[a] != 1) {
                        return Err(node_error(node, "squeezes an axis whose size is not 1"));
                    }
                    t.dims
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !axes.contains(i))
                        .map(|(_, &d)| d)
                        .collect()
                }
                None => t.dims.iter().copied().filter(|&d| d != 1).collect(),
            };
            Ok(Tensor {
                dims,
                data: t.data.clone(),
            })
        }
        "Concat" => {
            let parts = (0..inputs.len()).map(input).collect::<Result<Vec<_>>>()?;
            let first = parts.first().ok_or_else(|| node_error(node, "no inputs"))?;
            let axis = attr(node, "axis").map_or(0, |a| a.i);
            if normalise_axis(node, axis, first.dims.len().max(1))? != 0
                || parts.iter().any(|p| {
                    p.dims.len() != first.dims.len() || p.dims.get(1..) != first.dims.get(1..)
                })
            {
                return Err(node_error(
                    node,
                    "only constants concatenated along their first axis are folded",
                ));
            }
            parts
                .iter()
                .try_fold(0usize, |n, p| n.checked_add(p.len()))
                .filter(|&n| n <= MAX_FOLDED_ELEMENTS)
                .ok_or_else(|| {
                    node_error(
                        node,
                        format!(
                            "the concatenation is too large: more than {MAX_FOLDED_ELEMENTS} elements"
                        ),
                    )
                })?;
            let mut dims = first.dims.clone();
            if let Some(d) = dims.first_mut() {
                *d = parts
                    .iter()
                    .map(|p| p.dims.first().copied().unwrap_or(1))
                    .sum();
            }
            let data = if parts.iter().all(|p| matches!(p.data, Data::I64(_))) {
                Data::I64(parts.iter().flat_map(|p| p.ints()).collect())
            } else {
                Data::F32(parts.iter().flat_map(|p| p.floats()).collect())
            };
            Tensor::new_checked(node, dims, data)
        }
        "Reshape" => {
            let t = input(0)?;
            let dims = reshape_dims(node, &t.dims, &input(1)?.ints())?;
            Tensor::new_checked(node, dims, t.data.clone())
        }
        "Slice" => {
            let t = input(0)?;
            if t.dims.len() != 1 {
                return Err(node_error(node, "only 1-D constants are sliced"));
            }
            let (starts, ends) = match (attr(node, "starts"), attr(node, "ends")) {
                (Some(s), Some(e)) => (s.ints.clone(), e.ints.clone()),
                _ => (input(1)?.ints(), input(2)?.ints()),
            };
            let axes = axes(node, inputs, 3).unwrap_or_else(|| vec![0]);
            let step = inputs
                .get(4)
                .copied()
                .flatten()
                .map_or(vec![1], Tensor::ints);
            if starts.len() != 1 || ends.len() != 1 || axes.len() != 1 || step != [1] {
                return Err(node_error(
                    node,
                    "only unit-step slices of one axis are folded",
                ));
            }
            normalise_axis(node, axes[0], 1)?;
            let n = t.dims[0] as i64;
            let clamp = |i: i64| (if i < 0 { i + n } else { i }).clamp(0, n) as usize;
            let (begin, end) = (clamp(starts[0]), clamp(ends[0]));
            let end = end.max(begin);
            let data = match &t.data {
                Data::F32(v) => Data::F32(v[begin..end].to_vec()),
                Data::I64(v) => Data::I64(v[begin..end].to_vec()),
            };
            Tensor::new_checked(node, vec![end - begin], data)
        }
        "Add" | "Sub" | "Mul" | "Div" => arithmetic(node, input(0)?, input(1)?),
        other => Err(node_error(
            node,
            format!("`{other}` on constants is not folded"),
        )),
    }
}

impl Tensor {
    fn new_checked(node: &NodeProto, dims: Vec<usize>, data: Data) -> Result<Tensor> {
        match data {
            Data::F32(v) => Tensor::f32(dims, v),
            Data::I64(v) => Tensor::i64(dims, v),
        }
        .map_err(|e| node_error(node, e.to_string()))
    }
}

/// The dimensions `Reshape` gives `dims` with target `shape` (0 copies a
/// dimension, -1 takes what is left).
pub fn reshape_dims(node: &NodeProto, dims: &[usize], shape: &[i64]) -> Result<Vec<usize>> {
    let total = Tensor::count(dims).ok_or_else(|| node_error(node, "the tensor is too large"))?;
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        out.push(match s {
            0 => *dims
                .get(i)
                .ok_or_else(|| node_error(node, "a 0 in the shape has no dimension to copy"))?,
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            s if s > 0 => s as usize,
            _ => return Err(node_error(node, format!("invalid target shape {shape:?}"))),
        });
    }
    let known = Tensor::count(&out).ok_or_else(|| node_error(node, "the shape is too large"))?;
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return Err(node_error(
                node,
                format!("cannot reshape {dims:?} to {shape:?}"),
            ));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(node_error(
            node,
            format!("cannot reshape {dims:?} to {shape:?}"),
        ));
    }
    Ok(out)
}

/// Element-wise arithmetic where both have the same dimensions or one is a
/// single value.
fn arithmetic(node: &NodeProto, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dims = if a.dims == b.dims || b.len() == 1 {
        a.dims.clone()
    } else if a.len() == 1 {
        b.dims.clone()
    } else {
        return Err(node_error(
            node,
            format!(
                "only equal shapes or a scalar are folded, found {:?} and {:?}",
                a.dims, b.dims
            ),
        ));
    };
    let n = Tensor::count(&dims).unwrap_or(0);
    let pick = |v: &[i64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    let pickf = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    let op = node.op_type.as_str();
    let data = match (&a.data, &b.data) {
        (Data::I64(x), Data::I64(y)) => Data::I64(
            (0..n)
                .map(|i| {
                    let (p, q) = (pick(x, i), pick(y, i));
                    match op {
                        "Add" => p.checked_add(q),
                        "Sub" => p.checked_sub(q),
                        "Mul" => p.checked_mul(q),
                        _ => p.checked_div(q),
                    }
                    .ok_or_else(|| node_error(node, "integer overflow or division by zero"))
                })
                .collect::<Result<_>>()?,
        ),
        _ => {
            let (x, y) = (a.floats(), b.floats());
            Data::F32(
                (0..n)
                    .map(|i| {
                        let (p, q) = (pickf(&x, i), pickf(&y, i));
                        match op {
                            "Add" => p + q,
                            "Sub" => p - q,
                            "Mul" => p * q,
                            _ => p / q,
                        }
                    })
                    .collect(),
            )
        }
    };
    Tensor::new_checked(node, dims, data)
}

/// The value of a `Constant` node.
fn constant(node: &NodeProto) -> Result<Tensor> {
    let Some(a) = node.attribute.first() else {
        return Err(node_error(node, "a constant without a value"));
    };
    match a.name.as_str() {
        "value" => match &a.t {
            Some(t) => crate::onnx::tensor(t, None).map_err(|e| node_error(node, e.to_string())),
            None => Err(node_error(node, "`value` holds no tensor")),
        },
        "value_float" => Tensor::f32(vec![], vec![a.f]),
        "value_floats" => Tensor::f32(vec![a.floats.len()], a.floats.clone()),
        "value_int" => Tensor::i64(vec![], vec![a.i]),
        "value_ints" => Tensor::i64(vec![a.ints.len()], a.ints.clone()),
        other => Err(node_error(node, format!("a constant given as `{other}`"))),
    }
}

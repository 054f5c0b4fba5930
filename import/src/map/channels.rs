//! What exporters write for ConvNeXt's layers: a channels-last (NHWC) region
//! between `Transpose(0, 2, 3, 1)` and `Transpose(0, 3, 1, 2)` (PyTorch's
//! `permute`), `LayerNormalization` over the channels, `MatMul` by a
//! constant on the last axis (a `Linear` on NHWC data), GELU in its erf
//! form, and arithmetic by a constant per channel (an `affine`).
//!
//! cnnjit's tensors are channels-last already, so a region's transposes move
//! no data: layer `x` viewed as NHWC is [`Value::Nhwc`]`(x)`, and element-wise
//! nodes inside a region map as they would outside it once their constants
//! are read per channel of the last axis instead of axis 1
//! ([`channels_first_constant`]). A `MatMul` there is a 1x1 conv (its
//! parameters `C D` weights, and `D` biases from the `Add` after it, as
//! PyTorch counts the `Linear`); a `LayerNormalization` over the last axis
//! is `layernorm`.
//!
//! GELU as `torch.onnx` writes it, `x (1 + erf(x / sqrt 2)) / 2`: the legacy
//! exporter `Div(x, sqrt 2)`, `Erf`, `Add 1`, `Mul x`, `Mul 0.5`; the dynamo
//! exporter the same up to `Add 1`, then `Mul 0.5`, `Mul x`. `Mul(x, 1 /
//! sqrt 2)` and a final `Div 2` are read too. Each step is a
//! [`Partial`] read by one node only, which continues it.

use super::{near, Form, Mapper, Param, Partial, Value};
use crate::error::Result;
use crate::fold::{node_error, normalise_axis};
use crate::onnx::{NodeProto, Tensor};
use cnnjit_ir::{Activation, Conv2d, Hw, Op, Shape};
use std::rc::Rc;

/// The operators read inside an NHWC region as they are read outside it,
/// their constants per channel of the last axis.
const ELEMENT_WISE: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Erf",
    "Relu",
    "Sigmoid",
    "Tanh",
    "HardSwish",
    "HardSigmoid",
    "Clip",
    "LeakyRelu",
    "Dropout",
    "Identity",
];

/// Whether `v` is channels-last: a region's layer or a step of GELU in one.
fn is_nhwc(v: &Option<Value>) -> bool {
    matches!(
        v,
        Some(Value::Nhwc(_) | Value::Partial(Partial { nhwc: true, .. }))
    )
}

/// `v` viewed as NCHW again (a region's layer as itself).
fn channels_first(v: Value) -> Value {
    match v {
        Value::Nhwc(x) => Value::Layer(x),
        Value::Partial(p) => Value::Partial(Partial { nhwc: false, ..p }),
        other => other,
    }
}

/// The value an element-wise node inside a region gives, viewed as NHWC.
fn channels_last(v: Value) -> Value {
    match v {
        Value::Layer(x) => Value::Nhwc(x),
        Value::Partial(p) => Value::Partial(Partial { nhwc: true, ..p }),
        other => other,
    }
}

/// A constant broadcast against NHWC data, as the NCHW constant that means
/// the same per channel: one value stays, `[.., 1, 1, C]` (right-aligned,
/// everything before the last axis 1) becomes `[C, 1, 1]`; anything that
/// varies over H or W is an error naming `node` and the shape.
fn channels_first_constant(node: &NodeProto, t: &Tensor) -> Result<Tensor> {
    if t.len() == 1 {
        return Ok(t.clone());
    }
    match t.dims.split_last() {
        Some((&c, rest)) if t.dims.len() <= 4 && rest.iter().all(|&d| d == 1) => {
            Tensor::f32(vec![c, 1, 1], t.floats())
        }
        _ => Err(node_error(
            node,
            format!("a constant of dimensions {:?} in a channels-last region (after Transpose(0, 2, 3, 1)); cnnjit reads constants there as one value or one per channel ([C] on the last axis)", t.dims),
        )),
    }
}

impl Mapper<'_> {
    /// A node of [`super::LAYER_OPS`]: in an NHWC region, an element-wise
    /// node mapped on its inputs viewed as NCHW (its constants converted),
    /// its value viewed as NHWC again; outside one, or a `Transpose`,
    /// `MatMul` or `LayerNormalization`, [`Mapper::layer`].
    pub(super) fn layer_in_region(
        &mut self,
        node: &NodeProto,
        inputs: &[Option<Value>],
    ) -> Result<Value> {
        let op = node.op_type.as_str();
        if !inputs.iter().any(is_nhwc)
            || matches!(op, "Transpose" | "MatMul" | "LayerNormalization")
        {
            return self.layer(node, inputs);
        }
        if !ELEMENT_WISE.contains(&op) {
            return Err(node_error(
                node,
                format!("reads a channels-last region (after Transpose(0, 2, 3, 1)); cnnjit reads there only LayerNormalization over the last axis, MatMul by a constant, the element-wise operators {} and the Transpose(0, 3, 1, 2) that ends it", ELEMENT_WISE.join(", ")),
            ));
        }
        let mut converted = Vec::with_capacity(inputs.len());
        for (i, v) in inputs.iter().enumerate() {
            converted.push(match v {
                Some(Value::Const(t)) => Some(Value::Const(Rc::new(channels_first_constant(node, t)?))),
                v if is_nhwc(v) => v.clone().map(channels_first),
                None => None,
                Some(_) => {
                    return Err(node_error(
                        node,
                        format!("input {i} is channels-first and another channels-last (inside a Transpose(0, 2, 3, 1) region); cnnjit cannot mix them"),
                    ))
                }
            });
        }
        Ok(channels_last(self.layer(node, &converted)?))
    }

    /// `Transpose`: a channel shuffle's middle step, or the start
    /// (`perm = [0, 2, 3, 1]` of a volume) or end (`[0, 3, 1, 2]`) of an
    /// NHWC region, which move nothing.
    pub(super) fn transpose(
        &mut self,
        node: &NodeProto,
        inputs: &[Option<Value>],
    ) -> Result<Value> {
        let perm = Self::ints(node, "perm", &[]);
        match (inputs.first(), perm.as_slice()) {
            (Some(Some(Value::Grouped(g))), [0, 2, 1, 3, 4]) if !g.transposed => self.grouped(
                node,
                super::Grouped {
                    transposed: true,
                    ..*g
                },
            ),
            (Some(Some(Value::Layer(x))), [0, 2, 3, 1])
                if matches!(self.shape(*x), Shape::Volume { .. }) =>
            {
                let x = *x;
                self.reads[x] -= 1;
                Ok(Value::Nhwc(x))
            }
            (Some(Some(Value::Nhwc(x))), [0, 3, 1, 2]) => Ok(self.absorb(*x)),
            _ => Err(node_error(
                node,
                format!("transposes with perm {perm:?}; cnnjit reads Transpose only in a channel shuffle (Reshape to [N, G, C/G, H, W], Transpose(perm = [0, 2, 1, 3, 4]), Reshape back to [N, C, H, W]) and around channels-last operations (Transpose(perm = [0, 2, 3, 1]) of a volume, then Transpose(perm = [0, 3, 1, 2]) back)"),
            )),
        }
    }

    /// `LayerNormalization` over the channels: the last axis of an NHWC
    /// region, or of flat features; `layernorm` with the node's `Scale` as
    /// its weight and `B` as its bias (zeros if the node has none).
    pub(super) fn layer_norm(
        &mut self,
        node: &NodeProto,
        inputs: &[Option<Value>],
    ) -> Result<Value> {
        let (x, nhwc) = match inputs.first() {
            Some(Some(Value::Nhwc(x))) => (*x, true),
            _ => (self.layer_input(node, inputs, 0)?, false),
        };
        let rank = super::nchw(self.shape(x)).len();
        let axis = normalise_axis(node, Self::int(node, "axis", -1), rank)?;
        if axis != rank - 1 || !(nhwc || rank == 2) {
            return Err(node_error(
                node,
                format!("normalises axes {axis}.. of a rank-{rank} {} tensor; cnnjit's layernorm normalises the channels: the last axis after Transpose(0, 2, 3, 1), or flat features", if nhwc { "NHWC" } else { "NCHW" }),
            ));
        }
        let c = self.shape(x).channels() as usize;
        let scale = self.required(node, inputs, 1)?;
        let bias = self.constant(node, inputs, 2)?;
        let mut params = Vec::new();
        for (suffix, t) in [("weight", Some(scale)), ("bias", bias)] {
            let values = match t {
                Some(t) if t.len() == c => t.floats(),
                Some(t) => {
                    return Err(node_error(
                        node,
                        format!("{suffix} of dimensions {:?} for {c} channels", t.dims),
                    ))
                }
                None => vec![0.0; c],
            };
            params.push(Param {
                suffix,
                dims: vec![c],
                values,
            });
        }
        let eps = Self::float(node, "epsilon", 1e-5);
        if !(eps.is_finite() && eps > 0.0) {
            return Err(node_error(node, format!("epsilon {eps} is not positive")));
        }
        let value = self.push(node, Op::LayerNorm { eps }, vec![x], params)?;
        Ok(if nhwc { channels_last(value) } else { value })
    }

    /// `MatMul` of NHWC data by a constant `[C, D]`: PyTorch's `Linear(C, D)`
    /// on channels-last data, a 1x1 conv of `D` channels (weights `[D, C, 1,
    /// 1]`, the matrix transposed); the `Add` after it gives its bias.
    pub(super) fn pointwise(&mut self, node: &NodeProto, x: usize, b: &Tensor) -> Result<Value> {
        let c = self.shape(x).channels() as usize;
        let [rows, d] = b.dims[..] else {
            return Err(node_error(
                node,
                format!("weights of dimensions {:?}, not a matrix", b.dims),
            ));
        };
        if rows != c {
            return Err(node_error(
                node,
                format!("weights of dimensions {:?} for {c} channels", b.dims),
            ));
        }
        let values = b.floats();
        let weight = (0..d)
            .flat_map(|j| (0..c).map(move |i| (i, j)))
            .map(|(i, j)| values[i * d + j])
            .collect();
        let out_channels =
            u32::try_from(d).map_err(|_| node_error(node, "too many output channels"))?;
        let op = Op::Conv2d(Conv2d::pointwise(out_channels, Hw::square(1)));
        let params = vec![Param {
            suffix: "weight",
            dims: vec![d, c, 1, 1],
            values: weight,
        }];
        Ok(channels_last(self.push(node, op, vec![x], params)?))
    }

    /// `Erf`: only GELU's, of `x / sqrt 2`.
    pub(super) fn erf(&self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        match inputs.first() {
            Some(Some(Value::Partial(p))) if p.form == Form::GeluScaled => {
                self.partial(node, p.x, Form::GeluErf)
            }
            _ => Err(node_error(
                node,
                "cnnjit reads Erf only in GELU's erf form, x (1 + erf(x / sqrt 2)) / 2",
            )),
        }
    }

    /// Whether the one node that reads `node`'s output is an `op`.
    pub(super) fn read_by(&self, node: &NodeProto, op: &str) -> bool {
        let output = node.output.first().map_or("", String::as_str);
        self.readers(node) == 1 && self.reader_ops.get(output) == Some(&op)
    }

    /// `x * t` or `x / t` (`divide`) for layer `x` and a constant `t`: the
    /// first step of GELU (`x / sqrt 2` read by an `Erf`), else an
    /// `affine`'s factor.
    pub(super) fn times_constant(
        &mut self,
        node: &NodeProto,
        x: usize,
        t: &Tensor,
        divide: bool,
    ) -> Result<Value> {
        let sqrt2 = std::f32::consts::SQRT_2;
        let scale = if divide { sqrt2 } else { 1.0 / sqrt2 };
        if t.len() == 1 && near(t.floats()[0], scale) && self.read_by(node, "Erf") {
            return self.partial(node, x, Form::GeluScaled);
        }
        let mut factor = self.per_channel(node, x, t, "factor")?;
        if divide {
            factor.iter_mut().for_each(|v| *v = 1.0 / *v);
        }
        self.affine(node, x, Some(factor), None)
    }

    /// A step of GELU: a partial `p` times (or, `divide`, divided by) the
    /// constant `t`, or times layer `x` (`t` `None`).
    pub(super) fn gelu_step(
        &mut self,
        node: &NodeProto,
        p: Partial,
        t: Option<(&Tensor, bool)>,
        x: Option<usize>,
    ) -> Result<Value> {
        let half = |t: &Tensor, divide: bool| {
            t.len() == 1 && near(t.floats()[0], if divide { 2.0 } else { 0.5 })
        };
        match (p.form, t, x) {
            (Form::GeluOnePlus, Some((t, divide)), None) if half(t, divide) => {
                self.partial(node, p.x, Form::GeluHalf)
            }
            (Form::GeluOnePlus, None, Some(x)) if x == p.x => {
                self.partial(node, p.x, Form::GeluTimes)
            }
            (Form::GeluTimes, Some((t, divide)), None) if half(t, divide) => self.gelu(node, p),
            (Form::GeluHalf, None, Some(x)) if x == p.x => self.gelu(node, p),
            _ => Err(super::partial_error(node, 0)),
        }
    }

    /// The `gelu` that partial `p`'s last step finishes.
    fn gelu(&mut self, node: &NodeProto, p: Partial) -> Result<Value> {
        // The layer reads `x` once where the arithmetic read it twice.
        self.reads[p.x] = self.reads[p.x].saturating_sub(1);
        self.push(node, Op::Activation(Activation::Gelu), vec![p.x], vec![])
    }

    /// `Sub` of data: `x - t` for a constant `t`, an affine's shift `-t`.
    pub(super) fn sub(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        match (inputs.first(), inputs.get(1)) {
            (Some(Some(Value::Layer(x))), Some(Some(Value::Const(t)))) => {
                let shift = self.per_channel(node, *x, t, "subtrahend")?;
                let shift = shift.iter().map(|v| -v).collect();
                self.affine(node, *x, None, Some(shift))
            }
            _ => Err(node_error(
                node,
                "cnnjit reads Sub only as data minus a constant of one value or one per channel (an affine's shift)",
            )),
        }
    }

    /// Constant `t`'s values for each channel of layer `x`: one value
    /// repeated, or one per channel by ONNX's broadcasting, which aligns
    /// trailing axes (`[C, 1, 1]` or `[1, C, 1, 1]` for a volume, `[C]` or
    /// `[1, C]` for flat features). Anything else is an error naming the
    /// node, the `what` and the dimensions.
    pub(super) fn per_channel(
        &self,
        node: &NodeProto,
        x: usize,
        t: &Tensor,
        what: &str,
    ) -> Result<Vec<f32>> {
        let dims = super::nchw(self.shape(x));
        let c = dims[1];
        let values = t.floats();
        if let [v] = values[..] {
            return Ok(vec![v; c]);
        }
        // The constant's axes right-aligned with the input's: the channel
        // axis (1) holds C, every other axis 1.
        let per_channel = t.dims.len() <= dims.len()
            && t.dims.iter().rev().enumerate().all(|(i, &d)| {
                let axis = dims.len() - 1 - i;
                d == if axis == 1 { c } else { 1 }
            })
            && t.dims.len() >= dims.len() - 1;
        if !per_channel {
            let expected = match self.shape(x) {
                Shape::Volume { .. } => format!("[{c}, 1, 1] or [1, {c}, 1, 1]"),
                Shape::Flat(_) => format!("[{c}] or [1, {c}]"),
            };
            return Err(node_error(
                node,
                format!(
                    "{what} of dimensions {:?} is neither one value nor one per channel of the input {dims:?}; expected {expected}",
                    t.dims
                ),
            ));
        }
        Ok(values)
    }

    /// `x scale + shift` per channel of layer `x`: merged into `x` if it is
    /// an affine that nothing else reads (`(x - mean) / std` is one affine),
    /// else a new `affine` layer with the parts given.
    pub(super) fn affine(
        &mut self,
        node: &NodeProto,
        x: usize,
        scale: Option<Vec<f32>>,
        shift: Option<Vec<f32>>,
    ) -> Result<Value> {
        let c = self.shape(x).channels() as usize;
        let params = |weight: Option<Vec<f32>>, bias: Option<Vec<f32>>| {
            let op = Op::Affine {
                weight: weight.is_some(),
                bias: bias.is_some(),
            };
            let params = [("weight", weight), ("bias", bias)]
                .into_iter()
                .filter_map(|(suffix, values)| {
                    values.map(|values| Param {
                        suffix,
                        dims: vec![c],
                        values,
                    })
                })
                .collect();
            (op, params)
        };
        let mergeable = matches!(self.layers[x].op, Op::Affine { .. }) && self.reads[x] == 1;
        if !mergeable {
            let (op, params) = params(scale, shift);
            return self.push(node, op, vec![x], params);
        }
        let layer = &mut self.layers[x];
        let part = |suffix: &str| {
            (layer.params.iter())
                .find(|p| p.suffix == suffix)
                .map(|p| p.values.clone())
        };
        // (x w + b) s + a = x (w s) + (b s + a).
        let weight = combine(part("weight"), scale.as_deref(), |w, s| w * s);
        let bias = part("bias").map(|b| combine(Some(b), scale.as_deref(), |b, s| b * s));
        let bias = combine(bias.flatten(), shift.as_deref(), |b, a| b + a);
        (layer.op, layer.params) = params(weight, bias);
        layer.node = node.name.clone();
        layer.onnx_op = format!("{}+{}", layer.onnx_op, node.op_type);
        Ok(self.absorb(x))
    }
}

/// `f(a_c, b_c)` per channel where both are given, else whichever is.
fn combine(a: Option<Vec<f32>>, b: Option<&[f32]>, f: fn(f32, f32) -> f32) -> Option<Vec<f32>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect()),
        (a, b) => a.or_else(|| b.map(<[f32]>::to_vec)),
    }
}

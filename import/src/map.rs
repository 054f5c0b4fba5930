//! Operator mapping: an ONNX graph to a [`Dag`] of cnnjit layers.
//!
//! Nodes are visited in the file's (topological) order. Every ONNX value is
//! either a constant (an initializer, or folded by [`crate::fold`]) or the
//! output of a layer; a node that reads only constants is folded, a node that
//! reads a layer becomes one (or merges into one: `x * sigmoid(x)` is
//! `swish`, `x * hard_sigmoid(x)` is `hard_swish`, `MatMul` then `Add` of a
//! constant is one `dense`), or is an error naming the node, its operator and
//! why the language cannot say it.
//!
//! Layouts: ONNX computes in NCHW, cnnjit in HWC. Only shapes are converted
//! here (`[1, C, H, W]` is the volume `(H, W, C)`); weights keep their ONNX
//! layout, which is PyTorch's, the one cnnjit's weight files use. A `Shape`
//! of a layer gives the NCHW dimensions, with a batch of 1.
//!
//! Invariants of the [`Dag`]: layer 0 is the input; every layer's inputs come
//! before it; every layer's `shape` is what `cnnjit_ir::shape` gives
//! for its op and its inputs' shapes.

use crate::error::{DecodeError, Error, Result};
use crate::fold::{self, attr, node_error, normalise_axis};
use crate::onnx::{self, GraphProto, NodeProto, Tensor};
use cnnjit_ir::shape;
use cnnjit_ir::{
    Activation, Conv2d, Deconv, Dense, Hw, Lrn, Op, Padding, Pool2d, PoolKind, Shape, Upsample,
};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

mod channels;

/// A weight tensor of a layer: PyTorch's suffix (`weight`, `running_mean`),
/// dimensions and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// The name's last part, after the layer's name.
    pub suffix: &'static str,
    /// Dimensions, PyTorch's layout.
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// One layer of the imported net.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// What it computes (`Op::Input` for layer 0).
    pub op: Op,
    /// The layers it reads, in the op's order.
    pub inputs: Vec<usize>,
    /// Its output's shape.
    pub shape: Shape,
    /// The ONNX node it came from (empty for the input).
    pub node: String,
    /// That node's operator.
    pub onnx_op: String,
    /// Its weights.
    pub params: Vec<Param>,
}

/// The model as cnnjit layers: a DAG in topological order.
#[derive(Clone, Debug, PartialEq)]
pub struct Dag {
    /// Layer 0 is the input.
    pub layers: Vec<Layer>,
    /// The layer whose output is the model's output.
    pub output: usize,
    /// The model's output dimensions as the file declares them (NCHW, batch
    /// first; `None` for a symbolic one), when it does.
    pub declared_output: Option<Vec<Option<i64>>>,
}

/// What an ONNX value is. A constant is shared: a node that reads one
/// (perhaps many times) does not copy it.
#[derive(Clone, Debug)]
enum Value {
    Const(Rc<Tensor>),
    Layer(usize),
    /// Part of hard-sigmoid or hard-swish as exporters write them in
    /// arithmetic, to be finished by the nodes that follow.
    Partial(Partial),
    /// Layer `.0` padded with zeros by an explicit `Pad`, which the conv
    /// reading it takes as its own padding.
    Padded(usize, Padding),
    /// A step of a channel shuffle, to be finished by the nodes that follow.
    Grouped(Grouped),
    /// Layer `.0` viewed channels-last, `[N, H, W, C]`, after a
    /// `Transpose(0, 2, 3, 1)` and until a `Transpose(0, 3, 1, 2)` (which move
    /// nothing: cnnjit's tensors are channels-last; [`channels`]).
    Nhwc(usize),
    /// Layer `.0`, of batch 1, reshaped to one dimension, `[N C H W]` in
    /// NCHW order: the first half of the dynamo exporter's `as_strided` view
    /// of a pooled volume, which a `Gather` of every element in order
    /// finishes ([`Mapper::unravel`]).
    Raveled(usize),
}

/// Layer `x`'s channels viewed as `[N, groups, C / groups, H, W]` (a
/// `Reshape`), then perhaps `transposed` to `[N, C / groups, groups, H, W]`:
/// the first two steps of PyTorch's `channel_shuffle`, which a `Reshape`
/// back to `[N, C, H, W]` finishes as `shuffle(groups)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Grouped {
    x: usize,
    groups: usize,
    transposed: bool,
}

impl Grouped {
    /// The NCHW dimensions of the 5-D value, batch of 1.
    fn dims(self, x: Shape) -> Vec<usize> {
        let d = nchw(x);
        let (g, per_group) = (self.groups, d[1] / self.groups);
        let (a, b) = if self.transposed {
            (per_group, g)
        } else {
            (g, per_group)
        };
        vec![1, a, b, d[2], d[3]]
    }
}

/// An unfinished `relu6(x + 3) / 6` (hard-sigmoid), `x * relu6(x + 3) / 6`
/// (hard-swish) or `x (1 + erf(x / sqrt 2)) / 2` (gelu) of layer `x`, in an
/// NHWC region ([`Value::Nhwc`]) if `nhwc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Partial {
    x: usize,
    form: Form,
    nhwc: bool,
}

/// How far a [`Partial`] has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// `x + 3`.
    PlusThree,
    /// `relu6(x + 3)` (`Clip(0, 6)`).
    Clipped,
    /// `x * relu6(x + 3)`.
    Times,
    /// `x / sqrt 2`.
    GeluScaled,
    /// `erf(x / sqrt 2)`.
    GeluErf,
    /// `1 + erf(x / sqrt 2)`.
    GeluOnePlus,
    /// `(1 + erf(x / sqrt 2)) / 2`.
    GeluHalf,
    /// `x (1 + erf(x / sqrt 2))`.
    GeluTimes,
}

impl Form {
    /// Whether this is a step of gelu.
    fn is_gelu(self) -> bool {
        match self {
            Form::PlusThree | Form::Clipped | Form::Times => false,
            Form::GeluScaled
            | Form::GeluErf
            | Form::GeluOnePlus
            | Form::GeluHalf
            | Form::GeluTimes => true,
        }
    }

    /// The nodes of this form that read `x`, each counted in its reads.
    fn reads_of_x(self) -> usize {
        match self {
            Form::PlusThree
            | Form::Clipped
            | Form::GeluScaled
            | Form::GeluErf
            | Form::GeluOnePlus
            | Form::GeluHalf => 1,
            Form::Times | Form::GeluTimes => 2,
        }
    }
}

/// The ONNX operator-set versions read.
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=24;

/// Maps `graph` (operator set `opset` of the standard domain) to a [`Dag`];
/// `dir` is where external data lives.
pub fn map(
    graph: &GraphProto,
    opset: i64,
    dir: Option<&Path>,
    input_shape: Option<Shape>,
) -> Result<Dag> {
    let mut values = HashMap::new();
    // External data is read into memory: all of it must fit, each tensor's
    // bytes taken from the budget before any tensor is read (many tensors
    // may name the same large, perhaps sparse, file).
    let mut budget = cnnjit_runtime::memory::Budget::new(None);
    for init in graph.initializer.iter().filter(|t| t.data_location == 1) {
        if let Some(bytes) = onnx::external_bytes(init) {
            budget.take(bytes, || {
                format!(
                    "the external data of the model's initializers (up to tensor `{}`)",
                    init.name
                )
            })?;
        }
    }
    for init in &graph.initializer {
        values.insert(
            init.name.clone(),
            Value::Const(Rc::new(onnx::tensor(init, dir)?)),
        );
    }
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !values.contains_key(&i.name))
        .collect();
    let [input] = inputs[..] else {
        return Err(DecodeError::Inputs {
            found: inputs.len(),
        }
        .into());
    };
    let shape = resolve_input(&input.name, input.dims(), input_shape)?;
    values.insert(input.name.clone(), Value::Layer(0));
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for name in graph
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .chain(graph.output.iter().map(|o| &o.name))
    {
        *uses.entry(name.as_str()).or_default() += 1;
    }
    let input_reads = uses.get(input.name.as_str()).copied().unwrap_or(0);
    let mut reader_ops = HashMap::new();
    for node in &graph.node {
        for name in &node.input {
            reader_ops.insert(name.as_str(), node.op_type.as_str());
        }
    }
    let mut mapper = Mapper {
        reads: vec![input_reads],
        layers: vec![Layer {
            op: Op::Input,
            inputs: vec![],
            shape,
            node: String::new(),
            onnx_op: String::new(),
            params: vec![],
        }],
        values,
        uses,
        reader_ops,
        opset,
    };
    for node in &graph.node {
        mapper.node(node)?;
    }
    let [output] = &graph.output[..] else {
        return Err(DecodeError::Outputs {
            found: graph.output.len(),
        }
        .into());
    };
    match mapper.values.get(&output.name) {
        Some(Value::Layer(id)) => Ok(Dag {
            output: *id,
            layers: mapper.layers,
            declared_output: output.dims(),
        }),
        Some(Value::Const(_)) => Err(DecodeError::ConstantOutput {
            output: output.name.clone(),
        }
        .into()),
        Some(
            Value::Partial(_)
            | Value::Padded(..)
            | Value::Grouped(_)
            | Value::Nhwc(_)
            | Value::Raveled(_),
        ) => Err(DecodeError::PartialOutput {
            output: output.name.clone(),
        }
        .into()),
        None => Err(DecodeError::UnknownOutput {
            output: output.name.clone(),
        }
        .into()),
    }
}

/// The input's shape: the file's dimensions where they are all fixed, else
/// `given` (`--input-shape`) where every dimension the file fixes agrees
/// with it (a file that declares none takes it whole); the batch dimension
/// is never read.
fn resolve_input(
    name: &str,
    dims: Option<Vec<Option<i64>>>,
    given: Option<Shape>,
) -> Result<Shape> {
    let error = || DecodeError::InputDims {
        input: name.to_string(),
        dims: dims.clone(),
        given,
    };
    let Some(given) = given else {
        return input_shape(dims.clone())
            .ok_or_else(error)
            .map_err(Into::into);
    };
    let agrees = match dims.as_deref() {
        None => true,
        Some(declared) => {
            let wanted: Vec<usize> = nchw(given);
            declared.len() == wanted.len()
                && declared[1..]
                    .iter()
                    .zip(&wanted[1..])
                    .all(|(d, &w)| d.is_none_or(|d| usize::try_from(d).is_ok_and(|d| d == w)))
        }
    };
    if agrees {
        Ok(given)
    } else {
        Err(error().into())
    }
}

/// `[N, C, H, W]` as the volume `(H, W, C)`, `[N, F]` as `(F,)`; the batch
/// size does not matter (cnnjit runs a batch image by image).
fn input_shape(dims: Option<Vec<Option<i64>>>) -> Option<Shape> {
    let size = |d: Option<i64>| d.and_then(|v| u32::try_from(v).ok()).filter(|&v| v > 0);
    match dims?[..] {
        [_, c, h, w] => Some(Shape::Volume {
            h: size(h)?,
            w: size(w)?,
            c: size(c)?,
        }),
        [_, f] => Some(Shape::Flat(size(f)?)),
        _ => None,
    }
}

/// The NCHW dimensions of one image's tensor of `shape`, batch of 1.
pub fn nchw(shape: Shape) -> Vec<usize> {
    match shape {
        Shape::Volume { h, w, c } => vec![1, c as usize, h as usize, w as usize],
        Shape::Flat(n) => vec![1, n as usize],
    }
}

struct Mapper<'g> {
    layers: Vec<Layer>,
    values: HashMap<String, Value>,
    uses: HashMap<&'g str, usize>,
    /// The operator of a node that reads each value (of the last one, where
    /// several do).
    reader_ops: HashMap<&'g str, &'g str>,
    /// Per layer: how many node inputs and graph outputs read it, under
    /// every name it has, less the reads a fusion absorbed.
    reads: Vec<usize>,
    opset: i64,
}

/// The operators that become layers (besides those [`fold::FOLDABLE`] folds).
pub const LAYER_OPS: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "Gather",
    "Resize",
    "Upsample",
    "BatchNormalization",
    "Relu",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "Sigmoid",
    "Tanh",
    "HardSwish",
    "HardSigmoid",
    "Mul",
    "Div",
    "Add",
    "Sub",
    "Erf",
    "LayerNormalization",
    "Pad",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean",
    "Gemm",
    "MatMul",
    "Flatten",
    "Reshape",
    "Transpose",
    "Split",
    "Slice",
    "Concat",
    "Softmax",
    "LRN",
    "Dropout",
    "Identity",
];

impl Mapper<'_> {
    fn node(&mut self, node: &NodeProto) -> Result<()> {
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(node_error(
                node,
                format!(
                    "operators of domain `{}` are not supported; cnnjit reads the standard ONNX operators",
                    node.domain
                ),
            ));
        }
        let mut inputs = Vec::with_capacity(node.input.len());
        for name in &node.input {
            inputs.push(if name.is_empty() {
                None
            } else {
                Some(self.values.get(name).cloned().ok_or_else(|| {
                    node_error(
                        node,
                        format!("reads `{name}`, which no earlier node computes (the graph must be in topological order)"),
                    )
                })?)
            });
        }
        let reads_layer = (inputs.iter()).any(|v| {
            matches!(
                v,
                Some(
                    Value::Layer(_)
                        | Value::Partial(_)
                        | Value::Padded(..)
                        | Value::Grouped(_)
                        | Value::Nhwc(_)
                        | Value::Raveled(_)
                )
            )
        });
        if node.op_type == "Split" && reads_layer {
            return self.split(node, &inputs);
        }
        let value = if node.op_type == "Shape" {
            let dims = match inputs.first() {
                Some(Some(Value::Layer(id))) => nchw(self.layers[*id].shape),
                Some(Some(Value::Const(t))) => t.dims.clone(),
                Some(Some(Value::Partial(p))) => nchw(self.layers[p.x].shape),
                Some(Some(Value::Grouped(g))) => g.dims(self.layers[g.x].shape),
                Some(Some(Value::Nhwc(x))) => {
                    let d = nchw(self.layers[*x].shape);
                    vec![d[0], d[2], d[3], d[1]]
                }
                Some(Some(Value::Raveled(x))) => {
                    vec![nchw(self.layers[*x].shape).iter().product()]
                }
                Some(Some(Value::Padded(..))) => return Err(padded_error(node, 0)),
                _ => return Err(node_error(node, "input 0 is missing")),
            };
            Value::Const(Rc::new(Tensor::i64(
                vec![dims.len()],
                dims.iter().map(|&d| d as i64).collect(),
            )?))
        } else if !reads_layer && fold::FOLDABLE.contains(&node.op_type.as_str()) {
            let consts: Vec<Option<&Tensor>> = inputs
                .iter()
                .map(|v| match v {
                    Some(Value::Const(t)) => Some(&**t),
                    _ => None,
                })
                .collect();
            Value::Const(Rc::new(fold::fold(node, &consts)?))
        } else if LAYER_OPS.contains(&node.op_type.as_str()) {
            self.layer_in_region(node, &inputs)?
        } else if fold::FOLDABLE.contains(&node.op_type.as_str()) {
            return Err(node_error(
                node,
                "is only supported on constants (shape arithmetic), and here it reads the network's data",
            ));
        } else {
            return Err(node_error(
                node,
                format!(
                    "the operator is not supported; cnnjit imports {}",
                    LAYER_OPS.join(", ")
                ),
            ));
        };
        let Some(first) = node.output.first() else {
            return Err(node_error(node, "has no output"));
        };
        for extra in node.output.iter().skip(1) {
            if !extra.is_empty() && self.uses.get(extra.as_str()).is_some_and(|&n| n > 0) {
                return Err(node_error(
                    node,
                    format!("its output `{extra}` is read, and cnnjit layers have one output"),
                ));
            }
        }
        if let Value::Layer(id) | Value::Nhwc(id) = value {
            self.reads[id] += self.uses.get(first.as_str()).copied().unwrap_or(0);
        }
        self.values.insert(first.clone(), value);
        Ok(())
    }

    /// The layer that input `i` is, or an error if it is a constant.
    fn layer_input(&self, node: &NodeProto, inputs: &[Option<Value>], i: usize) -> Result<usize> {
        match inputs.get(i) {
            Some(Some(Value::Layer(id))) => Ok(*id),
            Some(Some(Value::Const(_))) => Err(node_error(
                node,
                format!("input {i} is a constant where the network's data is expected"),
            )),
            Some(Some(Value::Partial(_))) => Err(partial_error(node, i)),
            Some(Some(Value::Padded(..))) => Err(padded_error(node, i)),
            Some(Some(Value::Grouped(_))) => Err(grouped_error(node, i)),
            Some(Some(Value::Raveled(_))) => Err(raveled_error(node, i)),
            Some(Some(Value::Nhwc(_))) => Err(node_error(
                node,
                format!("input {i} is channels-last (after a Transpose(0, 2, 3, 1)), which this operator does not read; cnnjit reads it only in LayerNormalization over the last axis, MatMul by a constant and element-wise operators, until a Transpose(0, 3, 1, 2)"),
            )),
            _ => Err(node_error(node, format!("input {i} is missing"))),
        }
    }

    fn constant<'a>(
        &self,
        node: &NodeProto,
        inputs: &'a [Option<Value>],
        i: usize,
    ) -> Result<Option<&'a Tensor>> {
        match inputs.get(i) {
            Some(Some(Value::Const(t))) => Ok(Some(&**t)),
            Some(Some(
                Value::Layer(_)
                | Value::Partial(_)
                | Value::Padded(..)
                | Value::Grouped(_)
                | Value::Nhwc(_)
                | Value::Raveled(_),
            )) => Err(node_error(
                node,
                format!(
                    "input {i} is computed from the network's data; cnnjit needs a constant here"
                ),
            )),
            _ => Ok(None),
        }
    }

    fn required<'a>(
        &self,
        node: &NodeProto,
        inputs: &'a [Option<Value>],
        i: usize,
    ) -> Result<&'a Tensor> {
        self.constant(node, inputs, i)?
            .ok_or_else(|| node_error(node, format!("input {i} is missing")))
    }

    fn shape(&self, id: usize) -> Shape {
        self.layers[id].shape
    }

    /// Merges the node being mapped into layer `id`: the node's read of it
    /// is no longer a read by another layer.
    fn absorb(&mut self, id: usize) -> Value {
        self.reads[id] -= 1;
        Value::Layer(id)
    }

    fn push(
        &mut self,
        node: &NodeProto,
        op: Op,
        inputs: Vec<usize>,
        params: Vec<Param>,
    ) -> Result<Value> {
        let shapes: Vec<Shape> = inputs.iter().map(|&i| self.shape(i)).collect();
        let shape =
            shape::output_shape(&op, &shapes).map_err(|e| node_error(node, e.to_string()))?;
        self.layers.push(Layer {
            op,
            inputs,
            shape,
            node: node.name.clone(),
            onnx_op: node.op_type.clone(),
            params,
        });
        self.reads.push(0);
        Ok(Value::Layer(self.layers.len() - 1))
    }

    /// `ReduceMean` over H and W (`x.mean([2, 3])`, MNASNet's global
    /// pooling): a global average pool, then a flatten unless `keepdims`.
    fn reduce_mean(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        let x = self.layer_input(node, inputs, 0)?;
        let rank = nchw(self.shape(x)).len();
        let axes = self
            .ints_since(node, inputs, "axes", 1, 18)?
            .unwrap_or_default();
        let mut axes = (axes.iter())
            .map(|&a| normalise_axis(node, a, rank))
            .collect::<Result<Vec<_>>>()?;
        axes.sort_unstable();
        axes.dedup();
        if rank != 4 || axes != [2, 3] {
            return Err(node_error(
                node,
                format!("averages over axes {axes:?} of a rank-{rank} tensor; cnnjit reads ReduceMean over H and W (axes 2 and 3 of NCHW) as global average pooling"),
            ));
        }
        let pool = self.push(node, Op::GlobalPool(PoolKind::Avg), vec![x], vec![])?;
        match (Self::int(node, "keepdims", 1), &pool) {
            (0, &Value::Layer(id)) => {
                self.reads[id] += 1;
                self.push(node, Op::Flatten, vec![id], vec![])
            }
            _ => Ok(pool),
        }
    }

    /// Integers that operator set `since` moved from the attribute `name`
    /// to the constant input `i`, from where this model's opset keeps them.
    fn ints_since(
        &self,
        node: &NodeProto,
        inputs: &[Option<Value>],
        name: &str,
        i: usize,
        since: i64,
    ) -> Result<Option<Vec<i64>>> {
        if self.opset < since {
            Ok(attr(node, name).map(|a| a.ints.clone()))
        } else {
            Ok(self.constant(node, inputs, i)?.map(Tensor::ints))
        }
    }

    fn ints(node: &NodeProto, name: &str, default: &[i64]) -> Vec<i64> {
        attr(node, name).map_or_else(|| default.to_vec(), |a| a.ints.clone())
    }

    fn int(node: &NodeProto, name: &str, default: i64) -> i64 {
        attr(node, name).map_or(default, |a| a.i)
    }

    fn float(node: &NodeProto, name: &str, default: f32) -> f32 {
        attr(node, name).map_or(default, |a| a.f)
    }

    fn layer(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        let act = |a: Activation| Op::Activation(a);
        let op = node.op_type.as_str();
        match op {
            "Conv" => self.conv(node, inputs),
            "ConvTranspose" => self.deconv(node, inputs),
            "Resize" | "Upsample" => self.upsample(node, inputs),
            "BatchNormalization" => {
                let x = self.layer_input(node, inputs, 0)?;
                let c = self.shape(x).channels() as usize;
                let mut params = Vec::new();
                for (i, suffix) in ["weight", "bias", "running_mean", "running_var"]
                    .into_iter()
                    .enumerate()
                {
                    let t = self.required(node, inputs, i + 1)?;
                    if t.len() != c {
                        return Err(node_error(
                            node,
                            format!("{suffix} has {} values for {c} channels", t.len()),
                        ));
                    }
                    params.push(Param {
                        suffix,
                        dims: vec![c],
                        values: t.floats(),
                    });
                }
                let eps = Self::float(node, "epsilon", 1e-5);
                if !(eps.is_finite() && eps > 0.0) {
                    return Err(node_error(node, format!("epsilon {eps} is not positive")));
                }
                self.push(node, Op::BatchNorm { eps }, vec![x], params)
            }
            "Relu" | "Sigmoid" | "Tanh" | "HardSwish" | "GlobalAveragePool" | "GlobalMaxPool" => {
                let x = self.layer_input(node, inputs, 0)?;
                let op = match op {
                    "Relu" => act(Activation::Relu),
                    "Sigmoid" => act(Activation::Sigmoid),
                    "Tanh" => act(Activation::Tanh),
                    "HardSwish" => act(Activation::HardSwish),
                    "GlobalAveragePool" => Op::GlobalPool(PoolKind::Avg),
                    _ => Op::GlobalPool(PoolKind::Max),
                };
                self.push(node, op, vec![x], vec![])
            }
            "ReduceMean" => self.reduce_mean(node, inputs),
            "LeakyRelu" => {
                let x = self.layer_input(node, inputs, 0)?;
                let a = Self::float(node, "alpha", 0.01);
                self.push(node, act(Activation::LeakyRelu(a)), vec![x], vec![])
            }
            "PRelu" => self.prelu(node, inputs),
            "HardSigmoid" => {
                let x = self.layer_input(node, inputs, 0)?;
                let (alpha, beta) = (
                    Self::float(node, "alpha", 0.2),
                    Self::float(node, "beta", 0.5),
                );
                // Within 1e-6 of each, written so a NaN is outside.
                let within = |v: f32, w: f32| (v - w).abs() <= 1e-6;
                if !(within(alpha, 1.0 / 6.0) && within(beta, 0.5)) {
                    return Err(node_error(
                        node,
                        format!("alpha {alpha}, beta {beta}: cnnjit's hard_sigmoid is relu6(x + 3) / 6 (alpha 1/6, beta 0.5)"),
                    ));
                }
                self.push(node, act(Activation::HardSigmoid), vec![x], vec![])
            }
            "Clip" => {
                let partial = match inputs.first() {
                    Some(Some(Value::Partial(p))) => Some(*p),
                    _ => None,
                };
                let x = match partial {
                    Some(p) => p.x,
                    None => self.layer_input(node, inputs, 0)?,
                };
                let bound = |i: usize, name: &str, default: f32| -> Result<f32> {
                    if self.opset < 11 {
                        return Ok(Self::float(node, name, default));
                    }
                    match self.constant(node, inputs, i)? {
                        Some(t) if t.len() == 1 => Ok(t.floats()[0]),
                        Some(_) => Err(node_error(node, format!("{name} is not a scalar"))),
                        None => Ok(default),
                    }
                };
                let (lo, hi) = (bound(1, "min", f32::MIN)?, bound(2, "max", f32::MAX)?);
                if let Some(p) = partial {
                    return match (p.form, lo, hi) {
                        (Form::PlusThree, 0.0, 6.0) => self.partial(node, p.x, Form::Clipped),
                        _ => Err(partial_error(node, 0)),
                    };
                }
                let op = match (lo, hi) {
                    (0.0, 6.0) => act(Activation::Relu6),
                    (0.0, f32::MAX) => act(Activation::Relu),
                    (0.0, hi) if hi.is_infinite() => act(Activation::Relu),
                    _ => {
                        return Err(node_error(
                            node,
                            format!(
                            "clips to [{lo}, {hi}]; cnnjit has relu6 ([0, 6]) and relu ([0, inf))"
                        ),
                        ))
                    }
                };
                self.push(node, op, vec![x], vec![])
            }
            "Mul" => self.mul(node, inputs),
            "Div" => self.div(node, inputs),
            "Pad" => self.pad(node, inputs),
            "Add" => self.add(node, inputs),
            "MaxPool" | "AveragePool" => self.pool(node, inputs),
            "Gemm" => {
                let x = self.layer_input(node, inputs, 0)?;
                if Self::int(node, "transA", 0) != 0 {
                    return Err(node_error(node, "transA = 1 is not supported"));
                }
                let b = self.required(node, inputs, 1)?;
                let (alpha, beta) = (
                    Self::float(node, "alpha", 1.0),
                    Self::float(node, "beta", 1.0),
                );
                let weight = self.dense_weight(node, x, b, Self::int(node, "transB", 0) != 0)?;
                let bias = self.constant(node, inputs, 2)?;
                self.dense(node, x, weight, alpha, bias.map(|t| (t, beta)))
            }
            "MatMul" => {
                if let Some(Some(Value::Nhwc(x))) = inputs.first() {
                    let b = self.required(node, inputs, 1)?;
                    return self.pointwise(node, *x, b);
                }
                let x = self.layer_input(node, inputs, 0)?;
                let b = self.required(node, inputs, 1)?;
                let weight = self.dense_weight(node, x, b, false)?;
                self.dense(node, x, weight, 1.0, None)
            }
            "Reshape" if matches!(inputs.first(), Some(Some(Value::Grouped(_)))) => {
                self.ungroup(node, inputs)
            }
            "Gather" => self.unravel(node, inputs),
            "Transpose" => self.transpose(node, inputs),
            "LayerNormalization" => self.layer_norm(node, inputs),
            "Erf" => self.erf(node, inputs),
            "Sub" => self.sub(node, inputs),
            "Slice" => self.slice(node, inputs),
            "Flatten" | "Reshape" => {
                let x = self.layer_input(node, inputs, 0)?;
                let from = nchw(self.shape(x));
                let to = if op == "Flatten" {
                    let axis = normalise_axis(node, Self::int(node, "axis", 1), from.len())?;
                    if axis != 1 {
                        return Err(node_error(
                            node,
                            format!("flattens from axis {axis}; cnnjit's flatten keeps the batch axis only (axis 1)"),
                        ));
                    }
                    vec![1, from[1..].iter().product()]
                } else {
                    let target = match self.opset {
                        ..5 => Self::ints(node, "shape", &[]),
                        _ => self.required(node, inputs, 1)?.ints(),
                    };
                    fold::reshape_dims(node, &from, &target)?
                };
                if to == from {
                    Ok(self.absorb(x))
                } else if to.len() == 2 && to[0] == 1 {
                    self.push(node, Op::Flatten, vec![x], vec![])
                } else if to.len() == 1 && from[0] == 1 {
                    self.sole_step(
                        node,
                        Value::Raveled(x),
                        "a Reshape of the data to one dimension only as the first step of a view back, a Gather of every element in order",
                    )
                } else if let Some(groups) = grouping(&from, &to) {
                    self.grouped(
                        node,
                        Grouped {
                            x,
                            groups,
                            transposed: false,
                        },
                    )
                } else {
                    Err(node_error(
                        node,
                        format!("reshapes {from:?} to {to:?}; cnnjit only flattens a volume to [N, C*H*W], or views its channels as [N, G, C/G, H, W] in a channel shuffle"),
                    ))
                }
            }
            "Concat" => {
                let ids = (0..inputs.len())
                    .map(|i| self.layer_input(node, inputs, i))
                    .collect::<Result<Vec<_>>>()?;
                let rank = nchw(self.shape(ids[0])).len();
                let axis = normalise_axis(node, Self::int(node, "axis", 1), rank)?;
                if axis != 1 {
                    return Err(node_error(
                        node,
                        format!(
                            "concatenates along axis {axis}; cnnjit concatenates channels (axis 1)"
                        ),
                    ));
                }
                self.push(node, Op::Concat, ids, vec![])
            }
            "Softmax" => {
                let x = self.layer_input(node, inputs, 0)?;
                let rank = nchw(self.shape(x)).len();
                let default = if self.opset < 13 { 1 } else { -1 };
                let axis = normalise_axis(node, Self::int(node, "axis", default), rank)?;
                // Before opset 13 the input is coerced to 2-D at `axis`, so
                // axis 1 on a volume spans C*H*W, not the channels.
                let channels = axis == 1 && (rank == 2 || self.opset >= 13);
                if !channels {
                    return Err(node_error(
                        node,
                        format!("softmax over axis {axis} of a rank-{rank} tensor (opset {}); cnnjit's softmax runs over the channels", self.opset),
                    ));
                }
                self.push(node, Op::Softmax, vec![x], vec![])
            }
            "LRN" => {
                let x = self.layer_input(node, inputs, 0)?;
                let size = u32::try_from(Self::int(node, "size", 0))
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or_else(|| node_error(node, "size must be positive"))?;
                let lrn = Lrn {
                    size,
                    alpha: Self::float(node, "alpha", 1e-4),
                    beta: Self::float(node, "beta", 0.75),
                    k: Self::float(node, "bias", 1.0),
                };
                self.push(node, Op::Lrn(lrn), vec![x], vec![])
            }
            "Dropout" => {
                let x = self.layer_input(node, inputs, 0)?;
                let p = match self.constant(node, inputs, 1)? {
                    Some(t) if t.len() == 1 => t.floats()[0],
                    Some(_) => return Err(node_error(node, "the ratio is not a scalar")),
                    None => Self::float(node, "ratio", 0.5),
                };
                if self
                    .constant(node, inputs, 2)?
                    .is_some_and(|t| t.ints().first().is_some_and(|&m| m != 0))
                {
                    return Err(node_error(node, "dropout in training mode"));
                }
                if !(0.0..1.0).contains(&p) {
                    return Err(node_error(node, format!("ratio {p} is not in [0, 1)")));
                }
                self.push(node, Op::Dropout { p }, vec![x], vec![])
            }
            "Identity" => {
                let x = self.layer_input(node, inputs, 0)?;
                self.push(node, Op::Identity, vec![x], vec![])
            }
            _ => unreachable!("LAYER_OPS lists only the operators matched here"),
        }
    }

    /// How many nodes (and graph outputs) read `node`'s first output.
    fn readers(&self, node: &NodeProto) -> usize {
        let output = node.output.first().map_or("", String::as_str);
        self.uses.get(output).copied().unwrap_or(0)
    }

    /// An explicit zero `Pad` of H and W, for the conv that reads it next.
    fn pad(&self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        let x = self.layer_input(node, inputs, 0)?;
        let mode = attr(node, "mode").map(|a| a.string()).unwrap_or_default();
        let (pads, value) = match self.opset {
            ..11 => (
                Self::ints(node, "pads", &[]),
                Self::float(node, "value", 0.0),
            ),
            _ => (
                self.required(node, inputs, 1)?.ints(),
                match self.constant(node, inputs, 2)? {
                    Some(t) if t.len() == 1 => t.floats()[0],
                    Some(_) => return Err(node_error(node, "constant_value is not a scalar")),
                    None => 0.0,
                },
            ),
        };
        if inputs.get(3).is_some_and(Option::is_some) {
            return Err(node_error(
                node,
                "pads only some axes; cnnjit reads Pad of H and W",
            ));
        }
        let pad = |v: i64| u32::try_from(v).ok();
        let padding = match pads[..] {
            [0, 0, top, left, 0, 0, bottom, right] => {
                match (pad(top), pad(left), pad(bottom), pad(right)) {
                    (Some(top), Some(left), Some(bottom), Some(right)) => Some(Padding {
                        top,
                        left,
                        bottom,
                        right,
                    }),
                    _ => None,
                }
            }
            _ => None,
        };
        match padding {
            Some(padding) if matches!(mode.as_str(), "" | "constant") && value == 0.0
                && self.readers(node) == 1 =>
            {
                Ok(Value::Padded(x, padding))
            }
            _ => Err(node_error(
                node,
                format!("pads {pads:?} ({mode:?}, value {value}); cnnjit reads a Pad only as zeros around H and W (no negative pads) read by one conv, which takes it as its own padding"),
            )),
        }
    }

    fn conv(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        let (x, pad) = match inputs.first() {
            Some(Some(Value::Padded(x, pad))) => (*x, Some(*pad)),
            _ => (self.layer_input(node, inputs, 0)?, None),
        };
        let Shape::Volume { h, w, c } = self.shape(x) else {
            return Err(node_error(node, "a convolution of a flat tensor"));
        };
        let weight = self.required(node, inputs, 1)?;
        let [k, per_group, fh, fw] = weight.dims[..] else {
            return Err(node_error(
                node,
                format!(
                    "weight dimensions {:?}; cnnjit convolutions are 2-D",
                    weight.dims
                ),
            ));
        };
        let groups = Self::int(node, "group", 1);
        let groups = u32::try_from(groups)
            .ok()
            .filter(|&g| g > 0 && c % g == 0 && (c / g) as usize == per_group)
            .ok_or_else(|| {
                node_error(
                    node,
                    format!("group {groups} with {c} input channels does not match weights of {per_group} channels per group"),
                )
            })?;
        let kernel = hw(node, &[fh as i64, fw as i64])?;
        if attr(node, "kernel_shape").is_some_and(|a| a.ints != [fh as i64, fw as i64]) {
            return Err(node_error(node, "kernel_shape disagrees with the weights"));
        }
        let stride = hw(node, &Self::ints(node, "strides", &[1, 1]))?;
        let dilation = hw(node, &Self::ints(node, "dilations", &[1, 1]))?;
        let mut padding = padding(node, h, w, kernel, stride, dilation)?;
        if let Some(pad) = pad {
            padding = Padding {
                top: padding.top + pad.top,
                left: padding.left + pad.left,
                bottom: padding.bottom + pad.bottom,
                right: padding.right + pad.right,
            };
        }
        let out_channels =
            u32::try_from(k).map_err(|_| node_error(node, "too many output channels"))?;
        let params = self.weight_and_bias(node, inputs, weight, k)?;
        let op = Op::Conv2d(Conv2d {
            out_channels,
            kernel,
            stride,
            dilation,
            padding,
            groups,
            bias: params.len() == 2,
            depthwise: groups == c && c > 1 && out_channels % c == 0,
        });
        self.push(node, op, vec![x], params)
    }

    /// A conv's or deconv's `weight` (input 1, as it is) and its bias of `k`
    /// values (input 2) if it has one.
    fn weight_and_bias(
        &self,
        node: &NodeProto,
        inputs: &[Option<Value>],
        weight: &Tensor,
        k: usize,
    ) -> Result<Vec<Param>> {
        let mut params = vec![Param {
            suffix: "weight",
            dims: weight.dims.clone(),
            values: weight.floats(),
        }];
        if let Some(b) = self.constant(node, inputs, 2)? {
            if b.len() != k {
                return Err(node_error(
                    node,
                    format!("a bias of {} values for {k} channels", b.len()),
                ));
            }
            params.push(Param {
                suffix: "bias",
                dims: vec![k],
                values: b.floats(),
            });
        }
        Ok(params)
    }

    /// `ConvTranspose` as `deconv`: one group, no dilation, no output
    /// padding, the same padding on every side; the weights keep ONNX's (and
    /// PyTorch's) `[Cin, K, Fh, Fw]`.
    fn deconv(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        let x = self.layer_input(node, inputs, 0)?;
        let Shape::Volume { c, .. } = self.shape(x) else {
            return Err(node_error(
                node,
                "a transposed convolution of a flat tensor",
            ));
        };
        let weight = self.required(node, inputs, 1)?;
        let [cin, k, fh, fw] = weight.dims[..] else {
            return Err(node_error(
                node,
                format!(
                    "weight dimensions {:?}; cnnjit's deconv is 2-D",
                    weight.dims
                ),
            ));
        };
        let unsupported = |what: &str, values: Vec<i64>, want: &str| {
            node_error(
                node,
                format!("{what} {values:?}: cnnjit's deconv takes {want}"),
            )
        };
        let group = Self::int(node, "group", 1);
        if group != 1 || cin != c as usize {
            return Err(unsupported(
                "group",
                vec![group],
                "one group (weights [Cin, K, Fh, Fw])",
            ));
        }
        for (name, zero) in [("dilations", 1), ("output_padding", 0)] {
            let values = Self::ints(node, name, &[zero, zero]);
            if values.iter().any(|&v| v != zero) {
                let want = format!("{name} of {zero} only");
                return Err(unsupported(name, values, &want));
            }
        }
        if let Some(a) = attr(node, "output_shape") {
            return Err(unsupported(
                "output_shape",
                a.ints.clone(),
                "pads, not an output shape",
            ));
        }
        let auto = attr(node, "auto_pad")
            .map(|a| a.string())
            .unwrap_or_default();
        if !matches!(auto.as_str(), "" | "NOTSET" | "VALID") {
            return Err(node_error(
                node,
                format!("auto_pad `{auto}`: cnnjit's deconv takes pads"),
            ));
        }
        let kernel = hw(node, &[fh as i64, fw as i64])?;
        if attr(node, "kernel_shape").is_some_and(|a| a.ints != [fh as i64, fw as i64]) {
            return Err(node_error(node, "kernel_shape disagrees with the weights"));
        }
        let stride = hw(node, &Self::ints(node, "strides", &[1, 1]))?;
        let pads = Self::ints(node, "pads", &[0, 0, 0, 0]);
        let padding = match pads[..] {
            [p, q, r, t] if p == q && p == r && p == t => u32::try_from(p).ok(),
            _ => None,
        }
        .ok_or_else(|| unsupported("pads", pads.clone(), "one padding on every side"))?;
        let out_channels =
            u32::try_from(k).map_err(|_| node_error(node, "too many output channels"))?;
        let params = self.weight_and_bias(node, inputs, weight, k)?;
        let op = Op::Deconv(Deconv {
            out_channels,
            kernel,
            stride,
            padding,
            bias: params.len() == 2,
        });
        self.push(node, op, vec![x], params)
    }

    /// `Resize` (opset 10 on: scales or sizes as inputs) and the older
    /// `Upsample` as `upsample(s)`: the same integer factor on H and W, N
    /// and C kept; nearest where the coordinates pick `floor(o / s)`
    /// (PyTorch's `asymmetric` with `floor`, or half-pixel coordinates
    /// rounded, which pick the same pixels for an integer factor), linear
    /// with PyTorch's half-pixel coordinates as bilinear.
    fn upsample(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        let x = self.layer_input(node, inputs, 0)?;
        let Shape::Volume { h, w, .. } = self.shape(x) else {
            return Err(node_error(node, "a resize of a flat tensor"));
        };
        let resize = node.op_type == "Resize";
        // Resize-10 and Upsample-9 take scales as input 1; Resize-11 on as
        // input 2 (after roi) and sizes as input 3; Upsample-7 as an attribute.
        let (scales, sizes) = match (resize, self.opset) {
            (true, 10) | (false, 9..) => {
                (self.constant(node, inputs, 1)?.map(Tensor::floats), None)
            }
            (true, _) => (
                self.constant(node, inputs, 2)?.map(Tensor::floats),
                self.constant(node, inputs, 3)?.map(Tensor::ints),
            ),
            (false, _) => (attr(node, "scales").map(|a| a.floats.clone()), None),
        };
        let factor = |ratio: [f64; 4]| match ratio {
            [n, c, sh, sw]
                if n == 1.0 && c == 1.0 && sh == sw && sh >= 1.0 && sh.fract() == 0.0 =>
            {
                u32::try_from(sh as u64).ok()
            }
            _ => None,
        };
        let scale = match (scales.filter(|s| !s.is_empty()), sizes) {
            (Some(s), _) if s.len() == 4 => factor([0, 1, 2, 3].map(|i| f64::from(s[i]))),
            (None, Some(s)) if s.len() == 4 => match nchw(self.shape(x))[..] {
                [_, c, ih, iw] => factor([
                    1.0,
                    s[1] as f64 / c as f64,
                    s[2] as f64 / ih as f64,
                    s[3] as f64 / iw as f64,
                ]),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| {
            node_error(
                node,
                format!("resizes {h}x{w} by other than one integer factor on H and W (N and C kept); cnnjit's upsample takes an integer scale"),
            )
        })?;
        let text = |name: &str, default: &str| {
            attr(node, name).map_or_else(|| default.to_string(), |a| a.string())
        };
        let mode = text("mode", "nearest");
        let (coordinates, rounding) = if resize {
            (
                text("coordinate_transformation_mode", "half_pixel"),
                text("nearest_mode", "round_prefer_floor"),
            )
        } else {
            ("asymmetric".to_string(), "floor".to_string())
        };
        let half_pixel = matches!(coordinates.as_str(), "half_pixel" | "pytorch_half_pixel");
        let bilinear = match mode.as_str() {
            "nearest"
                if (coordinates == "asymmetric" && rounding == "floor")
                    || (half_pixel
                        && matches!(rounding.as_str(), "round_prefer_floor" | "round_prefer_ceil")) =>
            {
                false
            }
            "nearest" => {
                return Err(node_error(
                    node,
                    format!("nearest with coordinate_transformation_mode `{coordinates}` and nearest_mode `{rounding}`; cnnjit's upsample is PyTorch's nearest (`asymmetric` with `floor`, or `half_pixel` rounded)"),
                ))
            }
            "linear" | "bilinear" if half_pixel => true,
            "linear" | "bilinear" => {
                return Err(node_error(
                    node,
                    format!("linear with coordinate_transformation_mode `{coordinates}`; cnnjit's bilinear upsample is PyTorch's align_corners = False (`half_pixel` or `pytorch_half_pixel`)"),
                ))
            }
            other => {
                return Err(node_error(
                    node,
                    format!("mode `{other}`; cnnjit's upsample is nearest or linear"),
                ))
            }
        };
        if Self::int(node, "antialias", 0) != 0 {
            return Err(node_error(
                node,
                "antialias 1; cnnjit's upsample does not filter",
            ));
        }
        self.push(
            node,
            Op::Upsample(Upsample { scale, bilinear }),
            vec![x],
            vec![],
        )
    }

    fn pool(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        let x = self.layer_input(node, inputs, 0)?;
        let Shape::Volume { h, w, .. } = self.shape(x) else {
            return Err(node_error(node, "pooling of a flat tensor"));
        };
        let kernel = hw(
            node,
            &attr(node, "kernel_shape")
                .ok_or_else(|| node_error(node, "no kernel_shape"))?
                .ints,
        )?;
        let stride = hw(node, &Self::ints(node, "strides", &[1, 1]))?;
        if Self::ints(node, "dilations", &[1, 1]) != [1, 1] {
            return Err(node_error(node, "dilated pooling is not supported"));
        }
        let padding = padding(node, h, w, kernel, stride, Hw::square(1))?;
        if padding.top.max(padding.bottom) > kernel.h / 2
            || padding.left.max(padding.right) > kernel.w / 2
        {
            return Err(node_error(
                node,
                format!(
                    "pads {:?} exceed half the kernel {:?}, which cnnjit's pools (like PyTorch's) do not allow",
                    Self::ints(node, "pads", &[0, 0, 0, 0]),
                    [kernel.h, kernel.w]
                ),
            ));
        }
        let ceil = Self::int(node, "ceil_mode", 0) != 0;
        let max = node.op_type == "MaxPool";
        // Where no window reaches padding the divisor does not depend on the
        // flag: keep the language's default then, so the source stays short.
        let count_include_pad =
            (padding.is_zero() && !ceil) || (!max && Self::int(node, "count_include_pad", 0) != 0);
        let op = Op::Pool2d(Pool2d {
            kind: if max { PoolKind::Max } else { PoolKind::Avg },
            kernel,
            stride,
            padding,
            ceil,
            count_include_pad: max || count_include_pad,
        });
        self.push(node, op, vec![x], vec![])
    }

    /// A dense layer's `[N, Nin]` weight from ONNX's `B` (`[Nin, N]`, or
    /// `[N, Nin]` when `transposed`).
    fn dense_weight(
        &self,
        node: &NodeProto,
        x: usize,
        b: &Tensor,
        transposed: bool,
    ) -> Result<Param> {
        let Shape::Flat(nin) = self.shape(x) else {
            return Err(node_error(
                node,
                format!(
                    "a matrix product of the volume {}; flatten it first",
                    self.shape(x)
                ),
            ));
        };
        let [r, c] = b.dims[..] else {
            return Err(node_error(
                node,
                format!("weights of dimensions {:?}, not a matrix", b.dims),
            ));
        };
        let (n, k) = if transposed { (r, c) } else { (c, r) };
        if k != nin as usize {
            return Err(node_error(
                node,
                format!(
                    "weights of dimensions {:?} for {nin} input features",
                    b.dims
                ),
            ));
        }
        let values = b.floats();
        let values = if transposed {
            values
        } else {
            (0..n)
                .flat_map(|j| (0..k).map(move |i| (i, j)))
                .map(|(i, j)| values[i * n + j])
                .collect()
        };
        Ok(Param {
            suffix: "weight",
            dims: vec![n, k],
            values,
        })
    }

    fn dense(
        &mut self,
        node: &NodeProto,
        x: usize,
        mut weight: Param,
        alpha: f32,
        bias: Option<(&Tensor, f32)>,
    ) -> Result<Value> {
        let n = weight.dims[0];
        if alpha != 1.0 {
            weight.values.iter_mut().for_each(|v| *v *= alpha);
        }
        let mut params = vec![weight];
        if let Some((b, beta)) = bias {
            if b.len() != n || b.dims.iter().filter(|&&d| d != 1).count() > 1 {
                return Err(node_error(
                    node,
                    format!("a bias of dimensions {:?} for {n} outputs", b.dims),
                ));
            }
            params.push(Param {
                suffix: "bias",
                dims: vec![n],
                values: b.floats().iter().map(|v| v * beta).collect(),
            });
        }
        let out_features = u32::try_from(n).map_err(|_| node_error(node, "too many outputs"))?;
        let op = Op::Dense(Dense {
            out_features,
            bias: params.len() == 2,
        });
        self.push(node, op, vec![x], params)
    }

    /// `PRelu`: a constant slope of one value is `leaky_relu`; one of a value
    /// per channel (by ONNX's broadcasting, which aligns trailing axes:
    /// `[C, 1, 1]` or `[1, C, 1, 1]` for a volume, `[C]` or `[1, C]` for
    /// flat features) is `prelu` with the slopes as its `weight` `[C]`.
    fn prelu(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        let x = self.layer_input(node, inputs, 0)?;
        let slope = self.required(node, inputs, 1)?;
        let values = slope.floats();
        if let [a] = values[..] {
            return self.push(
                node,
                Op::Activation(Activation::LeakyRelu(a)),
                vec![x],
                vec![],
            );
        }
        let c = self.shape(x).channels() as usize;
        let values = self.per_channel(node, x, slope, "slope")?;
        let params = vec![Param {
            suffix: "weight",
            dims: vec![c],
            values,
        }];
        self.push(node, Op::PRelu, vec![x], params)
    }

    /// A hard-sigmoid or hard-swish partial `p` divided by `divisor`: the
    /// activation if the partial is the whole numerator and `divisor` 6.
    fn finish(&mut self, node: &NodeProto, p: Partial, divisor: f32) -> Result<Value> {
        let activation = match p.form {
            Form::Clipped => Activation::HardSigmoid,
            Form::Times => Activation::HardSwish,
            Form::PlusThree
            | Form::GeluScaled
            | Form::GeluErf
            | Form::GeluOnePlus
            | Form::GeluHalf
            | Form::GeluTimes => return Err(partial_error(node, 0)),
        };
        if !near(divisor, 6.0) {
            return Err(node_error(
                node,
                format!("divides by {divisor}; cnnjit reads relu6(x + 3) / 6 as hard_sigmoid and x * relu6(x + 3) / 6 as hard_swish"),
            ));
        }
        // The layer reads `x` once where the arithmetic read it more often.
        self.reads[p.x] = self.reads[p.x].saturating_sub(p.form.reads_of_x() - 1);
        self.push(node, Op::Activation(activation), vec![p.x], vec![])
    }

    /// `step`, `node`'s output when it is only a step of a layer that the
    /// nodes after it finish: it must be read by one node only, which goes
    /// on with it; else an error saying how cnnjit reads such steps
    /// (`reads`).
    fn sole_step(&self, node: &NodeProto, step: Value, reads: &str) -> Result<Value> {
        match self.readers(node) {
            1 => Ok(step),
            n => Err(node_error(
                node,
                format!("its output is read {n} times; cnnjit reads {reads}"),
            )),
        }
    }

    /// A step of hard-sigmoid or hard-swish written in arithmetic.
    fn partial(&self, node: &NodeProto, x: usize, form: Form) -> Result<Value> {
        let partial = Value::Partial(Partial {
            x,
            form,
            nhwc: false,
        });
        self.sole_step(node, partial, "x + 3 and relu6(x + 3) only as steps of hard_sigmoid (relu6(x + 3) / 6) and hard_swish (x * relu6(x + 3) / 6), and x / sqrt 2 and erf(x / sqrt 2) only as steps of gelu (x (1 + erf(x / sqrt 2)) / 2)")
    }

    /// A step of a channel shuffle.
    fn grouped(&self, node: &NodeProto, g: Grouped) -> Result<Value> {
        self.sole_step(
            node,
            Value::Grouped(g),
            "a Reshape to [N, G, C/G, H, W] and its Transpose only as steps of a channel shuffle, shuffle(G)",
        )
    }

    /// The `Reshape` that ends a channel shuffle: back to `[N, C, H, W]`.
    fn ungroup(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        let Some(Some(Value::Grouped(g))) = inputs.first() else {
            return Err(grouped_error(node, 0));
        };
        let g = *g;
        let shape = self.shape(g.x);
        let target = match self.opset {
            ..5 => Self::ints(node, "shape", &[]),
            _ => self.required(node, inputs, 1)?.ints(),
        };
        let to = fold::reshape_dims(node, &g.dims(shape), &target)?;
        if !g.transposed || to != nchw(shape) {
            return Err(grouped_error(node, 0));
        }
        let groups = u32::try_from(g.groups).map_err(|_| grouped_error(node, 0))?;
        self.push(node, Op::Shuffle { groups }, vec![g.x], vec![])
    }

    /// A `Gather` along axis 0 of a [`Value::Raveled`] layer that takes every
    /// element in order, its indices shaped as the layer's `[N, C, H, W]`
    /// (the layer itself) or `[N, C H W]` (its flattening): how the dynamo
    /// exporter writes ConvNeXt's `as_strided` view of its pooled volume.
    fn unravel(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        let Some(Some(Value::Raveled(x))) = inputs.first() else {
            return Err(node_error(
                node,
                "gathers from the network's data; cnnjit reads Gather there only as the view back of a Reshape to one dimension",
            ));
        };
        let x = *x;
        let dims = nchw(self.shape(x));
        let n: usize = dims.iter().product();
        let indices = self.required(node, inputs, 1)?;
        let in_order = indices.ints().iter().copied().eq(0..n as i64);
        if Self::int(node, "axis", 0) != 0 || !in_order {
            return Err(raveled_error(node, 0));
        }
        if indices.dims == dims {
            Ok(self.absorb(x))
        } else if indices.dims == [1, n] {
            self.push(node, Op::Flatten, vec![x], vec![])
        } else {
            Err(node_error(
                node,
                format!("views {dims:?}, raveled, as {:?}; cnnjit reads that view back only as the volume itself or its flattening", indices.dims),
            ))
        }
    }

    /// `Slice` of the channels, unit step: `slice(first, count)`; other
    /// axes must be taken whole.
    fn slice(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        let x = self.layer_input(node, inputs, 0)?;
        let dims = nchw(self.shape(x));
        let list = |name: &str, i: usize| self.ints_since(node, inputs, name, i, 10);
        let (Some(starts), Some(ends)) = (list("starts", 1)?, list("ends", 2)?) else {
            return Err(node_error(node, "starts or ends is missing"));
        };
        let axes = list("axes", 3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = list("steps", 4)?.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(node_error(
                node,
                "starts, ends, axes and steps differ in length",
            ));
        }
        let (mut first, mut end) = (0, dims[1]);
        for (((&start, &stop), &axis), &step) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
            let axis = normalise_axis(node, axis, dims.len())?;
            let n = dims[axis] as i64;
            let clamp = |i: i64| (if i < 0 { i.saturating_add(n) } else { i }).clamp(0, n) as usize;
            let (a, b) = (clamp(start), clamp(stop));
            let whole = a == 0 && b == n as usize;
            if step != 1 {
                return Err(node_error(
                    node,
                    format!("slices with step {step}; cnnjit slices channels with step 1"),
                ));
            }
            match axis {
                1 => (first, end) = (a, b.max(a)),
                _ if whole => {}
                _ => {
                    return Err(node_error(
                        node,
                        format!("slices [{a}, {b}) of axis {axis}; cnnjit slices only the channels (axis 1)"),
                    ))
                }
            }
        }
        if (first, end) == (0, dims[1]) {
            return Ok(self.absorb(x));
        }
        self.push(node, slice_op(node, first, end - first)?, vec![x], vec![])
    }

    /// `Split` along the channels: one `slice` per output that is read.
    fn split(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<()> {
        let x = self.layer_input(node, inputs, 0)?;
        let dims = nchw(self.shape(x));
        let axis = normalise_axis(node, Self::int(node, "axis", 0), dims.len())?;
        if axis != 1 {
            return Err(node_error(
                node,
                format!("splits axis {axis}; cnnjit splits only the channels (axis 1)"),
            ));
        }
        let c = dims[1];
        let written = self
            .ints_since(node, inputs, "split", 1, 13)?
            .unwrap_or_default();
        let parts = node.output.len();
        let sizes: Vec<usize> = if written.is_empty() {
            // Equal parts, the last smaller if they do not divide (opset 18).
            let n = usize::try_from(Self::int(node, "num_outputs", parts as i64))
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| node_error(node, "num_outputs must be positive"))?;
            let each = c.div_ceil(n);
            (0..n)
                .map(|i| each.min(c.saturating_sub(i * each)))
                .collect()
        } else {
            written
                .iter()
                .map(|&s| {
                    usize::try_from(s)
                        .map_err(|_| node_error(node, format!("a part of {s} channels")))
                })
                .collect::<Result<_>>()?
        };
        if sizes.len() != parts || sizes.iter().sum::<usize>() != c || sizes.contains(&0) {
            return Err(node_error(
                node,
                format!("splits {c} channels into parts of {sizes:?} for {parts} outputs; the parts must be positive and add up to the channels"),
            ));
        }
        let mut first = 0;
        let mut used = 0;
        for (name, count) in node.output.iter().zip(sizes) {
            let reads = self.uses.get(name.as_str()).copied().unwrap_or(0);
            if !name.is_empty() && reads > 0 {
                let value = self.push(node, slice_op(node, first, count)?, vec![x], vec![])?;
                if let Value::Layer(id) = value {
                    self.reads[id] += reads;
                }
                self.values.insert(name.clone(), value);
                used += 1;
            }
            first += count;
        }
        // The node read `x` once; each slice made reads it.
        self.reads[x] = (self.reads[x] + used).saturating_sub(1);
        Ok(())
    }

    /// `Div` of data: a hard-sigmoid or hard-swish partial by 6, a step of
    /// gelu, or data by a constant (an affine's factor, its inverse).
    fn div(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        match (inputs.first(), inputs.get(1)) {
            (Some(Some(Value::Partial(p))), Some(Some(Value::Const(t)))) if p.form.is_gelu() => {
                self.gelu_step(node, *p, Some((t, true)), None)
            }
            (Some(Some(Value::Partial(p))), Some(Some(Value::Const(t)))) if t.len() == 1 => {
                self.finish(node, *p, t.floats()[0])
            }
            (Some(Some(Value::Layer(x))), Some(Some(Value::Const(t)))) => {
                self.times_constant(node, *x, t, true)
            }
            _ => Err(node_error(
                node,
                "divides the network's data; cnnjit reads Div only as the / 6 of hard_sigmoid (relu6(x + 3) / 6) and hard_swish (x * relu6(x + 3) / 6), a step of gelu, or data divided by a constant of one value or one per channel",
            )),
        }
    }

    fn mul(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        match (inputs.first(), inputs.get(1)) {
            // Steps of gelu.
            (Some(Some(Value::Partial(p))), Some(Some(Value::Const(t))))
            | (Some(Some(Value::Const(t))), Some(Some(Value::Partial(p))))
                if p.form.is_gelu() =>
            {
                return self.gelu_step(node, *p, Some((t, false)), None);
            }
            (Some(Some(Value::Layer(x))), Some(Some(Value::Partial(p))))
            | (Some(Some(Value::Partial(p))), Some(Some(Value::Layer(x))))
                if p.form.is_gelu() =>
            {
                return self.gelu_step(node, *p, None, Some(*x));
            }
            // Data times a constant.
            (Some(Some(Value::Layer(x))), Some(Some(Value::Const(t))))
            | (Some(Some(Value::Const(t))), Some(Some(Value::Layer(x)))) => {
                return self.times_constant(node, *x, t, false);
            }
            // A partial times 1/6, or x times relu6(x + 3).
            (Some(Some(Value::Partial(p))), Some(Some(Value::Const(t))))
            | (Some(Some(Value::Const(t))), Some(Some(Value::Partial(p))))
                if t.len() == 1 =>
            {
                let factor = t.floats()[0];
                return self.finish(node, *p, 1.0 / factor);
            }
            (Some(Some(Value::Layer(x))), Some(Some(Value::Partial(p))))
            | (Some(Some(Value::Partial(p))), Some(Some(Value::Layer(x))))
                if p.x == *x && p.form == Form::Clipped =>
            {
                return self.partial(node, *x, Form::Times);
            }
            _ => {}
        }
        let (a, b) = (
            self.layer_input(node, inputs, 0)?,
            self.layer_input(node, inputs, 1)?,
        );
        // x * sigmoid(x) and x * hard_sigmoid(x), the gate read by nothing else.
        for (x, gate) in [(a, b), (b, a)] {
            let g = &self.layers[gate];
            let fused = match g.op {
                Op::Activation(Activation::Sigmoid) => Activation::Swish,
                Op::Activation(Activation::HardSigmoid) => Activation::HardSwish,
                Op::Input
                | Op::Conv2d(_)
                | Op::Dense(_)
                | Op::Pool2d(_)
                | Op::GlobalPool(_)
                | Op::Flatten
                | Op::BatchNorm { .. }
                | Op::Activation(
                    Activation::Relu
                    | Activation::Relu6
                    | Activation::Tanh
                    | Activation::Swish
                    | Activation::HardSwish
                    | Activation::LeakyRelu(_),
                )
                | Op::PRelu
                | Op::Softmax
                | Op::Dropout { .. }
                | Op::Identity
                | Op::Lrn(_)
                | Op::Concat
                | Op::Add
                | Op::Scale
                | Op::Shuffle { .. }
                | Op::Slice { .. }
                | Op::Upsample(_)
                | Op::Deconv(_)
                | Op::LayerNorm { .. }
                | Op::Affine { .. }
                | Op::Activation(Activation::Gelu) => continue,
            };
            if g.inputs == [x] && self.reads[gate] == 1 {
                let layer = &mut self.layers[gate];
                layer.op = Op::Activation(fused);
                layer.node = node.name.clone();
                layer.onnx_op = format!("{}+Mul", layer.onnx_op);
                return Ok(self.absorb(gate));
            }
        }
        let (sa, sb) = (self.shape(a), self.shape(b));
        let gate_like = |s: Shape, of: Shape| matches!((s, of), (Shape::Volume { h: 1, w: 1, c }, Shape::Volume { c: c2, .. }) if c == c2);
        let order = if gate_like(sa, sb) && !gate_like(sb, sa) {
            vec![b, a]
        } else {
            vec![a, b]
        };
        self.push(node, Op::Scale, order, vec![])
    }

    fn add(&mut self, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Value> {
        let layer_and_const = match (&inputs.first(), &inputs.get(1)) {
            (Some(Some(Value::Layer(l))), Some(Some(Value::Const(t))))
            | (Some(Some(Value::Const(t))), Some(Some(Value::Layer(l)))) => Some((*l, t.clone())),
            _ => None,
        };
        if let (Some(Some(Value::Partial(p))), Some(Some(Value::Const(one))))
        | (Some(Some(Value::Const(one))), Some(Some(Value::Partial(p)))) =
            (inputs.first(), inputs.get(1))
        {
            if p.form == Form::GeluErf && one.len() == 1 && one.floats()[0] == 1.0 {
                return self.partial(node, p.x, Form::GeluOnePlus);
            }
        }
        if let Some((x, three)) = &layer_and_const {
            if three.len() == 1 && three.floats()[0] == 3.0 && self.read_by(node, "Clip") {
                return self.partial(node, *x, Form::PlusThree);
            }
        }
        let Some((l, bias)) = layer_and_const else {
            let (a, b) = (
                self.layer_input(node, inputs, 0)?,
                self.layer_input(node, inputs, 1)?,
            );
            return self.push(node, Op::Add, vec![a, b], vec![]);
        };
        // MatMul + Add (or a bias-free conv + Add): a bias.
        let uses = self.reads[l];
        let layer = &mut self.layers[l];
        let n = layer.shape.channels() as usize;
        // [N] after a dense; [C, 1, 1] or [1, C, 1, 1] (NCHW broadcasting) after a conv.
        let fits = match layer.shape {
            Shape::Flat(_) => bias.dims.len() <= 2 && bias.dims.last() == Some(&n),
            Shape::Volume { .. } => bias.dims.len() >= 3 && bias.dims[bias.dims.len() - 3] == n,
        } && bias.len() == n;
        let free = match &mut layer.op {
            Op::Dense(d) if !d.bias => Some(&mut d.bias),
            Op::Conv2d(c) if !c.bias => Some(&mut c.bias),
            Op::Input
            | Op::Conv2d(_)
            | Op::Dense(_)
            | Op::Pool2d(_)
            | Op::GlobalPool(_)
            | Op::Flatten
            | Op::BatchNorm { .. }
            | Op::Activation(_)
            | Op::PRelu
            | Op::Softmax
            | Op::Dropout { .. }
            | Op::Identity
            | Op::Lrn(_)
            | Op::Concat
            | Op::Add
            | Op::Scale
            | Op::Shuffle { .. }
            | Op::Slice { .. }
            | Op::Upsample(_)
            | Op::Deconv(_)
            | Op::LayerNorm { .. }
            | Op::Affine { .. } => None,
        };
        match free {
            Some(flag) if uses == 1 && fits => {
                *flag = true;
                layer.params.push(Param {
                    suffix: "bias",
                    dims: vec![n],
                    values: bias.floats(),
                });
                self.reads[l] -= 1;
                Ok(Value::Layer(l))
            }
            _ => {
                let shift = self.per_channel(node, l, &bias, "addend")?;
                self.affine(node, l, None, Some(shift))
            }
        }
    }
}

/// Input `i` is an explicit `Pad` read by other than a conv.
fn padded_error(node: &NodeProto, i: usize) -> Error {
    node_error(
        node,
        format!("input {i} is an explicit Pad, which cnnjit reads only as the padding of the conv that follows it"),
    )
}

/// Input `i` is the Reshape or Transpose of a channel shuffle that this
/// node does not continue.
fn raveled_error(node: &NodeProto, i: usize) -> Error {
    node_error(
        node,
        format!("input {i} is a Reshape of the network's data to one dimension, which cnnjit reads only when a Gather along axis 0 of every element in order views it back"),
    )
}

fn grouped_error(node: &NodeProto, i: usize) -> Error {
    node_error(
        node,
        format!("input {i} is a channel shuffle's Reshape to [N, G, C/G, H, W] or its Transpose, which cnnjit reads only as steps of shuffle(G): Reshape, Transpose(perm = [0, 2, 1, 3, 4]), Reshape back to [N, C, H, W]"),
    )
}

/// `slice(first, count)` of `node`'s channels, each a `u32` as the layer
/// holds it.
fn slice_op(node: &NodeProto, first: usize, count: usize) -> Result<Op> {
    let fit = |n: usize| u32::try_from(n).map_err(|_| node_error(node, "too many channels"));
    Ok(Op::Slice {
        first: fit(first)?,
        count: fit(count)?,
    })
}

/// The groups `G` if reshaping `from` to `to` views a volume's channels as
/// `[N, G, C/G, H, W]` (the first step of a channel shuffle).
fn grouping(from: &[usize], to: &[usize]) -> Option<usize> {
    match (from, to) {
        ([1, c, h, w], [1, g, per_group, h2, w2])
            if g * per_group == *c && (h, w) == (h2, w2) && *g > 0 =>
        {
            Some(*g)
        }
        _ => None,
    }
}

/// Whether `value`, a constant an exporter wrote, is within a relative 1e-6
/// of `wanted` (hard-swish's 6, GELU's sqrt 2 and halves).
fn near(value: f32, wanted: f32) -> bool {
    (value - wanted).abs() <= 1e-6 * wanted.abs()
}

/// Input `i` is a step of hard-sigmoid or hard-swish written in arithmetic
/// that this node does not continue.
fn partial_error(node: &NodeProto, i: usize) -> Error {
    node_error(
        node,
        format!("input {i} is x + 3, relu6(x + 3) or x * relu6(x + 3), which cnnjit reads only as steps of hard_sigmoid (relu6(x + 3) / 6) and hard_swish (x * relu6(x + 3) / 6), or a step of gelu's x (1 + erf(x / sqrt 2)) / 2 that this node does not continue"),
    )
}

/// Two sizes (height, width) from ONNX's list of per-axis values.
fn hw(node: &NodeProto, values: &[i64]) -> Result<Hw> {
    let size = |v: i64| u32::try_from(v).ok().filter(|&v| v > 0);
    match values {
        [h, w] => match (size(*h), size(*w)) {
            (Some(h), Some(w)) => Ok(Hw { h, w }),
            _ => Err(node_error(
                node,
                format!("sizes {values:?} must be positive"),
            )),
        },
        _ => Err(node_error(
            node,
            format!("{values:?}: cnnjit layers are 2-D (two values per list)"),
        )),
    }
}

/// The padding of a conv or pool: `pads` or `auto_pad`.
fn padding(
    node: &NodeProto,
    h: u32,
    w: u32,
    kernel: Hw,
    stride: Hw,
    dilation: Hw,
) -> Result<Padding> {
    let auto = attr(node, "auto_pad")
        .map(|a| a.string())
        .unwrap_or_default();
    let same = || {
        shape::same_padding(h, w, kernel, stride, dilation)
            .map_err(|e| node_error(node, e.to_string()))
    };
    match auto.as_str() {
        "" | "NOTSET" => {
            let pads = Mapper::ints(node, "pads", &[0, 0, 0, 0]);
            let pad = |v: i64| {
                u32::try_from(v)
                    .map_err(|_| node_error(node, format!("pads {pads:?} must not be negative")))
            };
            match pads[..] {
                [top, left, bottom, right] => Ok(Padding {
                    top: pad(top)?,
                    left: pad(left)?,
                    bottom: pad(bottom)?,
                    right: pad(right)?,
                }),
                _ => Err(node_error(
                    node,
                    format!("pads {pads:?}: cnnjit layers are 2-D"),
                )),
            }
        }
        "VALID" => Ok(Padding::default()),
        "SAME_UPPER" => same(),
        "SAME_LOWER" => {
            let p = same()?;
            Ok(Padding {
                top: p.bottom,
                left: p.right,
                bottom: p.top,
                right: p.left,
            })
        }
        other => Err(node_error(node, format!("auto_pad `{other}`"))),
    }
}

impl Error {
    /// An error about the node a layer came from.
    pub fn layer(layer: &Layer, why: impl Into<String>) -> Error {
        Error::Node {
            node: layer.node.clone(),
            op: layer.onnx_op.clone(),
            why: why.into(),
        }
    }
}

//! Expansion: a net's syntax tree to a [`Graph`]. Blocks are inlined with
//! their arguments evaluated, repeats unrolled, `width =` applied, every layer
//! named by DSL.md's rules, and every node given its output shape.
//!
//! Shapes are inferred here, node by node, rather than in a later pass,
//! because expansion itself depends on them: `shortcut = auto` adds a
//! projection only where the body changes the shape, `dwconv` takes its groups
//! from its input, and `pad = same` is resolved to numbers. The rules live in
//! [`cnnjit_ir::shape`]; this module only attaches the offending token to their
//! errors. Alongside the graph it returns each node's [`SpanRange`], which
//! never leaves the compiler.
//!
//! Expansion recurses into every block call, repeat and composite, so it
//! bounds their nesting, blocks calling blocks included, by
//! [`MAX_DEPTH`]: the parser alone cannot, since
//! a chain of flat blocks each calling the next nests only when expanded.

use crate::dsl::ast::*;
use crate::dsl::parse::MAX_DEPTH;
use cnnjit_ir::shape::{self, ShapeError};
use cnnjit_ir::*;
use proc_macro2::Ident;
use std::collections::{HashMap, HashSet};

/// The most layers one net may expand to: a guard against `repeat(1000000000)`.
pub const MAX_LAYERS: usize = 100_000;

/// The most layers, block calls and repeats one net may expand through,
/// counting those that add no node: a guard against blocks with empty bodies
/// calling each other exponentially often.
pub const MAX_EXPANSION_STEPS: usize = 10 * MAX_LAYERS;

pub use crate::dsl::parse::LAYER_NAMES;

/// The convolution `shortcut = auto` writes to project an `h x w` volume onto
/// `ho x wo x c`: `conv(c, 1x1, stride = s, bias = false)` with the stride
/// that maps the input's size onto the target's (a `bn` with the default eps
/// follows it).
pub fn auto_projection([h, w]: [u32; 2], [ho, wo, c]: [u32; 3]) -> Conv2d {
    Conv2d {
        out_channels: c,
        kernel: Hw::square(1),
        stride: Hw {
            h: h.div_ceil(ho.max(1)),
            w: w.div_ceil(wo.max(1)),
        },
        dilation: Hw::square(1),
        padding: Padding::default(),
        groups: 1,
        bias: false,
        depthwise: false,
    }
}

/// A net expanded to a graph, with the span of every node.
#[derive(Clone, Debug)]
pub struct Expanded {
    /// The graph.
    pub graph: Graph,
    /// `spans[i]` is where node `i` was written.
    pub spans: Vec<SpanRange>,
}

/// Expands `net`, with `blocks` visible to it.
pub fn expand_net(net: &NetDef, blocks: &[BlockDef]) -> syn::Result<Expanded> {
    let mut by_name = HashMap::new();
    for block in blocks {
        if by_name.insert(block.name.to_string(), block).is_some() {
            return Err(syn::Error::new(
                block.name.span(),
                format!("block `{}` is defined twice", block.name),
            ));
        }
    }
    let input = match net.input {
        InputDims::Volume(h, w, c) => Shape::Volume {
            h: fit_u32(h, net.input_span)?,
            w: fit_u32(w, net.input_span)?,
            c: fit_u32(c, net.input_span)?,
        },
        InputDims::Flat(n) => Shape::Flat(fit_u32(n, net.input_span)?),
    };
    if elements(input).is_none() {
        return Err(net.input_span.error(format!(
            "arithmetic overflows: the input {input} has more elements than fit in 64 bits"
        )));
    }
    if input.is_empty() {
        return Err(net
            .input_span
            .error(format!("the input {input} has no element")));
    }
    let mut expander = Expander {
        blocks: by_name,
        width: net.width.map(|(w, _)| w),
        nodes: vec![Node {
            name: "input".into(),
            op: Op::Input,
            inputs: Vec::new().into(),
            output: input,
        }],
        spans: vec![net.input_span],
        names: HashSet::from(["input".to_string()]),
        calls: Vec::new(),
        steps: 0,
        depth: 0,
    };
    let mut scope = Scope::default();
    let env = Env::default();
    let last = expander.seq(&net.body, NodeId(0), &mut scope, &env)?;
    if last == NodeId(0) {
        return Err(syn::Error::new(
            net.name.span(),
            format!("net `{}` has no layer", net.name),
        ));
    }
    Ok(Expanded {
        graph: Graph {
            name: net.name.to_string().into(),
            nodes: expander.nodes.into(),
        },
        spans: expander.spans,
    })
}

/// A shape's element count, or `None` where it does not fit in 64 bits
/// (three `u32` dimensions can reach 2^96); [`Shape::len`] assumes it fits.
fn elements(shape: Shape) -> Option<u64> {
    match shape {
        Shape::Volume { h, w, c } => u64::from(h)
            .checked_mul(u64::from(w))?
            .checked_mul(u64::from(c)),
        Shape::Flat(n) => Some(u64::from(n)),
    }
}

fn fit_u32(n: u64, span: SpanRange) -> syn::Result<u32> {
    u32::try_from(n)
        .map_err(|_| span.error(format!("arithmetic overflows: {n} does not fit in 32 bits")))
}

/// A naming scope: a prefix (`layer1.0.`) and per-kind counts.
#[derive(Default)]
struct Scope {
    prefix: String,
    counts: HashMap<&'static str, u32>,
}

impl Scope {
    fn nested(&self, label: &Ident) -> Scope {
        Scope {
            prefix: format!("{}{}.", self.prefix, label),
            counts: HashMap::new(),
        }
    }

    /// The next name for a layer of `kind`: its label, or kind + count.
    fn name(&mut self, kind: &'static str, label: Option<&Ident>) -> String {
        let count = self.counts.entry(kind).or_insert(0);
        *count += 1;
        match label {
            Some(label) => format!("{}{}", self.prefix, label),
            None => format!("{}{}{}", self.prefix, kind, count),
        }
    }
}

/// Block parameters in force.
#[derive(Default, Clone)]
struct Env {
    params: HashMap<String, i64>,
}

struct Expander<'a> {
    blocks: HashMap<String, &'a BlockDef>,
    width: Option<f64>,
    nodes: Vec<Node>,
    spans: Vec<SpanRange>,
    names: HashSet<String>,
    /// Blocks being expanded, outermost first: recursion shows up here.
    calls: Vec<String>,
    /// Layers expanded so far, see [`MAX_EXPANSION_STEPS`].
    steps: usize,
    /// Sequences being expanded, one inside the other: at most [`MAX_DEPTH`].
    depth: usize,
}

impl<'a> Expander<'a> {
    fn shape(&self, id: NodeId) -> Shape {
        self.nodes[id.index()].output
    }

    /// Adds a node, inferring its shape; `what` is the layer as written, for errors.
    fn push(
        &mut self,
        name: String,
        op: Op,
        inputs: Vec<NodeId>,
        span: SpanRange,
        what: &dyn std::fmt::Display,
    ) -> syn::Result<NodeId> {
        if self.nodes.len() >= MAX_LAYERS {
            return Err(span.error(format!(
                "the network expands to more than {MAX_LAYERS} layers"
            )));
        }
        let shapes: Vec<Shape> = inputs.iter().map(|&i| self.shape(i)).collect();
        let output =
            shape::output_shape(&op, &shapes).map_err(|e| span.error(format!("{what}: {e}")))?;
        if elements(output).is_none() {
            return Err(span.error(format!(
                "{what}: arithmetic overflows: the output {output} has more elements than fit in 64 bits"
            )));
        }
        if !self.names.insert(name.clone()) {
            return Err(span.error(format!(
                "{what}: the layer name `{name}` is already taken; give it another label"
            )));
        }
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.into(),
            output,
        });
        self.spans.push(span);
        Ok(NodeId(self.nodes.len() as u32 - 1))
    }

    fn seq(
        &mut self,
        seq: &Seq,
        mut cur: NodeId,
        scope: &mut Scope,
        env: &Env,
    ) -> syn::Result<NodeId> {
        self.depth += 1;
        for layer in &seq.0 {
            if self.depth > MAX_DEPTH {
                return Err(layer.span.error(format!(
                    "layers nest too deeply: this layer is inside more than {MAX_DEPTH} levels of blocks, repeats, concats, residuals and scales, counting blocks calling blocks"
                )));
            }
            cur = self.layer(layer, cur, scope, env)?;
        }
        self.depth -= 1;
        Ok(cur)
    }

    fn layer(
        &mut self,
        layer: &Layer,
        input: NodeId,
        scope: &mut Scope,
        env: &Env,
    ) -> syn::Result<NodeId> {
        self.steps += 1;
        if self.steps > MAX_EXPANSION_STEPS {
            return Err(layer.span.error(format!(
                "the network takes more than {MAX_EXPANSION_STEPS} steps to expand (layers, block calls and repeats)"
            )));
        }
        let label = layer.label.as_ref();
        let span = layer.span;
        match &layer.op {
            LayerOp::Call(call) => {
                let word = call.name.to_string();
                if let Some(kind) = canonical_kind(&word) {
                    let op = self.build_op(kind, call, input, env)?;
                    let name = scope.name(op.kind(), label);
                    self.push(name, op, vec![input], span, call)
                } else if let Some(block) = self.blocks.get(&word).copied() {
                    self.call_block(block, call, input, scope, label, env)
                } else {
                    Err(syn::Error::new(
                        call.name.span(),
                        unknown_layer(&word, self.blocks.keys()),
                    ))
                }
            }
            LayerOp::Repeat { count, body } => {
                let n = eval(count, env)?;
                if n < 1 {
                    return Err(count
                        .span()
                        .error(format!("repeat needs a count of at least 1, found {n}")));
                }
                let mut cur = input;
                for i in 0..n {
                    let before = self.nodes.len();
                    cur = match label {
                        Some(label) => {
                            let mut inner = Scope {
                                prefix: format!("{}{}.{}.", scope.prefix, label, i),
                                counts: HashMap::new(),
                            };
                            self.seq(body, cur, &mut inner, env)?
                        }
                        None => self.seq(body, cur, scope, env)?,
                    };
                    if self.nodes.len() == before {
                        // An empty body: the remaining iterations would do
                        // nothing either (and `repeat(4294967295) {}` would take hours).
                        break;
                    }
                }
                Ok(cur)
            }
            LayerOp::Concat { branches } => {
                let mut inner = label.map(|l| scope.nested(l));
                let mut outs = Vec::new();
                for branch in branches {
                    let s = inner.as_mut().unwrap_or(&mut *scope);
                    outs.push(self.seq(branch, input, s, env)?);
                }
                let name = scope.name("concat", label);
                self.push(name, Op::Concat, outs, span, &"concat")
            }
            LayerOp::Residual { shortcut, body } => {
                let mut inner = label.map(|l| scope.nested(l));
                let s = inner.as_mut().unwrap_or(&mut *scope);
                let out = self.seq(body, input, s, env)?;
                let (body_shape, in_shape) = (self.shape(out), self.shape(input));
                let short = match shortcut {
                    Shortcut::Identity if body_shape != in_shape => {
                        return Err(span.error(format!(
                            "residual: the body changes the shape from {in_shape} to {body_shape}, so an identity shortcut cannot be added; use `residual(shortcut = auto)` for a 1x1 projection"
                        )))
                    }
                    Shortcut::Identity => input,
                    Shortcut::Auto if body_shape == in_shape => input,
                    Shortcut::Auto => self.projection(input, body_shape, s, span)?,
                    Shortcut::Explicit(seq) => self.seq(seq, input, s, env)?,
                };
                let name = scope.name("residual", label);
                self.push(name, Op::Add, vec![out, short], span, &"residual")
            }
            LayerOp::Scale { body } => {
                let mut inner = label.map(|l| scope.nested(l));
                let s = inner.as_mut().unwrap_or(&mut *scope);
                let gate = self.seq(body, input, s, env)?;
                let name = scope.name("scale", label);
                self.push(name, Op::Scale, vec![input, gate], span, &"scale")
            }
        }
    }

    /// ResNet's projection shortcut: `conv(C, 1x1, stride = s, bias = false), bn`.
    fn projection(
        &mut self,
        input: NodeId,
        target: Shape,
        scope: &mut Scope,
        span: SpanRange,
    ) -> syn::Result<NodeId> {
        let from = self.shape(input);
        let (Shape::Volume { h, w, .. }, Shape::Volume { h: ho, w: wo, c }) = (from, target) else {
            let example = match target {
                Shape::Flat(n) => format!("`shortcut = [dense({n})]`"),
                _ => "`shortcut = [ ... ]`".to_string(),
            };
            return Err(span.error(format!(
                "residual: `shortcut = auto` projects volumes, but the body goes from {from} to {target}; write the shortcut out, e.g. {example}"
            )));
        };
        let conv = Op::Conv2d(auto_projection([h, w], [ho, wo, c]));
        let what = format!("residual(shortcut = auto) from {from} to {target}");
        let name = scope.name("conv", None);
        let conv = self.push(name, conv, vec![input], span, &what)?;
        if self.shape(conv) != target {
            return Err(span.error(format!(
                "{what}: no 1x1 strided projection gives {target} (it gives {}); write the shortcut out with `shortcut = [ ... ]`",
                self.shape(conv)
            )));
        }
        let name = scope.name("bn", None);
        self.push(name, Op::BatchNorm { eps: 1e-5 }, vec![conv], span, &what)
    }

    fn call_block(
        &mut self,
        block: &'a BlockDef,
        call: &Call,
        input: NodeId,
        scope: &mut Scope,
        label: Option<&Ident>,
        env: &Env,
    ) -> syn::Result<NodeId> {
        let name = block.name.to_string();
        if self.calls.contains(&name) {
            let mut chain = self.calls.clone();
            chain.push(name.clone());
            let start = chain.iter().position(|c| *c == name).unwrap_or(0);
            return Err(syn::Error::new(
                call.name.span(),
                format!(
                    "recursion between blocks: `{}`",
                    chain[start..].join("` calls `")
                ),
            ));
        }
        if call.args.len() != block.params.len() {
            return Err(syn::Error::new(
                call.name.span(),
                format!(
                    "block `{name}` takes {} argument{} ({}), found {}",
                    block.params.len(),
                    if block.params.len() == 1 { "" } else { "s" },
                    block
                        .params
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    call.args.len()
                ),
            ));
        }
        let mut inner_env = Env::default();
        for (param, arg) in block.params.iter().zip(&call.args) {
            if let Some(key) = &arg.key {
                return Err(syn::Error::new(
                    key.span(),
                    format!("block arguments are positional; found `{key} =`"),
                ));
            }
            inner_env
                .params
                .insert(param.to_string(), int_value(&arg.value, arg.span, env)?);
        }
        self.calls.push(name);
        let out = match label {
            Some(label) => {
                let mut inner = scope.nested(label);
                self.seq(&block.body, input, &mut inner, &inner_env)
            }
            None => self.seq(&block.body, input, scope, &inner_env),
        };
        self.calls.pop();
        out
    }

    /// The op of a built-in layer call.
    fn build_op(
        &self,
        kind: &'static str,
        call: &Call,
        input: NodeId,
        env: &Env,
    ) -> syn::Result<Op> {
        let spec = layer_spec(kind);
        let args = Args::new(call, spec, env)?;
        let in_shape = self.shape(input);
        Ok(match kind {
            "conv" | "dwconv" => {
                let (h, w, c) = shape::volume(in_shape).map_err(|e| call_error(call, e))?;
                let depthwise = kind == "dwconv";
                let kernel = args.dims("kernel")?.expect("kernel is required");
                let stride = args.dims("stride")?.unwrap_or(Hw::square(1));
                let dilation = args.dims("dilation")?.unwrap_or(Hw::square(1));
                let (out_channels, groups) = if depthwise {
                    let m = args.int("multiplier")?.unwrap_or(1);
                    (c.checked_mul(m).ok_or_else(|| args.overflow())?, c)
                } else {
                    let k = args.int("K")?.expect("K is required");
                    (self.apply_width(k), args.int("groups")?.unwrap_or(1))
                };
                let padding = args.padding(h, w, kernel, stride, dilation)?;
                Op::Conv2d(Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    dilation,
                    padding,
                    groups,
                    bias: args.bool("bias")?.unwrap_or(true),
                    depthwise,
                })
            }
            "dense" => Op::Dense(Dense {
                out_features: args.int("N")?.expect("N is required"),
                bias: args.bool("bias")?.unwrap_or(true),
            }),
            "maxpool" | "avgpool" => {
                let (h, w, _) = shape::volume(in_shape).map_err(|e| call_error(call, e))?;
                let kernel = args.dims("kernel")?.expect("kernel is required");
                let stride = args.dims("stride")?.unwrap_or(kernel);
                let padding = args.padding(h, w, kernel, stride, Hw::square(1))?;
                pool_padding_fits(&args, kernel, padding)?;
                Op::Pool2d(Pool2d {
                    kind: if kind == "maxpool" {
                        PoolKind::Max
                    } else {
                        PoolKind::Avg
                    },
                    kernel,
                    stride,
                    padding,
                    ceil: args.bool("ceil")?.unwrap_or(false),
                    count_include_pad: args.bool("count_include_pad")?.unwrap_or(true),
                })
            }
            "global_avgpool" => Op::GlobalPool(PoolKind::Avg),
            "global_maxpool" => Op::GlobalPool(PoolKind::Max),
            "flatten" => Op::Flatten,
            "bn" => {
                let eps = args.float("eps")?.unwrap_or(1e-5);
                if eps <= 0.0 {
                    return Err(args.error(
                        "eps",
                        format!("{call}: `eps` must be greater than 0, found {eps}; it keeps `sqrt(running_var + eps)` away from zero"),
                    ));
                }
                Op::BatchNorm { eps }
            }
            "relu" => Op::Activation(Activation::Relu),
            "relu6" => Op::Activation(Activation::Relu6),
            "tanh" => Op::Activation(Activation::Tanh),
            "sigmoid" => Op::Activation(Activation::Sigmoid),
            "swish" => Op::Activation(Activation::Swish),
            "hard_swish" => Op::Activation(Activation::HardSwish),
            "hard_sigmoid" => Op::Activation(Activation::HardSigmoid),
            "leaky_relu" => Op::Activation(Activation::LeakyRelu(args.float("a")?.unwrap_or(0.01))),
            "softmax" => Op::Softmax,
            "dropout" => {
                let p = args.float("p")?.unwrap_or(0.5);
                if !(0.0..1.0).contains(&p) {
                    return Err(args.error(
                        "p",
                        format!("{call}: a drop probability must be in [0, 1), found {p}"),
                    ));
                }
                Op::Dropout { p }
            }
            "identity" => Op::Identity,
            "lrn" => {
                let size = args.int("size")?.ok_or_else(|| {
                    syn::Error::new(
                        call.name.span(),
                        format!("{call}: lrn needs a size, e.g. `lrn(size = 5)`"),
                    )
                })?;
                Op::Lrn(Lrn {
                    size,
                    alpha: args.float("alpha")?.unwrap_or(1e-4),
                    beta: args.float("beta")?.unwrap_or(0.75),
                    k: args.float("k")?.unwrap_or(1.0),
                })
            }
            _ => unreachable!("every canonical kind has a builder"),
        })
    }

    /// `width = a`: round(K a), at least 1.
    fn apply_width(&self, k: u32) -> u32 {
        match self.width {
            Some(a) => ((k as f64 * a).round() as u32).max(1),
            None => k,
        }
    }
}

/// PyTorch's rule for pools: padding at most half the kernel on each side
/// (beyond it, windows see mostly or only padding: -inf or a 0/0 average).
/// `pad = same` always keeps it.
fn pool_padding_fits(args: &Args, kernel: Hw, padding: Padding) -> syn::Result<()> {
    let (ph, pw) = (
        padding.top.max(padding.bottom),
        padding.left.max(padding.right),
    );
    let (most_h, most_w) = (kernel.h / 2, kernel.w / 2);
    if ph <= most_h && pw <= most_w {
        return Ok(());
    }
    let pair = |a: u32, b: u32| {
        if a == b {
            a.to_string()
        } else {
            format!("({a}, {b})")
        }
    };
    Err(args.error(
        "pad",
        format!(
            "{}: `pad` must be at most half the kernel, {} for {}x{} (PyTorch's rule), found {}",
            args.call,
            pair(most_h, most_w),
            kernel.h,
            kernel.w,
            pair(ph, pw)
        ),
    ))
}

fn call_error(call: &Call, e: ShapeError) -> syn::Error {
    syn::Error::new(call.name.span(), format!("{call}: {e}"))
}

/// The canonical kind of a built-in layer word (aliases resolved).
fn canonical_kind(word: &str) -> Option<&'static str> {
    Some(match word {
        "conv" => "conv",
        "dwconv" => "dwconv",
        "dense" | "fc" => "dense",
        "maxpool" => "maxpool",
        "avgpool" => "avgpool",
        "global_avgpool" => "global_avgpool",
        "global_maxpool" => "global_maxpool",
        "flatten" => "flatten",
        "bn" | "batchnorm" => "bn",
        "relu" => "relu",
        "relu6" => "relu6",
        "tanh" => "tanh",
        "sigmoid" => "sigmoid",
        "swish" | "silu" => "swish",
        "hard_swish" | "hardswish" => "hard_swish",
        "hard_sigmoid" => "hard_sigmoid",
        "leaky_relu" => "leaky_relu",
        "softmax" => "softmax",
        "dropout" => "dropout",
        "identity" => "identity",
        "lrn" => "lrn",
        _ => return None,
    })
}

/// What a value must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ty {
    Int,
    Dims,
    Float,
    Bool,
    Pad,
}

/// A layer's arguments: positional ones by name, then keyed ones, and which are required.
struct Spec {
    usage: &'static str,
    positional: &'static [(&'static str, Ty)],
    required: usize,
    keys: &'static [(&'static str, Ty)],
}

fn layer_spec(kind: &str) -> Spec {
    const NONE: Spec = Spec {
        usage: "takes no argument",
        positional: &[],
        required: 0,
        keys: &[],
    };
    match kind {
        "conv" => Spec {
            usage: "conv(K, FhxFw, stride = s, pad = p, dilation = d, groups = g, bias = false)",
            positional: &[("K", Ty::Int), ("kernel", Ty::Dims)],
            required: 2,
            keys: &[
                ("stride", Ty::Dims),
                ("pad", Ty::Pad),
                ("dilation", Ty::Dims),
                ("groups", Ty::Int),
                ("bias", Ty::Bool),
            ],
        },
        "dwconv" => Spec {
            usage: "dwconv(FhxFw, stride = s, pad = p, dilation = d, multiplier = m, bias = false)",
            positional: &[("kernel", Ty::Dims)],
            required: 1,
            keys: &[
                ("stride", Ty::Dims),
                ("pad", Ty::Pad),
                ("dilation", Ty::Dims),
                ("multiplier", Ty::Int),
                ("bias", Ty::Bool),
            ],
        },
        "dense" => Spec {
            usage: "dense(N, bias = false)",
            positional: &[("N", Ty::Int)],
            required: 1,
            keys: &[("bias", Ty::Bool)],
        },
        "maxpool" => Spec {
            usage: "maxpool(FhxFw, stride = s, pad = p, ceil = true)",
            positional: &[("kernel", Ty::Dims)],
            required: 1,
            keys: &[("stride", Ty::Dims), ("pad", Ty::Pad), ("ceil", Ty::Bool)],
        },
        "avgpool" => Spec {
            usage: "avgpool(FhxFw, stride = s, pad = p, ceil = true, count_include_pad = false)",
            positional: &[("kernel", Ty::Dims)],
            required: 1,
            keys: &[
                ("stride", Ty::Dims),
                ("pad", Ty::Pad),
                ("ceil", Ty::Bool),
                ("count_include_pad", Ty::Bool),
            ],
        },
        "bn" => Spec {
            usage: "bn(eps = 1e-5)",
            positional: &[],
            required: 0,
            keys: &[("eps", Ty::Float)],
        },
        "leaky_relu" => Spec {
            usage: "leaky_relu(a)",
            positional: &[("a", Ty::Float)],
            required: 0,
            keys: &[],
        },
        "dropout" => Spec {
            usage: "dropout(p)",
            positional: &[("p", Ty::Float)],
            required: 0,
            keys: &[],
        },
        "lrn" => Spec {
            usage: "lrn(size = n, alpha = 1e-4, beta = 0.75, k = 1.0)",
            positional: &[("size", Ty::Int)],
            required: 0,
            keys: &[
                ("size", Ty::Int),
                ("alpha", Ty::Float),
                ("beta", Ty::Float),
                ("k", Ty::Float),
            ],
        },
        _ => NONE,
    }
}

/// A call's arguments matched against its [`Spec`].
struct Args<'c> {
    call: &'c Call,
    values: HashMap<&'static str, (&'c Value, SpanRange, Ty)>,
    env: &'c Env,
}

impl<'c> Args<'c> {
    fn new(call: &'c Call, spec: Spec, env: &'c Env) -> syn::Result<Self> {
        let mut values = HashMap::new();
        let mut positional = 0;
        for arg in &call.args {
            let (name, ty) = match &arg.key {
                None => {
                    let Some(&(name, ty)) = spec.positional.get(positional) else {
                        return Err(arg.span.error(format!(
                            "{call}: too many arguments; {} {}",
                            call.name,
                            if spec.positional.is_empty() && spec.keys.is_empty() {
                                spec.usage.to_string()
                            } else {
                                format!("is written `{}`", spec.usage)
                            }
                        )));
                    };
                    positional += 1;
                    (name, ty)
                }
                Some(key) => {
                    let key_str = key.to_string();
                    let Some(&(name, ty)) = spec.keys.iter().find(|(k, _)| *k == key_str) else {
                        let expected: Vec<&str> = spec.keys.iter().map(|(k, _)| *k).collect();
                        let hint = match nearest(&key_str, expected.iter().copied()) {
                            Some(near) => format!("; did you mean `{near}`?"),
                            None if expected.is_empty() => {
                                format!("; {} takes no named argument", call.name)
                            }
                            None => format!("; expected one of: {}", expected.join(", ")),
                        };
                        return Err(syn::Error::new(
                            key.span(),
                            format!("{call}: unknown argument `{key}`{hint}"),
                        ));
                    };
                    (name, ty)
                }
            };
            if values.insert(name, (&arg.value, arg.span, ty)).is_some() {
                return Err(arg.span.error(format!("{call}: `{name}` is given twice")));
            }
        }
        if positional < spec.required {
            let missing = spec.positional[positional].0;
            return Err(syn::Error::new(
                call.name.span(),
                format!(
                    "{call}: missing `{missing}`; {} is written `{}`",
                    call.name, spec.usage
                ),
            ));
        }
        Ok(Args { call, values, env })
    }

    fn error(&self, name: &str, message: String) -> syn::Error {
        match self.values.get(name) {
            Some((_, span, _)) => span.error(message),
            None => syn::Error::new(self.call.name.span(), message),
        }
    }

    fn overflow(&self) -> syn::Error {
        syn::Error::new(
            self.call.name.span(),
            format!("{}: arithmetic overflows", self.call),
        )
    }

    fn expected(&self, name: &str, what: &str, value: &Value) -> syn::Error {
        self.error(
            name,
            format!(
                "{}: expected {what} for `{name}`, found `{value}`",
                self.call
            ),
        )
    }

    /// A word (`same`, `foo`) where a number is expected, when it is neither
    /// a block parameter nor a likely typo of one: a wrong type, not an unknown
    /// parameter.
    fn stray_word(&self, name: &str, what: &str, value: &Value) -> Option<syn::Error> {
        let Value::Word(word) = value else {
            return None;
        };
        let word = word.to_string();
        let params = self.env.params.keys().map(|k| k.as_str());
        (!self.env.params.contains_key(&word) && nearest(&word, params).is_none())
            .then(|| self.expected(name, what, value))
    }

    fn int(&self, name: &str) -> syn::Result<Option<u32>> {
        let Some(&(value, span, _)) = self.values.get(name) else {
            return Ok(None);
        };
        if let Some(e) = self.stray_word(name, "an integer", value) {
            return Err(e);
        }
        let n = int_value(value, span, self.env)
            .map_err(|e| self.error(name, format!("{}: {e}", self.call)))?;
        self.fit(name, n, 0).map(Some)
    }

    /// `n` as a `u32` of at least `min`, or an error saying which bound it passes.
    fn fit(&self, name: &str, n: i64, min: u32) -> syn::Result<u32> {
        let call = self.call;
        match u32::try_from(n) {
            Ok(n) if n >= min => Ok(n),
            _ if n > i64::from(u32::MAX) => Err(self.error(
                name,
                format!(
                    "{call}: `{name}` is too large: at most {}, found {n}",
                    u32::MAX
                ),
            )),
            _ if min == 0 => Err(self.error(
                name,
                format!("{call}: `{name}` must not be negative, found {n}"),
            )),
            _ => Err(self.error(
                name,
                format!("{call}: `{name}` must be at least {min}, found {n}"),
            )),
        }
    }

    fn dims(&self, name: &str) -> syn::Result<Option<Hw>> {
        let Some(&(value, span, _)) = self.values.get(name) else {
            return Ok(None);
        };
        let what = "a size such as `3x3`, `(a, b)` or `3`";
        if let Some(e) = self.stray_word(name, what, value) {
            return Err(e);
        }
        let (h, w) = match value {
            Value::Dims(a, b) => (eval(a, self.env)?, eval(b, self.env)?),
            Value::Expr(_) | Value::Word(_) => {
                let n = int_value(value, span, self.env)?;
                (n, n)
            }
            other => return Err(self.expected(name, what, other)),
        };
        Ok(Some(Hw {
            h: self.fit(name, h, 1)?,
            w: self.fit(name, w, 1)?,
        }))
    }

    fn float(&self, name: &str) -> syn::Result<Option<f32>> {
        let x = match self.values.get(name) {
            None => return Ok(None),
            Some((Value::Float(x), _, _)) => *x as f32,
            Some((Value::Expr(Expr::Int(n, _)), _, _)) => *n as f32,
            Some((other, _, _)) => return Err(self.expected(name, "a number", other)),
        };
        if !x.is_finite() {
            return Err(self.error(
                name,
                format!(
                    "{}: `{name}` must be a finite 32-bit float, found {x}",
                    self.call
                ),
            ));
        }
        Ok(Some(x))
    }

    fn bool(&self, name: &str) -> syn::Result<Option<bool>> {
        match self.values.get(name) {
            None => Ok(None),
            Some((Value::Bool(b), _, _)) => Ok(Some(*b)),
            Some((other, _, _)) => Err(self.expected(name, "`true` or `false`", other)),
        }
    }

    /// `pad = valid | same | p | (ph, pw)`, resolved against an `h x w` input.
    fn padding(
        &self,
        h: u32,
        w: u32,
        kernel: Hw,
        stride: Hw,
        dilation: Hw,
    ) -> syn::Result<Padding> {
        let Some(&(value, _, _)) = self.values.get("pad") else {
            return Ok(Padding::default());
        };
        match value {
            Value::Word(word) if word == "valid" => Ok(Padding::default()),
            Value::Word(word) if word == "same" => {
                shape::same_padding(h, w, kernel, stride, dilation)
                    .map_err(|e| self.error("pad", format!("{}: {e}", self.call)))
            }
            Value::Word(word) if !self.env.params.contains_key(&word.to_string()) => {
                Err(self.expected("pad", "`valid`, `same`, a number or `(ph, pw)`", value))
            }
            _ => {
                let zero_ok = |n: i64| self.fit("pad", n, 0);
                let (ph, pw) = match value {
                    Value::Dims(a, b) => {
                        (zero_ok(eval(a, self.env)?)?, zero_ok(eval(b, self.env)?)?)
                    }
                    Value::Expr(_) | Value::Word(_) => {
                        let p = zero_ok(int_value(
                            value,
                            SpanRange::single(self.call.name.span()),
                            self.env,
                        )?)?;
                        (p, p)
                    }
                    other => {
                        return Err(self.expected(
                            "pad",
                            "`valid`, `same`, a number or `(ph, pw)`",
                            other,
                        ))
                    }
                };
                Ok(Padding {
                    top: ph,
                    left: pw,
                    bottom: ph,
                    right: pw,
                })
            }
        }
    }
}

/// An integer value: an expression, or a lone block parameter.
fn int_value(value: &Value, span: SpanRange, env: &Env) -> syn::Result<i64> {
    match value {
        Value::Expr(e) => eval(e, env),
        Value::Word(w) => eval(&Expr::Param(w.clone()), env),
        other => Err(span.error(format!("expected an integer, found `{other}`"))),
    }
}

/// Evaluates an integer expression with checked arithmetic.
fn eval(expr: &Expr, env: &Env) -> syn::Result<i64> {
    let overflow = || {
        expr.span()
            .error(format!("arithmetic overflows in `{expr}`"))
    };
    match expr {
        Expr::Int(n, span) => i64::try_from(*n).map_err(|_| {
            SpanRange::single(*span).error(format!("arithmetic overflows: `{n}` is too large"))
        }),
        Expr::Param(name) => env.params.get(&name.to_string()).copied().ok_or_else(|| {
            let known: Vec<&str> = env.params.keys().map(|s| s.as_str()).collect();
            let hint = match nearest(&name.to_string(), known.iter().copied()) {
                Some(near) => format!("; did you mean `{near}`?"),
                None if known.is_empty() => {
                    "; only block parameters may appear in expressions".to_string()
                }
                None => format!("; the block's parameters are: {}", known.join(", ")),
            };
            syn::Error::new(name.span(), format!("unknown parameter `{name}`{hint}"))
        }),
        Expr::Neg(e, _) => eval(e, env)?.checked_neg().ok_or_else(overflow),
        Expr::Paren(e, _) => eval(e, env),
        Expr::Binary(a, op, b) => {
            let (x, y) = (eval(a, env)?, eval(b, env)?);
            match op {
                BinOp::Add => x.checked_add(y).ok_or_else(overflow),
                BinOp::Sub => x.checked_sub(y).ok_or_else(overflow),
                BinOp::Mul => x.checked_mul(y).ok_or_else(overflow),
                BinOp::Div if y == 0 => {
                    Err(expr.span().error(format!("division by zero in `{expr}`")))
                }
                BinOp::Div => x.checked_div(y).ok_or_else(overflow),
            }
        }
    }
}

fn unknown_layer<'b>(word: &str, blocks: impl Iterator<Item = &'b String>) -> String {
    // A composite written without its braces (`concat`, `repeat(2)` alone).
    let composite = match word {
        "repeat" => Some("repeat(n) { ... }"),
        "concat" => Some("concat { [ ... ], [ ... ] }"),
        "residual" => Some("residual { ... }` or `residual(shortcut = auto) { ... }"),
        "scale" => Some("scale { ... }"),
        _ => None,
    };
    if let Some(usage) = composite {
        return format!("`{word}` is written `{usage}`");
    }
    let blocks: Vec<&str> = blocks.map(|s| s.as_str()).collect();
    let candidates = LAYER_NAMES.iter().copied().chain(blocks.iter().copied());
    match nearest(word, candidates) {
        Some(near) => format!("unknown layer `{word}`; did you mean `{near}`?"),
        None => format!("unknown layer `{word}`; expected a layer such as `conv`, `relu`, `maxpool`, or a block defined with `block {word}(...)`"),
    }
}

/// The candidate closest to `word` by edit distance, if close enough to be a typo.
pub fn nearest<'b>(word: &str, candidates: impl Iterator<Item = &'b str>) -> Option<&'b str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (word.len().max(c.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting an insertion, a deletion, a substitution or a swap
/// of two neighbouring letters (`rleu` for `relu`) as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Rows i-2, i-1 and i of the table of distances between prefixes.
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let mut d = (prev[j - 1] + usize::from(a[i - 1] != b[j - 1]))
                .min(prev[j] + 1)
                .min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

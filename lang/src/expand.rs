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
use crate::dsl::layers::{self, Args as _, Ty, Val, BN_EPS};
use crate::dsl::parse::MAX_DEPTH;
use crate::dsl::print::Item;
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

/// The convolution `shortcut = auto` writes to project an `h x w` volume onto
/// `ho x wo x c`: `conv(c, 1x1, stride = s, bias = false)` with the stride
/// that maps the input's size onto the target's (a `bn` with the default eps
/// follows it).
pub fn auto_projection([h, w]: [u32; 2], [ho, wo, c]: [u32; 3]) -> Conv2d {
    let stride = Hw {
        h: h.div_ceil(ho.max(1)),
        w: w.div_ceil(wo.max(1)),
    };
    Conv2d::pointwise(c, stride)
}

/// A net expanded to a graph, with the span of every node.
#[derive(Clone, Debug)]
pub struct Expanded {
    /// The graph.
    pub graph: Graph,
    /// `spans[i]` is where node `i` was written.
    pub spans: Vec<SpanRange>,
    /// The net's nodes as the text nests them (blocks and repeats inlined):
    /// what [`crate::dsl::print::graph`] writes back.
    pub items: Vec<Item>,
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
        items: Vec::new(),
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
        items: expander.items,
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
    /// The items of the sequence being expanded, so far.
    items: Vec<Item>,
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
                if let Some(row) = layers::find(&word) {
                    let op = self.build_op(row, call, input, env)?;
                    let name = scope.name(op.kind(), label);
                    let id = self.push(name, op, vec![input], span, call)?;
                    self.items.push(Item::Layer(id.index()));
                    Ok(id)
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
                let mut written = Vec::new();
                for branch in branches {
                    let s = inner.as_mut().unwrap_or(&mut *scope);
                    let (out, items) = self.collect(|e| e.seq(branch, input, s, env))?;
                    outs.push(out);
                    written.push(items);
                }
                let name = scope.name("concat", label);
                let join = self.push(name, Op::Concat, outs, span, &"concat")?;
                self.items.push(Item::Concat {
                    branches: written,
                    join: join.index(),
                });
                Ok(join)
            }
            LayerOp::Residual { shortcut, body } => {
                let mut inner = label.map(|l| scope.nested(l));
                let s = inner.as_mut().unwrap_or(&mut *scope);
                let (out, body) = self.collect(|e| e.seq(body, input, s, env))?;
                let (body_shape, in_shape) = (self.shape(out), self.shape(input));
                let (short, shortcut) = self.collect(|e| match shortcut {
                    Shortcut::Identity if body_shape != in_shape => {
                        Err(span.error(format!(
                            "residual: the body changes the shape from {in_shape} to {body_shape}, so an identity shortcut cannot be added; use `residual(shortcut = auto)` for a 1x1 projection"
                        )))
                    }
                    Shortcut::Identity => Ok(input),
                    Shortcut::Auto if body_shape == in_shape => Ok(input),
                    Shortcut::Auto => e.projection(input, body_shape, s, span),
                    Shortcut::Explicit(seq) => e.seq(seq, input, s, env),
                })?;
                let name = scope.name("residual", label);
                let join = self.push(name, Op::Add, vec![out, short], span, &"residual")?;
                self.items.push(Item::Residual {
                    body,
                    shortcut,
                    join: join.index(),
                });
                Ok(join)
            }
            LayerOp::Scale { body } => {
                let mut inner = label.map(|l| scope.nested(l));
                let s = inner.as_mut().unwrap_or(&mut *scope);
                let (gate, body) = self.collect(|e| e.seq(body, input, s, env))?;
                let name = scope.name("scale", label);
                let join = self.push(name, Op::Scale, vec![input, gate], span, &"scale")?;
                self.items.push(Item::Scale {
                    body,
                    join: join.index(),
                });
                Ok(join)
            }
        }
    }

    /// Runs `f` on a sequence of its own: its result and the items it wrote.
    fn collect<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> syn::Result<T>,
    ) -> syn::Result<(T, Vec<Item>)> {
        let outer = std::mem::take(&mut self.items);
        let result = f(self);
        let inner = std::mem::replace(&mut self.items, outer);
        Ok((result?, inner))
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
        let bn = self.push(name, Op::BatchNorm { eps: BN_EPS }, vec![conv], span, &what)?;
        self.items
            .extend([Item::Layer(conv.index()), Item::Layer(bn.index())]);
        Ok(bn)
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
        row: &'static layers::Layer,
        call: &Call,
        input: NodeId,
        env: &Env,
    ) -> syn::Result<Op> {
        let args = CallArgs::new(call, row, env, self.shape(input), self.width)?;
        (row.build)(&args)
    }
}

/// A call's arguments matched against its row of the layer table.
struct CallArgs<'c> {
    call: &'c Call,
    row: &'static layers::Layer,
    values: HashMap<&'static str, (&'c Value, SpanRange, Ty)>,
    env: &'c Env,
    input: Shape,
    width: Option<f64>,
}

impl<'c> CallArgs<'c> {
    fn new(
        call: &'c Call,
        spec: &'static layers::Layer,
        env: &'c Env,
        input: Shape,
        width: Option<f64>,
    ) -> syn::Result<Self> {
        let mut values = HashMap::new();
        let mut positional = 0;
        for arg in &call.args {
            let (name, ty) = match &arg.key {
                None => {
                    let Some(&layers::Param { name, ty, .. }) = spec.positional.get(positional)
                    else {
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
                    let Some(&layers::Param { name, ty, .. }) =
                        spec.keys.iter().find(|p| p.name == key_str)
                    else {
                        let expected: Vec<&str> = spec.keys.iter().map(|p| p.name).collect();
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
            let missing = spec.positional[positional].name;
            return Err(syn::Error::new(
                call.name.span(),
                format!(
                    "{call}: missing `{missing}`; {} is written `{}`",
                    call.name, spec.usage
                ),
            ));
        }
        Ok(CallArgs {
            call,
            row: spec,
            values,
            env,
            input,
            width,
        })
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

    fn given_int(&self, name: &str) -> syn::Result<Option<u32>> {
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

    fn given_dims(&self, name: &str) -> syn::Result<Option<Hw>> {
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

    fn given_float(&self, name: &str) -> syn::Result<Option<f32>> {
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

    fn given_bool(&self, name: &str) -> syn::Result<Option<bool>> {
        match self.values.get(name) {
            None => Ok(None),
            Some((Value::Bool(b), _, _)) => Ok(Some(*b)),
            Some((other, _, _)) => Err(self.expected(name, "`true` or `false`", other)),
        }
    }

    /// `pad = valid | same | p | (ph, pw)` as written, resolved against an
    /// `h x w` input.
    fn given_padding(
        &self,
        h: u32,
        w: u32,
        kernel: Hw,
        stride: Hw,
        dilation: Hw,
    ) -> syn::Result<Option<Padding>> {
        let Some(&(value, _, _)) = self.values.get("pad") else {
            return Ok(None);
        };
        self.resolve_padding(value, h, w, kernel, stride, dilation)
            .map(Some)
    }

    fn resolve_padding(
        &self,
        value: &Value,
        h: u32,
        w: u32,
        kernel: Hw,
        stride: Hw,
        dilation: Hw,
    ) -> syn::Result<Padding> {
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

    /// Argument `name` as written, where it is not `pad` (which needs a window).
    fn given(&self, name: &str) -> Option<Val> {
        match self.row.param(name)?.ty {
            Ty::Int => self.given_int(name).ok()?.map(Val::Int),
            Ty::Dims => self.given_dims(name).ok()?.map(Val::Dims),
            Ty::Float => self.given_float(name).ok()?.map(Val::Float),
            Ty::Bool => self.given_bool(name).ok()?.map(Val::Bool),
            Ty::Pad => None,
        }
    }

    /// The row's default for argument `name`.
    fn default(&self, name: &str) -> Option<Val> {
        self.row.default(name, |other| self.given(other))
    }
}

impl layers::Args for CallArgs<'_> {
    fn call(&self) -> &Call {
        self.call
    }

    fn int(&self, name: &str) -> syn::Result<Option<u32>> {
        Ok(self.given_int(name)?.or(match self.default(name) {
            Some(Val::Int(n)) => Some(n),
            _ => None,
        }))
    }

    fn dims(&self, name: &str) -> syn::Result<Option<Hw>> {
        Ok(self.given_dims(name)?.or(match self.default(name) {
            Some(Val::Dims(hw)) => Some(hw),
            _ => None,
        }))
    }

    fn float(&self, name: &str) -> syn::Result<Option<f32>> {
        Ok(self.given_float(name)?.or(match self.default(name) {
            Some(Val::Float(x)) => Some(x),
            _ => None,
        }))
    }

    fn bool(&self, name: &str) -> syn::Result<Option<bool>> {
        Ok(self.given_bool(name)?.or(match self.default(name) {
            Some(Val::Bool(b)) => Some(b),
            _ => None,
        }))
    }

    fn padding(&self, kernel: Hw, stride: Hw, dilation: Hw) -> syn::Result<Padding> {
        let (h, w, _) = self.volume()?;
        Ok(match self.given_padding(h, w, kernel, stride, dilation)? {
            Some(padding) => padding,
            None => match self.default("pad") {
                Some(Val::Pad(padding)) => padding,
                _ => Padding::default(),
            },
        })
    }

    fn volume(&self) -> syn::Result<(u32, u32, u32)> {
        shape::volume(self.input).map_err(|e: ShapeError| {
            syn::Error::new(self.call.name.span(), format!("{}: {e}", self.call))
        })
    }

    /// `width = a`: round(K a), at least 1.
    fn width(&self, k: u32) -> u32 {
        match self.width {
            Some(a) => ((k as f64 * a).round() as u32).max(1),
            None => k,
        }
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
    let words: Vec<&str> = layers::words().collect();
    let candidates = words.iter().chain(&blocks).copied();
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

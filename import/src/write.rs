//! Writing source: the nested items as one net in the `cnn!` language.
//!
//! Besides the text, [`fn@write`] returns the order in which the compiler's
//! expansion will create the net's nodes ([`Slot`]s): a block's body, then
//! its shortcut, then its join, layer after layer as written, exactly as
//! `cnnjit_lang::expand` visits them. [`crate::verify`] walks the
//! compiled graph in that order to check it against the DAG.
//!
//! Layers are labelled with their ONNX node's name where it is a valid
//! identifier of at most [`MAX_LABEL`] characters that names one node only
//! and cannot clash with the language's words or default names (`conv3`);
//! the others take default names. (A longer name is an exporter's path, not
//! a name a person gave the layer, and would widen every table it is in.)

use crate::error::{Error, Result};
use crate::map::{Dag, Layer};
use crate::nest::Item;
use cnnjit_ir::shape;
use cnnjit_ir::{Activation, Hw, Op, Padding, PoolKind, Shape};
use cnnjit_lang::expand::{auto_projection, LAYER_NAMES};
use std::collections::HashMap;
use std::fmt::Write;

/// A node of the compiled graph, in creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The DAG's layer.
    Layer(usize),
    /// An `identity` written for an empty concat branch; its value is that
    /// of the DAG's layer it reads.
    Alias(usize),
}

/// A net's source and its nodes' creation order.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// The text of a `.cnn` file.
    pub source: String,
    /// One slot per node after the input.
    pub order: Vec<Slot>,
}

/// What the file says about where it came from.
pub struct Header<'a> {
    /// The net's name.
    pub name: &'a str,
    /// The ONNX file's name.
    pub file: &'a str,
    /// The weights file's name.
    pub weights: &'a str,
    /// The tool that wrote the ONNX file, and its operator set.
    pub producer: &'a str,
}

/// Writes the net `items` of `dag`.
pub fn write(dag: &Dag, items: &[Item], header: &Header) -> Result<Written> {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for layer in &dag.layers {
        *names.entry(layer.node.as_str()).or_default() += 1;
    }
    let mut writer = Writer {
        dag,
        names,
        out: String::new(),
        order: Vec::new(),
    };
    let Header {
        name,
        file,
        weights,
        producer,
    } = header;
    let _ = writeln!(
        writer.out,
        "// Imported by `cnnjit import` from {file} ({producer}).\n// Weights: {weights} (PyTorch names and layouts).\n\n/// Imported from {file}.\npub {name}({}) {{",
        input_text(dag.layers[0].shape)
    );
    writer.seq(items, 0, 1)?;
    writer.out.push_str("}\n");
    Ok(Written {
        source: writer.out,
        order: writer.order,
    })
}

fn input_text(shape: Shape) -> String {
    match shape {
        Shape::Volume { h, w, c } => format!("{h}x{w}x{c}"),
        Shape::Flat(n) => n.to_string(),
    }
}

struct Writer<'a> {
    dag: &'a Dag,
    names: HashMap<&'a str, usize>,
    out: String,
    order: Vec<Slot>,
}

const INDENT: &str = "    ";

impl Writer<'_> {
    /// Writes `items` reading layer `input`, one layer with weights or block
    /// per line, activations and bn after their layer on its line.
    fn seq(&mut self, items: &[Item], mut input: usize, depth: usize) -> Result<usize> {
        let pad = INDENT.repeat(depth);
        let mut line_open = false;
        for item in items {
            match item {
                Item::Layer(id) => {
                    let layer = &self.dag.layers[*id];
                    let label = self.label(layer);
                    let trails = label.is_none()
                        && matches!(
                            layer.op,
                            Op::BatchNorm { .. } | Op::Activation(_) | Op::Dropout { .. }
                        );
                    if line_open && trails {
                        self.out.push(' ');
                    } else {
                        if line_open {
                            self.out.push('\n');
                        }
                        self.out.push_str(&pad);
                    }
                    if let Some(label) = label {
                        let _ = write!(self.out, "{label}: ");
                    }
                    let text = op_text(layer, self.dag.layers[layer.inputs[0]].shape)?;
                    let _ = write!(self.out, "{text},");
                    line_open = true;
                    self.order.push(Slot::Layer(*id));
                    input = *id;
                }
                block => {
                    if line_open {
                        self.out.push('\n');
                        line_open = false;
                    }
                    input = self.block(block, input, depth)?;
                }
            }
        }
        if line_open {
            self.out.push('\n');
        }
        Ok(input)
    }

    fn block(&mut self, item: &Item, input: usize, depth: usize) -> Result<usize> {
        let pad = INDENT.repeat(depth);
        match item {
            Item::Residual {
                body,
                shortcut,
                join,
            } => {
                let auto = self.auto_shortcut(shortcut, input, *join);
                let head = match (shortcut.is_empty(), auto) {
                    (true, _) => "residual {\n".to_string(),
                    (false, true) => "residual(shortcut = auto) {\n".to_string(),
                    (false, false) => {
                        // The shortcut comes after the body in creation
                        // order but before it in the text: write it aside.
                        let saved = std::mem::take(&mut self.out);
                        let body_order = self.order.len();
                        self.seq(shortcut, input, depth + 1)?;
                        let text = std::mem::replace(&mut self.out, saved);
                        let slots: Vec<Slot> = self.order.drain(body_order..).collect();
                        self.out
                            .push_str(&format!("{pad}residual(shortcut = [\n{text}{pad}]) {{\n"));
                        self.seq(body, input, depth + 1)?;
                        self.order.extend(slots);
                        self.out.push_str(&format!("{pad}}},\n"));
                        self.order.push(Slot::Layer(*join));
                        return Ok(*join);
                    }
                };
                self.out.push_str(&pad);
                self.out.push_str(&head);
                self.seq(body, input, depth + 1)?;
                if auto {
                    for item in shortcut {
                        if let Item::Layer(id) = item {
                            self.order.push(Slot::Layer(*id));
                        }
                    }
                }
                self.out.push_str(&format!("{pad}}},\n"));
            }
            Item::Concat { branches, .. } => {
                self.out.push_str(&format!("{pad}concat {{\n"));
                let inner = INDENT.repeat(depth + 1);
                for branch in branches {
                    if branch.is_empty() {
                        self.out.push_str(&format!("{inner}[identity],\n"));
                        self.order.push(Slot::Alias(input));
                    } else {
                        self.out.push_str(&format!("{inner}[\n"));
                        self.seq(branch, input, depth + 2)?;
                        self.out.push_str(&format!("{inner}],\n"));
                    }
                }
                self.out.push_str(&format!("{pad}}},\n"));
            }
            Item::Scale { body, .. } => {
                self.out.push_str(&format!("{pad}scale {{\n"));
                self.seq(body, input, depth + 1)?;
                self.out.push_str(&format!("{pad}}},\n"));
            }
            Item::Layer(_) => unreachable!("seq writes layers"),
        }
        let join = match item {
            Item::Residual { join, .. } | Item::Concat { join, .. } | Item::Scale { join, .. } => {
                *join
            }
            Item::Layer(id) => *id,
        };
        self.order.push(Slot::Layer(join));
        Ok(join)
    }

    /// Whether `shortcut` is what `shortcut = auto` writes: a 1x1 conv without
    /// bias, with the stride that maps the input onto the join's size, then
    /// bn with the default eps, both unlabelled.
    fn auto_shortcut(&self, shortcut: &[Item], input: usize, join: usize) -> bool {
        let [Item::Layer(conv), Item::Layer(bn)] = shortcut else {
            return false;
        };
        let (conv, bn) = (&self.dag.layers[*conv], &self.dag.layers[*bn]);
        let (Shape::Volume { h, w, .. }, Shape::Volume { h: ho, w: wo, .. }) =
            (self.dag.layers[input].shape, self.dag.layers[join].shape)
        else {
            return false;
        };
        let projection = auto_projection([h, w], [ho, wo, conv.shape.channels()]);
        conv.op == Op::Conv2d(projection)
            && bn.op == (Op::BatchNorm { eps: 1e-5 })
            && self.label(conv).is_none()
            && self.label(bn).is_none()
            && self.dag.layers[input].shape != self.dag.layers[join].shape
    }

    /// The layer's ONNX name, if it can serve as its label.
    fn label<'l>(&self, layer: &'l Layer) -> Option<&'l str> {
        let name = layer.node.as_str();
        let mut chars = name.chars();
        let identifier = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name != "_"
            && name.len() <= MAX_LABEL;
        let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let reserved = RUST_KEYWORDS.contains(&name)
            || [LAYER_NAMES, KEYWORDS]
                .iter()
                .any(|words| words.contains(&name) || words.contains(&stem));
        (identifier && !reserved && self.names.get(name) == Some(&1)).then_some(name)
    }
}

/// The longest ONNX node name written as a label.
pub const MAX_LABEL: usize = 64;

const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Words of the language that are not layer kinds ([`LAYER_NAMES`] holds
/// those; a label `conv3` would clash with a default name).
const KEYWORDS: &[&str] = &["input", "block", "shortcut", "auto", "width"];

/// `2` for a square size, `1x2` otherwise.
fn dims(hw: Hw) -> String {
    if hw.h == hw.w {
        hw.h.to_string()
    } else {
        format!("{}x{}", hw.h, hw.w)
    }
}

/// `, pad = ...` for `padding` of a window on an `input`, or an error if
/// the language cannot say it.
fn pad_arg(
    layer: &Layer,
    padding: Padding,
    input: Shape,
    kernel: Hw,
    stride: Hw,
    dilation: Hw,
) -> Result<String> {
    if padding.is_zero() {
        return Ok(String::new());
    }
    if padding.top == padding.bottom && padding.left == padding.right {
        return Ok(if padding.top == padding.left {
            format!(", pad = {}", padding.top)
        } else {
            format!(", pad = ({}, {})", padding.top, padding.left)
        });
    }
    let same = match input {
        Shape::Volume { h, w, .. } => shape::same_padding(h, w, kernel, stride, dilation).ok(),
        Shape::Flat(_) => None,
    };
    if same == Some(padding) {
        return Ok(", pad = same".into());
    }
    Err(Error::layer(
        layer,
        format!(
            "padding {padding} (top, left, bottom, right) is neither symmetric nor `same` (extra at the bottom and right), which is all the language writes"
        ),
    ))
}

/// The layer as the language writes it.
fn op_text(layer: &Layer, input: Shape) -> Result<String> {
    Ok(match layer.op {
        Op::Conv2d(c) => {
            let mut s = if c.depthwise {
                format!("dwconv({}x{}", c.kernel.h, c.kernel.w)
            } else {
                format!("conv({}, {}x{}", c.out_channels, c.kernel.h, c.kernel.w)
            };
            if c.stride != Hw::square(1) {
                let _ = write!(s, ", stride = {}", dims(c.stride));
            }
            s.push_str(&pad_arg(
                layer, c.padding, input, c.kernel, c.stride, c.dilation,
            )?);
            if c.dilation != Hw::square(1) {
                let _ = write!(s, ", dilation = {}", dims(c.dilation));
            }
            let multiplier = c.out_channels / input.channels().max(1);
            if c.depthwise && multiplier != 1 {
                let _ = write!(s, ", multiplier = {multiplier}");
            }
            if !c.depthwise && c.groups != 1 {
                let _ = write!(s, ", groups = {}", c.groups);
            }
            if !c.bias {
                s.push_str(", bias = false");
            }
            s + ")"
        }
        Op::Dense(d) => format!(
            "dense({}{})",
            d.out_features,
            if d.bias { "" } else { ", bias = false" }
        ),
        Op::Pool2d(p) => {
            let mut s = format!(
                "{}({}x{}",
                if p.kind == PoolKind::Max {
                    "maxpool"
                } else {
                    "avgpool"
                },
                p.kernel.h,
                p.kernel.w
            );
            if p.stride != p.kernel {
                let _ = write!(s, ", stride = {}", dims(p.stride));
            }
            s.push_str(&pad_arg(
                layer,
                p.padding,
                input,
                p.kernel,
                p.stride,
                Hw::square(1),
            )?);
            if p.ceil {
                s.push_str(", ceil = true");
            }
            if !p.count_include_pad {
                s.push_str(", count_include_pad = false");
            }
            s + ")"
        }
        Op::BatchNorm { eps: 1e-5 } => "bn".into(),
        Op::BatchNorm { eps } => format!("bn(eps = {eps:?})"),
        Op::Activation(Activation::LeakyRelu(a)) => format!("leaky_relu({a:?})"),
        Op::Dropout { p } => format!("dropout({p:?})"),
        Op::Lrn(l) => format!(
            "lrn(size = {}, alpha = {:?}, beta = {:?}, k = {:?})",
            l.size, l.alpha, l.beta, l.k
        ),
        op @ (Op::Input
        | Op::GlobalPool(_)
        | Op::Flatten
        | Op::Activation(
            Activation::Relu
            | Activation::Relu6
            | Activation::Tanh
            | Activation::Sigmoid
            | Activation::Swish
            | Activation::HardSwish
            | Activation::HardSigmoid,
        )
        | Op::Softmax
        | Op::Identity
        | Op::Concat
        | Op::Add
        | Op::Scale) => op.kind().into(),
    })
}

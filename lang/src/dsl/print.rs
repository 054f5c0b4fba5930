//! The printer: a net's layers, nested as the language nests them, to the
//! text of a `.cnn` file that compiles to the same graph.
//!
//! A net to print is a tree of [`Item`]s over node ids and a [`Nodes`] view
//! that gives each id's op, shapes and label. [`crate::expand`] returns the
//! tree of every net it expands ([`Expanded::items`](crate::expand::Expanded)),
//! so a compiled [`Graph`] prints with [`graph`]; the importer builds the tree
//! from an ONNX graph ([`net`]). Each layer is written from the layer table
//! ([`super::layers::written`]): arguments equal to their row's default are
//! omitted, and floats are written so that they re-parse to the same bits.
//!
//! [`order`] is the order in which expansion creates a tree's nodes (a
//! block's parts, then its join); `lang/tests/it/print.rs` checks it against
//! the expander, and that compiling a printed net gives the graph it came from.
//!
//! The layout: four spaces per level; one layer with weights, pool or block
//! per line; an unlabelled `bn`, activation or `dropout` after the layer
//! before it, on its line.

use super::layers::{self, Val};
use cnnjit_ir::shape;
use cnnjit_ir::{Graph, Op, Padding, Shape};
use std::fmt::Write;

/// One item of a sequence, over node ids.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A layer with one input.
    Layer(usize),
    /// `residual`: the body, the shortcut (empty for the identity), the join.
    Residual {
        /// The body.
        body: Vec<Item>,
        /// The shortcut; empty for the identity.
        shortcut: Vec<Item>,
        /// The `Add` node.
        join: usize,
    },
    /// `concat`: one sequence per input of the join (empty: the block's input).
    Concat {
        /// In the join's input order.
        branches: Vec<Vec<Item>>,
        /// The `Concat` node.
        join: usize,
    },
    /// `scale`: the gate's sequence.
    Scale {
        /// From the block's input to the gate.
        body: Vec<Item>,
        /// The `Scale` node.
        join: usize,
    },
}

impl Item {
    /// Nodes in this item, joins included.
    pub fn count(&self) -> usize {
        match self {
            Item::Layer(_) => 1,
            Item::Residual { body, shortcut, .. } => 1 + count(body) + count(shortcut),
            Item::Concat { branches, .. } => 1 + branches.iter().map(|b| count(b)).sum::<usize>(),
            Item::Scale { body, .. } => 1 + count(body),
        }
    }
}

/// Nodes in a sequence.
pub fn count(seq: &[Item]) -> usize {
    seq.iter().map(Item::count).sum()
}

/// The nodes of `items` in the order expansion creates them from the
/// printed text: layers as written, a block's body, then its shortcut, then
/// its join.
pub fn order(items: &[Item]) -> Vec<usize> {
    let mut out = Vec::new();
    visit(items, &mut |id| out.push(id));
    out
}

/// Calls `f` on every node of `items` in creation order, joins included.
pub fn visit(items: &[Item], f: &mut impl FnMut(usize)) {
    for item in items {
        match item {
            Item::Layer(id) => f(*id),
            Item::Residual {
                body,
                shortcut,
                join,
            } => {
                visit(body, f);
                visit(shortcut, f);
                f(*join);
            }
            Item::Concat { branches, join } => {
                branches.iter().for_each(|b| visit(b, f));
                f(*join);
            }
            Item::Scale { body, join } => {
                visit(body, f);
                f(*join);
            }
        }
    }
}

/// What the printer reads about each node of the tree.
pub trait Nodes {
    /// What node `id` computes.
    fn op(&self, id: usize) -> Op;
    /// Its output's shape.
    fn shape(&self, id: usize) -> Shape;
    /// The shape of its (first) input.
    fn input_shape(&self, id: usize) -> Shape;
    /// The label to write before it, if any.
    fn label(&self, id: usize) -> Option<&str>;
}

impl Nodes for Graph {
    fn op(&self, id: usize) -> Op {
        self.nodes[id].op
    }

    fn shape(&self, id: usize) -> Shape {
        self.nodes[id].output
    }

    fn input_shape(&self, id: usize) -> Shape {
        let node = &self.nodes[id];
        node.inputs
            .first()
            .map_or(node.output, |i| self.nodes[i.index()].output)
    }

    fn label(&self, _: usize) -> Option<&str> {
        None
    }
}

/// A node the language cannot write.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct PrintError {
    /// The node's id.
    pub node: usize,
    /// Why.
    pub problem: Unwritable,
}

/// Why a node cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unwritable {
    /// Padding that is neither symmetric nor `same` for its input.
    #[error("padding {0} (top, left, bottom, right) is neither symmetric nor `same` (extra at the bottom and right), which is all the language writes")]
    Padding(Padding),
    /// A value the layer's word has no argument for.
    #[error("`{0}` has no argument `{1}` to write its value")]
    Argument(&'static str, &'static str),
    /// An input or a join where a layer is due.
    #[error("`{0}` is not a layer a word writes")]
    NotALayer(&'static str),
}

/// `graph` (as expanded, with the tree `items` of its nodes) as the text of
/// a `.cnn` file: `pub NAME(INPUT) { ... }`, without labels.
pub fn graph(graph: &Graph, items: &[Item]) -> Result<String, PrintError> {
    net(&graph.name, graph.input_shape(), items, graph)
}

/// The net `name` reading `input`, its layers `items`, as `.cnn` text.
pub fn net(
    name: &str,
    input: Shape,
    items: &[Item],
    nodes: &dyn Nodes,
) -> Result<String, PrintError> {
    let mut printer = Printer {
        nodes,
        out: String::new(),
    };
    let input = match input {
        Shape::Volume { h, w, c } => format!("{h}x{w}x{c}"),
        Shape::Flat(n) => n.to_string(),
    };
    let _ = writeln!(printer.out, "pub {name}({input}) {{");
    printer.seq(items, 1)?;
    printer.out.push_str("}\n");
    Ok(printer.out)
}

/// The layer `op` reading an `input` of that shape, as written: its word and
/// the arguments that differ from their defaults (`conv(8, 3x3, pad = 1)`).
pub fn layer(op: &Op, input: Shape) -> Result<String, Unwritable> {
    let Some((row, values)) = layers::written(op, input) else {
        return Err(Unwritable::NotALayer(op.kind()));
    };
    if let Some((name, _)) = values.iter().find(|(name, _)| row.param(name).is_none()) {
        return Err(Unwritable::Argument(row.name, name));
    }
    let value = |name: &str| values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let mut positional = Vec::new();
    for p in row
        .positional
        .iter()
        .filter(|p| !row.keys.iter().any(|k| k.name == p.name))
    {
        let v = value(p.name).expect("written gives every argument");
        let default = row.default(p.name, value);
        positional.push((v, default.is_some_and(|d| d.same(&v))));
    }
    // A positional argument can be left out only with those after it.
    while positional.last().is_some_and(|(_, default)| *default) {
        positional.pop();
    }
    let mut args: Vec<String> = positional.into_iter().map(|(v, _)| text(v, true)).collect();
    for p in row.keys {
        let v = value(p.name).expect("written gives every argument");
        if row.default(p.name, value).is_some_and(|d| d.same(&v)) {
            continue;
        }
        let written = match v {
            Val::Pad(padding) => pad(padding, input, &value)?,
            v => text(v, false),
        };
        args.push(format!("{} = {written}", p.name));
    }
    Ok(if args.is_empty() {
        row.name.to_string()
    } else {
        format!("{}({})", row.name, args.join(", "))
    })
}

/// A value as written: a positional size as `FhxFw`, a named one as `n` when
/// square.
fn text(v: Val, positional: bool) -> String {
    match v {
        Val::Int(n) => n.to_string(),
        Val::Dims(hw) if hw.h == hw.w && !positional => hw.h.to_string(),
        Val::Dims(hw) => format!("{}x{}", hw.h, hw.w),
        Val::Float(x) => float(x),
        Val::Bool(b) => b.to_string(),
        Val::Pad(p) => format!("({}, {})", p.top, p.left),
    }
}

/// `p`, `(ph, pw)`, or `same` where that is what `same` gives on `input`.
fn pad(
    padding: Padding,
    input: Shape,
    value: &dyn Fn(&str) -> Option<Val>,
) -> Result<String, Unwritable> {
    if padding.top == padding.bottom && padding.left == padding.right {
        return Ok(if padding.top == padding.left {
            padding.top.to_string()
        } else {
            format!("({}, {})", padding.top, padding.left)
        });
    }
    let dims = |name| match value(name) {
        Some(Val::Dims(hw)) => hw,
        _ => cnnjit_ir::Hw::square(1),
    };
    let same = match input {
        Shape::Volume { h, w, .. } => {
            shape::same_padding(h, w, dims("kernel"), dims("stride"), dims("dilation")).ok()
        }
        Shape::Flat(_) => None,
    };
    if same == Some(padding) {
        Ok("same".into())
    } else {
        Err(Unwritable::Padding(padding))
    }
}

/// `x` as a float literal that the parser reads back to the same `f32`:
/// the shortest that does, as Rust's `{:?}` writes it, else the `f64` the
/// `f32` is exactly.
pub fn float(x: f32) -> String {
    let short = format!("{x:?}");
    let back = short.parse::<f64>().map(|y| y as f32);
    if back.is_ok_and(|y| y.to_bits() == x.to_bits()) {
        short
    } else {
        format!("{:?}", f64::from(x))
    }
}

/// Words a label may not be: Rust's keywords, the language's layer words and
/// composites, and its other words (a label `conv3` would clash with a
/// default name, so neither may a layer word followed by digits).
pub fn can_label(name: &str) -> bool {
    let mut chars = name.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "_";
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let language = layers::words()
        .chain(KEYWORDS.iter().copied())
        .any(|w| w == name || w == stem);
    identifier && !language && !RUST_KEYWORDS.contains(&name)
}

const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Words of the language that are not layer words ([`layers::words`]).
const KEYWORDS: &[&str] = &["input", "block", "shortcut", "auto", "width"];

const INDENT: &str = "    ";

struct Printer<'a> {
    nodes: &'a dyn Nodes,
    out: String,
}

impl Printer<'_> {
    fn seq(&mut self, items: &[Item], depth: usize) -> Result<(), PrintError> {
        let pad = INDENT.repeat(depth);
        let mut line_open = false;
        for item in items {
            let Item::Layer(id) = *item else {
                if std::mem::take(&mut line_open) {
                    self.out.push('\n');
                }
                self.block(item, depth)?;
                continue;
            };
            let label = self.nodes.label(id);
            let op = self.nodes.op(id);
            if line_open && label.is_none() && trails(&op) {
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
            let text = layer(&op, self.nodes.input_shape(id))
                .map_err(|problem| PrintError { node: id, problem })?;
            let _ = write!(self.out, "{text},");
            line_open = true;
        }
        if line_open {
            self.out.push('\n');
        }
        Ok(())
    }

    fn block(&mut self, item: &Item, depth: usize) -> Result<(), PrintError> {
        let pad = INDENT.repeat(depth);
        match item {
            Item::Residual { body, shortcut, .. } if shortcut.is_empty() => {
                let _ = writeln!(self.out, "{pad}residual {{");
                self.seq(body, depth + 1)?;
            }
            Item::Residual {
                body,
                shortcut,
                join,
            } if self.is_auto(shortcut, *join) => {
                let _ = writeln!(self.out, "{pad}residual(shortcut = auto) {{");
                self.seq(body, depth + 1)?;
            }
            Item::Residual { body, shortcut, .. } => {
                let _ = writeln!(self.out, "{pad}residual(shortcut = [");
                self.seq(shortcut, depth + 1)?;
                let _ = writeln!(self.out, "{pad}]) {{");
                self.seq(body, depth + 1)?;
            }
            Item::Concat { branches, .. } => {
                let _ = writeln!(self.out, "{pad}concat {{");
                let inner = INDENT.repeat(depth + 1);
                for branch in branches {
                    if branch.is_empty() {
                        let _ = writeln!(self.out, "{inner}[],");
                    } else {
                        let _ = writeln!(self.out, "{inner}[");
                        self.seq(branch, depth + 2)?;
                        let _ = writeln!(self.out, "{inner}],");
                    }
                }
            }
            Item::Scale { body, .. } => {
                let _ = writeln!(self.out, "{pad}scale {{");
                self.seq(body, depth + 1)?;
            }
            Item::Layer(id) => unreachable!("seq writes layer {id}"),
        }
        let _ = writeln!(self.out, "{pad}}},");
        Ok(())
    }

    /// Whether `shortcut` is what `shortcut = auto` writes for a residual
    /// joined at `join`: unlabelled, the projection
    /// [`auto_projection`](crate::expand::auto_projection) makes, then `bn`
    /// with the default eps, where the body changes the shape.
    fn is_auto(&self, shortcut: &[Item], join: usize) -> bool {
        let [Item::Layer(conv), Item::Layer(bn)] = *shortcut else {
            return false;
        };
        let (from, to) = (self.nodes.input_shape(conv), self.nodes.shape(join));
        let (Shape::Volume { h, w, .. }, Shape::Volume { h: ho, w: wo, c }) = (from, to) else {
            return false;
        };
        let projection = crate::expand::auto_projection([h, w], [ho, wo, c]);
        self.nodes.op(conv) == Op::Conv2d(projection)
            && self.nodes.op(bn)
                == (Op::BatchNorm {
                    eps: layers::BN_EPS,
                })
            && self.nodes.label(conv).is_none()
            && self.nodes.label(bn).is_none()
            && from != to
    }
}

/// Whether an unlabelled `op` goes on the line of the layer before it.
fn trails(op: &Op) -> bool {
    match op {
        Op::BatchNorm { .. }
        | Op::LayerNorm { .. }
        | Op::Affine { .. }
        | Op::Activation(_)
        | Op::PRelu
        | Op::Dropout { .. } => true,
        Op::Input
        | Op::Conv2d(_)
        | Op::Dense(_)
        | Op::Pool2d(_)
        | Op::GlobalPool(_)
        | Op::Flatten
        | Op::Softmax
        | Op::Identity
        | Op::Lrn(_)
        | Op::Concat
        | Op::Add
        | Op::Scale
        | Op::Shuffle { .. }
        | Op::Slice { .. }
        | Op::Upsample(_)
        | Op::Deconv(_) => false,
    }
}

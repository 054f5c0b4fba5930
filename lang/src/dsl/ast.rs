//! The syntax tree of the `cnn!` language, as written: nothing is resolved
//! (block calls and layer names are both [`Call`]s, expressions are
//! unevaluated) and every piece keeps the [`SpanRange`] of its tokens, so that
//! later passes can put an error on the offending token.

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::ToTokens;
use std::fmt;

/// The first and last token of a piece of syntax.
///
/// Errors are built with [`syn::Error::new_spanned`] over these two spans, which
/// underlines the whole range on stable Rust (where `Span::join` is not
/// available inside a proc macro).
#[derive(Clone, Copy, Debug)]
pub struct SpanRange {
    /// The first token's span.
    pub start: Span,
    /// The last token's span.
    pub end: Span,
}

impl SpanRange {
    /// A range of one token.
    pub fn single(span: Span) -> SpanRange {
        SpanRange {
            start: span,
            end: span,
        }
    }

    /// An error over this range.
    pub fn error(&self, message: impl fmt::Display) -> syn::Error {
        syn::Error::new_spanned(self, message)
    }
}

impl ToTokens for SpanRange {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend([
            TokenTree::Ident(Ident::new("start", self.start)),
            TokenTree::Ident(Ident::new("end", self.end)),
        ]);
    }
}

/// The contents of one `cnn!` call or `.cnn` file.
#[derive(Clone)]
pub struct Items {
    /// Block definitions, in order.
    pub blocks: Vec<BlockDef>,
    /// Net definitions, in order.
    pub nets: Vec<NetDef>,
}

/// `vis? NAME(input, width = a) { seq }` with its doc comments.
#[derive(Clone)]
pub struct NetDef {
    /// Outer attributes (doc comments), passed to the generated type.
    pub attrs: Vec<syn::Attribute>,
    /// Visibility of the generated type.
    pub vis: syn::Visibility,
    /// The net's name.
    pub name: Ident,
    /// The input's dimensions.
    pub input: InputDims,
    /// Where the input is written.
    pub input_span: SpanRange,
    /// `width = a`, if given.
    pub width: Option<(f64, SpanRange)>,
    /// The layers.
    pub body: Seq,
}

/// The input of a net as written: `224x224x3` or a flat `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputDims {
    /// Height x width x channels.
    Volume(u64, u64, u64),
    /// A flat vector of N features.
    Flat(u64),
}

/// `block NAME(PARAM, ...) { seq }`.
#[derive(Clone, Debug)]
pub struct BlockDef {
    /// The block's name.
    pub name: Ident,
    /// Its integer parameters.
    pub params: Vec<Ident>,
    /// Its layers.
    pub body: Seq,
}

/// Layers separated by commas.
#[derive(Clone, Debug, Default)]
pub struct Seq(pub Vec<Layer>);

/// `(LABEL ':')? op`.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The label, if any.
    pub label: Option<Ident>,
    /// What it is.
    pub op: LayerOp,
    /// The whole layer, label excluded.
    pub span: SpanRange,
}

/// One entry of a sequence.
#[derive(Clone, Debug)]
pub enum LayerOp {
    /// A built-in layer or a call of a user block: `relu`, `conv(64, 3x3)`, `basic(64, 1)`.
    Call(Call),
    /// `repeat(n) { seq }`.
    Repeat {
        /// How many times.
        count: Expr,
        /// What is repeated.
        body: Seq,
    },
    /// `concat { [seq], [seq] }`.
    Concat {
        /// The branches, left to right.
        branches: Vec<Seq>,
    },
    /// `residual(shortcut = ...) { seq }`.
    Residual {
        /// The shortcut.
        shortcut: Shortcut,
        /// The body.
        body: Seq,
    },
    /// `scale { seq }`: the input times the body's output, channel-wise.
    Scale {
        /// The gate's layers.
        body: Seq,
    },
}

/// The shortcut of a residual.
#[derive(Clone, Debug)]
pub enum Shortcut {
    /// None written: the input itself.
    Identity,
    /// `shortcut = auto`: a 1x1 projection where shapes differ.
    Auto,
    /// `shortcut = [seq]`.
    Explicit(Seq),
}

/// `WORD` or `WORD(args)`.
#[derive(Clone, Debug)]
pub struct Call {
    /// The layer or block name.
    pub name: Ident,
    /// The arguments (empty without parentheses).
    pub args: Vec<Arg>,
    /// Whether parentheses were written.
    pub parens: bool,
}

/// One argument.
#[derive(Clone, Debug)]
pub struct Arg {
    /// `Some(key)` for `key = value`.
    pub key: Option<Ident>,
    /// The value.
    pub value: Value,
    /// The whole argument.
    pub span: SpanRange,
}

/// An argument's value.
#[derive(Clone, Debug)]
pub enum Value {
    /// An integer expression.
    Expr(Expr),
    /// `AxB` or `(a, b)`.
    Dims(Expr, Expr),
    /// A bare word (`same`, `auto`) or a lone block parameter.
    Word(Ident),
    /// A float literal.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
}

/// An integer expression over literals and block parameters.
#[derive(Clone, Debug)]
pub enum Expr {
    /// A literal.
    Int(u64, Span),
    /// A block parameter.
    Param(Ident),
    /// `-e`.
    Neg(Box<Expr>, Span),
    /// `a op b`.
    Binary(Box<Expr>, BinOp, Box<Expr>),
    /// `(e)`.
    Paren(Box<Expr>, Span),
}

/// An arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (integer division)
    Div,
}

impl Expr {
    /// The tokens the expression spans.
    pub fn span(&self) -> SpanRange {
        match self {
            Expr::Int(_, s) | Expr::Neg(_, s) | Expr::Paren(_, s) => SpanRange::single(*s),
            Expr::Param(i) => SpanRange::single(i.span()),
            Expr::Binary(a, _, b) => SpanRange {
                start: a.span().start,
                end: b.span().end,
            },
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Int(n, _) => write!(f, "{n}"),
            Expr::Param(i) => write!(f, "{i}"),
            Expr::Neg(e, _) => write!(f, "-{e}"),
            Expr::Binary(a, op, b) => {
                let op = match op {
                    BinOp::Add => "+",
                    BinOp::Sub => "-",
                    BinOp::Mul => "*",
                    BinOp::Div => "/",
                };
                write!(f, "{a} {op} {b}")
            }
            Expr::Paren(e, _) => write!(f, "({e})"),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Expr(e) => write!(f, "{e}"),
            Value::Dims(Expr::Int(a, _), Expr::Int(b, _)) => write!(f, "{a}x{b}"),
            Value::Dims(a, b) => write!(f, "({a}, {b})"),
            Value::Word(w) => write!(f, "{w}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key} = {}", self.value),
            None => write!(f, "{}", self.value),
        }
    }
}

impl fmt::Display for Call {
    /// The call as written, normalised: `conv(16, 5x5, stride = 2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if self.parens {
            f.write_str("(")?;
            for (i, arg) in self.args.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{arg}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

//! The parser: `proc_macro2` tokens to the [`ast`](super::ast), with syn's
//! `ParseStream`. The same code reads a macro's tokens and a `.cnn` file's
//! (the CLI turns the text into tokens first), so both report the same errors.
//!
//! `224x224x3` and `3x3` are single integer literals whose suffix (`x224x3`,
//! `x3`) the parser reads; everything else is ordinary Rust tokens.
//!
//! Nesting is bounded by [`MAX_DEPTH`], so that no input, however deep,
//! overflows the stack: brackets are counted on the tokens before syn (whose
//! token buffer recurses into each group) sees them, and an expression's tree
//! is at most [`MAX_DEPTH`] levels high (a long `1 + 1 + ...` chain included),
//! so evaluating, printing and dropping it recurse no deeper.
//! [`crate::expand`] bounds the nesting of blocks calling blocks the same way.

use super::ast::*;
use super::layers;
use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use syn::buffer::Cursor;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::Ident;
use syn::{braced, bracketed, parenthesized, LitFloat, LitInt, Token};

/// The deepest nesting the front end accepts: of brackets (`(`, `[`, `{`), of
/// an expression's operators and parentheses, and of layers inside blocks,
/// repeats and composites once blocks are expanded.
///
/// Measured in a debug build (opt-level 1) on a thread with a 2 MiB stack
/// before the limit existed, the stack overflowed at about 1,600 nested
/// `repeat`s (1.3 KB a level, parser and expansion), 1,800 nested `concat`s,
/// 2,200 blocks calling each other and 2,800 nested parentheses. At the limit
/// the deepest case, 254 nested `repeat`s, runs in a 384 KB stack (and not in
/// 256 KB): about a fifth of a 2 MiB thread's, leaving the rest to the caller.
/// Real networks nest fewer than ten levels.
pub const MAX_DEPTH: usize = 256;

/// Parses the contents of a `cnn!` call or a `.cnn` file.
pub fn parse_items(tokens: TokenStream) -> syn::Result<Items> {
    check_bracket_depth(&tokens)?;
    Parser::parse2(Items::parse, tokens)
}

/// An error at the first bracket nested more than [`MAX_DEPTH`] deep,
/// found without recursion (syn's token buffer and this parser recurse
/// into each group, so they must never see deeper tokens).
fn check_bracket_depth(tokens: &TokenStream) -> syn::Result<()> {
    let mut stack = vec![tokens.clone().into_iter()];
    while let Some(top) = stack.last_mut() {
        match top.next() {
            Some(TokenTree::Group(group)) => {
                if stack.len() > MAX_DEPTH {
                    return Err(syn::Error::new(
                        group.span_open(),
                        format!(
                            "brackets nest too deeply: this bracket opens level {}, and the language allows at most {MAX_DEPTH} levels of `(`, `[` and `{{`",
                            stack.len(),
                        ),
                    ));
                }
                stack.push(group.stream().into_iter());
            }
            Some(_) => {}
            None => {
                stack.pop();
            }
        }
    }
    Ok(())
}

impl Parse for Items {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut items = Items {
            blocks: Vec::new(),
            nets: Vec::new(),
        };
        while !input.is_empty() {
            let attrs = input.call(syn::Attribute::parse_outer)?;
            if input.peek(Ident::peek_any) && input.fork().call(Ident::parse_any)? == "block" {
                input.call(Ident::parse_any)?;
                items.blocks.push(parse_block(input)?);
            } else {
                items.nets.push(parse_net(input, attrs)?);
            }
        }
        Ok(items)
    }
}

fn parse_block(input: ParseStream) -> syn::Result<BlockDef> {
    let name: Ident = input
        .call(Ident::parse_any)
        .map_err(|e| syn::Error::new(e.span(), "expected a block name after `block`"))?;
    let word = name.to_string();
    if word == "block" || layers::COMPOSITES.contains(&word.as_str()) {
        return Err(syn::Error::new(
            name.span(),
            format!("`{name}` is a reserved word of the language and cannot name a block"),
        ));
    }
    if layers::find(&word).is_some() {
        return Err(syn::Error::new(
            name.span(),
            format!(
                "`{name}` is a built-in layer and cannot name a block (calls of `{name}` would mean the layer); rename the block, e.g. `block my_{name}(...)`"
            ),
        ));
    }
    let content;
    parenthesized!(content in input);
    let params = content.parse_terminated(Ident::parse, Token![,])?;
    let mut seen: Vec<&Ident> = Vec::new();
    for p in &params {
        if seen.contains(&p) {
            return Err(syn::Error::new(
                p.span(),
                format!("parameter `{p}` is given twice"),
            ));
        }
        seen.push(p);
    }
    let body = parse_braced_seq(input)?;
    Ok(BlockDef {
        name,
        params: params.into_iter().collect(),
        body,
    })
}

fn parse_net(input: ParseStream, attrs: Vec<syn::Attribute>) -> syn::Result<NetDef> {
    let vis: syn::Visibility = input.parse()?;
    let name: Ident = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a net (`Name(224x224x3) { ... }`) or a block (`block name(a, b) { ... }`)",
        )
    })?;
    let content;
    parenthesized!(content in input);
    let lit: LitInt = content.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected the input's dimensions, e.g. `224x224x3` or a flat `784`",
        )
    })?;
    let input_span = SpanRange::single(lit.span());
    let dims = parse_suffixed_dims(&lit)?;
    let input_dims = match dims.as_slice() {
        [h, w, c] => InputDims::Volume(*h, *w, *c),
        [n] => InputDims::Flat(*n),
        _ => {
            return Err(syn::Error::new(
                lit.span(),
                format!(
                    "expected the input as HxWxC (e.g. `224x224x3`) or a flat N, found `{lit}`"
                ),
            ))
        }
    };
    let mut width = None;
    if content.parse::<Option<Token![,]>>()?.is_some() && !content.is_empty() {
        let key = content.call(Ident::parse_any)?;
        if key != "width" {
            return Err(syn::Error::new(
                key.span(),
                format!("unknown net argument `{key}`; expected `width = a`"),
            ));
        }
        content.parse::<Token![=]>()?;
        let start = content.span();
        let value = if content.peek(LitFloat) {
            content.parse::<LitFloat>()?.base10_parse::<f64>()?
        } else {
            content.parse::<LitInt>()?.base10_parse::<u64>()? as f64
        };
        if !(value > 0.0 && value.is_finite()) {
            return Err(syn::Error::new(
                start,
                format!("`width` must be a positive number, found {value}"),
            ));
        }
        width = Some((value, SpanRange::single(start)));
        content.parse::<Option<Token![,]>>()?;
    }
    if !content.is_empty() {
        return Err(content.error("unexpected tokens after the net's input"));
    }
    let body = parse_braced_seq(input)?;
    Ok(NetDef {
        attrs,
        vis,
        name,
        input: input_dims,
        input_span,
        width,
        body,
    })
}

/// Reads `224x224x3` (digits `224`, suffix `x224x3`) as `[224, 224, 3]`.
fn parse_suffixed_dims(lit: &LitInt) -> syn::Result<Vec<u64>> {
    let bad = || {
        syn::Error::new(
            lit.span(),
            format!("expected dimensions such as `3x3` or `224x224x3`, found `{lit}`"),
        )
    };
    let first: u64 = lit.base10_parse().map_err(|_| bad())?;
    let mut dims = vec![first];
    let suffix = lit.suffix();
    if suffix.is_empty() {
        return Ok(dims);
    }
    let rest = suffix.strip_prefix('x').ok_or_else(bad)?;
    for part in rest.split('x') {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        dims.push(part.parse().map_err(|_| bad())?);
    }
    Ok(dims)
}

fn parse_braced_seq(input: ParseStream) -> syn::Result<Seq> {
    if !input.peek(syn::token::Brace) {
        return Err(expected(input, "layers in braces, `{ ... }`"));
    }
    let content;
    braced!(content in input);
    parse_seq(&content)
}

fn parse_seq(input: ParseStream) -> syn::Result<Seq> {
    let mut layers = Vec::new();
    while !input.is_empty() {
        layers.push(parse_layer(input)?);
        if input.is_empty() {
            break;
        }
        if !input.peek(Token![,]) {
            return Err(expected(input, "`,` between layers"));
        }
        input.parse::<Token![,]>()?;
    }
    Ok(Seq(layers))
}

/// "expected WHAT, found `TOKEN`" at the next token (syn itself says
/// "unexpected end of input" where there is none).
fn expected(input: ParseStream, what: &str) -> syn::Error {
    let found = match input.cursor().token_tree() {
        None => return input.error(format!("expected {what}")),
        Some((proc_macro2::TokenTree::Group(group), _)) => match group.delimiter() {
            Delimiter::Parenthesis => "`( ... )`".to_string(),
            Delimiter::Brace => "`{ ... }`".to_string(),
            Delimiter::Bracket => "`[ ... ]`".to_string(),
            Delimiter::None => "a group".to_string(),
        },
        Some((tree, _)) => format!("`{tree}`"),
    };
    input.error(format!("expected {what}, found {found}"))
}

fn parse_layer(input: ParseStream) -> syn::Result<Layer> {
    let label = if input.peek(Ident::peek_any) && input.peek2(Token![:]) && !input.peek2(Token![::])
    {
        let label = input.call(Ident::parse_any)?;
        input.parse::<Token![:]>()?;
        Some(label)
    } else {
        None
    };
    let from = input.cursor();
    let name: Ident = input.call(Ident::parse_any).map_err(|e| {
        syn::Error::new(e.span(), "expected a layer, e.g. `relu` or `conv(64, 3x3)`")
    })?;
    let start = name.span();
    let word = name.to_string();
    let op = match word.as_str() {
        "repeat" if input.peek(syn::token::Paren) => {
            let content;
            parenthesized!(content in input);
            let count = parse_expr(&content)?;
            if !content.is_empty() {
                return Err(content.error("expected `repeat(n) { ... }`"));
            }
            LayerOp::Repeat {
                count,
                body: parse_braced_seq(input)?,
            }
        }
        "concat" if input.peek(syn::token::Brace) => {
            let content;
            braced!(content in input);
            let mut branches = Vec::new();
            while !content.is_empty() {
                if !content.peek(syn::token::Bracket) {
                    return Err(content
                        .error("expected a branch in brackets: `concat { [ ... ], [ ... ] }`"));
                }
                let branch;
                bracketed!(branch in content);
                branches.push(parse_seq(&branch)?);
                if content.is_empty() {
                    break;
                }
                if !content.peek(Token![,]) {
                    return Err(expected(&content, "`,` between branches"));
                }
                content.parse::<Token![,]>()?;
            }
            if branches.is_empty() {
                return Err(syn::Error::new(
                    start,
                    "a concat needs at least one branch: `concat { [ ... ], [ ... ] }`",
                ));
            }
            LayerOp::Concat { branches }
        }
        "residual" if input.peek(syn::token::Paren) || input.peek(syn::token::Brace) => {
            let mut shortcut = Shortcut::Identity;
            if input.peek(syn::token::Paren) {
                let content;
                parenthesized!(content in input);
                let key = content.call(Ident::parse_any)?;
                if key != "shortcut" {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown argument `{key}` for residual; expected `shortcut = auto` or `shortcut = [ ... ]`"),
                    ));
                }
                content.parse::<Token![=]>()?;
                if content.peek(syn::token::Bracket) {
                    let seq;
                    bracketed!(seq in content);
                    shortcut = Shortcut::Explicit(parse_seq(&seq)?);
                } else {
                    let word = content.call(Ident::parse_any)?;
                    if word != "auto" {
                        return Err(syn::Error::new(
                            word.span(),
                            format!(
                                "expected `auto` or `[ ... ]` after `shortcut =`, found `{word}`"
                            ),
                        ));
                    }
                    shortcut = Shortcut::Auto;
                }
                content.parse::<Option<Token![,]>>()?;
                if !content.is_empty() {
                    return Err(content.error("residual takes one argument, `shortcut`"));
                }
            }
            LayerOp::Residual {
                shortcut,
                body: parse_braced_seq(input)?,
            }
        }
        "scale" if input.peek(syn::token::Brace) => LayerOp::Scale {
            body: parse_braced_seq(input)?,
        },
        _ => {
            let (args, parens) = if input.peek(syn::token::Paren) {
                let content;
                parenthesized!(content in input);
                let mut args = Vec::new();
                while !content.is_empty() {
                    args.push(parse_arg(&content)?);
                    if content.is_empty() {
                        break;
                    }
                    content.parse::<Token![,]>()?;
                }
                (args, true)
            } else {
                (Vec::new(), false)
            };
            LayerOp::Call(Call { name, args, parens })
        }
    };
    let end = last_span(from, input);
    Ok(Layer {
        label,
        op,
        span: SpanRange { start, end },
    })
}

/// The span of the last token tree between `from` and where `input` now is.
fn last_span(from: Cursor, input: ParseStream) -> Span {
    let end = input.cursor();
    let (mut cursor, mut last) = (from, from.span());
    while cursor != end {
        match cursor.token_tree() {
            Some((tree, next)) => {
                last = tree.span();
                cursor = next;
            }
            None => break,
        }
    }
    last
}

fn parse_arg(input: ParseStream) -> syn::Result<Arg> {
    let start = input.span();
    let from = input.cursor();
    let key = if input.peek(Ident::peek_any) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
        let key = input.call(Ident::parse_any)?;
        input.parse::<Token![=]>()?;
        Some(key)
    } else {
        None
    };
    let value = parse_value(input)?;
    let end = last_span(from, input);
    Ok(Arg {
        key,
        value,
        span: SpanRange { start, end },
    })
}

fn parse_value(input: ParseStream) -> syn::Result<Value> {
    // syn reads `-1` as one negative literal; a negative number is an
    // expression (`-` applied to `1`), checked where its value is used.
    if input.peek(LitInt)
        && !input.peek(Token![-])
        && !input.peek2(Token![+])
        && !input.peek2(Token![-])
        && !input.peek2(Token![*])
        && !input.peek2(Token![/])
    {
        let lit: LitInt = input.parse()?;
        let dims = parse_suffixed_dims(&lit)?;
        let span = lit.span();
        return match dims.as_slice() {
            [n] => Ok(Value::Expr(Expr::Int(*n, span))),
            [a, b] => Ok(Value::Dims(Expr::Int(*a, span), Expr::Int(*b, span))),
            _ => Err(syn::Error::new(
                span,
                format!("expected a size such as `3x3`, found `{lit}`"),
            )),
        };
    }
    if input.peek(LitFloat) {
        let lit: LitFloat = input.parse()?;
        return Ok(Value::Float(lit.base10_parse()?));
    }
    if input.peek(syn::LitBool) {
        return Ok(Value::Bool(input.parse::<syn::LitBool>()?.value));
    }
    if input.peek(Token![-]) && input.peek2(LitFloat) {
        input.parse::<Token![-]>()?;
        let lit: LitFloat = input.parse()?;
        return Ok(Value::Float(-lit.base10_parse::<f64>()?));
    }
    if input.peek(syn::token::Paren) && is_pair(input) {
        let content;
        parenthesized!(content in input);
        let a = parse_expr(&content)?;
        content.parse::<Token![,]>()?;
        let b = parse_expr(&content)?;
        content.parse::<Option<Token![,]>>()?;
        if !content.is_empty() {
            return Err(content.error("expected a pair `(a, b)`"));
        }
        return Ok(Value::Dims(a, b));
    }
    if input.peek(Ident::peek_any) && (input.peek2(Token![,]) || is_last(input)) {
        return Ok(Value::Word(input.call(Ident::parse_any)?));
    }
    Ok(Value::Expr(parse_expr(input)?))
}

/// Whether the next token is the last of its group.
fn is_last(input: ParseStream) -> bool {
    let fork = input.fork();
    fork.step(|c| {
        c.token_tree()
            .map(|(_, rest)| ((), rest))
            .ok_or_else(|| c.error(""))
    })
    .is_ok()
        && fork.is_empty()
}

/// Whether the next token is a parenthesised group with a top-level comma
/// followed by nothing, or by a comma (a pair, not an expression in parentheses).
fn is_pair(input: ParseStream) -> bool {
    let fork = input.fork();
    let Ok(group) = fork.step(|c| {
        c.group(Delimiter::Parenthesis)
            .map(|(inside, _, rest)| (inside.token_stream(), rest))
            .ok_or_else(|| c.error("expected parentheses"))
    }) else {
        return false;
    };
    let has_comma = group
        .into_iter()
        .any(|t| matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == ','));
    has_comma && (fork.is_empty() || fork.peek(Token![,]))
}

/// `expr := term (('+' | '-') term)*`, at most [`MAX_DEPTH`] levels high.
pub fn parse_expr(input: ParseStream) -> syn::Result<Expr> {
    Ok(expr(input)?.0)
}

/// An expression and its height: 1 for a literal or a parameter, one more
/// for each operator or pair of parentheses above it.
type Measured = (Expr, usize);

/// The height of a node over children of heights `a` and `b`, or an error at
/// `span` (the operator) past [`MAX_DEPTH`].
fn height(a: usize, b: usize, span: Span) -> syn::Result<usize> {
    let h = a.max(b) + 1;
    if h > MAX_DEPTH {
        return Err(syn::Error::new(
            span,
            format!(
                "the expression nests too deeply: each operator and pair of parentheses is a level, and the language allows at most {MAX_DEPTH}"
            ),
        ));
    }
    Ok(h)
}

fn expr(input: ParseStream) -> syn::Result<Measured> {
    let (mut lhs, mut h) = term(input)?;
    loop {
        let (op, span) = if input.peek(Token![+]) {
            (BinOp::Add, input.parse::<Token![+]>()?.span)
        } else if input.peek(Token![-]) {
            (BinOp::Sub, input.parse::<Token![-]>()?.span)
        } else {
            return Ok((lhs, h));
        };
        let (rhs, hr) = term(input)?;
        h = height(h, hr, span)?;
        lhs = Expr::Binary(Box::new(lhs), op, Box::new(rhs));
    }
}

/// `term := atom (('*' | '/') atom)*`
fn term(input: ParseStream) -> syn::Result<Measured> {
    let (mut lhs, mut h) = atom(input)?;
    loop {
        let (op, span) = if input.peek(Token![*]) {
            (BinOp::Mul, input.parse::<Token![*]>()?.span)
        } else if input.peek(Token![/]) {
            (BinOp::Div, input.parse::<Token![/]>()?.span)
        } else {
            return Ok((lhs, h));
        };
        let (rhs, hr) = atom(input)?;
        h = height(h, hr, span)?;
        lhs = Expr::Binary(Box::new(lhs), op, Box::new(rhs));
    }
}

/// `atom := '-'* (INT | PARAM | '(' expr ')')`; the minus signs are read in
/// a loop, so that a long run of them cannot recurse.
fn atom(input: ParseStream) -> syn::Result<Measured> {
    let mut minuses = Vec::new();
    while input.peek(Token![-]) {
        let span = input.parse::<Token![-]>()?.span;
        // Above at least a literal: this minus is level `len + 2`.
        height(minuses.len() + 1, 0, span)?;
        minuses.push(span);
    }
    let (mut e, mut h) = primary(input)?;
    for span in minuses.into_iter().rev() {
        h = height(h, 0, span)?;
        e = Expr::Neg(Box::new(e), span);
    }
    Ok((e, h))
}

fn primary(input: ParseStream) -> syn::Result<Measured> {
    if input.peek(LitInt) {
        let lit: LitInt = input.parse()?;
        if !lit.suffix().is_empty() {
            return Err(syn::Error::new(
                lit.span(),
                format!("expected an integer, found `{lit}`"),
            ));
        }
        let n = lit.base10_parse::<u64>().map_err(|_| {
            syn::Error::new(
                lit.span(),
                format!("arithmetic overflows: `{lit}` does not fit in 64 bits"),
            )
        })?;
        return Ok((Expr::Int(n, lit.span()), 1));
    }
    if input.peek(syn::token::Paren) {
        let content;
        let paren = parenthesized!(content in input);
        let (inner, h) = expr(&content)?;
        if !content.is_empty() {
            return Err(content.error("expected `)` after the expression"));
        }
        let span = paren.span.join();
        return Ok((Expr::Paren(Box::new(inner), span), height(h, 0, span)?));
    }
    if input.peek(Ident::peek_any) {
        return Ok((Expr::Param(input.call(Ident::parse_any)?), 1));
    }
    Err(input.error("expected an integer expression"))
}

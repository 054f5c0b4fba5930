//! The `cnn!` language: its syntax tree ([`ast`]), the layer table
//! ([`layers`]: every built-in layer's words, arguments, defaults and
//! builder), the one parser the macro and the CLI share ([`parse`]), the
//! printer that writes a net back as text ([`mod@print`]), and rustc-style
//! rendering of its errors for the CLI ([`diagnostic`]).
//!
//! Invariant: the syntax tree and the parser know nothing about graphs or
//! shapes; meaning is given by [`crate::expand`], with the table's builders.

pub mod ast;
pub mod diagnostic;
pub mod layers;
pub mod parse;
pub mod print;

use proc_macro2::TokenStream;
use std::str::FromStr;

/// Lexes a `.cnn` file's text into tokens. Outside a proc macro (the CLI,
/// tests) the tokens carry line and column (proc-macro2's `span-locations`).
pub fn lex(text: &str) -> syn::Result<TokenStream> {
    TokenStream::from_str(text)
        .map_err(|e| syn::Error::new(e.span(), format!("cannot read the file as tokens: {e}")))
}

/// Lexes and parses a `.cnn` file's text.
pub fn parse_source(text: &str) -> syn::Result<ast::Items> {
    parse::parse_items(lex(text)?)
}

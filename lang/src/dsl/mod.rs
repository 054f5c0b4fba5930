//! The `cnn!` language: its syntax tree ([`ast`]), the one parser the macro
//! and the CLI share ([`parse`]), and rustc-style rendering of its errors for
//! the CLI ([`diagnostic`]).
//!
//! Invariant: nothing here knows about graphs or shapes; meaning is given by
//! [`crate::expand`].

pub mod ast;
pub mod diagnostic;
pub mod parse;

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

//! rustc-style rendering of errors with source locations, for the CLI and for
//! errors in files read by `cnn!(file = "...")`:
//!
//! ```text
//! error: conv(16, 5x5): the kernel (5x5) is larger than its padded input (4x4x6)
//!  --> nets/lenet.cnn:9:9
//!   |
//! 9 |         conv(16, 5x5), tanh,
//!   |         ^^^^^^^^^^^^^
//! ```
//!
//! Locations come from proc-macro2's `span-locations`, so they are only real
//! for tokens lexed outside a proc macro (see [`super::lex`]).

use std::fmt::Write;

/// Renders every error in `error`, in the order syn holds them.
pub fn render(error: &syn::Error, path: &str, source: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let mut out = String::new();
    for e in error.clone() {
        let span = e.span();
        let (start, end) = (span.start(), span.end());
        let gutter = " ".repeat(start.line.to_string().len());
        let _ = writeln!(out, "error: {e}");
        let _ = writeln!(
            out,
            "{gutter}--> {path}:{}:{}",
            start.line,
            start.column + 1
        );
        if let Some(text) = start.line.checked_sub(1).and_then(|i| lines.get(i)) {
            let width = if end.line == start.line {
                end.column.saturating_sub(start.column).max(1)
            } else {
                text.chars().count().saturating_sub(start.column).max(1)
            };
            let _ = writeln!(out, "{gutter} |");
            let _ = writeln!(out, "{} | {text}", start.line);
            let _ = writeln!(
                out,
                "{gutter} | {}{}",
                " ".repeat(start.column),
                "^".repeat(width)
            );
        }
    }
    out
}

/// The first error's `FILE:LINE:COL`, for messages that cannot carry a span.
pub fn location(error: &syn::Error, path: &str) -> String {
    let start = error.span().start();
    format!("{path}:{}:{}", start.line, start.column + 1)
}

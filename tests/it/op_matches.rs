//! Every `match` on `ir::Op` in library code lists the variants it stands
//! for: no arm whose pattern, or whose `Op` position in a tuple pattern, is
//! `_` or a bare binding (`other`, `op @ _`). Adding a variant to `Op` is then
//! a compile error at every place that must decide about it.
//!
//! Checked on the tokens of the sources (the code is rustfmt-formatted, so an
//! arm ends at a top-level `,` or after a `{ ... }` body); test modules
//! (`#[cfg(test)]`) are skipped.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use std::path::{Path, PathBuf};

/// The library sources, relative to the workspace root.
const SOURCES: &[&str] = &[
    "src",
    "ir/src",
    "lang/src",
    "codegen/src",
    "runtime/src",
    "import/src",
    "macros/src",
];

/// A catch-all arm of a match on `Op`: where it is and its pattern.
#[derive(Debug, PartialEq)]
struct Finding {
    line: usize,
    pattern: String,
}

/// The catch-all arms of the matches on `Op` in `source`.
fn findings(source: &str) -> Vec<Finding> {
    let tokens: TokenStream = source.parse().expect("the sources are valid Rust tokens");
    let mut out = Vec::new();
    scan(&tokens.into_iter().collect::<Vec<_>>(), &mut out);
    out
}

/// Scans one token list and, recursively, the groups in it.
fn scan(tokens: &[TokenTree], out: &mut Vec<Finding>) {
    let mut skip_next_brace = false;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Punct(p) if p.as_char() == '#' => {
                if let Some(TokenTree::Group(attr)) = tokens.get(i + 1) {
                    let text = attr.stream().to_string().replace(' ', "");
                    skip_next_brace |= text == "cfg(test)";
                }
            }
            TokenTree::Ident(word) if word == "match" => {
                if let Some(body) = tokens[i + 1..].iter().find_map(|t| match t {
                    TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => Some(g),
                    _ => None,
                }) {
                    check_match(&body.stream().into_iter().collect::<Vec<_>>(), out);
                }
            }
            TokenTree::Punct(p) if p.as_char() == ';' => skip_next_brace = false,
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace && skip_next_brace => {
                skip_next_brace = false;
            }
            TokenTree::Group(g) => scan(&g.stream().into_iter().collect::<Vec<_>>(), out),
            _ => {}
        }
    }
}

/// The arms' patterns (guards dropped) of a match body.
fn arm_patterns(body: &[TokenTree]) -> Vec<&[TokenTree]> {
    let mut patterns = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let start = i;
        while i < body.len() && !is_arrow(body, i) {
            i += 1;
        }
        let pattern = &body[start..i];
        let guard = pattern.iter().position(|t| is_ident(t, "if"));
        patterns.push(&pattern[..guard.unwrap_or(pattern.len())]);
        i += 2;
        let block = match body.get(i) {
            Some(TokenTree::Group(g)) => g.delimiter() == Delimiter::Brace,
            Some(t) if is_ident(t, "unsafe") => {
                i += 1;
                true
            }
            _ => false,
        };
        let continues = |t: Option<&TokenTree>| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == '.' || p.as_char() == '?');
        if block && !continues(body.get(i + 1)) {
            i += 1;
            if body.get(i).is_some_and(|t| is_punct(t, ',')) {
                i += 1;
            }
        } else {
            while i < body.len() && !is_punct(&body[i], ',') {
                i += 1;
            }
            i += 1;
        }
    }
    patterns
}

/// Records the catch-all arms of a match body if its arms name `Op`'s variants.
fn check_match(body: &[TokenTree], out: &mut Vec<Finding>) {
    let patterns = arm_patterns(body);
    // The positions in a tuple pattern (0 for a plain pattern) where `Op` is matched.
    let elements = |pattern: &[TokenTree]| -> Vec<Vec<TokenTree>> {
        match pattern {
            [TokenTree::Group(g)] if g.delimiter() == Delimiter::Parenthesis => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                inner
                    .split(|t| is_punct(t, ','))
                    .filter(|e| !e.is_empty())
                    .map(<[TokenTree]>::to_vec)
                    .collect()
            }
            _ => vec![pattern.to_vec()],
        }
    };
    let op_positions: Vec<usize> = patterns
        .iter()
        .flat_map(|p| {
            elements(p)
                .into_iter()
                .enumerate()
                .filter(|(_, e)| names_op(e))
                .map(|(i, _)| i)
        })
        .collect();
    if op_positions.is_empty() {
        return;
    }
    for pattern in patterns {
        let elements = elements(pattern);
        let catch_all = is_catch_all(pattern)
            || op_positions
                .iter()
                .any(|&i| elements.get(i).is_some_and(|e| is_catch_all(e)));
        if catch_all {
            out.push(Finding {
                line: pattern[0].span().start().line,
                pattern: pattern.iter().cloned().collect::<TokenStream>().to_string(),
            });
        }
    }
}

/// Whether `pattern` names a variant of `Op` (`Op::X`, `ir::Op::X`).
fn names_op(pattern: &[TokenTree]) -> bool {
    pattern
        .iter()
        .enumerate()
        .any(|(i, t)| is_ident(t, "Op") && pattern.get(i + 1).is_some_and(|t| is_punct(t, ':')))
}

/// `_`, `name`, `ref name`, `mut name`, `name @ _`.
fn is_catch_all(pattern: &[TokenTree]) -> bool {
    let binding = |t: &TokenTree| matches!(t, TokenTree::Ident(i) if i.to_string().starts_with(|c: char| c.is_lowercase()));
    match pattern {
        [t] => is_ident(t, "_") || binding(t),
        [modifier, name] => {
            (is_ident(modifier, "ref") || is_ident(modifier, "mut")) && binding(name)
        }
        [name, at, wild] => binding(name) && is_punct(at, '@') && is_ident(wild, "_"),
        _ => false,
    }
}

fn is_arrow(tokens: &[TokenTree], i: usize) -> bool {
    is_punct(&tokens[i], '=') && tokens.get(i + 1).is_some_and(|t| is_punct(t, '>'))
}

fn is_punct(t: &TokenTree, c: char) -> bool {
    matches!(t, TokenTree::Punct(p) if p.as_char() == c)
}

fn is_ident(t: &TokenTree, word: &str) -> bool {
    matches!(t, TokenTree::Ident(i) if i == word)
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn library_matches_on_op_have_no_catch_all_arm() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in SOURCES {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut bad = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("a readable source");
        for f in findings(&source) {
            bad.push(format!(
                "{}:{}: `{} =>`",
                file.strip_prefix(root).unwrap_or(file).display(),
                f.line,
                f.pattern
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "matches on `Op` with a catch-all arm (list the variants instead):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checker_finds_catch_all_arms() {
    let source = r#"
        fn f(op: Op, x: Option<u8>) -> u8 {
            let a = match op {
                Op::Add => { 1 }
                Op::Scale if x.is_some() => 2,
                _ => 3,
            };
            let b = match (op, x) {
                (Op::Add, Some(_)) => unsafe { 1 }
                (other, _) => 2,
            };
            let c = match op { Op::Add => 1, op @ _ => 2 };
            let d = match x { Some(_) => 1, _ => 2 };
            let e = match op { Op::Add | Op::Scale => 1, Op::Input => 2 };
            a + b + c + d + e
        }
        #[cfg(test)]
        mod tests {
            fn g(op: Op) -> u8 { match op { Op::Add => 1, _ => 2 } }
        }
        #[cfg(test)]
        use std::fmt;
        fn h(op: Op) -> u8 { match op { Op::Add => 1, _ => 2 } }
    "#;
    let found: Vec<(usize, String)> = findings(source)
        .into_iter()
        .map(|f| (f.line, f.pattern))
        .collect();
    assert_eq!(
        found,
        [
            (6, "_".to_string()),
            (10, "(other , _)".to_string()),
            (12, "op @ _".to_string()),
            (23, "_".to_string()),
        ]
    );
}

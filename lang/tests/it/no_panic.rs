//! The front end never panics: whatever text or tokens it is given, it
//! answers with nets or with errors.
//!
//! Three sources of input: (a) random strings over the language's own
//! vocabulary, both as loose token soup and shaped like the grammar so that
//! they reach shape inference; (b) the valid nets of examples/nets with
//! tokens deleted, duplicated, swapped, inserted, or numbers replaced by zero
//! and by values at and past the limits of u32, i64 and u64; (c) the macro
//! entry point, `emit::expand_macro`, on the tokens of such mutants.

use cnnjit_lang::dsl::layers;
use cnnjit_lang::{compile_source, dsl, emit};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use std::path::Path;
use std::sync::OnceLock;

/// Every token the fuzzers draw from: the layer words and composites
/// (`layers::words`), then [`WORDS`].
fn vocab() -> Vec<&'static str> {
    layers::words().chain(WORDS.iter().copied()).collect()
}

/// Words and punctuation of the language besides its layer words
/// (`layers::words`), a misspelt layer, and values at its limits.
const WORDS: &[&str] = &[
    "rleu",
    // composites and words
    "block",
    "shortcut",
    "auto",
    "same",
    "valid",
    "true",
    "false",
    "pub",
    "width",
    // keys
    "stride",
    "pad",
    "dilation",
    "groups",
    "bias",
    "multiplier",
    "ceil",
    "count_include_pad",
    "eps",
    "size",
    "alpha",
    // identifiers
    "a",
    "b",
    "c",
    "s",
    "Net",
    "Other",
    // numbers and sizes
    "0",
    "1",
    "2",
    "3",
    "7",
    "64",
    "224",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "99999999999999999999",
    "3x3",
    "1x7",
    "0x0",
    "3x",
    "3x3x3x3",
    "224x224x3",
    "32x32x1",
    "4294967295x4294967295x3",
    "65536x65536x65536",
    // floats
    "0.5",
    "1e-5",
    "1e400",
    "0.0",
    "2.5e10",
    // punctuation
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "=",
    "+",
    "-",
    "*",
    "/",
    ";",
    "#",
    "::",
    "\"s\"",
    "'a'",
];

/// Replacements for a number: zero, one, and values at and past the limits.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "255",
    "65535",
    "65536",
    "2147483647",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999",
    "0x0",
    "1x0",
    "0x1",
    "1x1",
    "4294967295x4294967295",
    "65536x65536x65536",
    "4294967295x4294967295x4294967295",
    "100000x100000x100000",
    "1x1x1",
    "0x0x0",
];

/// Compiles `text`; the result does not matter, only that it returns.
fn compile(text: &str) {
    let _ = compile_source(text);
}

// ---------------------------------------------------------------- (a)

/// A value as an argument may be written.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => select(NUMBERS).prop_map(str::to_string),
        6 => select(&["3x3", "1x1", "5x5", "2x2", "1x7", "3", "1", "2", "8", "16"][..])
            .prop_map(str::to_string),
        1 => select(&["same", "valid", "auto", "true", "false", "c", "s", "zz"][..])
            .prop_map(str::to_string),
        1 => select(&["0.5", "1e-5", "-0.5", "1e400", "0.0", "1.0"][..]).prop_map(str::to_string),
        2 => (
            select(&["c", "s", "2", "0", "4294967296"][..]),
            select(&["+", "-", "*", "/"][..]),
            select(&["c", "s", "2", "0", "-1", "9223372036854775807"][..])
        )
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        1 => (
            select(&["c", "1", "3", "0"][..]),
            select(&["c", "1", "3", "0", "-1"][..])
        )
            .prop_map(|(a, b)| format!("({a}, {b})")),
    ]
}

fn arg() -> impl Strategy<Value = String> {
    const KEYS: &[&str] = &[
        "stride",
        "pad",
        "dilation",
        "groups",
        "bias",
        "multiplier",
        "ceil",
        "count_include_pad",
        "eps",
        "size",
        "alpha",
        "beta",
        "k",
        "strde",
        "shortcut",
    ];
    prop_oneof![
        2 => value(),
        1 => (select(KEYS), value()).prop_map(|(k, v)| format!("{k} = {v}")),
    ]
}

/// One layer, composites nested a few levels deep.
fn layer() -> impl Strategy<Value = String> {
    const WORDS: &[&str] = &[
        "conv",
        "dwconv",
        "dense",
        "fc",
        "maxpool",
        "avgpool",
        "global_avgpool",
        "global_maxpool",
        "flatten",
        "bn",
        "relu",
        "relu6",
        "softmax",
        "leaky_relu",
        "prelu",
        "shuffle",
        "slice",
        "upsample",
        "deconv",
        "dropout",
        "identity",
        "lrn",
        "rleu",
        "blk_a",
        "blk_b",
        "repeat",
        "concat",
    ];
    let leaf = prop_oneof![
        select(WORDS).prop_map(str::to_string),
        (select(WORDS), prop::collection::vec(arg(), 0..4))
            .prop_map(|(w, args)| format!("{w}({})", args.join(", "))),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let seq = prop::collection::vec(inner.clone(), 0..4).prop_map(|v| v.join(", "));
        prop_oneof![
            (value(), seq.clone()).prop_map(|(n, s)| format!("repeat({n}) {{ {s} }}")),
            prop::collection::vec(seq.clone(), 1..4).prop_map(|branches| {
                let b: Vec<String> = branches.iter().map(|s| format!("[{s}]")).collect();
                format!("concat {{ {} }}", b.join(", "))
            }),
            seq.clone().prop_map(|s| format!("residual {{ {s} }}")),
            seq.clone()
                .prop_map(|s| format!("residual(shortcut = auto) {{ {s} }}")),
            (seq.clone(), seq.clone())
                .prop_map(|(s, t)| format!("residual(shortcut = [{t}]) {{ {s} }}")),
            seq.clone().prop_map(|s| format!("scale {{ {s} }}")),
            (select(&["x", "y", "stem"][..]), inner.clone())
                .prop_map(|(l, layer)| format!("{l}: {layer}")),
            inner,
        ]
    })
}

fn seq() -> impl Strategy<Value = String> {
    prop::collection::vec(layer(), 0..6).prop_map(|v| v.join(", "))
}

/// Blocks and nets shaped like the grammar, with random contents.
fn program() -> impl Strategy<Value = String> {
    let input = prop_oneof![
        6 => select(&["32x32x3", "8x8x16", "1x1x1", "224x224x3", "784", "10"][..])
            .prop_map(str::to_string),
        1 => select(NUMBERS).prop_map(str::to_string),
    ];
    let width = prop_oneof![
        6 => Just(String::new()),
        1 => select(
            &[
                ", width = 0.5",
                ", width = 1e400",
                ", width = 0",
                ", width = 2"
            ][..]
        )
        .prop_map(str::to_string),
    ];
    let block = (
        select(&["blk_a", "blk_b"][..]),
        select(&["", "c", "c, s", "c, s", "c, s", "c, c"][..]),
        seq(),
    )
        .prop_map(|(name, params, body)| format!("block {name}({params}) {{ {body} }}"));
    let net = (input, width, seq())
        .prop_map(|(input, width, body)| format!("pub Net({input}{width}) {{ {body} }}"));
    (
        prop::collection::vec(block, 0..3),
        prop::collection::vec(net, 1..3),
    )
        .prop_map(|(blocks, nets)| {
            let mut items = blocks;
            items.extend(
                nets.into_iter()
                    .enumerate()
                    .map(|(i, n)| n.replacen("Net", &format!("Net{i}"), 1)),
            );
            items.join("\n")
        })
}

// ---------------------------------------------------------------- (b)

/// The example nets, each split into tokens (comments dropped).
fn example_tokens() -> &'static [Vec<String>] {
    static NETS: OnceLock<Vec<Vec<String>>> = OnceLock::new();
    NETS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nets");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("examples/nets")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "cnn"))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no .cnn file in {}", dir.display());
        paths
            .iter()
            .map(|p| split(&std::fs::read_to_string(p).expect("a .cnn file")))
            .collect()
    })
}

/// Splits a `.cnn` text into tokens: words, numbers (`224x224x3`, `1e-5`),
/// string literals and single punctuation characters. Comments are dropped.
fn split(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                let exponent = matches!(chars[i], 'e' | 'E')
                    && matches!(chars.get(i + 1), Some('-' | '+'))
                    && chars.get(i + 2).is_some_and(char::is_ascii_digit);
                i += if exponent { 2 } else { 1 };
            }
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else {
            i += 1;
        }
        tokens.push(chars[start..i.min(chars.len())].iter().collect());
    }
    tokens
}

/// One edit of a token list.
#[derive(Clone, Debug)]
enum Mutation {
    /// Delete `len` tokens from `at`.
    Delete(Index, usize),
    /// Repeat `len` tokens from `at` right after them.
    Duplicate(Index, usize),
    /// Replace a number (the `at`-th of them) by one of [`NUMBERS`].
    Number(Index, &'static str),
    /// Swap two tokens.
    Swap(Index, Index),
    /// Insert a token of [`vocab`].
    Insert(Index, &'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (any::<Index>(), 1..12usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), 1..40usize).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        4 => (any::<Index>(), select(NUMBERS)).prop_map(|(i, v)| Mutation::Number(i, v)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
        1 => (any::<Index>(), select(vocab())).prop_map(|(i, t)| Mutation::Insert(i, t)),
    ]
}

fn apply(tokens: &mut Vec<String>, m: &Mutation) {
    if tokens.is_empty() {
        return;
    }
    match m {
        Mutation::Delete(at, len) => {
            let at = at.index(tokens.len());
            let end = (at + len).min(tokens.len());
            tokens.drain(at..end);
        }
        Mutation::Duplicate(at, len) => {
            let at = at.index(tokens.len());
            let end = (at + len).min(tokens.len());
            let copy: Vec<String> = tokens[at..end].to_vec();
            tokens.splice(end..end, copy);
        }
        Mutation::Number(at, value) => {
            let numbers: Vec<usize> = (0..tokens.len())
                .filter(|&i| tokens[i].starts_with(|c: char| c.is_ascii_digit()))
                .collect();
            if !numbers.is_empty() {
                tokens[numbers[at.index(numbers.len())]] = value.to_string();
            }
        }
        Mutation::Swap(i, j) => {
            let (i, j) = (i.index(tokens.len()), j.index(tokens.len()));
            tokens.swap(i, j);
        }
        Mutation::Insert(at, token) => {
            let at = at.index(tokens.len() + 1);
            tokens.insert(at, token.to_string());
        }
    }
}

/// An example net with `mutations` applied, as text.
fn mutant(net: &Index, mutations: &[Mutation]) -> String {
    let nets = example_tokens();
    let mut tokens = nets[net.index(nets.len())].clone();
    for m in mutations {
        apply(&mut tokens, m);
    }
    tokens.join(" ")
}

#[test]
fn unmutated_examples_still_compile() {
    // The mutants start from valid nets: the splitting keeps them valid.
    for tokens in example_tokens() {
        let text = tokens.join(" ");
        if let Err(e) = compile_source(&text) {
            panic!(
                "{}",
                cnnjit_lang::dsl::diagnostic::render(&e, "rejoined", &text)
            );
        }
    }
}

#[test]
fn limits_never_panic() {
    // A few hand-picked inputs at the limits, before the random ones.
    for text in [
        "N(4294967295x4294967295x4294967295) { conv(4294967295, 1x1), flatten, dense(4294967295) }",
        "N(65536x65536x65536) { global_avgpool, flatten, dense(4294967295) }",
        "N(4294967295) { dense(4294967295), dense(4294967295) }",
        "N(1x1x1) { conv(1, 1x1, dilation = 4294967295, pad = 4294967295) }",
        "N(1x1x1) { maxpool(4294967295x4294967295, pad = 2147483647, ceil = true) }",
        "N(8x8x8) { dwconv(3x3, multiplier = 4294967295, pad = same, stride = 4294967295) }",
        "N(8x8x8) { repeat(4294967295) { relu } }",
        "N(8x8x8) { x: repeat(4294967295) { }, relu }",
        "N(8x8x8) { repeat(4294967295) { repeat(4294967295) { repeat(1) {} } }, relu }",
        "block e() { } N(8x8x8) { repeat(9223372036854775807) { e, e() }, relu }",
        // 2^40 calls of blocks that add no layer.
        exponential_empty_blocks(40).as_str(),
        "block b(c) { conv(c * c * c * c, 1x1) } N(8x8x3) { b(9223372036854775807) }",
        "block b(c) { conv(-c / -1, 1x1) } N(8x8x3) { b(-9223372036854775807 - 1) }",
        "N(8x8x3, width = 1e300) { conv(4294967295, 1x1) }",
        "N(8x8x3, width = 1e-300) { conv(1, 1x1) }",
        "N(8x8x3) { concat { [conv(4294967295, 1x1)], [conv(4294967295, 1x1)] } }",
        "N(8x8x3) { concat { [flatten], [flatten] }, dense(1) }",
        "N(8x8x3) { lrn(4294967295), leaky_relu(1e400), bn(eps = 1e400), dropout(-0.0) }",
        "N(0) { relu } M(0x0x0) { relu }",
    ] {
        compile(text);
        if let Ok(tokens) = dsl::lex(text) {
            let _ = emit::expand_macro(tokens);
        }
    }
}

/// `cases` cases, unless `PROPTEST_CASES` asks for more. A longer hunt:
/// `PROPTEST_CASES=20000 cargo test -p cnnjit-lang --test it no_panic`, in
/// debug, where arithmetic overflow panics (release would wrap silently).
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// `block e1() { e0, e0 }` ... `block eN() { eN-1, eN-1 }`: 2^N calls of an empty block.
fn exponential_empty_blocks(n: usize) -> String {
    let mut text = String::from("block e0() { }\n");
    for i in 1..=n {
        text += &format!("block e{i}() {{ e{j}, e{j} }}\n", j = i - 1);
    }
    text + &format!("N(8x8x8) {{ e{n}, relu }}")
}

proptest! {
    #![proptest_config(config(256))]

    /// (a) Loose token soup over the language's vocabulary.
    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(select(vocab()), 0..60)) {
        compile(&tokens.join(" "));
    }

    /// (a) Token soup inside a well-formed net, so it gets past the header.
    #[test]
    fn token_soup_in_a_net_never_panics(tokens in prop::collection::vec(select(vocab()), 0..40)) {
        compile(&format!("Net(32x32x3) {{ {} }}", tokens.join(" ")));
    }

    /// (a) Programs shaped like the grammar: they reach shape inference.
    #[test]
    fn grammar_shaped_programs_never_panic(text in program()) {
        compile(&text);
    }

    /// (b) The example nets, mutated.
    #[test]
    fn mutated_examples_never_panic(
        net in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        compile(&mutant(&net, &mutations));
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// (c) The macro entry point on the tokens of mutated examples.
    #[test]
    fn macro_on_mutated_examples_never_panics(
        net in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..3),
    ) {
        if let Ok(tokens) = dsl::lex(&mutant(&net, &mutations)) {
            let _ = emit::expand_macro(tokens);
        }
    }

    /// (c) The macro entry point on grammar-shaped programs.
    #[test]
    fn macro_on_grammar_shaped_programs_never_panics(text in program()) {
        if let Ok(tokens) = dsl::lex(&text) {
            let _ = emit::expand_macro(tokens);
        }
    }
}

//! Deep nesting is an error, never a stack overflow: every nesting the
//! language has (repeats, parentheses, braces, brackets, blocks calling
//! blocks, long `+` chains, runs of `-`) is run through the file path
//! (`compile_source`) and the macro path (`emit::expand_macro`) on a thread
//! with a 2 MiB stack, the default of `std::thread::spawn`. Before the limit
//! existed, 2,000 nested `repeat`s or 3,000 parentheses aborted the process.

use cnnjit_lang::dsl::diagnostic;
use cnnjit_lang::{compile_source, emit};
use proptest::prelude::*;
use std::str::FromStr;

/// `f` on a thread with a 2 MiB stack.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("a thread starts")
        .join()
        .expect("no panic")
}

/// How many nets compiled, or the errors rendered as the CLI shows them.
fn compile(text: String) -> Result<usize, String> {
    on_small_stack(move || {
        compile_source(&text)
            .map(|nets| nets.len())
            .map_err(|e| diagnostic::render(&e, "deep.cnn", &text))
    })
}

/// The macro's expansion of `text`'s tokens, as a string.
fn expand(text: String) -> String {
    on_small_stack(move || {
        let tokens = proc_macro2::TokenStream::from_str(&text).expect("the text lexes");
        emit::expand_macro(tokens).to_string()
    })
}

/// Asserts that `text` fails with `message` at line `line` of the file, and
/// that the macro reports the same message.
fn assert_too_deep(text: String, message: &str, line: usize) {
    let rendered = compile(text.clone()).expect_err("too deep to compile");
    assert!(
        rendered.contains(message),
        "expected `{message}` in:\n{rendered}"
    );
    assert!(
        rendered.contains(&format!("--> deep.cnn:{line}:")),
        "expected the error at line {line}:\n{rendered}"
    );
    let expanded = expand(text);
    assert!(
        expanded.contains("compile_error") && expanded.contains(message),
        "expected `{message}` from the macro, found:\n{}",
        &expanded[..expanded.len().min(2000)]
    );
}

const BRACKETS: &str = "and the language allows at most 256 levels of `(`, `[` and `{`";
const EXPRESSION: &str =
    "the expression nests too deeply: each operator and pair of parentheses is a level, and the language allows at most 256";
const LAYERS: &str = "layers nest too deeply: this layer is inside more than 256 levels";

/// `n` nested repeats, one a line after the net's first line.
fn nested_repeats(n: usize) -> String {
    format!(
        "N(8x8x1) {{\n{}relu\n{}}}",
        "repeat(1) {\n".repeat(n),
        "}\n".repeat(n)
    )
}

/// A chain of `n` blocks, each calling the one before, one a line.
fn block_chain(n: usize) -> String {
    let mut text = String::from("block b0() { relu }\n");
    for i in 1..=n {
        text += &format!("block b{i}() {{ b{}() }}\n", i - 1);
    }
    text + &format!("N(8x8x1) {{ b{n}() }}\n")
}

#[test]
fn nested_repeats_at_the_limit_compile() {
    // The net's braces are level 1, so 255 repeats reach level 256.
    assert_eq!(compile(nested_repeats(255)), Ok(1));
}

#[test]
fn ten_thousand_nested_repeats_are_an_error() {
    // Repeat k is on line k + 1; its `(` opens level k + 1.
    assert_too_deep(nested_repeats(10_000), BRACKETS, 257);
    assert_too_deep(nested_repeats(256), BRACKETS, 257);
}

#[test]
fn thirty_thousand_parentheses_are_an_error() {
    // The repeat's `(` is level 2 on line 2; the k-th inner `(` is level k + 2 on line k + 2.
    let text = |n: usize| {
        format!(
            "N(8x8x1) {{\nrepeat(\n{}1{}) {{ relu }}\n}}",
            "(\n".repeat(n),
            ")".repeat(n)
        )
    };
    assert_eq!(compile(text(254)), Ok(1));
    assert_too_deep(text(30_000), BRACKETS, 257);
}

#[test]
fn fifty_thousand_braces_and_brackets_are_an_error() {
    let braces = format!(
        "N(8x8x1) {{\n{}{}}}",
        "{\n".repeat(50_000),
        "}".repeat(50_000)
    );
    assert_too_deep(braces, BRACKETS, 257);
    let brackets = format!(
        "N(8x8x1) {{\nconcat {{\n{} relu {} }}\n}}",
        "[\n".repeat(50_000),
        "]".repeat(50_000)
    );
    // The concat's `{` is level 2 on line 2; the k-th `[` is level k + 2.
    assert_too_deep(brackets, BRACKETS, 257);
}

#[test]
fn nested_concats_are_an_error() {
    // Each concat opens a `{` and a `[` on its own line: concat k's `{` is
    // level 2k on line k + 1, its `[` level 2k + 1; level 257 is concat 128's `[`.
    let text = format!(
        "N(8x8x1) {{\n{} relu {}\n}}",
        "concat { [\n".repeat(20_000),
        "] }".repeat(20_000)
    );
    assert_too_deep(text, BRACKETS, 129);
}

#[test]
fn a_thirty_thousand_term_sum_is_an_error() {
    // The k-th `+` is on line k + 2 and makes the expression k + 1 levels high.
    let text = |n: usize| {
        format!(
            "N(8x8x1) {{\nrepeat(1\n{}) {{ relu }}\n}}",
            "+ 0\n".repeat(n)
        )
    };
    assert_eq!(compile(text(255)), Ok(1));
    assert_too_deep(text(30_000), EXPRESSION, 258);
    let product = format!("N(8x8x1) {{ conv(1{}, 1x1) }}", " * 1".repeat(30_000));
    assert_too_deep(product, EXPRESSION, 1);
}

#[test]
fn a_long_run_of_minus_signs_is_an_error() {
    // `- - 1` is 1; the 256th `-` (line 257) is the 257th level.
    let text = |n: usize| format!("N(8x8x1) {{\nrepeat(\n{}1) {{ relu }}\n}}", "-\n".repeat(n));
    assert_eq!(compile(text(254)), Ok(1));
    assert_too_deep(text(60_000), EXPRESSION, 258);
}

#[test]
fn a_long_chain_of_blocks_is_an_error() {
    // The net's body is level 1, the body of the block it calls level 2, and
    // so on down the chain; line k + 1 defines block k.
    assert_eq!(compile(block_chain(254)), Ok(1));
    let rendered = compile(block_chain(5_000)).expect_err("too deep to expand");
    assert!(rendered.contains(LAYERS), "{rendered}");
    // b5000's body is level 2, b(5000 - j)'s level j + 2: level 257 is b4745's,
    // whose call `b4744()` is on line 4746.
    assert!(rendered.contains("--> deep.cnn:4746:"), "{rendered}");
    let expanded = expand(block_chain(5_000));
    assert!(expanded.contains(LAYERS), "{expanded}");
}

#[test]
fn a_block_calling_itself_is_an_error() {
    let rendered = compile("block a() { a() }\nN(8x8x1) { a() }".to_string())
        .expect_err("recursion is an error");
    assert!(
        rendered.contains("recursion between blocks: `a` calls `a`"),
        "{rendered}"
    );
}

/// One level of nesting around `inner`, drawn by `kind`.
fn wrap(kind: u8, inner: &str) -> String {
    match kind % 8 {
        0 => format!("repeat(1) {{ {inner} }}"),
        1 => format!("concat {{ [{inner}], [relu] }}"),
        2 => format!("residual {{ {inner} }}"),
        3 => format!("residual(shortcut = [{inner}]) {{ relu }}"),
        4 => format!("scale {{ {inner}, global_avgpool, sigmoid }}"),
        5 => format!("repeat((1)) {{ {inner}, identity }}"),
        6 => format!("{{ {inner} }}"),
        _ => format!("[{inner}]"),
    }
}

/// A source nested by `kinds` around an innermost layer whose count is a
/// `+` chain of `terms` terms inside `parens` parentheses, plus a chain of
/// `blocks` blocks.
fn nested_source(kinds: &[u8], terms: usize, parens: usize, blocks: usize) -> String {
    let sum = format!("1{}", " + 0".repeat(terms));
    let count = format!("{}{sum}{}", "(".repeat(parens), ")".repeat(parens));
    let mut body = format!("repeat({count}) {{ relu }}, b{blocks}()");
    for &kind in kinds.iter().rev() {
        body = wrap(kind, &body);
    }
    let mut text = String::from("block b0() { relu }\n");
    for i in 1..=blocks {
        text += &format!("block b{i}() {{ b{}() }}\n", i - 1);
    }
    text + &format!("N(8x8x4) {{\n{body}\n}}\n")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever the mix and depth, the front end answers on a 2 MiB stack.
    #[test]
    fn deep_mixed_nesting_never_crashes(
        kinds in prop::collection::vec(any::<u8>(), 0..600),
        terms in 0usize..600,
        parens in 0usize..600,
        blocks in 0usize..600,
    ) {
        let text = nested_source(&kinds, terms, parens, blocks);
        match compile(text.clone()) {
            Ok(nets) => prop_assert_eq!(nets, 1),
            Err(rendered) => prop_assert!(rendered.starts_with("error: "), "{}", rendered),
        }
        let expanded = expand(text);
        prop_assert!(
            expanded.contains("compile_error") || expanded.contains("struct N"),
            "{}",
            expanded
        );
    }
}

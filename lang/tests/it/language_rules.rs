//! The language's rules that have no shape behind them: a block cannot take a
//! built-in layer's name, nets have distinct names, sizes say which bound
//! they pass, pools pad at most half their kernel (PyTorch's rule), and
//! `bn`'s eps is positive. Each error names its line.

use cnnjit_lang::dsl::diagnostic;
use cnnjit_lang::{compile_source, emit};
use std::str::FromStr;

/// The errors of `text` as the CLI renders them, or `Ok` with the nets' count.
fn compile(text: &str) -> Result<usize, String> {
    compile_source(text)
        .map(|nets| nets.len())
        .map_err(|e| diagnostic::render(&e, "rules.cnn", text))
}

/// Asserts that `text` fails with `message` at `LINE:COL`.
fn assert_error(text: &str, message: &str, at: &str) {
    let rendered = compile(text).expect_err("an error");
    assert!(
        rendered.starts_with(&format!("error: {message}\n")),
        "expected `{message}`, found:\n{rendered}"
    );
    assert!(
        rendered.contains(&format!("--> rules.cnn:{at}\n")),
        "expected the error at {at}:\n{rendered}"
    );
}

#[test]
fn a_block_named_like_a_layer_is_an_error_on_its_definition() {
    assert_error(
        "N(8x8x1) { relu }\nblock relu() { sigmoid }\n",
        "`relu` is a built-in layer and cannot name a block (calls of `relu` would mean the layer); rename the block, e.g. `block my_relu(...)`",
        "2:7",
    );
    assert_error(
        "block identity(c) { conv(c, 1x1) }\nN(8x8x1) { identity(64) }\n",
        "`identity` is a built-in layer and cannot name a block (calls of `identity` would mean the layer); rename the block, e.g. `block my_identity(...)`",
        "1:7",
    );
    // Aliases are layers too.
    assert!(compile("block fc() { relu }\nN(4) { fc }")
        .unwrap_err()
        .contains("`fc` is a built-in layer"));
    assert_eq!(
        compile("block my_relu() { sigmoid }\nN(8x8x1) { my_relu }"),
        Ok(1)
    );
}

#[test]
fn a_second_net_of_the_same_name_is_an_error() {
    let text = "N(8x8x1) { relu }\nM(8x8x1) { relu }\nN(4x4x1) { relu }\n";
    assert_error(
        text,
        "net `N` is defined twice; give this one another name",
        "3:1",
    );
    // The macro reports it, and emits the type `N` once (a second would
    // add rustc's own "defined multiple times").
    let expanded =
        emit::expand_macro(proc_macro2::TokenStream::from_str(text).unwrap()).to_string();
    assert!(expanded.contains("net `N` is defined twice"), "{expanded}");
    assert_eq!(expanded.matches("struct N ").count(), 1, "{expanded}");
    assert_eq!(expanded.matches("struct M ").count(), 1, "{expanded}");
}

#[test]
fn a_size_past_32_bits_says_it_is_too_large() {
    assert_error(
        "N(8x8x1) {\n  conv(1, 1x1, stride = 99999999999),\n}",
        "conv(1, 1x1, stride = 99999999999): `stride` is too large: at most 4294967295, found 99999999999",
        "2:16",
    );
    assert_error(
        "N(8x8x1) { maxpool(2x2, pad = 4294967296) }",
        "maxpool(2x2, pad = 4294967296): `pad` is too large: at most 4294967295, found 4294967296",
        "1:25",
    );
    assert_error(
        "N(8x8x1) { conv(4294967296, 1x1) }",
        "conv(4294967296, 1x1): `K` is too large: at most 4294967295, found 4294967296",
        "1:17",
    );
    // The lower bounds keep their messages.
    assert_error(
        "N(8x8x1) { conv(1, 1x1, stride = 0) }",
        "conv(1, 1x1, stride = 0): `stride` must be at least 1, found 0",
        "1:25",
    );
    assert_error(
        "N(8x8x1) { conv(1, 1x1, pad = -1) }",
        "conv(1, 1x1, pad = -1): `pad` must not be negative, found -1",
        "1:25",
    );
}

#[test]
fn a_pool_pads_at_most_half_its_kernel() {
    assert_error(
        "N(8x8x1) {\n  maxpool(3x3, pad = 5),\n}",
        "maxpool(3x3, pad = 5): `pad` must be at most half the kernel, 1 for 3x3 (PyTorch's rule), found 5",
        "2:16",
    );
    assert_error(
        "N(8x8x1) { avgpool(3x3, stride = 1, pad = 2) }",
        "avgpool(3x3, stride = 1, pad = 2): `pad` must be at most half the kernel, 1 for 3x3 (PyTorch's rule), found 2",
        "1:37",
    );
    assert_error(
        "N(8x8x1) { maxpool(1x7, stride = 1, pad = (1, 3)) }",
        "maxpool(1x7, stride = 1, pad = 1x3): `pad` must be at most half the kernel, (0, 3) for 1x7 (PyTorch's rule), found (1, 3)",
        "1:37",
    );
    for ok in [
        "maxpool(3x3, stride = 1, pad = 1)",
        "avgpool(2x2, pad = 1)",
        "maxpool(1x7, stride = 1, pad = (0, 3))",
        "avgpool(2x2, stride = 1, pad = same)",
        "maxpool(3x3, stride = 2, pad = same, ceil = true)",
    ] {
        assert_eq!(compile(&format!("N(8x8x1) {{ {ok} }}")), Ok(1), "{ok}");
    }
}

#[test]
fn bn_eps_is_positive() {
    assert_error(
        "N(8x8x1) {\n  bn(eps = -1.0),\n}",
        "bn(eps = -1.0): `eps` must be greater than 0, found -1; it keeps `sqrt(running_var + eps)` away from zero",
        "2:6",
    );
    assert!(compile("N(8x8x1) { bn(eps = 0.0) }")
        .unwrap_err()
        .contains("`eps` must be greater than 0, found 0;"));
    assert_eq!(compile("N(8x8x1) { bn(eps = 1e-3), batchnorm }"), Ok(1));
}

//! Every table the project prints (the summary, the plan and profile of
//! `bench`, `compare`) clips a long layer or net name to `MAX_CELL`
//! characters: a label of 65,536 characters used to panic the formatter
//! ("Formatting argument out of range").

use cnnjit::ir::summary::MAX_CELL;
use std::process::{Command, Output};

/// A label of 65,536 characters (a Rust identifier).
fn label() -> String {
    format!("s{}", "t".repeat(65_535))
}

/// A small net whose first layer carries the long label.
fn source() -> String {
    format!(
        "Long(8x8x2) {{\n    {}: conv(4, 3x3), relu,\n    flatten,\n    dense(3),\n}}\n",
        label()
    )
}

/// The longest line of `text`, in characters.
fn widest(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// `text` names the label by its clipped form, never in full.
fn assert_clipped(text: &str) {
    let clipped = format!("{}…", &label()[..MAX_CELL - 1]);
    assert!(
        text.contains(&clipped),
        "no clipped label in:\n{text:.2000}"
    );
    assert!(
        !text.contains(&label()[..MAX_CELL]),
        "the label is not clipped"
    );
    assert!(widest(text) < 400, "a line of {} characters", widest(text));
}

#[test]
fn library_tables_clip_a_65536_character_label() {
    let nets = cnnjit::lang::compile_source(&source()).expect("the net compiles");
    let net = &nets[0];
    let summary = net.summary();
    assert_clipped(&summary.to_string());
    let mut model = cnnjit::Model::random(net.graph.clone(), 1).expect("a model");
    assert_clipped(&model.kernels().to_string());
    let input = cnnjit::check::random_input(model.input_len(), 1);
    assert_clipped(&model.profile(&input, 1).expect("a profile").to_string());
}

fn cnnjit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnjit"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn cli_tables_clip_a_65536_character_label() {
    let path = std::env::temp_dir().join(format!("cnnjit-long-names-{}.cnn", std::process::id()));
    std::fs::write(&path, source()).unwrap();
    let file = path.to_str().unwrap();
    for args in [
        vec!["summary", file],
        vec!["bench", file, "--plan"],
        vec!["compare", file],
    ] {
        let out = cnnjit(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        if args[0] == "compare" {
            // The table names the net, not its layers.
            assert!(stdout.contains("| Long |"), "{stdout}");
        } else {
            assert_clipped(&stdout);
        }
    }
    std::fs::remove_file(&path).unwrap();
}

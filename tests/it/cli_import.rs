//! `cnnjit import` writes both of its files or neither, never over the model
//! or one over the other, and names a path once in its errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cnnjit(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnjit"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A fresh folder holding a copy of an ONNX fixture, `model.onnx`.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cnnjit-cli-import-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture(), dir.join("model.onnx")).unwrap();
    dir
}

fn fixture() -> String {
    format!(
        "{}/tests/fixtures/onnx/resnet_basic.onnx",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The folder's file names, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The command failed with status 1; its stderr.
fn failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

#[test]
fn import_never_writes_over_its_model_or_one_output_over_the_other() {
    let dir = folder("clobber");
    std::fs::create_dir(dir.join("sub")).unwrap();
    let model = dir.join("model.onnx");
    let original = std::fs::read(&model).unwrap();
    for (output, named) in [
        // The .cnn file would be the model.
        (dir.join("model.onnx"), "model.onnx"),
        (dir.join("sub/../model.onnx"), "model.onnx"),
        // The weights would be written over the .cnn file.
        (dir.join("out.safetensors"), "out.safetensors"),
    ] {
        let stderr = failure(&cnnjit(&[
            Path::new("import"),
            &model,
            Path::new("-o"),
            &output,
        ]));
        assert!(stderr.contains(named), "{stderr}");
        assert_eq!(std::fs::read(&model).unwrap(), original);
        assert_eq!(listing(&dir), ["model.onnx", "sub"]);
    }
    // A model named like the weights of its output.
    let renamed = dir.join("net.safetensors");
    std::fs::rename(&model, &renamed).unwrap();
    let stderr = failure(&cnnjit(&[
        Path::new("import"),
        &renamed,
        Path::new("-o"),
        &dir.join("net.cnn"),
    ]));
    assert!(stderr.contains("net.safetensors"), "{stderr}");
    assert_eq!(std::fs::read(&renamed).unwrap(), original);
    assert_eq!(listing(&dir), ["net.safetensors", "sub"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_write_leaves_neither_file() {
    let dir = folder("atomic");
    let model = dir.join("model.onnx");
    // The weights' path is a folder: the .cnn file must not stay behind.
    std::fs::create_dir(dir.join("out.safetensors")).unwrap();
    let stderr = failure(&cnnjit(&[
        Path::new("import"),
        &model,
        Path::new("-o"),
        &dir.join("out.cnn"),
    ]));
    assert!(stderr.contains("out.safetensors"), "{stderr}");
    assert_eq!(listing(&dir), ["model.onnx", "out.safetensors"]);
    assert_eq!(listing(&dir.join("out.safetensors")), Vec::<String>::new());
    // The .cnn file's path is a folder: no weights either.
    std::fs::remove_dir(dir.join("out.safetensors")).unwrap();
    std::fs::create_dir(dir.join("out.cnn")).unwrap();
    let stderr = failure(&cnnjit(&[
        Path::new("import"),
        &model,
        Path::new("-o"),
        &dir.join("out.cnn"),
    ]));
    assert!(stderr.contains("out.cnn"), "{stderr}");
    assert_eq!(listing(&dir), ["model.onnx", "out.cnn"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_import_error_names_the_model_once() {
    let dir = folder("once");
    let missing = dir.join("nope.onnx");
    let stderr = failure(&cnnjit(&[
        Path::new("import"),
        &missing,
        Path::new("-o"),
        &dir.join("out.cnn"),
    ]));
    assert_eq!(stderr.matches("nope.onnx").count(), 1, "{stderr}");
    // An error of the model names it once too, in front.
    let text = dir.join("text.onnx");
    std::fs::write(&text, "not protobuf").unwrap();
    let stderr = failure(&cnnjit(&[
        Path::new("import"),
        &text,
        Path::new("-o"),
        &dir.join("out.cnn"),
    ]));
    assert!(
        stderr.starts_with(&format!("error: {}: not an ONNX model", text.display())),
        "{stderr}"
    );
    assert_eq!(stderr.matches("text.onnx").count(), 1, "{stderr}");
    assert_eq!(listing(&dir), ["model.onnx", "text.onnx"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_input_shape_is_parsed_and_checked_against_the_model() {
    // The fixture's input is [?, 3, 16, 16].
    let dir = folder("shape");
    let (model, out) = (dir.join("model.onnx"), dir.join("out.cnn"));
    let import = |shape: &str| {
        cnnjit(&[
            Path::new("import"),
            &model,
            Path::new("-o"),
            &out,
            Path::new("--input-shape"),
            Path::new(shape),
        ])
    };
    for malformed in ["16x16", "16x0x3", "axbxc", "16x16x3x1"] {
        let output = import(malformed);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{malformed}: {stderr}");
        assert!(stderr.contains("is not HxWxC"), "{malformed}: {stderr}");
    }
    let stderr = failure(&import("9x9x3"));
    assert!(stderr.contains("9x9x3, disagrees"), "{stderr}");
    assert_eq!(listing(&dir), ["model.onnx"]);
    let output = import("16x16x3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(listing(&dir), ["model.onnx", "out.cnn", "out.safetensors"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

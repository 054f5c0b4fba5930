//! `cnnjit run --image`: the digits demo classifies a PNG from the shell and
//! names its class; probabilities come from the net's softmax or one applied
//! (and said so); labels, presets and bad files are checked, each failure a
//! one-line error naming the file, exit status 1, no panic.
#![cfg(feature = "cli")]

use crate::cli_run::{assert_fails, run as cnnjit, Output};
use std::path::{Path, PathBuf};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

fn dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli_image_{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn digit() -> String {
    format!("{EXAMPLES}/data/digit_4.png")
}

/// `cnnjit run` on the digits demo's LeNet-5 with `extra` arguments.
fn lenet(extra: &[&str]) -> Output {
    let net = format!("{EXAMPLES}/nets/lenet5.cnn");
    let weights = format!("{EXAMPLES}/data/lenet5_digits.safetensors");
    let mut args = vec!["run", &net, "--weights", &weights];
    args.extend_from_slice(extra);
    cnnjit(&args)
}

/// The probability printed first for `image`, and the name after it.
fn first_class(stdout: &str, image: &str) -> (f32, String) {
    let mut lines = stdout.lines().skip_while(|l| *l != format!("{image}:"));
    assert!(lines.next().is_some(), "{image} not in {stdout}");
    let line = lines.next().unwrap().trim();
    let (p, name) = line.split_once("  ").unwrap();
    (p.parse().unwrap(), name.to_string())
}

#[test]
fn cli_image_digits_demo_names_the_digit() {
    let dir = dir("digits");
    let labels = dir.join("digits.txt");
    std::fs::write(
        &labels,
        "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n",
    )
    .unwrap();
    let out = lenet(&[
        "--image",
        &digit(),
        "--preprocess",
        "digits",
        "--labels",
        labels.to_str().unwrap(),
        "--top",
        "3",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("probabilities: the net's own softmax\n"),
        "{}",
        out.stdout
    );
    let (p, name) = first_class(&out.stdout, &digit());
    assert_eq!(name, "four (4)");
    assert!(p > 0.5 && p <= 1.0, "{p}");
    // Three classes, one line each, after the header and the file's line.
    assert_eq!(out.stdout.lines().count(), 1 + 1 + 3, "{}", out.stdout);
    // Without labels: class indices.
    let out = lenet(&["--image", &digit(), "--preprocess", "digits", "--top", "1"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(first_class(&out.stdout, &digit()).1, "class 4");
}

#[test]
fn cli_image_applies_softmax_when_the_net_has_none() {
    let dir = dir("softmax");
    std::fs::write(
        dir.join("net.cnn"),
        "Pix(2x2x3) { flatten, fc: dense(3) }\n",
    )
    .unwrap();
    // fc: class c sums channel c of the four pixels (columns in PyTorch's
    // channel, height, width order).
    let mut weights = cnnjit::Weights::new();
    let fc: Vec<f32> = (0..3)
        .flat_map(|c| (0..12).map(move |i| if i / 4 == c { 1.0 } else { 0.0 }))
        .collect();
    weights.insert("fc.weight", vec![3, 12], fc).unwrap();
    weights.insert("fc.bias", vec![3], vec![0.0; 3]).unwrap();
    weights.save(dir.join("w.safetensors")).unwrap();
    // All pixels (255, 0, 0): scores 4, 0, 0 under `none`.
    let png = dir.join("red.png");
    image::RgbImage::from_pixel(2, 2, image::Rgb([255, 0, 0]))
        .save(&png)
        .unwrap();
    let png = png.to_str().unwrap();
    let out = cnnjit(&[
        "run",
        dir.join("net.cnn").to_str().unwrap(),
        "--weights",
        dir.join("w.safetensors").to_str().unwrap(),
        "--image",
        png,
        png,
        "--preprocess",
        "none",
        "--top",
        "2",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with(
            "probabilities: softmax applied to the outputs (the net's last layer is not softmax)\n"
        ),
        "{}",
        out.stdout
    );
    // e^4 / (e^4 + 2), by hand.
    let want = 4f64.exp() / (4f64.exp() + 2.0);
    let (p, name) = first_class(&out.stdout, png);
    assert_eq!(name, "class 0");
    assert!((f64::from(p) - want).abs() < 1e-4, "{p} vs {want}");
    assert_eq!(out.stdout.matches(&format!("{png}:\n")).count(), 2);
}

#[test]
fn cli_image_and_input_are_exclusive_and_one_is_needed() {
    let out = lenet(&["--image", &digit(), "--input", "x.npy"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
    let out = lenet(&[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--input"), "{}", out.stderr);
    let out = lenet(&["--image", &digit(), "--preprocess", "cifar"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("imagenet, digits, none"),
        "{}",
        out.stderr
    );
}

#[test]
fn cli_image_errors_name_the_file() {
    let dir = dir("errors");
    // The ImageNet names do not fit a 10-class net.
    let out = lenet(&[
        "--image",
        &digit(),
        "--preprocess",
        "digits",
        "--labels",
        "imagenet",
    ]);
    assert_fails(
        &out,
        &["imagenet has 1000 class names, but the net has 10 outputs"],
    );
    // The default preset (imagenet) does not fit LeNet-5.
    let out = lenet(&["--image", &digit()]);
    assert_fails(
        &out,
        &["digit_4.png", "224x224x3", "32x32x1", "make it grey"],
    );
    // A truncated PNG, a text file, a missing file.
    let bytes = std::fs::read(digit()).unwrap();
    let cut = dir.join("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let text = dir.join("notes.png");
    std::fs::write(&text, "not an image\n").unwrap();
    for (file, needle) in [
        (cut.to_str().unwrap(), "cannot decode the image"),
        (text.to_str().unwrap(), "not a JPEG or PNG image"),
        ("/no/such/digit.png", "digit.png"),
    ] {
        let out = lenet(&["--image", &digit(), file, "--preprocess", "digits"]);
        assert_fails(&out, &[file, needle]);
    }
    // A labels file with a blank line.
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "0\n1\n\n3\n").unwrap();
    let out = lenet(&[
        "--image",
        &digit(),
        "--preprocess",
        "digits",
        "--labels",
        labels.to_str().unwrap(),
    ]);
    assert_fails(&out, &["labels.txt:3: a blank line"]);
}

#[test]
fn cli_image_writes_the_outputs_it_ranks() {
    let dir = dir("output");
    let npy = dir.join("out.npy");
    let out = lenet(&[
        "--image",
        &digit(),
        &digit(),
        "--preprocess",
        "digits",
        "--output",
        npy.to_str().unwrap(),
        "--top",
        "1",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let written = cnnjit::npy::read_f32(&npy).unwrap();
    assert_eq!(written.shape, [2, 10]);
    assert_eq!(written.data[..10], written.data[10..]);
    let p = written.data[4];
    assert_eq!(
        first_class(&out.stdout, &digit()).0,
        format!("{p:.4}").parse::<f32>().unwrap()
    );
}

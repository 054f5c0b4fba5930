//! `cnnjit run`: a net from a `.cnn` file, weights from safetensors, images
//! from `.npy`. The outputs it writes equal `Model::forward`'s, it prints the
//! top classes of each image, and every bad input is a one-line error naming
//! the file, with exit status 1 and no panic.
#![cfg(feature = "cli")]

use cnnjit::{npy, Model, Weights};
use npyz::WriterBuilder;
use std::path::{Path, PathBuf};
use std::process::Command;

const NETS: &str = "\
/// A tiny conv net.
Tiny(2x2x1) { c: conv(2, 1x1), relu, flatten, fc: dense(3), softmax }
/// A tiny net with a flat input.
Flat(4) { fc: dense(2) }
";

/// A fresh directory for one test, holding `nets.cnn` and weights for both nets.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(test: &str) -> Fixture {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli_run_{test}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("nets.cnn"), NETS).unwrap();
        let mut tiny = Weights::new();
        tiny.insert("c.weight", vec![2, 1, 1, 1], vec![1.5, -0.5])
            .unwrap();
        tiny.insert("c.bias", vec![2], vec![0.1, 0.2]).unwrap();
        let fc: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect();
        tiny.insert("fc.weight", vec![3, 8], fc).unwrap();
        tiny.insert("fc.bias", vec![3], vec![0.0, 0.5, -0.5])
            .unwrap();
        tiny.save(dir.join("tiny.safetensors")).unwrap();
        let mut flat = Weights::new();
        let fc: Vec<f32> = (0..8).map(|i| i as f32 * 0.25 - 1.0).collect();
        flat.insert("fc.weight", vec![2, 4], fc).unwrap();
        flat.insert("fc.bias", vec![2], vec![1.0, -1.0]).unwrap();
        flat.save(dir.join("flat.safetensors")).unwrap();
        Fixture { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn path_str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// The model `cnnjit run` should build, built in-process.
    fn model(&self, net: &str, weights: &str) -> Model {
        let weights = Weights::from_file(self.path(weights)).unwrap();
        Model::from_file(self.path("nets.cnn"), Some(net), &weights).unwrap()
    }

    /// Writes a float32 `.npy` with `npyz`.
    fn write_f32(&self, name: &str, shape: &[u64], data: &[f32]) -> String {
        let mut bytes = Vec::new();
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(shape)
            .writer(&mut bytes)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
        std::fs::write(self.path(name), bytes).unwrap();
        self.path_str(name)
    }

    /// `cnnjit run nets.cnn --net NET --weights WEIGHTS --input INPUT` plus `extra`.
    fn run(&self, net: &str, weights: &str, input: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "run".to_string(),
            self.path_str("nets.cnn"),
            "--net".to_string(),
            net.to_string(),
            "--weights".to_string(),
            self.path_str(weights),
            "--input".to_string(),
            input.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        run(&args)
    }
}

/// What the binary did: exit status and both streams as text.
pub(crate) struct Output {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs the binary with `args`.
pub(crate) fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_cnnjit"))
        .args(args)
        .output()
        .expect("the binary runs");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Asserts a failure: exit status 1, one line on stderr holding every one
/// of `needles`, no panic, nothing on stdout.
pub(crate) fn assert_fails(out: &Output, needles: &[&str]) {
    assert_eq!(out.code, Some(1), "stderr: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "`{needle}` is not in: {}",
            out.stderr
        );
    }
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

/// The top `k` of `scores` as `cnnjit run` prints them.
fn top_line(i: usize, scores: &[f32], k: usize) -> String {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let best: Vec<String> = order[..k]
        .iter()
        .map(|&c| format!("{c} ({})", scores[c]))
        .collect();
    format!("image {i}: {}", best.join(", "))
}

fn images(n: usize, len: usize) -> Vec<f32> {
    (0..n * len)
        .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
        .collect()
}

#[test]
fn outputs_equal_model_forward_and_top_k_is_printed() {
    let fx = Fixture::new("batch");
    let x = images(3, 4);
    let input = fx.write_f32("x.npy", &[3, 2, 2, 1], &x);
    let y = fx.path_str("y.npy");
    let out = fx.run(
        "Tiny",
        "tiny.safetensors",
        &input,
        &["--output", &y, "--top", "2"],
    );
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let written = npy::read_f32(&y).unwrap();
    assert_eq!(written.shape, vec![3, 3]);
    let mut model = fx.model("Tiny", "tiny.safetensors");
    let mut expected_lines = Vec::new();
    for (i, image) in x.chunks(4).enumerate() {
        let expected = model.forward(image).unwrap();
        assert_eq!(&written.data[i * 3..i * 3 + 3], expected.as_slice());
        expected_lines.push(top_line(i, &expected, 2));
    }
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, expected_lines);
    // The outputs are a softmax: three different probabilities summing to one.
    let sum: f32 = written.data[..3].iter().sum();
    assert!((sum - 1.0).abs() < 1e-5, "{:?}", written.data);
}

#[test]
fn one_image_and_top_k_clamped_to_the_output() {
    let fx = Fixture::new("one");
    let x = images(1, 4);
    let input = fx.write_f32("x.npy", &[2, 2, 1], &x);
    let y = fx.path_str("y.npy");
    // The default --top is 5, more than the 3 classes.
    let out = fx.run("Tiny", "tiny.safetensors", &input, &["--output", &y]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let expected = fx.model("Tiny", "tiny.safetensors").forward(&x).unwrap();
    assert_eq!(out.stdout, format!("{}\n", top_line(0, &expected, 3)));
    let written = npy::read_f32(&y).unwrap();
    assert_eq!(
        (written.shape, written.data),
        (vec![1, 3], expected.clone())
    );
    // --top 1: only the best class.
    let out = fx.run("Tiny", "tiny.safetensors", &input, &["--top", "1"]);
    assert_eq!(out.stdout, format!("{}\n", top_line(0, &expected, 1)));
}

#[test]
fn flat_input_nets_take_vectors() {
    let fx = Fixture::new("flat");
    let mut model = fx.model("Flat", "flat.safetensors");
    for shape in [vec![4u64], vec![2, 4]] {
        let n = if shape.len() == 1 {
            1
        } else {
            shape[0] as usize
        };
        let x = images(n, 4);
        let input = fx.write_f32("x.npy", &shape, &x);
        let y = fx.path_str("y.npy");
        let out = fx.run("Flat", "flat.safetensors", &input, &["--output", &y]);
        assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
        let written = npy::read_f32(&y).unwrap();
        assert_eq!(written.shape, vec![n as u64, 2]);
        let expected: Vec<f32> = x
            .chunks(4)
            .flat_map(|image| model.forward(image).unwrap())
            .collect();
        assert_eq!(written.data, expected);
        assert_eq!(out.stdout.lines().count(), n);
    }
}

#[test]
fn wrong_shape_is_an_error() {
    let fx = Fixture::new("shape");
    let input = fx.write_f32("x.npy", &[2, 2, 2], &[0.0; 8]);
    let out = fx.run("Tiny", "tiny.safetensors", &input, &[]);
    assert_fails(
        &out,
        &[&input, "(2, 2, 1)", "(N, 2, 2, 1)", "found (2, 2, 2)"],
    );
    let input = fx.write_f32("v.npy", &[3, 5], &[0.0; 15]);
    let y = fx.path_str("y.npy");
    let out = fx.run("Flat", "flat.safetensors", &input, &["--output", &y]);
    assert_fails(&out, &[&input, "(4,)", "(N, 4)", "found (3, 5)"]);
    assert!(!fx.path("y.npy").exists());
}

#[test]
fn float64_int_and_fortran_order_are_errors() {
    let fx = Fixture::new("dtype");
    let mut bytes = Vec::new();
    let mut w = npyz::WriteOptions::<f64>::new()
        .default_dtype()
        .shape(&[2, 2, 1])
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    w.extend([0.0f64; 4]).unwrap();
    w.finish().unwrap();
    std::fs::write(fx.path("f8.npy"), bytes).unwrap();
    let out = fx.run("Tiny", "tiny.safetensors", &fx.path_str("f8.npy"), &[]);
    assert_fails(
        &out,
        &[&fx.path_str("f8.npy"), "float32", "'<f8' (float64)"],
    );

    let mut bytes = Vec::new();
    let mut w = npyz::WriteOptions::<i64>::new()
        .default_dtype()
        .shape(&[2, 2, 1])
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    w.extend([1i64; 4]).unwrap();
    w.finish().unwrap();
    std::fs::write(fx.path("i8.npy"), bytes).unwrap();
    let out = fx.run("Tiny", "tiny.safetensors", &fx.path_str("i8.npy"), &[]);
    assert_fails(&out, &["i8.npy", "float32", "'<i8' (int64)"]);

    let mut bytes = Vec::new();
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .order(npyz::Order::Fortran)
        .shape(&[2, 2, 1])
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    w.extend([0.0f32; 4]).unwrap();
    w.finish().unwrap();
    std::fs::write(fx.path("f.npy"), bytes).unwrap();
    let out = fx.run("Tiny", "tiny.safetensors", &fx.path_str("f.npy"), &[]);
    assert_fails(&out, &["f.npy", "C-order", "Fortran"]);
}

#[test]
fn truncated_and_corrupt_npy_are_errors() {
    let fx = Fixture::new("truncated");
    let input = fx.write_f32("x.npy", &[2, 2, 2, 1], &images(2, 4));
    let bytes = std::fs::read(&input).unwrap();
    std::fs::write(&input, &bytes[..bytes.len() - 3]).unwrap();
    let out = fx.run("Tiny", "tiny.safetensors", &input, &[]);
    assert_fails(&out, &[&input, "truncated", "32 bytes", "found 29"]);
    // Cut inside the header.
    std::fs::write(&input, &bytes[..20]).unwrap();
    let out = fx.run("Tiny", "tiny.safetensors", &input, &[]);
    assert_fails(&out, &[&input, "truncated in the header"]);
    // Not a .npy at all.
    std::fs::write(&input, b"P5\n2 2\n255\n\x00\x01\x02\x03").unwrap();
    let out = fx.run("Tiny", "tiny.safetensors", &input, &[]);
    assert_fails(&out, &[&input, "not a .npy file"]);
}

#[test]
fn missing_files_are_errors() {
    let fx = Fixture::new("missing");
    let input = fx.write_f32("x.npy", &[2, 2, 1], &[0.0; 4]);
    let out = fx.run("Tiny", "nope.safetensors", &input, &[]);
    assert_fails(&out, &[&fx.path_str("nope.safetensors"), "cannot read"]);
    let out = fx.run("Tiny", "tiny.safetensors", &fx.path_str("nope.npy"), &[]);
    assert_fails(&out, &[&fx.path_str("nope.npy"), "cannot read"]);
    let out = run(&[
        "run".into(),
        fx.path_str("nope.cnn"),
        "--weights".into(),
        fx.path_str("tiny.safetensors"),
        "--input".into(),
        input,
    ]);
    assert_fails(&out, &[&fx.path_str("nope.cnn"), "cannot read"]);
}

#[test]
fn wrong_net_and_mismatched_weights_are_errors() {
    let fx = Fixture::new("net");
    let input = fx.write_f32("x.npy", &[2, 2, 1], &[0.0; 4]);
    let out = fx.run("Nope", "tiny.safetensors", &input, &[]);
    assert_fails(&out, &["nets.cnn", "no net `Nope`", "Tiny, Flat"]);
    // Without --net, a file of two nets is ambiguous.
    let out = run(&[
        "run".into(),
        fx.path_str("nets.cnn"),
        "--weights".into(),
        fx.path_str("tiny.safetensors"),
        "--input".into(),
        input.clone(),
    ]);
    assert_fails(&out, &["nets.cnn", "2 nets", "Tiny, Flat"]);
    // The flat net's weights do not fit the conv net: the error names the weights file.
    let out = fx.run("Tiny", "flat.safetensors", &input, &[]);
    assert_fails(&out, &[&fx.path_str("flat.safetensors"), "tensor"]);
}

#[test]
fn directories_as_weights_or_input_are_errors_naming_them() {
    let fx = Fixture::new("directories");
    std::fs::create_dir(fx.path("adir")).unwrap();
    let dir = &fx.path_str("adir");
    let input = fx.write_f32("x.npy", &[2, 2, 1], &[0.0; 4]);
    let out = fx.run("Tiny", "adir", &input, &[]);
    assert_fails(
        &out,
        &[&format!(
            "error: cannot read {dir}: it is a directory, expected a file"
        )],
    );
    let out = fx.run("Tiny", "tiny.safetensors", dir, &[]);
    assert_fails(
        &out,
        &[&format!(
            "error: {dir}: cannot read: it is a directory, expected a file"
        )],
    );
}

#[test]
fn a_net_too_large_for_memory_is_an_error_not_an_abort() {
    let fx = Fixture::new("too_large");
    let big = fx.path("big.cnn");
    std::fs::write(
        &big,
        "/// 560 GB of activations.\nBig(100000x100000x3) { c: conv(11, 3x3, pad = same) }\n",
    )
    .unwrap();
    let mut weights = Weights::new();
    weights
        .insert("c.weight", vec![11, 3, 3, 3], vec![0.5; 297])
        .unwrap();
    weights.insert("c.bias", vec![11], vec![0.0; 11]).unwrap();
    weights.save(fx.path("big.safetensors")).unwrap();
    let input = fx.write_f32("x.npy", &[1, 1, 3], &[0.0; 3]);
    let out = run(&[
        "run".into(),
        big.display().to_string(),
        "--weights".into(),
        fx.path_str("big.safetensors"),
        "--input".into(),
        input,
    ]);
    // 100,000² pixels x (3 + 11) channels x 4 bytes, and 64 to align them.
    assert_fails(
        &out,
        &["error: cannot allocate 560,000,000,064 bytes for the activation arena of net `Big`"],
    );
}

#[test]
fn outputs_too_large_for_memory_are_an_error() {
    let fx = Fixture::new("outputs");
    let wide = fx.path("wide.cnn");
    std::fs::write(&wide, "Wide(1) { fc: dense(100000) }\n").unwrap();
    let mut weights = Weights::new();
    weights
        .insert("fc.weight", vec![100_000, 1], vec![0.5; 100_000])
        .unwrap();
    weights
        .insert("fc.bias", vec![100_000], vec![0.0; 100_000])
        .unwrap();
    weights.save(fx.path("wide.safetensors")).unwrap();
    let input = fx.write_f32("x.npy", &[1_000_000, 1], &vec![1.0; 1_000_000]);
    let out = run(&[
        "run".into(),
        wide.display().to_string(),
        "--weights".into(),
        fx.path_str("wide.safetensors"),
        "--input".into(),
        input.clone(),
    ]);
    // A million images of 100,000 outputs, 4 bytes each.
    assert_fails(
        &out,
        &[&format!(
            "error: {input}: cannot allocate 400,000,000,000 bytes for the outputs of 1000000 images"
        )],
    );
}

/// `cnnjit bench` on LeNet-5 with `extra`: fails with exit status 1 and its
/// last line of stderr (after the progress lines) is returned.
fn bench_error(extra: &[&str]) -> String {
    let lenet = format!("{}/examples/nets/lenet5.cnn", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["bench".to_string(), lenet, "--no-reference".to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = run(&args);
    assert_eq!(out.code, Some(1), "stderr: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out.stderr.lines().last().unwrap_or_default().to_string()
}

#[test]
fn bench_refuses_a_batch_beyond_memory_and_threads_beyond_the_bound() {
    // 100,000,000 images of 32 x 32 floats.
    let message = bench_error(&["--batch", "100000000"]);
    assert!(
        message.starts_with(
            "error: LeNet5: cannot allocate 409,600,000,000 bytes for the inputs of a batch of \
             100000000 images: more than the "
        ) && message.ends_with(" bytes left under the memory limit"),
        "{message}"
    );
    assert_eq!(
        bench_error(&["--threads", "20000"]),
        "error: LeNet5: cannot run on 20000 threads: at most 1024 are allowed (0 means one per core)"
    );
}

#[test]
fn check_and_bench_refuse_random_weights_beyond_memory() {
    let fx = Fixture::new("heavy");
    let heavy = fx.path_str("heavy.cnn");
    // A dense layer of 100,000 outputs over a million inputs.
    std::fs::write(
        &heavy,
        "Heavy(1000x1000x1) { flatten, fc: dense(100000) }\n",
    )
    .unwrap();
    // 100,000 x 1,000,000 weights and 100,000 biases, 4 bytes each.
    let expected = "cannot allocate 400,000,400,000 bytes for the weights of net `Heavy`: ";
    for command in ["check", "bench"] {
        let out = run(&[command.to_string(), heavy.clone()]);
        assert_eq!(out.code, Some(1), "stderr: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        let last = out.stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: ") && last.contains(expected),
            "{command}: {}",
            out.stderr
        );
    }
}

#[test]
fn an_output_that_is_not_finite_has_no_top_classes() {
    // A NaN in the input: every class of the softmax is NaN (printed as
    // class 0 before).
    let fx = Fixture::new("nan");
    let mut x = images(2, 4);
    x[5] = f32::NAN;
    let input = fx.write_f32("x.npy", &[2, 2, 2, 1], &x);
    let out = fx.run("Tiny", "tiny.safetensors", &input, &[]);
    assert_fails(&out, &["image 1", "not finite", "3 of its 3 values"]);
    // Finite weights whose products overflow to infinity.
    let mut huge = Weights::new();
    huge.insert("fc.weight", vec![2, 4], vec![3e38; 8]).unwrap();
    huge.insert("fc.bias", vec![2], vec![0.0, 0.0]).unwrap();
    huge.save(fx.path("huge.safetensors")).unwrap();
    let input = fx.write_f32("v.npy", &[4], &[1.0, 2.0, 3.0, 4.0]);
    let out = fx.run("Flat", "huge.safetensors", &input, &[]);
    assert_fails(&out, &["image 0", "not finite", "2 of its 2 values"]);
}

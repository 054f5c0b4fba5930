//! The `cnnjit` binary: summaries (text and JSON), Graphviz output,
//! rustc-style diagnostics with exit status 1, and `check`.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The binary with `args`, its choice cache in a folder that has none, so
/// the user's `cnnjit tune` cache never changes what a test sees.
fn cnnjit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnjit"))
        .args(args)
        .env(
            cnnjit::runtime::tune::CACHE_ENV,
            std::env::temp_dir().join("cnnjit-no-cache"),
        )
        .output()
        .expect("the binary runs")
}

fn nets(file: &str) -> String {
    format!("{}/examples/nets/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("cnnjit-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn summary_json_has_every_documented_key() {
    let out = cnnjit(&["summary", &nets("lenet5.cnn"), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let net = &json["nets"][0];
    for key in [
        "name",
        "input_shape",
        "output_shape",
        "params",
        "flops",
        "macs",
        "param_bytes",
        "activation_bytes",
        "peak_inference_bytes",
        "layers",
        "stored_elements",
        "train_bytes",
        "train_macs",
    ] {
        assert!(!net[key].is_null(), "missing {key}");
    }
    // The lecture's LeNet-5 (slide 43): 61,706 parameters, shapes in (h, w, c) order.
    assert_eq!(net["params"], 61_706);
    assert_eq!(net["input_shape"], serde_json::json!([32, 32, 1]));
    assert_eq!(net["output_shape"], serde_json::json!([10]));
    assert_eq!(
        net["layers"][0]["output_shape"],
        serde_json::json!([28, 28, 6])
    );
    for key in ["name", "kind", "output_shape", "params", "flops"] {
        assert!(!net["layers"][0][key].is_null(), "layer lacks {key}");
    }
    // 4 (2 * 61,706 + 1024 + 2 * 8,094) bytes at batch 1 (see tests/training.rs).
    assert_eq!(net["train_bytes"]["1"], 562_496);
}

#[test]
fn summary_adds_the_optimizer_state() {
    // LeNet-5's 61,706 parameters: momentum keeps one copy (246,824 bytes),
    // Adam two (493,648 bytes), beside the 562,496 bytes of training at
    // batch 1 and 4 (2 * 61,706 + 32 (1024 + 2 * 8,094)) = 2,696,784 at 32.
    for (optimizer, state) in [("sgd", 0), ("momentum", 246_824), ("adam", 493_648)] {
        let out = cnnjit(&[
            "summary",
            &nets("lenet5.cnn"),
            "--json",
            "--optimizer",
            optimizer,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let net = &json["nets"][0];
        assert_eq!(net["optimizer"], optimizer);
        assert_eq!(net["train_bytes"]["1"], 562_496 + state, "{optimizer}");
        assert_eq!(net["train_bytes"]["32"], 2_696_784 + state, "{optimizer}");
    }
}

#[test]
fn summary_text_and_net_selection() {
    let out = cnnjit(&["summary", &nets("resnet.cnn"), "--net", "ResNet18"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("Total params: 11,689,512"), "{text}");
    assert!(!text.contains("ResNet50"));
    let out = cnnjit(&["summary", &nets("resnet.cnn"), "--net", "ResNet19"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no net `ResNet19`"));
}

#[test]
fn graph_is_dot_with_joins_visible() {
    let out = cnnjit(&["graph", &nets("resnet.cnn"), "--net", "ResNet18"]);
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(dot.starts_with("digraph \"ResNet18\" {"), "{dot}");
    assert!(
        dot.contains("residual") && dot.contains("shape=diamond") && dot.contains("(56,56,64)")
    );
    assert!(dot.trim_end().ends_with('}'));
}

#[test]
fn errors_are_rendered_like_rustc_with_status_1() {
    let path = temp_file(
        "bad.cnn",
        "Net(8x8x3) {\n    conv(16, 3x3),\n    dense(10),\n}\n",
    );
    let out = cnnjit(&["summary", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.starts_with("error: dense(10): expected a flat input, found the volume (6,6,16); add `flatten` before it"), "{err}");
    assert!(
        err.contains(&format!("--> {}:3:5", path.display())),
        "{err}"
    );
    assert!(err.contains("3 |     dense(10),"), "{err}");
    assert!(err.contains("  |     ^^^^^^^^^"), "{err}");
    std::fs::remove_file(path).ok();
}

#[test]
fn an_empty_file_defines_no_net() {
    let path = temp_file("empty.cnn", "// nothing yet\nblock b() { relu }\n");
    for command in ["summary", "graph"] {
        let out = cnnjit(&[command, path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(
            err.contains(&format!("error: {} defines no net", path.display())),
            "{command}: {err}"
        );
        assert!(out.stdout.is_empty(), "{command}");
    }
    std::fs::remove_file(path).ok();
}

#[test]
fn a_second_net_of_the_same_name_is_an_error_on_its_line() {
    let path = temp_file(
        "twice.cnn",
        "N(8x8x1) { relu }\nM(8x8x1) { relu }\nN(4x4x1) { relu }\n",
    );
    let out = cnnjit(&["summary", path.to_str().unwrap(), "--net", "N"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with("error: net `N` is defined twice; give this one another name"),
        "{err}"
    );
    assert!(
        err.contains(&format!("--> {}:3:1", path.display())),
        "{err}"
    );
    std::fs::remove_file(path).ok();
}

#[test]
fn ten_thousand_nested_repeats_are_an_error_not_an_abort() {
    let text = format!(
        "N(8x8x1) {{\n{}relu\n{}}}",
        "repeat(1) {\n".repeat(10_000),
        "}\n".repeat(10_000)
    );
    let path = temp_file("deep.cnn", &text);
    let out = cnnjit(&["summary", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("allows at most 256 levels"), "{err}");
    assert!(
        err.contains(&format!("--> {}:257:", path.display())),
        "{err}"
    );
    std::fs::remove_file(path).ok();
}

#[test]
fn check_compares_the_jit_with_the_reference() {
    let out = cnnjit(&["check", &nets("lenet5.cnn"), "--seed", "4"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("max abs error") && text.contains(": ok"),
        "{text}"
    );
}

/// LeNet-5's steps as examples/nets/lenet5.cnn writes them, grouped by the
/// planner's rule (an anchor, then the element-wise layers on its output),
/// with each anchor's MACs by hand: 28*28*6 outputs x 5*5*1 taps, 10*10*16 x
/// 5*5*6, 400 x 120, 120 x 84, 84 x 10 (pools have none).
const LENET_STEPS: [(&[&str], &str, u64); 7] = [
    (&["conv1", "tanh1"], "direct", 117_600),
    (&["avgpool1"], "pool", 0),
    (&["conv2", "tanh2"], "direct", 240_000),
    (&["avgpool2", "flatten1"], "pool", 0),
    (&["dense1", "tanh3"], "gemv", 48_000),
    (&["dense2", "tanh4"], "gemv", 10_080),
    (&["dense3", "softmax1"], "gemv", 840),
];

#[test]
fn bench_plan_lists_every_step_with_its_kernel() {
    let out = cnnjit(&["bench", &nets("lenet5.cnn"), "--plan", "--pure-cranelift"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].split_whitespace().eq([
        "step",
        "layer",
        "kind",
        "algorithm",
        "tile",
        "epilogue",
        "MACs"
    ]));
    assert_eq!(lines.len(), LENET_STEPS.len() + 2, "{text}");
    for (i, (line, (layers, algorithm, _))) in lines[1..].iter().zip(LENET_STEPS).enumerate() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cells[..2], [i.to_string().as_str(), layers[0]], "{line}");
        assert_eq!(cells[3], algorithm, "{line}");
    }
    // The softmax after the last dense runs on a compiled kernel of its own,
    // in place: the table lists it in the dense's epilogue, not as reference.
    assert!(lines[7].contains("softmax"), "{text}");
    assert!(!lines[7].contains("(ref)"), "{text}");
    assert!(
        lines[8].starts_with("LeNet5: 7 steps, 7 compiled"),
        "{text}"
    );
}

#[test]
fn bench_profile_json_times_every_step_and_batch() {
    let out = cnnjit(&[
        "bench",
        &nets("lenet5.cnn"),
        "--profile",
        "--json",
        "--batch",
        "1,3",
        "--threads",
        "1",
        "--pure-cranelift",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), LENET_STEPS.len());
    let mut share = 0.0;
    for (step, (layers, algorithm, macs)) in steps.iter().zip(LENET_STEPS) {
        assert_eq!(step["layers"], serde_json::json!(layers));
        assert_eq!(step["algorithm"], algorithm);
        assert_eq!(step["macs"], macs);
        assert!(step["reference_reason"].is_null());
        assert!(step["time_ms"].as_f64().unwrap() >= 0.0);
        share += step["share"].as_f64().unwrap();
    }
    assert!((share - 1.0).abs() < 1e-9, "shares sum to {share}");
    // The last dense's softmax runs in place on a kernel of its own.
    assert_eq!(steps[6]["fused"], serde_json::json!(["softmax"]));
    assert_eq!(steps[6]["unfused"], serde_json::json!([]));
    let batches: Vec<u64> = json["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["batch"].as_u64().unwrap())
        .collect();
    assert_eq!(batches, [1, 3]);
    assert_eq!(json["batch"], 1);
}

#[test]
fn import_writes_the_net_and_its_weights_and_prints_the_summary() {
    let fixtures = format!("{}/tests/fixtures/onnx", env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("cnnjit-cli-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cnn = dir.join("resnet_basic.cnn");
    let out = cnnjit(&[
        "import",
        &format!("{fixtures}/resnet_basic.onnx"),
        "-o",
        cnn.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // torch's parameter count of the fixture (see tests/onnx_import.rs).
    assert!(stdout.contains("Total params: 5,266"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&cnn).unwrap(),
        std::fs::read_to_string(format!("{fixtures}/resnet_basic.cnn")).unwrap()
    );
    let weights = cnnjit::Weights::from_file(dir.join("resnet_basic.safetensors")).unwrap();
    assert_eq!(weights.len(), 32);
    assert!(weights.get("conv1.weight").is_some());
    // A file that is not ONNX: an error, exit status 1.
    let out = cnnjit(&["import", cnn.to_str().unwrap(), "-o", cnn.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not an ONNX model"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn winograd_option_bounds_the_algorithm() {
    // VGG's 56x56x128 layer: F(4x4) by default, F(2x2) with `f2`, direct
    // (`direct` or `direct-avx2`) with `off`; on AVX2's or Cranelift's rates
    // (`choice::MEASURED_AVX2`, `MEASURED`: on AVX-512's, bounded to F(2x2),
    // the direct kernel wins).
    let path = temp_file(
        "winograd.cnn",
        "Net(56x56x128) { conv(128, 3x3, pad = 1) }\n",
    );
    for (flag, algorithm) in [
        ("any", "winograd-f4x4"),
        ("f2", "winograd-f2x2"),
        ("off", "direct"),
    ] {
        let out = cnnjit(&[
            "bench",
            path.to_str().unwrap(),
            "--plan",
            "--winograd",
            flag,
            "--isa",
            "avx2",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let row = text.lines().nth(1).unwrap_or_default();
        assert!(row.contains(&format!(" {algorithm}")), "{flag}: {text}");
    }
    std::fs::remove_file(path).ok();
    let small = temp_file(
        "winograd-check.cnn",
        "Net(16x16x16) { conv(16, 3x3, pad = 1), relu }\n",
    );
    for flag in ["any", "f2", "off"] {
        let out = cnnjit(&["check", small.to_str().unwrap(), "--winograd", flag]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(": ok"),
            "{flag}: {text}"
        );
    }
    std::fs::remove_file(small).ok();
}

#[test]
fn kernels_machine_code_is_printed_only_with_cnnjit_disasm() {
    // The code generator logs it; the CLI's logger prints it, the library never does.
    let check = |disasm: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cnnjit"));
        command.args(["check", &nets("lenet5.cnn")]);
        if disasm {
            command.env("CNNJIT_DISASM", "1");
        } else {
            command.env_remove("CNNJIT_DISASM");
        }
        let out = command.output().expect("the binary runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    };
    let with = check(true);
    assert!(
        with.starts_with("cnnjit: kernel0: Conv(ConvSpec {"),
        "{with}"
    );
    assert!(with.contains("ret"), "{with}");
    assert_eq!(check(false), "");
}

/// `--isa` bounds the native tile: `bench` runs and reports the ISA asked
/// for where the CPU has it (detected here with `is_x86_feature_detected!`,
/// not by cnnjit), the widest below it where it does not, none for
/// `cranelift`.
#[test]
fn bench_runs_the_isa_asked_for() {
    use crate::peak::wide_fma;
    for (isa, bits) in [("avx2", 256), ("avx512", 512)] {
        let out = cnnjit(&[
            "bench",
            "examples/nets/lenet5.cnn",
            "--isa",
            isa,
            "--no-reference",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let expected = if wide_fma(bits) {
            Some(isa)
        } else if wide_fma(256) {
            Some("avx2")
        } else {
            None
        };
        assert_eq!(value["native_isa"].as_str(), expected, "--isa {isa}");
    }
    // `--isa cranelift` and its alias `--pure-cranelift`: no native code.
    for flags in [&["--isa", "cranelift"][..], &["--pure-cranelift"]] {
        let mut args = vec![
            "bench",
            "examples/nets/lenet5.cnn",
            "--no-reference",
            "--json",
        ];
        args.extend_from_slice(flags);
        let out = cnnjit(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(value["native_isa"], serde_json::Value::Null, "{flags:?}");
        assert_eq!(value["native_tile"], false, "{flags:?}");
    }
}

/// `cnnjit summary NET | head -1` closes the pipe before the summary is
/// written: the binary stops quietly, as Unix tools do, rather than
/// panicking in `print!` (it did).
#[test]
fn a_closed_stdout_is_no_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_cnnjit"))
        .args(["summary", &nets("vgg16.cnn")])
        .stdout(writer)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
}

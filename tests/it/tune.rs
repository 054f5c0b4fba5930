//! `cnnjit tune`'s cache: written and read back, every kind of bad file
//! ignored with its reason and never a panic, a cached pick changing what
//! the lowering compiles (outputs still the reference's), and the CLI with
//! its cache folder in a temporary one.

use cnnjit::codegen::choice::{ChoiceKey, Pick, Tuned};
use cnnjit::runtime::memory::Budget;
use cnnjit::runtime::tune::{self, Ignored, Tuning, HEADER, MAX_CACHE_BYTES};
use proptest::prelude::*;
use std::path::PathBuf;
use std::process::Command;

/// A fresh folder for one test.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cnnjit-tune-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn key(text: &str) -> ChoiceKey {
    ChoiceKey::parse(text).expect("a key")
}

const KEY: &str = "avx2 28x28x512>28x28x512 k3x3 s1x1 d1x1 p1x1 g1";

/// A cache file holding `body` after the header.
fn cache(name: &str, body: &str) -> PathBuf {
    let path = folder(name).join(tune::CACHE_FILE);
    std::fs::write(&path, format!("{HEADER}\n{body}")).unwrap();
    path
}

#[test]
fn a_cache_round_trips_and_keeps_other_cpus_and_shapes() {
    let path = folder("round-trip").join("sub").join(tune::CACHE_FILE);
    let mut first = Tuned::new();
    first.insert(key(KEY), Pick::F2);
    first.insert(
        key("cranelift 7x7x8>7x7x8 k1x1 s1x1 d1x1 p0x0 g1"),
        Pick::Direct,
    );
    tune::write(&path, "CPU A", &first).unwrap();
    let mut other = Tuned::new();
    other.insert(key(KEY), Pick::F4);
    tune::write(&path, "CPU\tB", &other).unwrap();
    let mut again = Tuned::new();
    again.insert(key(KEY), Pick::Direct);
    tune::write(&path, "CPU A", &again).unwrap();
    let a = tune::read(&path, "CPU A").unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a.get(&key(KEY)), Some(Pick::Direct), "the later write wins");
    let b = tune::read(&path, "CPU B").unwrap();
    assert_eq!(b.iter().collect::<Vec<_>>(), vec![(&key(KEY), Pick::F4)]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(HEADER) && text.ends_with('\n'), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
}

#[test]
fn a_missing_cache_or_a_folder_is_ignored() {
    let dir = folder("missing");
    assert_eq!(
        tune::read(&dir.join(tune::CACHE_FILE), "cpu"),
        Err(Ignored::Missing)
    );
    assert!(matches!(
        tune::read(&dir, "cpu"),
        Err(Ignored::Unreadable(why)) if why == "not a regular file"
    ));
}

#[test]
fn a_corrupt_cache_is_ignored_naming_the_line() {
    let good = format!("cpu\t{KEY}\tf2\n");
    for (name, bad, why) in [
        ("pick", format!("cpu\t{KEY}\tf8\n"), "not direct, f2 or f4"),
        (
            "key",
            "cpu\tavx2 28x28>28x28 k3\tf2\n".to_string(),
            "not a convolution's key",
        ),
        (
            "fields",
            format!("cpu\t{KEY}\n"),
            "not three tab-separated fields",
        ),
        (
            "extra",
            format!("cpu\t{KEY}\tf2\tf4\n"),
            "not three tab-separated fields",
        ),
        ("cpu", format!("\t{KEY}\tf2\n"), "no CPU model"),
        (
            "isa",
            format!("cpu\tsse9{}\tf2\n", &KEY[4..]),
            "not a convolution's key",
        ),
    ] {
        let path = cache(name, &format!("{good}{bad}"));
        assert_eq!(
            tune::read(&path, "cpu"),
            Err(Ignored::Corrupt { line: 3, why }),
            "{name}"
        );
    }
}

#[test]
fn a_truncated_cache_is_ignored() {
    let path = cache("truncated", &format!("cpu\t{KEY}\tf2\ncpu\t{KEY}\tf"));
    assert_eq!(tune::read(&path, "cpu"), Err(Ignored::Truncated));
    std::fs::write(&path, HEADER).unwrap();
    assert_eq!(tune::read(&path, "cpu"), Err(Ignored::Truncated));
}

#[test]
fn a_huge_cache_is_ignored_unread() {
    let line = format!("cpu\t{KEY}\tf2\n");
    let lines = MAX_CACHE_BYTES as usize / line.len() + 1;
    let path = cache("huge", &line.repeat(lines));
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert!(bytes > MAX_CACHE_BYTES);
    assert_eq!(tune::read(&path, "cpu"), Err(Ignored::TooLarge { bytes }));
}

#[test]
fn a_foreign_cache_is_ignored() {
    let path = cache("foreign", &format!("Other CPU\t{KEY}\tf2\n"));
    assert_eq!(
        tune::read(&path, "This CPU"),
        Err(Ignored::Foreign {
            cpu: "This CPU".into(),
            other: "Other CPU".into()
        })
    );
    let empty = cache("empty", "");
    assert!(matches!(
        tune::read(&empty, "This CPU"),
        Err(Ignored::Foreign { other, .. }) if other == "none"
    ));
}

#[test]
fn a_file_that_is_not_a_text_cache_is_ignored() {
    let path = folder("binary").join(tune::CACHE_FILE);
    std::fs::write(&path, [0xff, 0xfe, 0x00, b'\n']).unwrap();
    assert_eq!(tune::read(&path, "cpu"), Err(Ignored::NotText));
    std::fs::write(&path, format!("# cnnjit choices 2\ncpu\t{KEY}\tf2\n")).unwrap();
    assert_eq!(tune::read(&path, "cpu"), Err(Ignored::Header));
    std::fs::write(&path, format!("{HEADER}x\ncpu\t{KEY}\tf2\n")).unwrap();
    assert_eq!(tune::read(&path, "cpu"), Err(Ignored::Header));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any bytes, or a valid file with one byte changed or cut short, are
    /// read or refused, never a panic; whatever is read holds only picks.
    #[test]
    fn any_file_is_read_or_refused(
        noise in proptest::collection::vec(any::<u8>(), 0..200),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let dir = folder("fuzz");
        let path = dir.join(tune::CACHE_FILE);
        let mut text = format!("{HEADER}\ncpu\t{KEY}\tf2\ncpu\t{}\tdirect\n", &KEY.replace("avx2", "avx512")).into_bytes();
        let i = at.index(text.len());
        if cut { text.truncate(i) } else { text[i] = byte }
        for bytes in [&noise, &text] {
            std::fs::write(&path, bytes).unwrap();
            if let Ok(tuned) = tune::read(&path, "cpu") {
                prop_assert!(!tuned.is_empty() && tuned.len() <= 2);
            }
        }
    }
}

/// `Net(28x28x64) { conv(64, 3x3, pad = 1), relu }`.
fn one_conv() -> cnnjit::Graph {
    cnnjit::lang::compile_source("Net(28x28x64) { conv(64, 3x3, pad = 1), relu }")
        .unwrap()
        .remove(0)
        .graph
}

#[test]
fn a_cached_pick_changes_the_kernel_and_outputs_still_match_the_reference() {
    let graph = one_conv();
    let weights = cnnjit::check::lively_weights(&graph, 3);
    let input = cnnjit::check::random_input(graph.input_shape().len() as usize, 3);
    let options = cnnjit::Options::default();
    let mut budget = Budget::new(None);
    let build = |tuned: &Tuned, budget: &mut Budget| {
        cnnjit::Model::with_tuned(graph.clone(), &weights, options, tuned, budget).unwrap()
    };
    // The static model: on the native tile, direct 28² 64 64 9 = 28.9M MACs
    // / 54 = 0.54 ms; F(4x4) 7² tiles 36 points 64 64 = 7.2M MACs / 29 =
    // 0.25 ms + 1764 (16 + 16) vectors 1.5 ns = 0.33 ms; F(2x2) 14² 16 =
    // 3136 points, 0.44 + 0.15 = 0.59 ms (Cranelift's tiles: 1.26, 0.57,
    // 1.01 ms; AVX-512's: 0.41, 0.29, 0.52 ms). Its weights, 590 KB in
    // F(4x4), stay in L2.
    let fixed = build(&Tuned::new(), &mut budget);
    assert_eq!(fixed.kernels().steps[0].algorithm(), "winograd-f4x4");
    assert_eq!(fixed.tuning(), &Tuning::Given { picks: 0 });
    let mut reference = cnnjit::Model::with_budget(
        graph.clone(),
        &weights,
        cnnjit::Options {
            reference: true,
            ..options
        },
        &mut budget,
    )
    .unwrap();
    let expected = reference.forward(&input).unwrap();
    let native = options.native();
    let conv = key(&format!(
        "{} 28x28x64>28x28x64 k3x3 s1x1 d1x1 p1x1 g1",
        native.map_or("cranelift", |isa| isa.name())
    ));
    for (pick, algorithm) in [(Pick::F2, "winograd-f2x2"), (Pick::Direct, "")] {
        let mut tuned = Tuned::new();
        tuned.insert(conv.clone(), pick);
        let mut model = build(&tuned, &mut budget);
        let step = &model.kernels().steps[0];
        match pick {
            Pick::Direct => assert!(step.algorithm().starts_with("direct"), "{step:?}"),
            Pick::F2 | Pick::F4 => assert_eq!(step.algorithm(), algorithm),
        }
        let actual = model.forward(&input).unwrap();
        let agreement =
            cnnjit::check::Agreement::between(&actual, &expected, model.backend().clone());
        assert!(agreement.within_tolerance, "{pick}: {agreement:?}");
    }
    // A pick the options forbid, or for another ISA, is not taken.
    let mut tuned = Tuned::new();
    tuned.insert(conv.clone(), Pick::F2);
    let off = cnnjit::Options {
        winograd: cnnjit::Winograd::Off,
        ..options
    };
    let model =
        cnnjit::Model::with_tuned(graph.clone(), &weights, off, &tuned, &mut budget).unwrap();
    assert!(model.kernels().steps[0].algorithm().starts_with("direct"));
    let mut elsewhere = Tuned::new();
    elsewhere.insert(
        ChoiceKey {
            native: None,
            ..conv.clone()
        },
        Pick::F2,
    );
    let model = build(&elsewhere, &mut budget);
    let expect = if native.is_some() {
        "winograd-f4x4"
    } else {
        "winograd-f2x2"
    };
    assert_eq!(model.kernels().steps[0].algorithm(), expect);
}

fn cnnjit(args: &[&str], cache_dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cnnjit"))
        .args(args)
        .env(tune::CACHE_ENV, cache_dir)
        .output()
        .expect("the binary runs")
}

#[test]
fn cli_tune_writes_the_cache_that_bench_then_reads() {
    let dir = folder("cli");
    let net = dir.join("net.cnn");
    std::fs::write(
        &net,
        "Tiny(12x12x8) { conv(8, 3x3, pad = 1), relu, conv(16, 1x1), conv(4, 3x3, stride = 2) }",
    )
    .unwrap();
    let net = net.to_str().unwrap();
    let out = cnnjit(&["tune", net, "--threads", "1"], &dir);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with('[')).count(),
        3,
        "{stderr}"
    );
    assert!(
        stdout.contains("12x12x8>12x12x8 k3x3 s1x1 d1x1 p1x1 g1"),
        "{stdout}"
    );
    assert!(stdout.contains(" of 3 shapes"), "{stdout}");
    let path = dir.join(tune::CACHE_FILE);
    let tuned = tune::read(&path, &tune::cpu_model()).unwrap();
    assert_eq!(tuned.len(), 3);
    assert!(stdout.contains(&format!("wrote 3 choices for {}", tune::cpu_model())));
    // The stride-2 conv has one candidate, the direct kernel.
    let strided = tuned.iter().find(|(k, _)| k.stride == [2, 2]).unwrap();
    assert_eq!(strided.1, Pick::Direct);
    // A corrupt cache is ignored, and the CLI says why.
    std::fs::write(&path, format!("{HEADER}\nbroken\n")).unwrap();
    let out = cnnjit(&["bench", net, "--plan"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ignored: line 2 is malformed: not three tab-separated fields"),
        "{stderr}"
    );
    // --dry-run writes nothing.
    std::fs::remove_file(&path).unwrap();
    let out = cnnjit(&["tune", net, "--dry-run"], &dir);
    assert!(out.status.success());
    assert!(!path.exists());
}

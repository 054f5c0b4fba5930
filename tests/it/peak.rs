//! `measure_peak` and `cnnjit peak`: the figures exist and are sane. Speed
//! is never asserted (shared, noisy machines; debug builds), only that every
//! figure is a finite positive number and that the widths the CPU has are
//! the ones reported.

use cnnjit::peak::{measure_peak, Peak};
use std::time::Duration;

fn assert_sane(name: &str, gflops: f64) {
    assert!(
        gflops.is_finite() && gflops > 0.0,
        "{name}: {gflops} GFLOP/s is not a finite positive number"
    );
}

#[test]
fn measured_figures_are_finite_and_positive() {
    let Peak {
        gflops_128,
        gflops_256,
        gflops_512,
    } = measure_peak(Duration::from_millis(50));
    assert_sane("128-bit", gflops_128);
    if let Some(g) = gflops_256 {
        assert_sane("256-bit", g);
    }
    if let Some(g) = gflops_512 {
        assert_sane("512-bit", g);
    }
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(
            gflops_256.is_some(),
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
        );
        assert_eq!(
            gflops_512.is_some(),
            is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma")
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    assert_eq!((gflops_256, gflops_512), (None, None));
}

#[cfg(feature = "cli")]
#[test]
fn cli_prints_json_with_every_width() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnnjit"))
        .args(["peak", "--json"])
        .output()
        .expect("cnnjit runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cnnjit peak --json prints JSON");
    let object = value.as_object().expect("a JSON object");
    assert_sane(
        "peak_gflops_128",
        object["peak_gflops_128"].as_f64().expect("a number"),
    );
    for key in ["peak_gflops_256", "peak_gflops_512"] {
        let field = object.get(key).unwrap_or_else(|| panic!("no key {key}"));
        assert!(field.is_null() || field.is_number(), "{key}: {field}");
        if let Some(g) = field.as_f64() {
            assert_sane(key, g);
        }
    }
}

#[cfg(feature = "cli")]
#[test]
fn cli_prints_one_line_per_width() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnnjit"))
        .arg("peak")
        .output()
        .expect("cnnjit runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("128-bit FMA: ") && lines[0].ends_with(" GFLOP/s per core"));
    assert!(lines[1].starts_with("256-bit FMA: "));
    assert!(lines[2].starts_with("512-bit FMA: "));
}

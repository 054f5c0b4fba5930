//! `cnnjit peak`: the figures exist and are sane. Speed is never asserted
//! (shared, noisy machines; debug builds), only that every figure is a
//! finite positive number and that the widths the CPU has are the ones
//! reported. The triad runs on 16 MiB arrays here (`--triad-mib`): the
//! default rule's are hundreds of MiB, too slow for a debug build.
#![cfg(feature = "cli")]

fn assert_sane(name: &str, gflops: f64) {
    assert!(
        gflops.is_finite() && gflops > 0.0,
        "{name}: {gflops} GFLOP/s is not a finite positive number"
    );
}

#[test]
fn cli_prints_json_with_every_width() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnnjit"))
        .args(["peak", "--json", "--triad-mib", "16"])
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
    for (key, available) in [
        ("peak_gflops_256", wide_fma(256)),
        ("peak_gflops_512", wide_fma(512)),
    ] {
        let field = object.get(key).unwrap_or_else(|| panic!("no key {key}"));
        match field.as_f64() {
            Some(g) => assert_sane(key, g),
            None => assert!(field.is_null(), "{key}: {field}"),
        }
        assert_eq!(field.is_number(), available, "{key}: {field}");
    }
    for key in ["triad_gbs_one_thread", "triad_gbs_all_threads"] {
        assert_sane(key, object[key].as_f64().expect("a number"));
    }
    assert_eq!(object["triad_array_bytes"].as_u64(), Some(16 << 20));
    // The L2 as glibc's sysconf finds it (CPUID), beside the sysfs cnnjit reads.
    let l2 = &object["l2_bytes"];
    match getconf_l2() {
        Some(bytes) => assert_eq!(l2.as_u64(), Some(bytes), "l2_bytes: {l2}"),
        None => assert!(l2.is_null() || l2.as_u64().is_some_and(|b| b > 0), "{l2}"),
    }
}

/// `getconf LEVEL2_CACHE_SIZE`, where it runs and names a size.
fn getconf_l2() -> Option<u64> {
    let out = std::process::Command::new("getconf")
        .arg("LEVEL2_CACHE_SIZE")
        .output()
        .ok()?;
    let bytes: u64 = String::from_utf8(out.stdout).ok()?.trim().parse().ok()?;
    (out.status.success() && bytes > 0).then_some(bytes)
}

/// Whether this CPU has FMA at `bits` wide (AVX2 for 256, AVX-512F for 512).
pub(crate) fn wide_fma(bits: u32) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("fma")
            && match bits {
                256 => is_x86_feature_detected!("avx2"),
                _ => is_x86_feature_detected!("avx512f"),
            }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = bits;
        false
    }
}

#[test]
fn cli_prints_one_line_per_width() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnnjit"))
        .args(["peak", "--triad-mib", "16"])
        .output()
        .expect("cnnjit runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("128-bit FMA: ") && lines[0].ends_with(" GFLOP/s per core"));
    assert!(lines[1].starts_with("256-bit FMA: "));
    assert!(lines[2].starts_with("512-bit FMA: "));
    assert!(
        lines[3].starts_with("memory (stream triad, 3 x 16 MiB): ")
            && lines[3].contains(" GB/s on "),
        "{text}"
    );
    assert!(lines[4].starts_with("L2 cache: "), "{text}");
}

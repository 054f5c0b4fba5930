//! `cnnjit compare`'s table and bubble chart: the chart is well-formed SVG
//! and labels every network; the table is sorted by FLOPs.
#![cfg(feature = "cli")]

use std::path::PathBuf;
use std::process::Command;

/// The example files compared.
const FILES: [&str; 6] = [
    "lenet5",
    "alexnet",
    "vgg16",
    "resnet",
    "mobilenet_v2",
    "efficientnet_b0",
];

/// `cnnjit compare` on [`FILES`] with `extra` arguments: its table.
fn compare(extra: &[&str]) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nets");
    let files = FILES.map(|file| format!("{dir}/{file}.cnn"));
    let out = Command::new(env!("CARGO_BIN_EXE_cnnjit"))
        .arg("compare")
        .args(&files)
        .args(extra)
        .output()
        .expect("cnnjit runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the table is UTF-8")
}

/// The names in the table's rows, in order.
fn names(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(2)
        .filter_map(|line| line.split('|').nth(1))
        .map(|name| name.trim().to_string())
        .collect()
}

#[test]
fn chart_is_svg_naming_every_network() {
    let svg_path: PathBuf =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("compare_chart.svg");
    let table = compare(&["--svg", svg_path.to_str().unwrap()]);
    let svg = std::fs::read_to_string(&svg_path).expect("the chart is written");
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    let names = names(&table);
    assert!(names.len() > FILES.len(), "{table}");
    for name in &names {
        assert!(
            texts.contains(&name.as_str()),
            "the chart does not label {name}"
        );
    }
    // One bubble per network.
    let circles = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    assert_eq!(circles, names.len());
}

#[test]
fn table_is_sorted_by_flops() {
    let text = compare(&[]);
    let order: Vec<usize> = ["LeNet5", "MobileNetV2", "AlexNet", "ResNet18", "VGG16"]
        .iter()
        .map(|name| {
            text.find(&format!("| {name} |"))
                .unwrap_or_else(|| panic!("{name} missing"))
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "not sorted by FLOPs:\n{text}"
    );
    // LeNet-5's row: 61,706 params, training memory 4 (2*61,706 + 32 (1024 + 2*8,094)) = 2.70 MB.
    assert!(
        text.contains("| LeNet5 | 61,706 | 416,520 | 422,824 | 0.02 | 2.7 |"),
        "{text}"
    );
}

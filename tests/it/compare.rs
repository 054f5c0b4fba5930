//! `cnnjit compare`'s table and bubble chart: the chart is well-formed SVG
//! and labels every network; the table is sorted by FLOPs.

use cnnjit::report::{bubble_chart, sort_by_flops, table, Row};

fn rows() -> Vec<Row> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nets");
    let mut rows = Vec::new();
    for file in [
        "lenet5",
        "alexnet",
        "vgg16",
        "resnet",
        "mobilenet_v2",
        "efficientnet_b0",
    ] {
        let text = std::fs::read_to_string(format!("{dir}/{file}.cnn")).unwrap();
        for net in cnnjit::lang::compile_source(&text).unwrap() {
            rows.push(Row::of(&net.summary()));
        }
    }
    rows
}

#[test]
fn chart_is_svg_naming_every_network() {
    let rows = rows();
    let svg = bubble_chart(&rows).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for row in &rows {
        assert!(
            texts.contains(&row.name.as_str()),
            "the chart does not label {}",
            row.name
        );
    }
    // One bubble per network.
    let circles = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    assert_eq!(circles, rows.len());
}

#[test]
fn table_is_sorted_by_flops() {
    let mut rows = rows();
    sort_by_flops(&mut rows);
    let text = table(&rows);
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
    assert!(bubble_chart(&[]).is_err());
}

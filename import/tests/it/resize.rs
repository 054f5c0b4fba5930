//! `ConvTranspose` as `deconv`, `Resize` and `Upsample` as `upsample`, on
//! small graphs built here: what each form becomes, and an error naming the
//! node for each form the language cannot say.

use crate::common::{model, node, weight};
use crate::import::{attr_ints as ints, int64s};
use cnnjit_import::onnx::{data_type, Attribute, NodeProto, TensorProto};
use cnnjit_import::{import_bytes, Error, Imported};

fn text(name: &str, value: &str) -> Attribute {
    Attribute {
        name: name.into(),
        s: value.as_bytes().to_vec(),
        ..Attribute::default()
    }
}

fn floats(name: &str, values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: data_type::FLOAT,
        float_data: values.to_vec(),
        ..TensorProto::default()
    }
}

fn import(bytes: &[u8]) -> Result<Imported, Error> {
    import_bytes(bytes, None, "Net", "net.onnx", "net.safetensors")
}

/// The net's one layer line.
fn line(imported: &Imported) -> String {
    let lines: Vec<&str> = imported.source.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("pub Net("))
        .unwrap();
    assert_eq!(lines.len(), start + 3, "{}", imported.source);
    lines[start + 1].trim().to_string()
}

fn node_error(result: Result<Imported, Error>) -> (String, String) {
    match result {
        Err(Error::Node { op, why, .. }) => (op, why),
        Err(other) => panic!("expected an error naming a node, got: {other}"),
        Ok(imported) => panic!("expected an error, imported:\n{}", imported.source),
    }
}

/// `ConvTranspose` of `x` `[1, 2, 3, 3]` with weights `[2, 4, 2, 2]` (3x3
/// with `kernel` 3) and a bias, `attribute` added.
fn deconv(kernel: i64, attribute: Vec<Attribute>) -> Vec<u8> {
    model(
        13,
        &[1, 2, 3, 3],
        vec![node("ConvTranspose", "", &["x", "w", "b"], "y", attribute)],
        vec![weight("w", &[2, 4, kernel, kernel]), weight("b", &[4])],
    )
}

#[test]
fn conv_transpose_is_deconv_with_pytorchs_weight_layout() {
    let imported = import(&deconv(2, vec![ints("strides", &[2, 2])])).unwrap();
    assert_eq!(line(&imported), "deconv(4, 2x2, stride = 2),");
    let (w, b) = (&imported.tensors[0], &imported.tensors[1]);
    assert_eq!(
        (w.name.as_str(), &w.dims[..]),
        ("deconv1.weight", &[2, 4, 2, 2][..])
    );
    // common::weight's values 0.1, 0.2, ... in ONNX's order, which is PyTorch's.
    assert_eq!(w.values[..3], [0.1, 0.2, 0.3]);
    assert_eq!((b.name.as_str(), &b.dims[..]), ("deconv1.bias", &[4][..]));
    let padded = deconv(
        3,
        vec![
            ints("strides", &[2, 2]),
            ints("pads", &[1, 1, 1, 1]),
            ints("kernel_shape", &[3, 3]),
        ],
    );
    assert_eq!(
        line(&import(&padded).unwrap()),
        "deconv(4, 3x3, stride = 2, pad = 1),"
    );
}

#[test]
fn conv_transpose_forms_deconv_cannot_say_are_errors_naming_the_attribute() {
    let cases = [
        (ints("output_padding", &[1, 1]), "output_padding"),
        (ints("dilations", &[2, 2]), "dilations"),
        (ints("pads", &[1, 0, 1, 0]), "pads"),
        (ints("output_shape", &[6, 6]), "output_shape"),
        (text("auto_pad", "SAME_UPPER"), "auto_pad"),
        (ints("kernel_shape", &[3, 3]), "kernel_shape"),
    ];
    for (attribute, named) in cases {
        let (op, why) = node_error(import(&deconv(
            2,
            vec![ints("strides", &[2, 2]), attribute],
        )));
        assert_eq!(op, "ConvTranspose");
        assert!(why.contains(named), "{named}: {why}");
    }
    // Two groups: weights [Cin, K / 2, Fh, Fw] = [2, 2, 2, 2].
    let grouped = model(
        13,
        &[1, 2, 3, 3],
        vec![node(
            "ConvTranspose",
            "",
            &["x", "w"],
            "y",
            vec![Attribute {
                i: 2,
                ..text("group", "")
            }],
        )],
        vec![weight("w", &[2, 2, 2, 2])],
    );
    let (_, why) = node_error(import(&grouped));
    assert!(why.contains("group"), "{why}");
}

/// `Resize` of `x` `[1, 2, 3, 3]` at opset 13 (`roi` empty), scales or sizes
/// as given, `attribute` added.
fn resize(scales: Option<&[f32]>, sizes: Option<&[i64]>, attribute: Vec<Attribute>) -> Vec<u8> {
    let mut inputs = vec!["x", ""];
    let mut weights = Vec::new();
    if let Some(s) = scales {
        inputs.push("scales");
        weights.push(floats("scales", s));
    }
    if let Some(s) = sizes {
        if scales.is_none() {
            inputs.push("");
        }
        inputs.push("sizes");
        weights.push(int64s("sizes", s));
    }
    model(
        13,
        &[1, 2, 3, 3],
        vec![node("Resize", "", &inputs, "y", attribute)],
        weights,
    )
}

#[test]
fn resize_as_pytorch_exports_it_is_upsample() {
    // nn.Upsample(scale_factor = 2): nearest, asymmetric, floor.
    let nearest = resize(
        Some(&[1.0, 1.0, 2.0, 2.0]),
        None,
        vec![
            text("mode", "nearest"),
            text("coordinate_transformation_mode", "asymmetric"),
            text("nearest_mode", "floor"),
        ],
    );
    assert_eq!(line(&import(&nearest).unwrap()), "upsample(2),");
    // Bilinear, align_corners = False: linear, pytorch_half_pixel; as sizes.
    let linear = resize(
        None,
        Some(&[1, 2, 9, 9]),
        vec![
            text("mode", "linear"),
            text("coordinate_transformation_mode", "pytorch_half_pixel"),
        ],
    );
    assert_eq!(
        line(&import(&linear).unwrap()),
        "upsample(3, bilinear = true),"
    );
    // Resize's defaults (nearest, half_pixel, round_prefer_floor) pick
    // floor(o / s) too for an integer factor.
    let defaults = resize(Some(&[1.0, 1.0, 2.0, 2.0]), None, vec![]);
    assert_eq!(line(&import(&defaults).unwrap()), "upsample(2),");
}

#[test]
fn the_old_upsample_operator_is_upsample() {
    // Opset 9: scales as input 1; opset 7: as an attribute.
    let nine = model(
        9,
        &[1, 2, 3, 3],
        vec![node("Upsample", "", &["x", "scales"], "y", vec![])],
        vec![floats("scales", &[1.0, 1.0, 2.0, 2.0])],
    );
    assert_eq!(line(&import(&nine).unwrap()), "upsample(2),");
    let seven = model(
        7,
        &[1, 2, 3, 3],
        vec![node(
            "Upsample",
            "",
            &["x"],
            "y",
            vec![Attribute {
                floats: vec![1.0, 1.0, 3.0, 3.0],
                ..text("scales", "")
            }],
        )],
        vec![],
    );
    assert_eq!(line(&import(&seven).unwrap()), "upsample(3),");
}

#[test]
fn resizes_upsample_cannot_say_are_errors_naming_the_node() {
    let scales2 = Some(&[1.0f32, 1.0, 2.0, 2.0][..]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (resize(Some(&[1.0, 1.0, 1.5, 1.5]), None, vec![]), "integer"),
        (resize(Some(&[1.0, 1.0, 2.0, 3.0]), None, vec![]), "integer"),
        (resize(Some(&[1.0, 2.0, 2.0, 2.0]), None, vec![]), "integer"),
        (resize(None, Some(&[1, 2, 7, 7]), vec![]), "integer"),
        (
            resize(
                scales2,
                None,
                vec![
                    text("mode", "linear"),
                    text("coordinate_transformation_mode", "align_corners"),
                ],
            ),
            "align_corners",
        ),
        (resize(scales2, None, vec![text("mode", "cubic")]), "cubic"),
        (
            resize(scales2, None, vec![text("nearest_mode", "floor")]),
            "nearest_mode `floor`",
        ),
        (
            resize(
                scales2,
                None,
                vec![
                    text("coordinate_transformation_mode", "asymmetric"),
                    text("nearest_mode", "round_prefer_ceil"),
                ],
            ),
            "asymmetric",
        ),
    ];
    for (bytes, named) in cases {
        let (op, why) = node_error(import(&bytes));
        assert_eq!(op, "Resize");
        assert!(why.contains(named), "{named}: {why}");
    }
    // The old operator's linear mode samples asymmetrically, not at half pixels.
    let linear: NodeProto = node(
        "Upsample",
        "",
        &["x", "scales"],
        "y",
        vec![text("mode", "linear")],
    );
    let bytes = model(
        9,
        &[1, 2, 3, 3],
        vec![linear],
        vec![floats("scales", &[1.0, 1.0, 2.0, 2.0])],
    );
    let (op, why) = node_error(import(&bytes));
    assert_eq!(op, "Upsample");
    assert!(why.contains("asymmetric"), "{why}");
}

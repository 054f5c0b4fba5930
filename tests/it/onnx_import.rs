//! `cnnjit import` on the ONNX fixtures of tests/fixtures/onnx (written by
//! scripts/export_onnx.py with PyTorch): the imported source is the checked-in
//! snapshot, and the imported net, run by cnnjit on the JIT and on the
//! reference kernels, gives ONNX Runtime's outputs within 1e-4 of their scale.

use cnnjit::{Model, Options, Weights};
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 5] = [
    "resnet_basic",
    "mobilenet_se",
    "squeeze_fire",
    "shufflenet_small",
    "convnext_small",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

/// A batch of NCHW images as cnnjit's HWC images.
fn nchw_to_hwc(data: &[f32], dims: &[usize]) -> Vec<f32> {
    let &[n, c, h, w] = dims else {
        panic!("an NCHW batch, found dimensions {dims:?}")
    };
    let mut out = vec![0.0; data.len()];
    for b in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    out[((b * h + y) * w + x) * c + ch] = data[((b * c + ch) * h + y) * w + x];
                }
            }
        }
    }
    out
}

/// Every |actual - expected| is within 1e-4 of the largest |expected|.
fn assert_close(name: &str, actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{name}: lengths");
    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= 1e-4 * scale,
            "{name}: element {i} is {a}, ONNX Runtime gives {e} (scale {scale})"
        );
    }
}

#[test]
fn fixtures_import_to_their_snapshots_and_match_onnx_runtime() {
    for name in FIXTURES {
        let imported = cnnjit::import::import(
            dir().join(format!("{name}.onnx")),
            &cnnjit::import::Options::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let snapshot = std::fs::read_to_string(dir().join(format!("{name}.cnn"))).unwrap();
        assert_eq!(
            imported.source, snapshot,
            "{name}: the import differs from tests/fixtures/onnx/{name}.cnn"
        );
        let weights = Weights::from_bytes(&imported.safetensors().unwrap()).unwrap();
        let io = Weights::from_file(dir().join(format!("{name}.io.safetensors"))).unwrap();
        let (input, expected) = (io.get("input").unwrap(), io.get("output").unwrap());
        let input = nchw_to_hwc(&input.data, &input.shape);
        for reference in [false, true] {
            let options = Options {
                reference,
                ..Options::default()
            };
            let mut model = Model::with_options(imported.net.graph.clone(), &weights, options)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut output = vec![0.0; expected.data.len()];
            model.forward_batch(&input, &mut output).unwrap();
            assert_close(name, &output, &expected.data);
        }
    }
}

cnnjit::cnn!(file = "tests/fixtures/onnx/resnet_basic.cnn");
cnnjit::cnn!(file = "tests/fixtures/onnx/mobilenet_se.cnn");
cnnjit::cnn!(file = "tests/fixtures/onnx/squeeze_fire.cnn");
cnnjit::cnn!(file = "tests/fixtures/onnx/shufflenet_small.cnn");
cnnjit::cnn!(file = "tests/fixtures/onnx/convnext_small.cnn");

#[test]
fn snapshots_compile_through_the_macro_with_the_imported_figures() {
    let figures = |name: &str| {
        let imported = cnnjit::import::import(
            dir().join(format!("{name}.onnx")),
            &cnnjit::import::Options::default(),
        )
        .unwrap();
        (imported.net.figures.params, imported.net.figures.macs)
    };
    assert_eq!(
        figures("resnet_basic"),
        (ResnetBasic::PARAMS, ResnetBasic::MACS)
    );
    assert_eq!(
        figures("mobilenet_se"),
        (MobilenetSe::PARAMS, MobilenetSe::MACS)
    );
    assert_eq!(
        figures("squeeze_fire"),
        (SqueezeFire::PARAMS, SqueezeFire::MACS)
    );
    assert_eq!(
        figures("shufflenet_small"),
        (ShufflenetSmall::PARAMS, ShufflenetSmall::MACS)
    );
    // torch's `sum(p.numel() for p in model.parameters())` of
    // `ShuffleNetV2([2, 1, 1], [8, 16, 24, 32, 64], num_classes = 10)`.
    assert_eq!(ShufflenetSmall::PARAMS, 6_190);
    assert_eq!(
        figures("convnext_small"),
        (ConvnextSmall::PARAMS, ConvnextSmall::MACS)
    );
    // torch's count of scripts/export_onnx.py's `convnext_small()`: stem 8 x
    // 3 x 16 + 8 = 392, its LayerNorm2d 16; block 1 (8 channels) dwconv 8 x
    // 49 + 8 = 400, LayerNorm 16, Linear 8 x 32 + 32 = 288 and 32 x 8 + 8 =
    // 264, layer scale 8; downsampling LayerNorm2d 16 and conv 16 x 8 x 4 +
    // 16 = 528; block 2 (16 channels) 800 + 32 + 1,088 + 1,040 + 16; head
    // LayerNorm2d 32, Linear 16 x 10 + 10 = 170. Sum 5,106.
    assert_eq!(ConvnextSmall::PARAMS, 5_106);
    // torch counts the ResNet fixture's parameters as 5,266: convs 216 + 576
    // + 576 + 1,152 + 2,304 + 128 = 4,952, bn gamma and beta 2 x (8 + 8 + 8 +
    // 16 + 16 + 16) = 144, fc 16 x 10 + 10 = 170.
    assert_eq!(ResnetBasic::PARAMS, 5_266);
}

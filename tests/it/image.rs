//! `cnnjit::image`: torchvision's preprocessing reproduced on the fixtures of
//! `scripts/make_image_fixtures.py`, the documented mode conversions, every
//! kind of untrusted file a typed error naming it, class names, and the
//! digits demo classifying a PNG.
#![cfg(feature = "image")]

use cnnjit::image::{
    self, check_input, Channels, Error, Labels, Limits, Preprocess, RgbImage, MAX_LABELS_BYTES,
};
use cnnjit::npy;
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/images");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The tolerance the module docs state, in 8-bit steps before `Normalize`:
/// one for PNGs (the resampler's rounding), three for JPEGs (the decoders).
fn tolerance(image: &str, std: &[f32]) -> f32 {
    let steps = if image.ends_with(".png") { 1.0 } else { 3.0 };
    let min_std = std.iter().copied().fold(f32::INFINITY, f32::min);
    steps / 255.0 / min_std + 1e-5
}

/// One case of tests/fixtures/images/cases.json as a `Preprocess`.
fn preprocess_of(case: &serde_json::Value) -> Preprocess {
    let floats = |key: &str| -> Vec<f32> {
        case[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let bgr = case["bgr"].as_bool().unwrap();
    let (mut mean, mut std) = (floats("mean"), floats("std"));
    if bgr {
        // torchvision normalised RGB, then the script reversed the channels.
        mean.reverse();
        std.reverse();
    }
    let crop = case["crop"].as_array().map(|c| {
        let side = |i: usize| c[i].as_u64().unwrap() as u32;
        (side(0), side(1))
    });
    Preprocess {
        resize: case["resize"].as_u64().map(|n| n as u32),
        crop,
        channels: match (case["grey"].as_bool().unwrap(), bgr) {
            (true, _) => Channels::Grey,
            (false, true) => Channels::Bgr,
            (false, false) => Channels::Rgb,
        },
        mean,
        std,
    }
}

#[test]
fn image_matches_torchvision_within_the_stated_tolerance() {
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("cases.json")).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 9);
    let mut worst = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let file = case["image"].as_str().unwrap();
        let want = npy::read_f32(fixture(&format!("{name}.npy"))).unwrap();
        let preprocess = preprocess_of(case);
        let got = preprocess.open(fixture(file), &Limits::default()).unwrap();
        let shape: Vec<u64> = got.shape.iter().map(|&d| d as u64).collect();
        assert_eq!(shape, want.shape, "{name}");
        let diff = max_abs_diff(&got.data, &want.data);
        eprintln!("{name} ({file}): max |cnnjit - torchvision| = {diff:.2e}");
        worst.push((name, diff, tolerance(file, &preprocess.std)));
    }
    for (name, diff, tolerance) in worst {
        assert!(diff <= tolerance, "{name}: {diff} > {tolerance}");
    }
}

#[test]
fn image_presets_are_torchvisions_numbers() {
    let p = Preprocess::imagenet();
    assert_eq!((p.resize, p.crop), (Some(256), Some((224, 224))));
    assert_eq!(p.mean, [0.485, 0.456, 0.406]);
    assert_eq!(p.std, [0.229, 0.224, 0.225]);
    assert_eq!(p.output_shape(300, 200).unwrap(), [224, 224, 3]);
    assert_eq!(
        Preprocess::digits().output_shape(8, 8).unwrap(),
        [32, 32, 1]
    );
    assert_eq!(Preprocess::none().output_shape(7, 5).unwrap(), [5, 7, 3]);
    for name in image::PRESETS {
        assert!(Preprocess::preset(name).is_some(), "{name}");
    }
    assert_eq!(Preprocess::preset("imagenet21k"), None);
}

/// A 3x2 image whose pixels are known, through `none`, BGR and grey.
#[test]
fn image_layout_is_hwc_in_the_asked_channel_order() {
    let rgb = RgbImage::from_raw(3, 2, (0..18).map(|i| i * 10).collect()).unwrap();
    let x = Preprocess::none().apply(&rgb, "mem").unwrap();
    assert_eq!(x.shape, [2, 3, 3]);
    // Pixel (y = 1, x = 2) is bytes 15..18 = 150, 160, 170.
    let at = |y: usize, x_: usize, c: usize| x.data[(y * 3 + x_) * 3 + c];
    for (c, v) in [150.0, 160.0, 170.0].into_iter().enumerate() {
        assert!((at(1, 2, c) - v / 255.0).abs() < 1e-7, "{c}");
    }
    let bgr = Preprocess {
        channels: Channels::Bgr,
        mean: vec![0.5, 0.0, 0.0],
        std: vec![0.5, 1.0, 1.0],
        ..Preprocess::none()
    }
    .apply(&rgb, "mem")
    .unwrap();
    // Channel 0 is blue (170 at that pixel), normalised by its own mean and std.
    let b = bgr.data[(3 + 2) * 3];
    assert!((b - (170.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6, "{b}");
    let grey = Preprocess {
        channels: Channels::Grey,
        mean: vec![0.0],
        std: vec![1.0],
        ..Preprocess::none()
    }
    .apply(&rgb, "mem")
    .unwrap();
    assert_eq!(grey.shape, [2, 3, 1]);
    // Pillow's L: (150 * 299 + 160 * 587 + 170 * 114) / 1000 = 158.15 -> 158.
    assert!(
        (grey.data[5] - 158.0 / 255.0).abs() < 1e-7,
        "{}",
        grey.data[5]
    );
}

#[test]
fn image_grey_16_bit_keeps_the_high_byte() {
    let x = Preprocess::none()
        .open(fixture("grey16.png"), &Limits::default())
        .unwrap();
    assert_eq!(x.shape, [12, 16, 3]);
    for (i, px) in x.data.chunks_exact(3).enumerate() {
        // The script wrote i * 341 as big-endian 16-bit grey.
        let want = ((i * 341) >> 8) as f32 / 255.0;
        for v in px {
            assert!((v - want).abs() < 1e-7, "pixel {i}: {v} vs {want}");
        }
    }
}

fn decode_error(bytes: &[u8]) -> Error {
    match image::decode(bytes, "untrusted.bin", &Limits::default()) {
        Ok(img) => panic!("decoded {}x{}", img.width(), img.height()),
        Err(e) => {
            assert!(e.to_string().starts_with("untrusted.bin: "), "{e}");
            e
        }
    }
}

#[test]
fn image_not_an_image_is_an_unknown_format() {
    for bytes in [&b""[..], b"hello, world\n", b"GIF89a\x01\x00\x01\x00"] {
        let e = decode_error(bytes);
        assert!(matches!(e, Error::UnknownFormat { .. }), "{e}");
    }
    let e = decode_error(b"GIF89a\x01\x00\x01\x00");
    assert!(e.to_string().contains("found gif"), "{e}");
}

#[test]
fn image_corrupt_and_truncated_files_are_decode_errors() {
    for file in [
        "photo.jpg",
        "large.png",
        "alpha.png",
        "cmyk.jpg",
        "rgb16.png",
    ] {
        let bytes = std::fs::read(fixture(file)).unwrap();
        // Cut after the headers, in the middle, and (a JPEG) before its end
        // marker: a PNG whose pixels are whole but whose last chunk is cut
        // decodes, as the png crate reads no further than the pixels.
        let mut cuts = vec![40, bytes.len() / 2];
        if file.ends_with(".jpg") {
            cuts.push(bytes.len() - 2);
        }
        for cut in cuts {
            let e = decode_error(&bytes[..cut]);
            assert!(
                matches!(e, Error::Decode { .. }),
                "{file} cut at {cut}: {e}"
            );
        }
        // Garbage after the signature.
        let mut garbage = bytes[..8].to_vec();
        garbage.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        let e = decode_error(&garbage);
        assert!(matches!(e, Error::Decode { .. }), "{file} garbage: {e}");
    }
}

/// CRC-32 (ISO-HDLC, PNG's), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header declares `width` x `height` RGB pixels and whose data
/// is a few bytes: what a decompression bomb looks like before decoding.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (
            &b"IHDR"[..],
            [
                &width.to_be_bytes()[..],
                &height.to_be_bytes(),
                &[8, 2, 0, 0, 0],
            ]
            .concat(),
        ),
        (b"IDAT", vec![0x78, 0x9c, 0x63, 0, 0, 0, 1, 0, 1]),
        (b"IEND", vec![]),
    ] {
        png.extend((data.len() as u32).to_be_bytes());
        let body = [kind, &data].concat();
        png.extend(&body);
        png.extend(crc32(&body).to_be_bytes());
    }
    png
}

#[test]
fn image_decompression_bombs_are_refused_before_decoding() {
    for (w, h) in [(100_000, 100_000), (16_385, 10), (10_000, 10_000)] {
        let e = decode_error(&png_header_only(w, h));
        let text = e.to_string();
        assert!(
            matches!(e, Error::TooLarge { width, height, .. } if (width, height) == (w, h)),
            "{text}"
        );
        assert!(text.contains(&format!("{w}x{h} pixels")), "{text}");
    }
    // A JPEG whose frame header says 60000x50000: patch a real one's SOF.
    let mut jpeg = std::fs::read(fixture("photo.jpg")).unwrap();
    let sof = jpeg
        .windows(2)
        .position(|m| m[0] == 0xFF && (m[1] == 0xC0 || m[1] == 0xC2))
        .unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&50_000u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&60_000u16.to_be_bytes());
    let e = decode_error(&jpeg);
    assert!(
        matches!(
            e,
            Error::TooLarge {
                width: 60_000,
                height: 50_000,
                ..
            }
        ),
        "{e}"
    );
    // Lower limits refuse a genuine file, naming it and its size.
    let small = Limits {
        max_width: 63,
        ..Limits::default()
    };
    let e = image::open(fixture("grey.png"), &small)
        .map(|_| ())
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("grey.png") && text.contains("64x47"),
        "{text}"
    );
    // 2,500 bytes: the file (2,187) fits, its 64x47 grey pixels do not.
    let tight = Limits {
        max_alloc: 2500,
        ..Limits::default()
    };
    let e = image::open(fixture("grey.png"), &tight)
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    // 2,000 bytes: the file itself (2,187) is over the limit, refused
    // before it is decoded.
    let e = image::open(
        fixture("grey.png"),
        &Limits {
            max_alloc: 2000,
            ..Limits::default()
        },
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        matches!(e, Error::Decode { .. })
            && e.to_string().contains("grey.png")
            && e.to_string().contains("larger than the limit"),
        "{e}"
    );
    // The default limit admits Pillow's MAX_IMAGE_PIXELS of RGB, no more.
    assert_eq!(Limits::default().max_alloc / 3, 89_478_485);
}

#[test]
fn image_missing_file_is_an_io_error_naming_it() {
    let e = image::open(fixture("no_such.png"), &Limits::default()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(e.to_string().contains("no_such.png"), "{e}");
}

#[test]
fn image_preprocessing_that_cannot_apply_is_an_error() {
    let rgb = RgbImage::new(40, 30);
    let fails = |p: Preprocess, needle: &str| {
        let e = p.apply(&rgb, "tiny.png").unwrap_err();
        assert!(matches!(e, Error::Preprocess { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with("tiny.png: ") && text.contains(needle),
            "{text}"
        );
    };
    fails(
        Preprocess {
            resize: None,
            ..Preprocess::imagenet()
        },
        "cannot crop 224x224 (HxW) from the 30x40 image",
    );
    fails(
        Preprocess {
            mean: vec![0.5],
            ..Preprocess::imagenet()
        },
        "1 means and 3 deviations for 3 channel(s)",
    );
    fails(
        Preprocess {
            std: vec![1.0, 0.0, 1.0],
            ..Preprocess::imagenet()
        },
        "a deviation of 0",
    );
    fails(
        Preprocess {
            crop: Some((0, 5)),
            ..Preprocess::imagenet()
        },
        "zero pixels",
    );
    // A long thin image resized by its short side would take 393 MB.
    let thin = RgbImage::new(1, 2000);
    let e = Preprocess::imagenet().apply(&thin, "thin.png").unwrap_err();
    assert!(e.to_string().contains("256x512000 pixels"), "{e}");
    // apply_into wants exactly the output's length.
    let mut out = vec![0.0; 10];
    let e = Preprocess::none()
        .apply_into(&rgb, "tiny.png", &mut out)
        .unwrap_err();
    assert!(e.to_string().contains("holds 10 values"), "{e}");
}

#[test]
fn image_imagenet_labels_ship_with_the_crate() {
    let labels = Labels::imagenet();
    assert_eq!(labels.len(), 1000);
    assert_eq!(labels.name(0), Some("tench"));
    assert_eq!(labels.name(281), Some("tabby"));
    assert_eq!(labels.name(999), Some("toilet tissue"));
    assert_eq!(labels.name(1000), None);
    labels.check_outputs(1000).unwrap();
    let e = labels.check_outputs(10).unwrap_err();
    assert_eq!(
        e.to_string(),
        "imagenet has 1000 class names, but the net has 10 outputs"
    );
}

#[test]
fn image_labels_files_parse_or_say_which_line_is_wrong() {
    let ok = Labels::parse("cat\r\n  dog \nbird", "a.txt").unwrap();
    assert_eq!(ok.names(), ["cat", "dog", "bird"]);
    assert_eq!(Labels::parse("cat\ndog\n", "a.txt").unwrap().len(), 2);
    let e = Labels::parse("cat\ndog\nbird\n", "b.txt")
        .unwrap()
        .check_outputs(4)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.txt has 3 class names, but the net has 4 outputs"
    );
    for (text, line) in [("", 0), ("\n", 0), ("cat\n\ndog\n", 2), ("cat\n \ndog", 2)] {
        let e = Labels::parse(text, "c.txt").unwrap_err();
        assert!(
            matches!(e, Error::Labels { line: l, .. } if l == line),
            "{text:?}: {e}"
        );
        assert!(e.to_string().starts_with(&format!("c.txt:{line}: ")), "{e}");
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image_labels");
    std::fs::create_dir_all(&dir).unwrap();
    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"cat\ndog\ncaf\xe9\n").unwrap();
    let e = Labels::open(&latin1).unwrap_err();
    assert!(
        e.to_string().ends_with("latin1.txt:3: not UTF-8 text"),
        "{e}"
    );
    let e = Labels::open(dir.join("missing.txt")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    // One byte over the limit: refused by its size, not read as names.
    let huge = dir.join("huge.txt");
    std::fs::write(&huge, vec![b'a'; MAX_LABELS_BYTES as usize + 1]).unwrap();
    let e = Labels::open(&huge).unwrap_err();
    assert!(
        matches!(e, Error::Labels { line: 0, .. }) && e.to_string().contains("not a labels file"),
        "{e}"
    );
}

/// LeNet-5 of the digits demo, with its trained weights.
fn lenet() -> cnnjit::Model {
    let weights =
        cnnjit::Weights::from_file(format!("{EXAMPLES}/data/lenet5_digits.safetensors")).unwrap();
    cnnjit::Model::from_file(format!("{EXAMPLES}/nets/lenet5.cnn"), None, &weights).unwrap()
}

#[test]
fn image_digits_preset_feeds_the_demo_its_training_input() {
    let path = format!("{EXAMPLES}/data/digit_4.png");
    let x = Preprocess::digits()
        .open(&path, &Limits::default())
        .unwrap();
    let mut model = lenet();
    check_input(&x.shape, model.graph(), &path).unwrap();
    // The PNG is test image 7 of examples/data/digits_test.safetensors in 8 bits.
    let test =
        cnnjit::Weights::from_file(format!("{EXAMPLES}/data/digits_test.safetensors")).unwrap();
    let images = &test.get("images").unwrap().data;
    let diff = max_abs_diff(&x.data, &images[7 * 1024..8 * 1024]);
    assert!(diff <= 0.5 / 255.0 + 1e-7, "{diff}");
    assert_eq!(test.get("labels").unwrap().data[7], 4.0);
    let out = model.forward(&x.data).unwrap();
    let best = (0..10).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap();
    assert_eq!(best, 4, "{out:?}");
    let names = Labels::parse("0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n", "digits").unwrap();
    assert_eq!(names.name(best), Some("4"));
}

#[test]
fn image_shape_mismatch_says_what_to_change() {
    let model = lenet();
    let x = Preprocess::imagenet()
        .open(fixture("photo.jpg"), &Limits::default())
        .unwrap();
    let e = check_input(&x.shape, model.graph(), "photo.jpg").unwrap_err();
    assert_eq!(
        e.to_string(),
        "photo.jpg: preprocessed to 224x224x3 (HxWxC), but net `LeNet5` takes 32x32x1; \
         crop (or resize) to 32x32 and make it grey (e.g. --preprocess imagenet or digits)"
    );
}

"""cnnjit.preprocess and cnnjit.labels: torchvision's preprocessing on the
fixtures of scripts/make_image_fixtures.py (tests/fixtures/images, the
tolerances of tests/it/image.rs), untrusted files as exceptions with the Rust
message, and the digits demo classifying a PNG."""

import json
import struct

import numpy as np
import pytest

import cnnjit
from conftest import DIGITS, FIXTURES, LENET, read_safetensors

IMAGES = FIXTURES / "images"
CASES = json.loads((IMAGES / "cases.json").read_text())


def tolerance(image, std):
    """tests/it/image.rs: one 8-bit step before Normalize on PNGs (the
    resampler's rounding), three on JPEGs (the decoders)."""
    steps = 1.0 if image.endswith(".png") else 3.0
    return steps / 255.0 / min(std) + 1e-5


def fields(case):
    """A case of cases.json as preprocessing fields."""
    mean, std = list(case["mean"]), list(case["std"])
    if case["bgr"]:
        # torchvision normalised RGB, then the script reversed the channels.
        mean.reverse()
        std.reverse()
    channels = "grey" if case["grey"] else "bgr" if case["bgr"] else "rgb"
    return dict(resize=case["resize"], crop=case["crop"], mean=mean, std=std, channels=channels)


def assert_within(actual, expected, tol):
    assert actual.dtype == np.float32
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    worst = float(np.abs(actual - expected).max())
    assert worst <= tol, f"max |cnnjit - torchvision| = {worst} > {tol}"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_preprocess_matches_torchvision(case):
    expected = np.load(IMAGES / f"{case['name']}.npy")
    assert list(expected.shape) == case["shape"]
    tol = tolerance(case["image"], case["std"])
    path = IMAGES / case["image"]
    # As keyword arguments over "none", and as a dict.
    assert_within(cnnjit.preprocess(path, "none", **fields(case)), expected, tol)
    assert_within(cnnjit.preprocess(str(path), fields(case)), expected, tol)
    # NCHW is the same values, channels first.
    nchw = cnnjit.preprocess(path, fields(case), layout="NCHW")
    assert_within(nchw, expected.transpose(2, 0, 1), tol)


def test_imagenet_preset_from_bytes_matches_torchvision():
    expected = np.load(IMAGES / "photo_imagenet.npy")
    data = (IMAGES / "photo.jpg").read_bytes()
    tol = tolerance("photo.jpg", [0.229, 0.224, 0.225])
    x = cnnjit.preprocess(data)  # preset="imagenet" by default
    assert x.shape == (224, 224, 3)
    assert_within(x, expected, tol)
    assert_within(cnnjit.preprocess(data, "imagenet", layout="NCHW"), expected.transpose(2, 0, 1), tol)


def jpeg_declaring(width, height):
    """photo.jpg with its frame header (SOF) patched to declare width x height
    pixels: a decompression bomb before decoding (as tests/it/image.rs does)."""
    jpeg = bytearray((IMAGES / "photo.jpg").read_bytes())
    sof = min(i for i in (jpeg.find(b"\xff\xc0"), jpeg.find(b"\xff\xc2")) if i >= 0)
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(jpeg)


def test_bad_files_are_exceptions_with_the_rust_message(tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    with pytest.raises(cnnjit.Error, match="notes.jpg: not a JPEG or PNG image"):
        cnnjit.preprocess(not_an_image)
    jpeg = (IMAGES / "photo.jpg").read_bytes()
    with pytest.raises(cnnjit.Error, match="<bytes>: .*truncated"):
        cnnjit.preprocess(jpeg[: len(jpeg) // 2])
    with pytest.raises(cnnjit.Error, match=r"60000x50000 pixels.*over the limit"):
        cnnjit.preprocess(jpeg_declaring(60_000, 50_000))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        cnnjit.preprocess(tmp_path / "missing.png")


def test_bad_preprocessing_arguments():
    path = IMAGES / "grey.png"
    with pytest.raises(ValueError, match="unknown preset \"resnet\"; the presets are imagenet, digits, none"):
        cnnjit.preprocess(path, "resnet")
    with pytest.raises(ValueError, match="a deviation of 0"):
        cnnjit.preprocess(path, "none", std=[1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="3 means and 3 deviations for 1 channel"):
        cnnjit.preprocess(path, "imagenet", channels="grey")
    with pytest.raises(ValueError, match="cannot crop 100x100"):
        cnnjit.preprocess(path, "none", crop=100)
    with pytest.raises(TypeError, match="unknown preprocessing field `size`"):
        cnnjit.preprocess(path, {"size": 3})
    with pytest.raises(TypeError, match="`channels` must be"):
        cnnjit.preprocess(path, "none", channels="cmyk")
    with pytest.raises(TypeError, match="image must be a path"):
        cnnjit.preprocess(3)
    with pytest.raises(ValueError, match="layout"):
        cnnjit.preprocess(path, layout="HWC")


def test_digits_preset_feeds_lenet5_a_4():
    path = DIGITS / "digit_4.png"
    x = cnnjit.preprocess(path, "digits")
    assert x.shape == (32, 32, 1)
    # The PNG is test image 7 of digits_test.safetensors in 8 bits.
    test = read_safetensors(DIGITS / "digits_test.safetensors")
    assert test["labels"].reshape(-1)[7] == 4
    assert np.abs(x.reshape(-1) - test["images"].reshape(-1, 1024)[7]).max() <= 0.5 / 255 + 1e-7
    model = cnnjit.Model(LENET, weights=DIGITS / "lenet5_digits.safetensors")
    assert int(np.argmax(model(x))) == 4


def test_imagenet_labels():
    names = cnnjit.labels()
    assert names == cnnjit.labels("imagenet")
    assert len(names) == 1000
    # torchvision's ResNet50_Weights.IMAGENET1K_V1.meta["categories"].
    assert names[0] == "tench" and names[281] == "tabby" and names[999] == "toilet tissue"


def test_labels_files(tmp_path):
    good = tmp_path / "classes.txt"
    good.write_text(" cat\r\ndog\n")
    assert cnnjit.labels(good) == ["cat", "dog"]
    assert cnnjit.labels(str(good)) == ["cat", "dog"]
    blank = tmp_path / "blank.txt"
    blank.write_text("cat\n\ndog\n")
    with pytest.raises(cnnjit.Error, match="blank.txt:2: a blank line"):
        cnnjit.labels(blank)
    with pytest.raises(FileNotFoundError):
        cnnjit.labels(tmp_path / "missing.txt")

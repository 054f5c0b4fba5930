"""cnnjit from Python against the PyTorch and ONNX Runtime fixtures the Rust
tests use (tests/fixtures, tests/fixtures/onnx)."""

import numpy as np
import pytest

import cnnjit
from conftest import FIXTURES, assert_close, read_safetensors

NAMES = sorted(p.stem for p in FIXTURES.glob("*.cnn"))
ONNX = sorted(p.stem for p in (FIXTURES / "onnx").glob("*.onnx"))


def test_fixtures_are_found():
    assert len(NAMES) >= 40 and len(ONNX) >= 3


@pytest.mark.parametrize("name", NAMES)
def test_fixture_matches_pytorch(name):
    io = read_safetensors(FIXTURES / f"{name}.io.safetensors")
    model = cnnjit.Model(FIXTURES / f"{name}.cnn", weights=str(FIXTURES / f"{name}.safetensors"))
    output = model(io["input"])
    assert output.dtype == np.float32
    assert_close(output, io["output"])


@pytest.mark.parametrize("name", ["conv_plain", "bn_after_conv", "act_flat"])
def test_one_image_is_a_row_of_the_batch(name):
    io = read_safetensors(FIXTURES / f"{name}.io.safetensors")
    model = cnnjit.Model(str(FIXTURES / f"{name}.cnn"), weights=FIXTURES / f"{name}.safetensors")
    for i in range(2):
        output = model(io["input"][i])
        assert output.shape == tuple(model.output_shape)
        assert_close(output, io["output"][i])


def test_nchw_layout_is_transposed_both_ways():
    io = read_safetensors(FIXTURES / "conv_stride2_pad1.io.safetensors")
    model = cnnjit.Model(FIXTURES / "conv_stride2_pad1.cnn", weights=FIXTURES / "conv_stride2_pad1.safetensors")
    output = model(np.ascontiguousarray(io["input"].transpose(0, 3, 1, 2)), layout="NCHW")
    assert_close(output, io["output"].transpose(0, 3, 1, 2))
    one = model(np.ascontiguousarray(io["input"][1].transpose(2, 0, 1)), layout="NCHW")
    assert_close(one, io["output"][1].transpose(2, 0, 1))


def test_non_contiguous_input_is_copied():
    io = read_safetensors(FIXTURES / "conv_groups.io.safetensors")
    model = cnnjit.Model(FIXTURES / "conv_groups.cnn", weights=FIXTURES / "conv_groups.safetensors")
    x = io["input"]
    fortran = np.asfortranarray(x)
    assert not fortran.flags.c_contiguous
    strided = np.repeat(x, 2, axis=2)[:, :, ::2, :]
    assert not strided.flags.c_contiguous and np.array_equal(strided, x)
    # The NCHW view of an NHWC array is itself non-contiguous.
    nchw_view = x.transpose(0, 3, 1, 2)
    for y in (model(fortran), model(strided), model(nchw_view, layout="NCHW").transpose(0, 2, 3, 1)):
        assert_close(y, io["output"])


def test_source_text_and_weight_bytes():
    name = "residual_auto"
    io = read_safetensors(FIXTURES / f"{name}.io.safetensors")
    source = (FIXTURES / f"{name}.cnn").read_text()
    weights = (FIXTURES / f"{name}.safetensors").read_bytes()
    assert_close(cnnjit.Model(source, weights=weights)(io["input"]), io["output"])


@pytest.mark.parametrize("name", ONNX)
def test_onnx_model_matches_onnx_runtime(name):
    io = read_safetensors(FIXTURES / "onnx" / f"{name}.io.safetensors")
    model = cnnjit.Model(FIXTURES / "onnx" / f"{name}.onnx")
    output = model(io["input"], layout="NCHW")
    expected = io["output"].reshape(output.shape)
    scale = np.abs(expected).max()
    assert np.abs(output - expected).max() <= 1e-4 * scale


@pytest.mark.parametrize("name", ONNX)
def test_import_onnx_writes_what_the_cli_does(name, tmp_path):
    snapshot = (FIXTURES / "onnx" / f"{name}.cnn").read_text()
    source, weights = cnnjit.import_onnx(FIXTURES / "onnx" / f"{name}.onnx")
    assert source == snapshot
    assert isinstance(weights, bytes)
    io = read_safetensors(FIXTURES / "onnx" / f"{name}.io.safetensors")
    output = cnnjit.Model(source, weights=weights)(io["input"], layout="NCHW")
    expected = io["output"].reshape(output.shape)
    assert np.abs(output - expected).max() <= 1e-4 * np.abs(expected).max()

    written_source, written = cnnjit.import_onnx(
        FIXTURES / "onnx" / f"{name}.onnx", output=tmp_path / f"{name}.cnn"
    )
    assert written_source == snapshot
    assert (tmp_path / f"{name}.cnn").read_text() == snapshot
    assert str(written) == str(tmp_path / f"{name}.safetensors")
    assert (tmp_path / f"{name}.safetensors").read_bytes() == weights

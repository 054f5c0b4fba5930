"""Bad arguments are Python exceptions naming what was wrong, never a crash."""

import numpy as np
import pytest

import cnnjit
from conftest import DIGITS, FIXTURES, LENET


@pytest.fixture(scope="module")
def lenet():
    return cnnjit.Model(LENET, weights=DIGITS / "lenet5_digits.safetensors")


def test_error_is_an_exception():
    assert issubclass(cnnjit.Error, Exception)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.float16, np.uint8])
def test_wrong_dtype_is_a_type_error_naming_dtype_and_shape(lenet, dtype):
    x = np.zeros((2, 32, 32, 1), dtype=dtype)
    with pytest.raises(TypeError) as e:
        lenet(x)
    message = str(e.value)
    assert np.dtype(dtype).name in message and "(2, 32, 32, 1)" in message


@pytest.mark.parametrize("x", [[0.0] * 1024, 3.0, "image", None])
def test_not_an_array_is_a_type_error(lenet, x):
    with pytest.raises(TypeError, match="numpy.ndarray"):
        lenet(x)


@pytest.mark.parametrize(
    "shape", [(32, 32), (32, 32, 3), (2, 28, 28, 1), (1, 1, 32, 32, 1), (1024,), (0,)]
)
def test_wrong_shape_is_a_value_error_naming_expected_and_got(lenet, shape):
    x = np.zeros(shape, dtype=np.float32)
    with pytest.raises(ValueError) as e:
        lenet(x)
    message = str(e.value)
    assert "(32, 32, 1)" in message and "(N, 32, 32, 1)" in message
    assert str(shape) in message


def test_nchw_shape_is_checked_in_nchw(lenet):
    with pytest.raises(ValueError, match=r"\(1, 32, 32\)"):
        lenet(np.zeros((4, 32, 32, 1), np.float32), layout="NCHW")
    with pytest.raises(ValueError, match="layout"):
        lenet(np.zeros((32, 32, 1), np.float32), layout="nhwc")


def test_an_empty_batch_gives_no_outputs(lenet):
    assert lenet(np.zeros((0, 32, 32, 1), np.float32)).shape == (0, 10)


def test_missing_files_are_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.cnn"):
        cnnjit.Model(tmp_path / "nothing.cnn")
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        cnnjit.Model(LENET, weights=str(tmp_path / "nothing.safetensors"))
    with pytest.raises(FileNotFoundError, match="nothing.onnx"):
        cnnjit.Model(tmp_path / "nothing.onnx")
    with pytest.raises(FileNotFoundError, match="nothing.onnx"):
        cnnjit.import_onnx(tmp_path / "nothing.onnx")


def test_a_net_that_does_not_compile_is_a_cnnjit_error():
    with pytest.raises(cnnjit.Error, match="Bad"):
        cnnjit.Model("net Bad(8x8x1) { conv(4, 9x9) }")
    with pytest.raises(cnnjit.Error, match="no net `Other`"):
        cnnjit.Model(LENET, net="Other", weights=DIGITS / "lenet5_digits.safetensors")


def test_weights_that_do_not_fit_are_a_cnnjit_error(tmp_path):
    with pytest.raises(cnnjit.Error, match="conv1.weight"):
        cnnjit.Model(LENET)
    with pytest.raises(cnnjit.Error):
        cnnjit.Model(LENET, weights=b"not a safetensors file")
    with pytest.raises(cnnjit.Error):
        cnnjit.Model(LENET, weights=FIXTURES / "conv_plain.safetensors")
    with pytest.raises(TypeError, match="weights"):
        cnnjit.Model(LENET, weights=3)


def test_onnx_arguments_are_checked(tmp_path):
    onnx = FIXTURES / "onnx" / "resnet_basic.onnx"
    with pytest.raises(ValueError, match="weights=None"):
        cnnjit.Model(onnx, weights=DIGITS / "lenet5_digits.safetensors")
    with pytest.raises(ValueError, match="input_shape"):
        cnnjit.Model(LENET, input_shape=(32, 32, 1))
    with pytest.raises(ValueError, match="input_shape"):
        cnnjit.import_onnx(onnx, input_shape=(0, 3, 3))
    not_onnx = tmp_path / "junk.onnx"
    not_onnx.write_bytes(b"\xff" * 64)
    with pytest.raises(cnnjit.Error, match="junk.onnx"):
        cnnjit.Model(not_onnx)


def test_too_many_threads_is_a_value_error():
    with pytest.raises(ValueError, match="threads"):
        cnnjit.Model(LENET, weights=DIGITS / "lenet5_digits.safetensors", threads=1_000_000)
    with pytest.raises(OverflowError):
        cnnjit.Model(LENET, weights=DIGITS / "lenet5_digits.safetensors", threads=-1)

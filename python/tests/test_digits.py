"""The digits demo (examples/digits.rs) from Python: the trained LeNet-5
classifies the held-out digits as PyTorch did, 440 of 450."""

import json

import numpy as np

import cnnjit
from conftest import DIGITS, LENET, assert_close, read_safetensors


def test_lenet5_classifies_the_digits_as_pytorch():
    test = read_safetensors(DIGITS / "digits_test.safetensors")
    expected = json.loads((DIGITS / "lenet5_digits.json").read_text())
    model = cnnjit.Model(LENET, weights=DIGITS / "lenet5_digits.safetensors")
    images = test["images"].reshape(-1, 32, 32, 1)
    labels = test["labels"].astype(np.int64)
    assert len(labels) == expected["n_test"] == 450

    probabilities = model(images)
    assert probabilities.shape == (450, 10)
    assert_close(probabilities, test["pytorch_probabilities"].reshape(450, 10))
    correct = int((probabilities.argmax(axis=1) == labels).sum())
    assert correct == expected["test_correct"] == 440


def test_lenet5_figures():
    model = cnnjit.Model(LENET, weights=DIGITS / "lenet5_digits.safetensors")
    # tests/data/ground_truth.json, "lenet5_lecture".
    assert model.params == 61_706
    assert model.macs == 416_520
    assert model.flops == 422_824
    # The arena's largest live pair: avgpool1 reads conv1's 28x28x6 = 4704
    # floats and writes 14x14x6 = 1176, rounded up to 64 bytes = 1184.
    assert model.peak_inference_bytes == 4 * (4704 + 1184)
    # Parameters and their gradients, then per image the input and each
    # stored output with its gradient: linear in the batch.
    assert model.training_bytes(0) == 2 * 4 * 61_706
    per_image = model.training_bytes(1) - model.training_bytes(0)
    assert per_image >= 4 * 32 * 32
    assert model.training_bytes(32) == model.training_bytes(0) + 32 * per_image
    assert model.input_shape == [32, 32, 1]
    assert model.output_shape == [10]
    assert model.name == "LeNet5"
    summary = model.summary()
    assert "LeNet5" in summary and "61,706" in summary and "conv1" in summary
    assert "LeNet5" in repr(model)
    assert "conv" in model.kernels()

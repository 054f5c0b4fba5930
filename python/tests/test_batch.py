"""`batch_kernels`: which kernels a batch of two or more images runs."""

import json
import pathlib
import struct

import numpy as np
import pytest

import cnnjit

# One 13x13x256 -> 256 3x3 layer: AlexNet's conv5, the layer a batch runs on
# Winograd F(2x2) with batch_kernels="fastest" where one image runs the
# direct kernel, on a native tile: AVX2 + FMA or AVX-512 (the Rust tests
# derive the choice).
WARM = "Warm(13x13x256) { c: conv(256, 3x3, pad = 1), relu }"


def safetensors_bytes(tensors):
    """A safetensors file of float32 tensors, written from the format's
    specification (an 8-byte little-endian header length, the JSON header,
    then the data)."""
    header, body, offset = {}, b"", 0
    for name, value in tensors.items():
        data = np.ascontiguousarray(value, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(data)]}
        body += data
        offset += len(data)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


@pytest.fixture(scope="module")
def warm():
    rng = np.random.default_rng(17)
    # He-scaled, so the outputs are of order one.
    weight = rng.standard_normal((256, 256, 3, 3)).astype(np.float32) / np.float32(48.0)
    bias = rng.standard_normal(256).astype(np.float32) / np.float32(10.0)
    weights = safetensors_bytes({"c.weight": weight, "c.bias": bias})
    images = rng.standard_normal((3, 13, 13, 256)).astype(np.float32)
    return weights, images


def has_native_tile():
    """Whether the host has AVX2 and FMA (which AVX-512 hosts have too),
    cnnjit's native tiles, by the flags /proc/cpuinfo lists."""
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return False
    flags = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return {"avx2", "fma"} <= flags


def test_by_default_a_batch_is_each_image_alone_bitwise(warm):
    weights, images = warm
    model = cnnjit.Model(WARM, weights=weights, threads=2)
    alone = np.stack([model(x) for x in images])
    assert model(images).view(np.uint32).tolist() == alone.view(np.uint32).tolist()


def test_fastest_is_within_rounding_of_each_image_alone(warm):
    weights, images = warm
    alone = np.stack([cnnjit.Model(WARM, weights=weights, threads=2)(x) for x in images])
    fastest = cnnjit.Model(WARM, weights=weights, threads=2, batch_kernels="fastest")
    batch = fastest(images)
    # Each image through the batch plan alone is the batch's row, bitwise:
    # a batch of one runs `forward`, so compare two-image batches.
    pairs = np.concatenate([fastest(images[i : i + 2]) for i in (0, 1)])
    assert batch[:2].view(np.uint32).tolist() == pairs[:2].view(np.uint32).tolist()
    assert batch[1:].view(np.uint32).tolist() == pairs[2:].view(np.uint32).tolist()
    # The fixtures' tolerance, 1e-4 of the output's scale: F(2x2)'s rounding
    # on this layer measured 2.1e-6 of it (BENCHMARKS.md, session 11).
    assert np.abs(batch - alone).max() <= 1e-4 * np.abs(alone).max()
    # Where the host has a native tile, "fastest" took another kernel: the
    # option reached the model.
    if has_native_tile():
        assert batch.view(np.uint32).tolist() != alone.view(np.uint32).tolist()


def test_unknown_batch_kernels_is_a_value_error(warm):
    weights, _ = warm
    with pytest.raises(ValueError, match='"image" or "fastest"'):
        cnnjit.Model(WARM, weights=weights, batch_kernels="fast")

"""`batch_kernels`: which kernels a batch of two or more images runs."""

import json
import pathlib
import struct

import numpy as np
import pytest

import cnnjit

# A 3x3 layer a batch runs on Winograd F(2x2) with batch_kernels="fastest"
# where one image runs the direct kernel, on the host's native tile (the
# Rust tests derive the choices): AlexNet's conv5, 13x13x256 -> 256, on
# AVX-512; on AVX2, whose image runs that one on F(2x2) already, 9x9x512 ->
# 512. Elsewhere both run the same kernel.
WARM_AVX512 = "Warm(13x13x256) { c: conv(256, 3x3, pad = 1), relu }"
WARM_AVX2 = "Warm(9x9x512) { c: conv(512, 3x3, pad = 1), relu }"


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


def cpu_flags():
    """The CPU flags /proc/cpuinfo lists (none where it does not exist)."""
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    flags = set()
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
    return flags


def has_native_tile():
    """Whether the host has AVX2 and FMA (which AVX-512 hosts have too),
    cnnjit's native tiles."""
    return {"avx2", "fma"} <= cpu_flags()


@pytest.fixture(scope="module")
def warm():
    flags = cpu_flags()
    avx2_only = {"avx2", "fma"} <= flags and "avx512f" not in flags
    source, size, channels = (WARM_AVX2, 9, 512) if avx2_only else (WARM_AVX512, 13, 256)
    rng = np.random.default_rng(17)
    # He-scaled, so the outputs are of order one.
    scale = np.float32(np.sqrt(9.0 * channels))
    weight = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32) / scale
    bias = rng.standard_normal(channels).astype(np.float32) / np.float32(10.0)
    weights = safetensors_bytes({"c.weight": weight, "c.bias": bias})
    images = rng.standard_normal((3, size, size, channels)).astype(np.float32)
    return source, weights, images


def test_by_default_a_batch_is_each_image_alone_bitwise(warm):
    source, weights, images = warm
    model = cnnjit.Model(source, weights=weights, threads=2)
    alone = np.stack([model(x) for x in images])
    assert model(images).view(np.uint32).tolist() == alone.view(np.uint32).tolist()


def test_fastest_is_within_rounding_of_each_image_alone(warm):
    source, weights, images = warm
    alone = np.stack([cnnjit.Model(source, weights=weights, threads=2)(x) for x in images])
    fastest = cnnjit.Model(source, weights=weights, threads=2, batch_kernels="fastest")
    batch = fastest(images)
    # Each image through the batch plan alone is the batch's row, bitwise:
    # a batch of one runs `forward`, so compare two-image batches.
    pairs = np.concatenate([fastest(images[i : i + 2]) for i in (0, 1)])
    assert batch[:2].view(np.uint32).tolist() == pairs[:2].view(np.uint32).tolist()
    assert batch[1:].view(np.uint32).tolist() == pairs[2:].view(np.uint32).tolist()
    # The fixtures' tolerance, 1e-4 of the output's scale: F(2x2)'s rounding
    # on the 13x13x256 layer measured 2.1e-6 of it (BENCHMARKS.md, session 11).
    assert np.abs(batch - alone).max() <= 1e-4 * np.abs(alone).max()
    # Where the host has a native tile, "fastest" took another kernel: the
    # option reached the model.
    if has_native_tile():
        assert batch.view(np.uint32).tolist() != alone.view(np.uint32).tolist()


def test_unknown_batch_kernels_is_a_value_error(warm):
    source, weights, _ = warm
    with pytest.raises(ValueError, match='"image" or "fastest"'):
        cnnjit.Model(source, weights=weights, batch_kernels="fast")

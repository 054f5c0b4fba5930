"""Shared helpers: the repository's paths and a safetensors reader.

The reader is written here from the format's specification (an 8-byte
little-endian header length, a JSON header of dtype/shape/data_offsets, then
the data) rather than borrowed from cnnjit, so that the fixtures' expected
values never pass through the code under test.
"""

import json
import pathlib
import struct

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
DIGITS = ROOT / "examples" / "data"
LENET = ROOT / "examples" / "nets" / "lenet5.cnn"


def read_safetensors(path):
    """Every float32 tensor of a safetensors file, by name."""
    data = pathlib.Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32", f"{name}: {entry['dtype']}"
        start, end = entry["data_offsets"]
        values = np.frombuffer(body[start:end], dtype="<f4")
        tensors[name] = values.reshape(entry["shape"]).astype(np.float32)
    return tensors


def assert_close(actual, expected, rel=1e-4, abs_=1e-5):
    """|a - b| <= abs_ + rel |b| everywhere (the Rust fixtures' tolerance)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    excess = np.abs(actual - expected) - (abs_ + rel * np.abs(expected))
    worst = int(np.argmax(excess))
    assert excess.flat[worst] <= 0, (
        f"element {worst} is {actual.flat[worst]} but the reference gives {expected.flat[worst]}"
    )

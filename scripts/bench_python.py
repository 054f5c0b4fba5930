"""Throughput from Python (the cnnjit package) against the Rust API
(`cnnjit bench`, which times `Model::forward_batch`) on the same nets, batch
sizes and thread count, interleaved: Rust, Python, Rust, Python.

    pip install ./python
    cargo build --release --bin cnnjit
    python scripts/bench_python.py [--cnnjit target/release/cnnjit] [--threads 1] [--rounds 2]
                                   [--onnx MODEL.onnx ...]

`--onnx` adds networks of a real size (e.g. `mobilenet_v1.onnx` from
`scripts/bench_peers.py --keep-onnx DIR`): Python loads the ONNX file, and the
Rust side times the `.cnn` that `cnnjit import` writes for it (random weights
of the same shapes: the time does not depend on their values).

Both sides time the same way: one warm-up pass, then passes until at least
20 runs and 1 s, the median. Python's figure includes everything a call
costs: checking and copying the NumPy input, releasing the GIL, taking the
model's lock, allocating the output array. Speed is reported, never asserted.
"""

import argparse
import json
import os
import pathlib
import subprocess
import tempfile
import time

import numpy as np

import cnnjit

ROOT = pathlib.Path(__file__).resolve().parents[1]
# (name, .cnn file for `cnnjit bench`, how Python builds the same net)
NETS = [
    ("LeNet5", "examples/nets/lenet5.cnn", dict(path_or_source="examples/nets/lenet5.cnn",
                                                weights="examples/data/lenet5_digits.safetensors")),
    ("ResnetBasic", "tests/fixtures/onnx/resnet_basic.cnn",
     dict(path_or_source="tests/fixtures/onnx/resnet_basic.onnx")),
    ("MobilenetSe", "tests/fixtures/onnx/mobilenet_se.cnn",
     dict(path_or_source="tests/fixtures/onnx/mobilenet_se.onnx")),
]
BATCHES = (1, 32)


def rust_ms(binary, cnn, threads):
    """`cnnjit bench`'s median milliseconds per batch, by batch size."""
    out = subprocess.run(
        [binary, "bench", str(cnn), "--threads", str(threads), "--no-reference", "--json",
         "--batch", ",".join(map(str, BATCHES))],
        check=True, capture_output=True, text=True,
    ).stdout
    return {b["batch"]: b["ms"] for b in json.loads(out)["batches"]}


def python_ms(model, batch, min_runs=20, seconds=1.0):
    # Uniform in [-1, 1), as `cnnjit bench` draws its input (cnnjit::check::random_input).
    x = np.random.default_rng(1).uniform(-1, 1, (batch, *model.input_shape)).astype(np.float32)
    model(x)
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t)
        if len(times) >= 1000:
            break
    return sorted(times)[len(times) // 2] * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cnnjit", default=str(ROOT / "target" / "release" / "cnnjit"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--onnx", nargs="+", default=[], metavar="MODEL", help="ONNX models to add")
    args = parser.parse_args()
    imported = tempfile.TemporaryDirectory()
    nets = [(name, ROOT / cnn, python_args) for name, cnn, python_args in NETS]
    for onnx in map(pathlib.Path, args.onnx):
        cnn = pathlib.Path(imported.name) / f"{onnx.stem}.cnn"
        subprocess.run([args.cnnjit, "import", str(onnx), "-o", str(cnn)], check=True, capture_output=True)
        nets.append((onnx.stem, cnn, dict(path_or_source=str(onnx.resolve()))))
    print(f"load average {os.getloadavg()}, {args.threads} thread(s)")
    print(f"{'net':<12} {'batch':>5} {'round':>5} {'Rust ms':>10} {'Python ms':>10} {'Python/Rust':>11}")
    for name, cnn, python_args in nets:
        kwargs = dict(python_args)
        source = str(ROOT / kwargs.pop("path_or_source"))
        if "weights" in kwargs:
            kwargs["weights"] = str(ROOT / kwargs["weights"])
        model = cnnjit.Model(source, threads=args.threads, **kwargs)
        for r in range(args.rounds):
            rust = rust_ms(args.cnnjit, cnn, args.threads)
            for batch in BATCHES:
                py = python_ms(model, batch)
                print(f"{name:<12} {batch:>5} {r + 1:>5} {rust[batch]:>10.4f} {py:>10.4f} {py / rust[batch]:>11.3f}")


if __name__ == "__main__":
    main()

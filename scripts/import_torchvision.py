#!/usr/bin/env python3
"""Import torchvision classifiers with `cnnjit import` and compare with ONNX Runtime.

Usage (from the repository root, with a release `cnnjit` built with the cli
feature, and a Python with torch, torchvision, onnxruntime, onnxscript,
safetensors):

    python scripts/import_torchvision.py CNNJIT CACHE_DIR [MODEL...]

e.g. `... target/release/cnnjit ~/.cache/cnnjit-zoo shufflenet_v2_x1_0`;
without models, the 20 classifiers of ZOO. For each torchvision model name
and each export mode (`legacy`:
torch.onnx.export(dynamo=False); `dynamo`: the default exporter), opset 17,
random weights (seeded; batch norm statistics, ConvNeXt's layer scale and
layer norms drawn at random so they matter), batch 1, 224x224, it

- exports CACHE_DIR/MODEL.MODE.onnx (kept there, never in the repository),
  and ONNX Runtime's output for one seeded random image, saved beside it
  as MODEL.MODE.io.safetensors (`input` NCHW, `output`), with torch's
  parameter count in CACHE_DIR/zoo.json: the ignored Rust test
  `onnx_import::torchvision_zoo_matches_onnx_runtime` checks every model
  listed there (`CNNJIT_ZOO=CACHE_DIR cargo test --test it zoo -- --ignored`);
- runs `cnnjit import` under /usr/bin/time -v (wall time, peak memory);
- runs the imported net with `cnnjit run` on the same image and compares:
  the largest |cnnjit - ORT| over the largest |ORT| (the output's scale),
  and whether the top-1 class agrees;
- times both at batch 1 on two threads: `cnnjit bench --threads 2` (its
  median) and ONNX Runtime (intra_op_num_threads = 2, median of 50 runs
  after 10 warm-up runs);
- checks the imported parameter count (`cnnjit summary --json`) against
  torch's own `numel` sum (equal for the legacy export, which keeps batch
  norm; the dynamo exporter folds batch norm into the convs, C biases in
  place of 2C parameters).

It prints one markdown row per model and mode. A failed export or import
prints its error in the row. The machine's load makes latencies rough.
"""
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import torch
import torchvision
from safetensors.numpy import save_file

SEED = 20261206
OPSET = 17

# The 20 classifiers of issue #16, one per architecture family and size.
ZOO = [
    "alexnet", "vgg11_bn", "vgg16", "resnet18", "resnet50", "resnext50_32x4d",
    "wide_resnet50_2", "squeezenet1_1", "densenet121", "inception_v3", "googlenet",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet1_0",
    "shufflenet_v2_x1_0", "efficientnet_b0", "efficientnet_b3", "regnet_x_400mf",
    "convnext_tiny",
]

# Input sizes other than 224x224: Inception-v3 is made for 299x299.
SIZES = {"inception_v3": 299}

# Without their auxiliary heads, which only training runs: the exported
# graph has none of their parameters, so torch's count must not either.
ARGUMENTS = {
    "inception_v3": {"aux_logits": False, "init_weights": True},
    "googlenet": {"aux_logits": False, "init_weights": True},
}


def make(name):
    torch.manual_seed(SEED)
    model = getattr(torchvision.models, name)(**ARGUMENTS.get(name, {})).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
            # ConvNeXt's layer scale starts at 1e-6, which would make every
            # block's branch invisible in the comparison, and its layer norms
            # at gamma 1, beta 0, which would not test their parameters.
            if isinstance(getattr(m, "layer_scale", None), torch.nn.Parameter):
                m.layer_scale.uniform_(0.5, 1.5)
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    return model


def size(name):
    return SIZES.get(name, 224)


def export(model, path, mode, side):
    x = torch.zeros(1, 3, side, side)
    kwargs = dict(opset_version=OPSET, input_names=["input"], output_names=["output"])
    if mode == "legacy":
        # Batch norm kept as its own node (TrainingMode.PRESERVE on an eval()
        # model), so that the parameter count is torch's; EVAL folds it into
        # the convs (C biases for 2C parameters).
        torch.onnx.export(model, (x,), path, dynamo=False,
                          training=torch.onnx.TrainingMode.PRESERVE, **kwargs)
    else:
        torch.onnx.export(model, (x,), path, dynamo=True, external_data=False, **kwargs)


def ort_latency(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(10):
        session.run(None, {name: x})
    times = []
    for _ in range(50):
        t = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def record(cache, key, entry):
    """Adds one export to CACHE_DIR/zoo.json, the Rust zoo test's list."""
    path = os.path.join(cache, "zoo.json")
    zoo = json.load(open(path)) if os.path.exists(path) else {}
    zoo[key] = entry
    with open(path, "w") as f:
        json.dump(zoo, f, indent=1, sort_keys=True)
        f.write("\n")


def run(cnnjit, name, mode, cache):
    base = os.path.join(cache, f"{name}.{mode}")
    path = base + ".onnx"
    model = make(name)
    params = sum(p.numel() for p in model.parameters())
    side = size(name)
    if not os.path.exists(path):
        export(model, path, mode, side)
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(SEED)).numpy()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {session.get_inputs()[0].name: x})
    np.save(base + ".input.npy", np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    save_file({"input": np.ascontiguousarray(x), "output": np.ascontiguousarray(expected)},
              base + ".io.safetensors")
    record(cache, f"{name}.{mode}", {"params": params, "mode": mode})

    timed = subprocess.run(["/usr/bin/time", "-v", cnnjit, "import", path, "-o", base + ".cnn"],
                           capture_output=True, text=True)
    if timed.returncode != 0:
        return f"| {name} | {mode} | import fails: {timed.stderr.strip().splitlines()[0]} |"
    wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", timed.stderr).group(1)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timed.stderr).group(1))
    subprocess.run([cnnjit, "run", base + ".cnn", "--weights", base + ".safetensors",
                    "--input", base + ".input.npy", "--output", base + ".output.npy"],
                   check=True, capture_output=True)
    actual = np.load(base + ".output.npy").reshape(expected.shape)
    error = float(np.abs(actual - expected).max() / np.abs(expected).max())
    top1 = int(actual.argmax()) == int(expected.argmax())
    summary = json.loads(subprocess.run([cnnjit, "summary", base + ".cnn", "--json"],
                                        check=True, capture_output=True, text=True).stdout)
    imported_params = summary_params(summary)
    bench = json.loads(subprocess.run(
        [cnnjit, "bench", base + ".cnn", "--threads", "2", "--no-reference", "--json"],
        check=True, capture_output=True, text=True).stdout)
    # The imported weights are as large as the model; the test re-imports.
    os.remove(base + ".safetensors")
    return (f"| {name} | {mode} | {wall} s | {rss / 1024:.0f} MiB | {error:.1e} | "
            f"{'same' if top1 else 'DIFFERENT'} | {imported_params:,} "
            f"({'=' if imported_params == params else '!='} torch's {params:,}) | "
            f"{bench_ms(bench):.2f} ms | {ort_latency(path, x):.2f} ms |")


def summary_params(summary):
    """The parameter count in `cnnjit summary --json`'s one net."""
    return int(summary["nets"][0]["params"])


def bench_ms(bench):
    """The JIT's median latency at batch 1 from `cnnjit bench --json`, in ms."""
    return float(bench["jit_ms"])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cnnjit, cache, names = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3:] or ZOO
    os.makedirs(cache, exist_ok=True)
    torch.set_num_threads(2)
    print("| model | export | import time | import peak memory | error / scale | top-1 | params | "
          "cnnjit (2 threads) | ONNX Runtime (2 threads) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for mode in ["legacy", "dynamo"]:
            try:
                print(run(cnnjit, name, mode, cache), flush=True)
            except Exception as e:  # one model's failure is its row, not the end of the table
                print(f"| {name} | {mode} | {type(e).__name__}: {str(e).splitlines()[0]} |", flush=True)


if __name__ == "__main__":
    main()

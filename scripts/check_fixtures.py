#!/usr/bin/env python3
"""Cross-check tests/fixtures/ against the cnnjit command-line tool.

Usage (from the repository root):

    python3 scripts/check_fixtures.py [CNNJIT_BINARY]

Without an argument it runs `cargo run -q --` (set CARGO_TARGET_DIR to avoid
lock contention). For every fixture it reads `cnnjit summary NAME.cnn --json`
and checks that

  * the net's input and output shapes are those of NAME.io.safetensors
    (without the batch dimension of 2);
  * the layers with parameters are exactly the layers the weights name
    (tensor `a.b.conv1.weight` belongs to layer `a.b.conv1`), and each layer's
    parameter count equals the size of its weight and bias (bn: weight and
    bias; running_mean and running_var count as buffers);
  * the net's params and buffers equal the weights' totals.

Needs numpy and safetensors (no torch).
"""
import json
import os
import subprocess
import sys
from collections import defaultdict

from safetensors.numpy import load_file


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    fixtures = os.path.join(root, "tests", "fixtures")
    cmd = [sys.argv[1]] if len(sys.argv) > 1 else ["cargo", "run", "-q", "--"]
    names = sorted(f[:-4] for f in os.listdir(fixtures) if f.endswith(".cnn"))
    failures = 0
    for name in names:
        base = os.path.join(fixtures, name)
        out = subprocess.run(cmd + ["summary", base + ".cnn", "--json"], cwd=root,
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"FAIL {name}: cnnjit summary: {out.stderr.strip()}")
            failures += 1
            continue
        nets = json.loads(out.stdout)["nets"]
        assert len(nets) == 1, name
        net = nets[0]
        weights = load_file(base + ".safetensors")
        io = load_file(base + ".io.safetensors")
        problems = []
        if list(io["input"].shape[1:]) != list(net["input_shape"]):
            problems.append(f"input {io['input'].shape} vs net {net['input_shape']}")
        if list(io["output"].shape[1:]) != list(net["output_shape"]):
            problems.append(f"output {io['output'].shape} vs net {net['output_shape']}")
        if io["input"].shape[0] != 2 or io["output"].shape[0] != 2:
            problems.append("batch is not 2")
        per_layer = defaultdict(int)
        buffers = 0
        for tname, t in weights.items():
            if t.dtype.name != "float32":
                problems.append(f"{tname} is {t.dtype}")
            layer, _, field = tname.rpartition(".")
            if field in ("running_mean", "running_var"):
                buffers += t.size
                per_layer.setdefault(layer, 0)
            else:
                per_layer[layer] += t.size
        summary_layers = {l["name"]: l for l in net["layers"] if l["params"] > 0}
        if set(summary_layers) != set(per_layer):
            problems.append(f"layers with params {sorted(summary_layers)} vs weights {sorted(per_layer)}")
        for lname, l in summary_layers.items():
            if lname in per_layer and per_layer[lname] != l["params"]:
                problems.append(f"{lname}: {l['params']} params vs {per_layer[lname]} in the weights")
        if net["params"] != sum(per_layer.values()):
            problems.append(f"params {net['params']} vs {sum(per_layer.values())}")
        if net.get("buffers", buffers) != buffers:
            problems.append(f"buffers {net['buffers']} vs {buffers}")
        if problems:
            failures += 1
            print(f"FAIL {name}: " + "; ".join(problems))
        else:
            print(f"ok   {name:24s} {net['name']:22s} {net['params']:6d} params, {len(weights)} tensors")
    print(f"{len(names) - failures}/{len(names)} fixtures agree with cnnjit summary")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Trim shared/refs/ground_truth.json down to what the tests compare against.

Usage: python3 scripts/trim_ground_truth.py PATH/TO/ground_truth.json [OUT]

OUT defaults to tests/data/ground_truth.json next to this script's repository.
Keeps the "conventions" object and, for every network (and every sub-entry of
"inception_examples_28x28x192" and "bench_layers"): input_shape, output_shape,
params_total, params_bn, macs_conv_fc, pool_ops, macs_lecture, notes and
v1_stride_in_1x1 (where present), and per layer: name, type, out_shape,
params, macs, pool_ops. Shapes stay as PyTorch gives them (NCHW / NC).
Standard library only.
"""
import json
import os
import sys

NET_KEYS = ["input_shape", "output_shape", "params_total", "params_bn", "macs_conv_fc",
            "pool_ops", "macs_lecture"]
OPTIONAL_KEYS = ["notes", "v1_stride_in_1x1"]
LAYER_KEYS = ["name", "type", "out_shape", "params", "macs", "pool_ops"]
GROUPS = ["inception_examples_28x28x192", "bench_layers"]


def is_network(entry):
    return isinstance(entry, dict) and "params_total" in entry and "layers" in entry


def trim_network(entry, where):
    out = {}
    for k in NET_KEYS:
        if k not in entry:
            raise KeyError("%s: missing %r" % (where, k))
        out[k] = entry[k]
    for k in OPTIONAL_KEYS:
        if k in entry:
            out[k] = entry[k]
    layers = []
    for i, layer in enumerate(entry["layers"]):
        missing = [k for k in LAYER_KEYS if k not in layer]
        if missing:
            raise KeyError("%s: layer %d misses %r" % (where, i, missing))
        layers.append({k: layer[k] for k in LAYER_KEYS})
    out["layers"] = layers
    return out


def trim(src):
    nets = {}
    for name, entry in src["networks"].items():
        if name in GROUPS:
            group = {}
            for sub, sub_entry in entry.items():
                if is_network(sub_entry):
                    group[sub] = trim_network(sub_entry, name + "/" + sub)
                elif sub.endswith("notes"):
                    # free-text notes of the group (e.g. the inception (c) discussion)
                    group[sub] = sub_entry
            nets[name] = group
        elif is_network(entry):
            nets[name] = trim_network(entry, name)
        else:
            raise ValueError("%s: neither a network nor a known group" % name)
    return {"conventions": src["conventions"], "networks": nets}


def dump(obj, indent=0):
    """JSON with one line per layer (and per short list), for readable diffs."""
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = []
        for k, v in obj.items():
            if k == "layers" and isinstance(v, list):
                inner = ",\n".join(pad + "  " + json.dumps(l) for l in v)
                val = "[\n" + inner + "\n" + pad + " ]" if v else "[]"
            else:
                val = dump(v, indent + 1)
            items.append(pad + " " + json.dumps(k) + ": " + val)
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and all(not isinstance(x, (dict, list)) for x in obj) and \
            len(json.dumps(obj)) <= 100:
        return json.dumps(obj)
    if isinstance(obj, list):
        if not obj:
            return "[]"
        return "[\n" + ",\n".join(pad + " " + dump(x, indent + 1) for x in obj) + "\n" + pad + "]"
    return json.dumps(obj)


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write(__doc__)
        return 2
    src_path = argv[1]
    if len(argv) == 3:
        out_path = argv[2]
    else:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out_path = os.path.join(root, "tests", "data", "ground_truth.json")
    with open(src_path) as f:
        src = json.load(f)
    out = trim(src)
    text = dump(out) + "\n"
    assert json.loads(text) == out  # the hand-rolled formatter must round-trip
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    with open(out_path, "w") as f:
        f.write(text)
    n = sum(len(v) if k in GROUPS else 1 for k, v in out["networks"].items())
    print("wrote %s (%d networks, %d bytes)" % (out_path, n, len(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

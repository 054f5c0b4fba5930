#!/usr/bin/env python3
"""ONNX Runtime's time per node of one model, to set beside `cnnjit bench --profile`.

Usage:  python scripts/ort_profile.py MODEL.onnx [--threads N] [--runs R] [--top K]

Runs the model at batch 1 (any symbolic axis taken as 1) on random input with ONNX Runtime's
profiler on, after 20 warm-up runs, and prints each node's median kernel time over the last R runs
(default 50), slowest first, and the sum of the medians. ONNX Runtime names fused nodes after their
last output (a conv with its ReLU: ".../relu/Relu_output_0_nchwc"). The profile file goes to a
temporary folder that is removed. Needs numpy and onnxruntime; `scripts/bench_peers.py --keep-onnx
DIR` writes the models cnnjit's benchmarks use.
"""
import argparse
import collections
import json
import tempfile

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.enable_profiling = True
        options.profile_file_prefix = f"{folder}/ort"
        session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
        first = session.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in first.shape]
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        for _ in range(20 + args.runs):
            session.run(None, {first.name: x})
        with open(session.end_profiling()) as f:
            events = json.load(f)
    times = collections.defaultdict(list)
    kinds = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            name = e["name"][: -len("_kernel_time")]
            times[name].append(e["dur"])
            kinds[name] = e["args"].get("op_name", "?")
    rows = sorted(
        ((float(np.median(t[-args.runs:])), name) for name, t in times.items()), reverse=True
    )
    print(f"{args.model}: {args.threads} thread(s), sum of per-node medians {sum(r[0] for r in rows):.0f} us")
    for us, name in rows[: args.top]:
        print(f"{us:9.0f} us  {kinds[name]:20s} {name}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""BENCHMARKS.md's main table from one run: scripts/peers.json (bench_peers.py) beside
scripts/cnnjit_bench.jsonl (bench_cnnjit.sh). Standard library only.

Usage:  python3 scripts/bench_table.py [PEERS_JSON] [CNNJIT_JSONL]
"""
import json
import sys

LABELS = {
    "conv3x3_56x56x128": "3x3 conv + ReLU, 56x56x128 -> 128",
    "conv3x3_28x28x256": "3x3 conv + ReLU, 28x28x256 -> 256",
    "mbv1_dwsep_112x112x32_to64": "MobileNet dw-separable block, 112x112x32 -> 64",
    "conv1x3_3x1_28x28x192_to128": "1x3 then 3x1 conv, 28x28x192 -> 128",
    "lenet5": "LeNet-5 (lecture)",
    "alexnet": "AlexNet (lecture)",
    "mobilenet_v1": "MobileNetV1 1.0",
    "resnet18": "ResNet-18",
    "resnet50": "ResNet-50",
    "vgg16": "VGG16",
    "googlenet": "GoogLeNet (torchvision, imported)",
    "mobilenet_v2": "MobileNetV2",
    "efficientnet_b0": "EfficientNet-B0",
}


def ms(x):
    return "-" if x is None else ("%.3f" % x if x < 100 else "%.1f" % x)


def main():
    peers_path = sys.argv[1] if len(sys.argv) > 1 else "scripts/peers.json"
    ours_path = sys.argv[2] if len(sys.argv) > 2 else "scripts/cnnjit_bench.jsonl"
    peers = json.load(open(peers_path))["cases"]
    ours = {}
    for line in open(ours_path):
        row = json.loads(line)
        r = row["result"]
        ours[(row["case"], row.get("variant", "native"), r["threads"])] = r
    print("| case | MACs | cnnjit native t1 | t2 | AVX2 t1 | pure Cranelift t1 | t2 | reference t1"
          " | native / reference | PyTorch t1 | t2 | ONNX Runtime t1 | t2 | cnnjit / ORT, t1 | t2 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case, label in LABELS.items():
        p = peers.get(case, {})
        n1, n2 = ours.get((case, "native", 1)), ours.get((case, "native", 2))
        c1, c2 = ours.get((case, "pure", 1)), ours.get((case, "pure", 2))
        a1 = ours.get((case, "avx2", 1))
        if n1 is None:
            continue
        ref = n1.get("reference_ms")
        macs = p.get("macs")
        cells = [
            label,
            "%.1fM" % (macs / 1e6) if macs else "-",
            "%s ms (%.0f GF/s)" % (ms(n1["jit_ms"]), n1["gflops"]),
            ms(n2 and n2["jit_ms"]),
            ms(a1 and a1["jit_ms"]),
            ms(c1 and c1["jit_ms"]),
            ms(c2 and c2["jit_ms"]),
            ms(ref),
            "%.0fx" % (ref / n1["jit_ms"]) if ref else "-",
            ms(p.get("torch_t1_ms")),
            ms(p.get("torch_t2_ms")),
            ms(p.get("ort_t1_ms")),
            ms(p.get("ort_t2_ms")),
        ]
        # Below 1, cnnjit is faster (the convention: cnnjit time / ORT time).
        for ort, mine in ((p.get("ort_t1_ms"), n1), (p.get("ort_t2_ms"), n2)):
            cells.append("%.2f" % (mine["jit_ms"] / ort) if ort and mine else "-")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

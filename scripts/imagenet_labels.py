#!/usr/bin/env python3
"""Write ImageNet's 1,000 class names, one per line, in class-index order.

Usage (from the repository root):

    /work/peers-venv/bin/python scripts/imagenet_labels.py [OUT]

OUT defaults to src/image/imagenet_classes.txt, which `cnnjit::image::Labels::imagenet`
includes in the crate with `include_str!`. The names are torchvision's
(`ResNet50_Weights.IMAGENET1K_V1.meta["categories"]`, the same list for every
torchvision ImageNet-1k classifier), so class i of a torchvision model is line
i + 1. Needs torchvision only (no weights are downloaded: the metadata is in
the package). Deterministic.
"""
import os
import sys

from torchvision.models import ResNet50_Weights


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "src", "image", "imagenet_classes.txt")
    names = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    assert len(names) == 1000, len(names)
    assert all(n and n == n.strip() and "\n" not in n for n in names)
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(n + "\n" for n in names))
    print(f"wrote {len(names)} names to {os.path.relpath(out)}")


if __name__ == "__main__":
    main()

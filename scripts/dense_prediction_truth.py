#!/usr/bin/env python3
"""PyTorch's figures for examples/nets/unet.cnn and examples/nets/fpn.cnn.

Usage (from the repository root; needs torch):

    python3 scripts/dense_prediction_truth.py [OUT_JSON]

OUT_JSON defaults to tests/data/dense_prediction.json, which
tests/it/ground_truth.rs reads. Each net is built here with torch.nn modules
(Conv2d, BatchNorm2d, MaxPool2d, ConvTranspose2d, Upsample), independently of
cnnjit, and counted by forward hooks on one image, by the conventions of
tests/data/ground_truth.json:

- params_total: sum of p.numel() over the parameters (BatchNorm's running
  statistics are buffers, not parameters);
- macs_conv_fc: Conv2d Hout Wout Cout Fh Fw Cin/groups; ConvTranspose2d
  Hin Win Cin Cout Fh Fw (each input value times each tap of each output
  channel);
- pool_ops: MaxPool2d Hout Wout C Fh Fw; a bilinear Upsample 4 per output
  value, a nearest one 0;
- macs_lecture: macs_conv_fc + pool_ops;
- output_shape: NCHW, batch 1.
"""
import json
import os
import sys

import torch
from torch import nn


def double(cin, c):
    return nn.Sequential(
        nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
    )


class UNet(nn.Module):
    """Widths 16-32-64-128, three 2x2 pools, ConvTranspose2d(2c, c, 2, 2) up, skip first in the cat."""

    def __init__(self, widths=(16, 32, 64, 128), classes=2):
        super().__init__()
        self.downs = nn.ModuleList()
        cin = 3
        for c in widths:
            self.downs.append(double(cin, c))
            cin = c
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList()
        self.up_doubles = nn.ModuleList()
        for c in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose2d(cin, c, 2, stride=2))
            self.up_doubles.append(double(2 * c, c))
            cin = c
        self.head = nn.Conv2d(cin, classes, 1)

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.downs):
            if i > 0:
                x = self.pool(x)
            x = down(x)
            skips.append(x)
        skips.pop()
        for up, dbl in zip(self.ups, self.up_doubles):
            x = dbl(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)


def stage(cin, c):
    return nn.Sequential(
        nn.Conv2d(cin, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
        nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
    )


class FPN(nn.Module):
    """A plain backbone (C2..C5 of 16, 32, 64, 128 channels) and torchvision's FPN top-down path, P2 out."""

    def __init__(self, widths=(16, 32, 64, 128), channels=64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())
        self.stages = nn.ModuleList()
        cin = 16
        for c in widths:
            self.stages.append(stage(cin, c))
            cin = c
        self.laterals = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in widths)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.output = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        x = self.stem(x)
        features = []
        for s in self.stages:
            x = s(x)
            features.append(x)
        p = self.laterals[-1](features[-1])
        for feature, lateral in zip(reversed(features[:-1]), list(self.laterals)[-2::-1]):
            p = lateral(feature) + self.up(p)
        return self.output(p)


CONVENTIONS = {
    "params_total": "sum of p.numel() over the parameters (bn running statistics are buffers)",
    "macs_conv_fc": "Conv2d Hout*Wout*Cout*kh*kw*Cin/groups; ConvTranspose2d Hin*Win*Cin*Cout*kh*kw",
    "pool_ops": "MaxPool2d Hout*Wout*C*kh*kw; Upsample bilinear 4 per output value, nearest 0",
    "macs_lecture": "macs_conv_fc + pool_ops",
}


def count(model, shape):
    figures = dict(macs=0, pool=0)

    def hook(module, inputs, output):
        x = inputs[0]
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            figures["macs"] += output.numel() * kh * kw * module.in_channels // module.groups
        elif isinstance(module, nn.ConvTranspose2d):
            kh, kw = module.kernel_size
            figures["macs"] += x.numel() * module.out_channels * kh * kw
        elif isinstance(module, nn.MaxPool2d):
            k = module.kernel_size
            figures["pool"] += output.numel() * k * k
        elif isinstance(module, nn.Upsample) and module.mode == "bilinear":
            figures["pool"] += 4 * output.numel()

    for m in model.modules():
        m.register_forward_hook(hook)
    model.eval()
    with torch.no_grad():
        y = model(torch.zeros(1, *shape))
    params = sum(p.numel() for p in model.parameters())
    return dict(
        input_shape=[1, *shape],
        output_shape=list(y.shape),
        params_total=params,
        macs_conv_fc=figures["macs"],
        pool_ops=figures["pool"],
        macs_lecture=figures["macs"] + figures["pool"],
    )


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "data", "dense_prediction.json")
    torch.manual_seed(0)
    networks = {
        "unet": count(UNet(), (3, 64, 64)),
        "fpn": count(FPN(), (3, 128, 128)),
    }
    with open(out, "w") as f:
        json.dump(dict(generator="scripts/dense_prediction_truth.py", conventions=CONVENTIONS,
                       networks=networks), f, indent=1)
        f.write("\n")
    for name, n in networks.items():
        print(f"{name}: {n['params_total']:,} params, {n['macs_conv_fc']:,} MACs, "
              f"{n['pool_ops']:,} pool ops, out {n['output_shape']}")


if __name__ == "__main__":
    main()

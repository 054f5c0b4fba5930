#!/usr/bin/env python3
"""Export small PyTorch models to ONNX as fixtures of `cnnjit import`.

Usage (from the repository root):

    /work/.venv/bin/python scripts/export_onnx.py            # the fixtures
    /work/.venv/bin/python scripts/export_onnx.py --full DIR # torchvision nets
    /work/.venv/bin/python scripts/export_onnx.py --only NAME... # some fixtures

The first form writes, to tests/fixtures/onnx/, for each fixture NAME:

  NAME.onnx             the model, exported with torch.onnx (TorchScript
                        exporter, opset 13, batch norm kept apart from the
                        convs, exporter constant folding off so the Shape /
                        Gather / Concat chains of `x.view(x.size(0), -1)` stay);
  NAME.io.safetensors   `input` [2, C, H, W] (ONNX's NCHW) and `output`, what
                        ONNX Runtime computes for it.

Weights are seeded random (no download), batch norm statistics included, so
every fixture is deterministic. Python is never needed to build or test the
Rust code: the files are committed (under 5 MB in all).

The second form exports torchvision's ResNet-18, MobileNetV2, SqueezeNet 1.0,
GoogLeNet and EfficientNet-B0 (torchvision's random initialisation, batch
norm statistics drawn at random) to DIR, with
DIR/torchvision.json giving each one's parameter count (torch's own
`numel` sum) and multiply-accumulates of its convs and linears (counted with
forward hooks), for the check that `cnnjit import` reproduces them.
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn
import torchvision
from safetensors.numpy import save_file
from torchvision.models.resnet import BasicBlock
from torchvision.ops import SqueezeExcitation

SEED = 20261130
OPSET = 13


class ResNetBasic(nn.Module):
    """A small ResNet: stem, max pool, an identity and a projection basic block."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = BasicBlock(8, 8)
        down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
        self.layer2 = BasicBlock(8, 16, stride=2, downsample=down)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Inverted(nn.Module):
    """MobileNetV2's inverted residual with squeeze-excitation (MobileNetV3 style)."""

    def __init__(self, cin, t, cout, stride, act, gate):
        super().__init__()
        mid = cin * t
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), act(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), act(),
            SqueezeExcitation(mid, max(cin // 2, 2), scale_activation=gate),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetSE(nn.Module):
    """Stem, inverted residuals with SE (relu6 / swish / hard-swish), a head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.blocks = nn.Sequential(
            Inverted(8, 4, 12, 2, nn.ReLU6, nn.Sigmoid),
            Inverted(12, 4, 12, 1, nn.SiLU, nn.Sigmoid),
            Inverted(12, 3, 12, 1, nn.Hardswish, nn.Hardsigmoid),
        )
        self.head = nn.Sequential(
            nn.Conv2d(12, 32, 1, bias=False), nn.BatchNorm2d(32), nn.Hardswish())
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        x = nn.functional.avg_pool2d(x, 2)
        # The exporter writes this as Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
        x = x.view(x.size(0), -1)
        return self.fc(self.dropout(x))


class Fire(nn.Module):
    """SqueezeNet's fire module: squeeze 1x1, expand 1x1 and 3x3, concatenated."""

    def __init__(self, cin, squeeze, e1, e3):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1x1(x)), torch.relu(self.expand3x3(x))], 1)


class SqueezeFire(nn.Module):
    """A small SqueezeNet, with leaky relu, tanh, average pooling without
    padded zeros, global max pooling and a softmax. (torch.onnx writes
    LocalResponseNorm as pads and pools, not as ONNX's LRN.)"""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 12, 3, stride=2), nn.LeakyReLU(0.1),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
            Fire(12, 4, 8, 8), Fire(16, 6, 8, 8),
            nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
            Fire(16, 6, 12, 12),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Conv2d(24, 10, 1), nn.Tanh(), nn.AdaptiveMaxPool2d((1, 1)))

    def forward(self, x):
        x = torch.flatten(self.classifier(self.features(x)), 1)
        return torch.softmax(x, dim=1)


def shufflenet_small():
    """torchvision's ShuffleNetV2 at reduced width and depth: its channel
    split (chunk, exported as Split) and channel shuffle (Reshape, Transpose,
    Reshape), both unit kinds."""
    return torchvision.models.ShuffleNetV2([2, 1, 1], [8, 16, 24, 32, 64], num_classes=10)


def convnext_small():
    """torchvision's ConvNeXt at reduced width and depth: a 4x4 stride-4 stem
    and LayerNorm2d, one CNBlock per stage (7x7 depthwise conv, permute to
    NHWC, LayerNorm, Linear, GELU, Linear, permute back, layer scale,
    residual), a LayerNorm2d + 2x2 stride-2 downsampling, the head's
    LayerNorm2d, flatten and Linear."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    return ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)], num_classes=10)


FIXTURES = [
    ("resnet_basic", ResNetBasic, (3, 16, 16)),
    ("mobilenet_se", MobileNetSE, (3, 32, 32)),
    ("squeeze_fire", SqueezeFire, (3, 33, 31)),
    ("shufflenet_small", shufflenet_small, (3, 32, 32)),
    ("convnext_small", convnext_small, (3, 32, 32)),
]

# Fixtures whose operators need a later opset than OPSET
# (LayerNormalization: 17).
OPSET_OF = {"convnext_small": 17}


def randomise(model, gen):
    """Seeded weights, and batch norm statistics that are not the identity."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.add_(1.0)


def export(model, shape, path, batch, opset=OPSET):
    """ONNX with batch norm kept (TrainingMode.PRESERVE on an eval() model does
    not fuse it into the convs, as EVAL does) and a dynamic batch."""
    model.eval()
    x = torch.zeros((batch,) + shape)
    torch.onnx.export(
        model, (x,), path, opset_version=opset, dynamo=False,
        training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


def fixtures(out_dir, only=None):
    os.makedirs(out_dir, exist_ok=True)
    for index, (name, make, shape) in enumerate(FIXTURES):
        if only and name not in only:
            continue
        gen = torch.Generator().manual_seed(SEED + index)
        model = make()
        randomise(model, gen)
        path = os.path.join(out_dir, f"{name}.onnx")
        export(model, shape, path, 2, OPSET_OF.get(name, OPSET))
        x = torch.randn((2,) + shape, generator=gen).numpy()
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        (y,) = session.run(None, {"input": x})
        with torch.no_grad():
            torch_y = model(torch.from_numpy(x)).numpy()
        assert np.allclose(y, torch_y, atol=1e-4), name
        save_file({"input": np.ascontiguousarray(x), "output": np.ascontiguousarray(y)},
                  os.path.join(out_dir, f"{name}.io.safetensors"))
        print(name, os.path.getsize(path), "bytes")


def count(model, shape):
    """Parameters and conv/linear multiply-accumulates, batch 1."""
    macs = 0

    def hook(module, _inputs, output):
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            macs += output.numel() * k
        elif isinstance(module, nn.Linear):
            macs += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros((1,) + shape))
    for h in handles:
        h.remove()
    return sum(p.numel() for p in model.parameters()), macs


def full(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    models = {
        "resnet18": lambda: torchvision.models.resnet18(),
        "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(),
        "squeezenet1_0": lambda: torchvision.models.squeezenet1_0(),
        "googlenet": lambda: torchvision.models.googlenet(aux_logits=False, init_weights=True),
        "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(),
    }
    figures = {}
    for name, make in models.items():
        torch.manual_seed(SEED)
        model = make().eval()
        with torch.no_grad():
            # Batch norm statistics that are not the identity, so that a
            # numerical comparison of the import sees them.
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.normal_(0.0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        shape = (3, 224, 224)
        params, macs = count(model, shape)
        export(model, shape, os.path.join(out_dir, f"{name}.onnx"), 1)
        figures[name] = {"params": params, "macs": macs}
        print(name, params, macs)
    with open(os.path.join(out_dir, "torchvision.json"), "w") as f:
        json.dump(figures, f, indent=1)


if __name__ == "__main__":
    torch.set_num_threads(1)
    if len(sys.argv) == 3 and sys.argv[1] == "--full":
        full(sys.argv[2])
    else:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        default = os.path.join(root, "tests/fixtures/onnx")
        if len(sys.argv) > 2 and sys.argv[1] == "--only":
            fixtures(default, sys.argv[2:])
        else:
            fixtures(sys.argv[1] if len(sys.argv) > 1 else default)

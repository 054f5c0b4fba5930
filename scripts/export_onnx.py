#!/usr/bin/env python3
"""Export small PyTorch models to ONNX as fixtures of `cnnjit import`.

Usage (from the repository root):

    python scripts/export_onnx.py            # the fixtures
    python scripts/export_onnx.py --full DIR # torchvision nets
    python scripts/export_onnx.py --only NAME... # some fixtures

The first form writes, to tests/fixtures/onnx/, for each fixture NAME:

  NAME.onnx             the model, exported with torch.onnx (TorchScript
                        exporter, opset 13, batch norm kept apart from the
                        convs, exporter constant folding off so the Shape /
                        Gather / Concat chains of `x.view(x.size(0), -1)` stay);
  NAME.io.safetensors   `input` [2, C, H, W] (ONNX's NCHW) and `output`, what
                        ONNX Runtime computes for it;

and torch_params.json, each fixture's parameter count as torch counts it
and its batch norm channels. Fixtures named *_dynamo are exported with the
default (dynamo) exporter at opset 18 instead, as users' models are.

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
from torchvision.models.inception import BasicConv2d
from torchvision.models.regnet import BlockParams
from torchvision.models.resnet import BasicBlock, Bottleneck
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


def densenet_small():
    """torchvision's DenseNet at reduced width and depth: dense blocks, where
    each layer reads the concatenation of every earlier one, and transitions."""
    return torchvision.models.DenseNet(
        growth_rate=4, block_config=(3, 2), num_init_features=8, bn_size=2, num_classes=10)


class InceptionNested(nn.Module):
    """Inception-v3's InceptionE at reduced width (torchvision's forward, its
    BasicConv2d): two branches that fork again into a 1x3 and a 3x1 conv
    concatenated inside the outer concatenation, and a pooled branch."""

    def __init__(self, cin=8):
        super().__init__()
        self.stem = BasicConv2d(3, cin, kernel_size=3, stride=2)
        self.branch1x1 = BasicConv2d(cin, 8, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 6, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(6, 6, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(6, 6, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 6, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(6, 6, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(6, 4, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(6, 4, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 4, kernel_size=1)
        self.fc = nn.Linear(8 + 12 + 8 + 4, 10)

    def forward(self, x):
        x = self.stem(x)
        branch1x1 = self.branch1x1(x)
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        dbl = torch.cat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1)
        pool = self.branch_pool(nn.functional.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        x = torch.cat([branch1x1, branch3x3, dbl, pool], 1)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, (1, 1)), 1))


def mnasnet_small():
    """torchvision's MNASNet at width 0.1: its global pooling is written
    `x.mean([2, 3])` (ReduceMean), not a pooling layer."""
    return torchvision.models.MNASNet(0.1, num_classes=10)


class ResNeXtSmall(nn.Module):
    """ResNeXt's grouped bottlenecks (torchvision's Bottleneck, 4 groups of 4),
    an identity one and a projection one."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.block1 = Bottleneck(32, 8, groups=4, base_width=32)
        down = nn.Sequential(nn.Conv2d(32, 64, 1, stride=2, bias=False), nn.BatchNorm2d(64))
        self.block2 = Bottleneck(32, 16, stride=2, downsample=down, groups=4, base_width=16)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.block2(self.block1(self.stem(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, (1, 1)), 1))


def regnet_small():
    """torchvision's RegNet at reduced width and depth: grouped bottlenecks
    with squeeze-excitation."""
    params = BlockParams.from_init_params(
        depth=3, w_0=8, w_a=8.0, w_m=2.0, group_width=4, se_ratio=0.25)
    return torchvision.models.RegNet(params, stem_width=8, num_classes=10)


class UpDown(nn.Module):
    """A U-Net level (max pool down, ConvTranspose2d 2x2 stride 2 up, the skip
    concatenated first) and an FPN-style top-down add (a lateral 1x1 plus a
    nearest Upsample by 2), then a bilinear Upsample (align_corners = False)
    and a padded ConvTranspose2d."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.down = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.lateral = nn.Conv2d(16, 8, 1)
        self.coarse = nn.Conv2d(16, 8, 3, stride=2, padding=1)
        self.nearest = nn.Upsample(scale_factor=2, mode="nearest")
        self.bilinear = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.head = nn.ConvTranspose2d(8, 4, 3, padding=1, bias=False)

    def forward(self, x):
        e = self.enc(x)
        y = torch.cat([e, self.up(self.down(e))], dim=1)
        z = self.lateral(y) + self.nearest(self.coarse(y))
        return self.head(self.bilinear(z))


def convnext_small():
    """torchvision's ConvNeXt at reduced width and depth: a 4x4 stride-4 stem
    and LayerNorm2d, one CNBlock per stage (7x7 depthwise conv, permute to
    NHWC, LayerNorm, Linear, GELU, Linear, permute back, layer scale,
    residual), a LayerNorm2d + 2x2 stride-2 downsampling, the head's
    LayerNorm2d, flatten and Linear."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    return ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 1)], num_classes=10)


# (name, model, input shape, exporter): "legacy" is torch.onnx's TorchScript
# exporter at opset 13 with batch norm kept; "dynamo" the default exporter at
# opset 18, which folds batch norm into the convs and writes other forms.
FIXTURES = [
    ("resnet_basic", ResNetBasic, (3, 16, 16), "legacy"),
    ("mobilenet_se", MobileNetSE, (3, 32, 32), "legacy"),
    ("squeeze_fire", SqueezeFire, (3, 33, 31), "legacy"),
    ("shufflenet_small", shufflenet_small, (3, 32, 32), "legacy"),
    ("densenet_small", densenet_small, (3, 32, 32), "legacy"),
    ("inception_nested", InceptionNested, (3, 17, 17), "legacy"),
    ("mnasnet_small", mnasnet_small, (3, 32, 32), "legacy"),
    ("resnext_small", ResNeXtSmall, (3, 16, 16), "legacy"),
    ("regnet_small", regnet_small, (3, 32, 32), "legacy"),
    ("resnet_basic_dynamo", ResNetBasic, (3, 16, 16), "dynamo"),
    ("mobilenet_se_dynamo", MobileNetSE, (3, 32, 32), "dynamo"),
    ("up_down", UpDown, (3, 12, 10), "legacy"),
    ("convnext_small", convnext_small, (3, 32, 32), "legacy"),
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


def export(model, shape, path, batch, exporter="legacy", opset=OPSET):
    """ONNX with batch norm kept (TrainingMode.PRESERVE on an eval() model does
    not fuse it into the convs, as EVAL does) and a dynamic batch; or, with
    the dynamo exporter, as it writes models by default."""
    model.eval()
    x = torch.zeros((batch,) + shape)
    if exporter == "dynamo":
        batch_dim = torch.export.Dim("batch")
        torch.onnx.export(
            model, (x,), path, dynamo=True, external_data=False, opset_version=18,
            input_names=["input"], output_names=["output"],
            dynamic_shapes={"x": {0: batch_dim}})
        return
    torch.onnx.export(
        model, (x,), path, opset_version=opset, dynamo=False,
        training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


def fixtures(out_dir, only=None):
    os.makedirs(out_dir, exist_ok=True)
    params = {}
    for index, (name, make, shape, exporter) in enumerate(FIXTURES):
        if only and name not in only:
            continue
        gen = torch.Generator().manual_seed(SEED + index)
        model = make()
        randomise(model, gen)
        # torch's parameter count, and the batch norm channels: the dynamo
        # exporter folds each batch norm's 2C parameters into a C-wide bias.
        params[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            "bn_features": sum(m.num_features for m in model.modules()
                               if isinstance(m, nn.BatchNorm2d)),
        }
        path = os.path.join(out_dir, f"{name}.onnx")
        export(model, shape, path, 2, exporter, OPSET_OF.get(name, OPSET))
        x = torch.randn((2,) + shape, generator=gen).numpy()
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        (y,) = session.run(None, {"input": x})
        with torch.no_grad():
            torch_y = model(torch.from_numpy(x)).numpy()
        assert np.allclose(y, torch_y, atol=1e-4), name
        save_file({"input": np.ascontiguousarray(x), "output": np.ascontiguousarray(y)},
                  os.path.join(out_dir, f"{name}.io.safetensors"))
        print(name, os.path.getsize(path), "bytes")
    # With --only, the other fixtures' counts stay as they were.
    counts = os.path.join(out_dir, "torch_params.json")
    if only and os.path.exists(counts):
        with open(counts) as f:
            params = {**json.load(f), **params}
    with open(counts, "w") as f:
        json.dump(params, f, indent=1)
        f.write("\n")


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

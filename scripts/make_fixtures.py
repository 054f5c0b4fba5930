#!/usr/bin/env python3
"""Write the numerical test fixtures of cnnjit to tests/fixtures/.

Usage (from the repository root):

    /work/.venv/bin/python scripts/make_fixtures.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/ next to this script's repository. Needs
torch, numpy and safetensors; Python is only needed to regenerate fixtures,
never to build or test the Rust code.

For every fixture NAME it writes

  NAME.cnn              one net (UpperCamelCase name) in the cnn! language;
  NAME.safetensors      its float32 weights under the names cnn! gives the
                        layers (conv1.weight [K, Cin/g, Fh, Fw], conv1.bias,
                        bn1.weight/bias/running_mean/running_var,
                        deconv1.weight [Cin, K, Fh, Fw] (ConvTranspose2d),
                        dense1.weight [N, Nin], dense1.bias), PyTorch layouts;
                        a dense after flatten has its columns in PyTorch's
                        (channel, height, width) order;
  NAME.io.safetensors   `input` and `output` for a batch of 2 images, laid out
                        as cnnjit does: [2, H, W, C] (HWC per image) or [2, N]
                        for flat tensors. PyTorch computes in NCHW; the
                        tensors are permuted to NHWC before saving.

plus README.md (the list) and manifest.json (the same, machine-readable).

The reference computations use torch.nn.functional in inference mode
(F.batch_norm(training=False) is exactly BatchNorm2d/1d in eval(); dropout is
left out, i.e. eval()), and torch.nn.LocalResponseNorm for lrn. Everything
runs in float32 on the CPU on one thread; every fixture draws from its own
torch.Generator seeded from a fixed base seed and the fixture's index, so
rerunning gives byte-identical files.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

BASE_SEED = 20240607
BATCH = 2

# ----------------------------------------------------------------------------
# A tiny functional model builder: every layer creates its parameters (seeded)
# the first time it runs, under the cnn! name the caller gives.
# ----------------------------------------------------------------------------


def _pair(v):
    if isinstance(v, (tuple, list)):
        return tuple(v)
    return (v, v)


def _same_pads(size, k, s, d):
    """TF/Keras 'same': out = ceil(size/s), total pad split floor/ceil (extra at the end)."""
    out = -(-size // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


class Builder:
    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.tensors = {}

    # random draws --------------------------------------------------------
    def randn(self, *shape, scale=1.0):
        return torch.randn(*shape, generator=self.gen, dtype=torch.float32) * scale

    def uniform(self, *shape, lo=0.0, hi=1.0):
        return torch.rand(*shape, generator=self.gen, dtype=torch.float32) * (hi - lo) + lo

    def add(self, name, t):
        assert name not in self.tensors, f"tensor {name} defined twice"
        self.tensors[name] = t.detach().to(torch.float32).contiguous()
        return self.tensors[name]

    # layers ----------------------------------------------------------------
    def conv(self, name, x, k_out, kernel, stride=1, pad=0, dilation=1, groups=1, bias=True):
        cin = x.shape[1]
        kh, kw = _pair(kernel)
        sh, sw = _pair(stride)
        dh, dw = _pair(dilation)
        assert cin % groups == 0 and k_out % groups == 0
        fan_in = (cin // groups) * kh * kw
        w = self.add(f"{name}.weight", self.randn(k_out, cin // groups, kh, kw, scale=1.0 / math.sqrt(fan_in)))
        b = self.add(f"{name}.bias", self.randn(k_out, scale=0.2)) if bias else None
        if pad == "same":
            top, bottom = _same_pads(x.shape[2], kh, sh, dh)
            left, right = _same_pads(x.shape[3], kw, sw, dw)
            x = F.pad(x, (left, right, top, bottom))
            padding = (0, 0)
        elif pad == "valid":
            padding = (0, 0)
        else:
            padding = _pair(pad)
        return F.conv2d(x, w, b, stride=(sh, sw), padding=padding, dilation=(dh, dw), groups=groups)

    def deconv(self, name, x, k_out, kernel, stride=1, pad=0, bias=True):
        """nn.ConvTranspose2d(cin, k_out, kernel, stride, pad): weight [Cin, K, Fh, Fw]."""
        cin = x.shape[1]
        kh, kw = _pair(kernel)
        w = self.add(f"{name}.weight", self.randn(cin, k_out, kh, kw, scale=1.0 / math.sqrt(cin * kh * kw)))
        b = self.add(f"{name}.bias", self.randn(k_out, scale=0.2)) if bias else None
        return F.conv_transpose2d(x, w, b, stride=_pair(stride), padding=pad)

    def dwconv(self, name, x, kernel, multiplier=1, **kw):
        c = x.shape[1]
        return self.conv(name, x, c * multiplier, kernel, groups=c, **kw)

    def dense(self, name, x, n, bias=True):
        assert x.dim() == 2, "dense needs a flat input"
        nin = x.shape[1]
        w = self.add(f"{name}.weight", self.randn(n, nin, scale=1.0 / math.sqrt(nin)))
        b = self.add(f"{name}.bias", self.randn(n, scale=0.2)) if bias else None
        return F.linear(x, w, b)

    def bn(self, name, x, eps=1e-5):
        c = x.shape[1]
        weight = self.add(f"{name}.weight", self.uniform(c, lo=0.5, hi=1.5))
        bias = self.add(f"{name}.bias", self.randn(c, scale=0.3))
        mean = self.add(f"{name}.running_mean", self.randn(c, scale=0.3))
        var = self.add(f"{name}.running_var", self.uniform(c, lo=0.5, hi=1.5))
        return F.batch_norm(x, mean, var, weight, bias, training=False, eps=eps)


def maxpool(x, kernel, stride=None, pad=0, ceil=False):
    kernel = _pair(kernel)
    stride = _pair(stride) if stride is not None else kernel
    if pad == "same":
        top, bottom = _same_pads(x.shape[2], kernel[0], stride[0], 1)
        left, right = _same_pads(x.shape[3], kernel[1], stride[1], 1)
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        pad = 0
    return F.max_pool2d(x, kernel, stride, _pair(pad), ceil_mode=ceil)


def avgpool(x, kernel, stride=None, pad=0, ceil=False, count_include_pad=True):
    kernel = _pair(kernel)
    stride = _pair(stride) if stride is not None else kernel
    if pad == "same":
        # Keras' padding="same" average pool: zero padding left out of the divisor.
        assert not count_include_pad, "only pad = same with count_include_pad = false is defined"
        top, bottom = _same_pads(x.shape[2], kernel[0], stride[0], 1)
        left, right = _same_pads(x.shape[3], kernel[1], stride[1], 1)
        ones = torch.ones_like(x[:, :1])
        xs = F.pad(x, (left, right, top, bottom))
        os_ = F.pad(ones, (left, right, top, bottom))
        sums = F.avg_pool2d(xs, kernel, stride, divisor_override=1)
        counts = F.avg_pool2d(os_, kernel, stride, divisor_override=1)
        return sums / counts
    return F.avg_pool2d(x, kernel, stride, _pair(pad), ceil_mode=ceil, count_include_pad=count_include_pad)


def global_avgpool(x):
    return x.mean(dim=(2, 3), keepdim=True)


def global_maxpool(x):
    return x.amax(dim=(2, 3), keepdim=True)


def flatten(x):
    return x.flatten(1)  # NCHW -> (C, H, W) order, as PyTorch


def softmax(x):
    return torch.softmax(x, dim=1)  # channels of each pixel / features of a vector


def lrn(x, size, alpha=1e-4, beta=0.75, k=1.0):
    return torch.nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k).eval()(x)


relu = F.relu
relu6 = F.relu6
tanh = torch.tanh
sigmoid = torch.sigmoid
swish = F.silu
hard_swish = F.hardswish
hard_sigmoid = F.hardsigmoid  # relu6(x + 3) / 6


def leaky_relu(a):
    return lambda x: F.leaky_relu(x, a)


# ----------------------------------------------------------------------------
# The fixtures. Each: name, net name, input shape ((H, W, C) or (N,)), the
# cnn! source (blocks and the net body), the PyTorch forward that mirrors it
# with the same names, what it checks, and the input's scale.
# ----------------------------------------------------------------------------

FIXTURES = []


def fixture(name, net, shape, body, purpose, blocks="", scale=1.0, width=None):
    def deco(fn):
        FIXTURES.append(dict(name=name, net=net, shape=shape, body=body, blocks=blocks,
                             purpose=purpose, fn=fn, scale=scale, width=width))
        return fn
    return deco


# --- conv ---------------------------------------------------------------------

@fixture("conv_plain", "ConvPlain", (7, 9, 3), "conv(4, 3x3)",
         "plain 3x3 conv, stride 1, valid padding, bias, on a non-square input")
def _(b, x):
    return b.conv("conv1", x, 4, 3)


@fixture("conv_stride2_pad1", "ConvStride2Pad1", (9, 8, 3), "conv(5, 3x3, stride = 2, pad = 1)",
         "stride 2 with symmetric zero padding 1 (odd and even sizes)")
def _(b, x):
    return b.conv("conv1", x, 5, 3, stride=2, pad=1)


@fixture("conv_same_s1", "ConvSameS1", (7, 6, 3),
         "conv(6, 3x3, pad = same),\n    conv(5, 4x4, pad = same)",
         "pad = same at stride 1: symmetric for 3x3, asymmetric for an even 4x4 kernel (1 top/left, 2 bottom/right)")
def _(b, x):
    x = b.conv("conv1", x, 6, 3, pad="same")
    return b.conv("conv2", x, 5, 4, pad="same")


@fixture("conv_same_s2", "ConvSameS2", (9, 10, 3), "conv(4, 3x3, stride = 2, pad = same)",
         "pad = same at stride 2, TF-style: H 9 -> 5 pads 1/1, W 10 -> 5 pads 0 left / 1 right")
def _(b, x):
    return b.conv("conv1", x, 4, 3, stride=2, pad="same")


@fixture("conv_rect_stride", "ConvRectStride", (8, 9, 3), "conv(4, 3x3, stride = (1, 2), pad = (1, 0))",
         "different strides and pads per axis: stride (1, 2), pad (1, 0)")
def _(b, x):
    return b.conv("conv1", x, 4, 3, stride=(1, 2), pad=(1, 0))


@fixture("conv_dilation", "ConvDilation", (10, 9, 3), "conv(4, 3x3, dilation = 2, pad = 1)",
         "dilation 2 (effective 5x5 window) with pad 1")
def _(b, x):
    return b.conv("conv1", x, 4, 3, dilation=2, pad=1)


@fixture("conv_groups", "ConvGroups", (6, 7, 4), "conv(6, 3x3, groups = 2, pad = 1)",
         "grouped conv, groups 2: weight [6, 2, 3, 3]")
def _(b, x):
    return b.conv("conv1", x, 6, 3, groups=2, pad=1)


@fixture("conv_1x3_3x1", "Conv1x3And3x1", (7, 9, 3),
         "conv(5, 1x3, pad = (0, 1)),\n    conv(4, 3x1)",
         "non-square kernels: 1x3 with pad (0, 1), then 3x1 valid (weights [K, C, 1, 3] and [K, C, 3, 1])")
def _(b, x):
    x = b.conv("conv1", x, 5, (1, 3), pad=(0, 1))
    return b.conv("conv2", x, 4, (3, 1))


@fixture("conv_nobias", "ConvNoBias", (6, 6, 3), "conv(4, 3x3, pad = 1, bias = false)",
         "bias = false: only conv1.weight in the weights")
def _(b, x):
    return b.conv("conv1", x, 4, 3, pad=1, bias=False)


@fixture("conv_act_chain", "ConvActChain", (6, 7, 3),
         "conv(6, 3x3, pad = 1), hard_swish,\n"
         "    conv(6, 1x1), leaky_relu(0.2),\n"
         "    conv(6, 1x1), relu6,\n"
         "    conv(4, 1x1), hard_sigmoid",
         "activations right after convs (where a JIT fuses them): hard_swish, leaky_relu(0.2), relu6, hard_sigmoid",
         scale=2.0)
def _(b, x):
    x = hard_swish(b.conv("conv1", x, 6, 3, pad=1))
    x = leaky_relu(0.2)(b.conv("conv2", x, 6, 1))
    x = relu6(b.conv("conv3", x, 6, 1))
    return hard_sigmoid(b.conv("conv4", x, 4, 1))


# --- dwconv -------------------------------------------------------------------

@fixture("dwconv_m1", "DwConvM1", (8, 7, 4), "dwconv(3x3, pad = 1)",
         "depthwise 3x3, multiplier 1: weight [4, 1, 3, 3], bias [4]")
def _(b, x):
    return b.dwconv("dwconv1", x, 3, pad=1)


@fixture("dwconv_m2", "DwConvM2", (9, 9, 3), "dwconv(3x3, stride = 2, multiplier = 2)",
         "depthwise multiplier 2, stride 2: output channel o reads input channel o / 2 (PyTorch groups = C)")
def _(b, x):
    return b.dwconv("dwconv1", x, 3, multiplier=2, stride=2)


# --- dense, flatten -------------------------------------------------------------

@fixture("dense_flat", "DenseFlat", (12,), "dense(8), relu,\n    dense(5, bias = false)",
         "dense on a flat input, then dense without bias")
def _(b, x):
    x = relu(b.dense("dense1", x, 8))
    return b.dense("dense2", x, 5, bias=False)


@fixture("flatten_dense", "FlattenDense", (5, 4, 3), "conv(4, 3x3, pad = 1), relu,\n    flatten,\n    dense(6)",
         "dense after flatten of a (5,4,4) volume: weight columns in PyTorch's (C, H, W) order")
def _(b, x):
    x = relu(b.conv("conv1", x, 4, 3, pad=1))
    return b.dense("dense1", flatten(x), 6)


@fixture("flatten_input_dense", "FlattenInputDense", (3, 4, 5), "flatten,\n    fc(7)",
         "flatten of the net's input straight into a dense (alias fc -> named dense1), (C, H, W) column order")
def _(b, x):
    return b.dense("dense1", flatten(x), 7)


# --- pools --------------------------------------------------------------------

@fixture("maxpool", "MaxPool", (8, 6, 3), "maxpool(2x2)",
         "2x2 max pool, stride = window by default")
def _(b, x):
    return maxpool(x, 2)


@fixture("maxpool_pad", "MaxPoolPad", (9, 8, 3), "maxpool(3x3, stride = 2, pad = 1)",
         "3x3 stride 2 pad 1 max pool: padding is -inf (negative inputs)")
def _(b, x):
    return maxpool(x, 3, 2, pad=1)


@fixture("maxpool_ceil", "MaxPoolCeil", (8, 10, 3), "maxpool(3x3, stride = 2, ceil = true)",
         "ceil = true: H 8 -> 4, W 10 -> 5 (floor would give 3 and 4); partial last windows")
def _(b, x):
    return maxpool(x, 3, 2, ceil=True)


@fixture("maxpool_same", "MaxPoolSame", (9, 10, 3), "maxpool(3x3, stride = 2, pad = same)",
         "(extension) pad = same on a max pool: asymmetric -inf padding, H 9 -> 5, W 10 -> 5")
def _(b, x):
    return maxpool(x, 3, 2, pad="same")


@fixture("avgpool", "AvgPool", (8, 6, 3), "avgpool(2x2)",
         "2x2 average pool, stride = window")
def _(b, x):
    return avgpool(x, 2)


@fixture("avgpool_pad", "AvgPoolPad", (9, 8, 3), "avgpool(3x3, stride = 2, pad = 1)",
         "pad 1 with count_include_pad default true: zeros count in the divisor (always 9)")
def _(b, x):
    return avgpool(x, 3, 2, pad=1)


@fixture("avgpool_exclude_pad", "AvgPoolExcludePad", (9, 8, 3),
         "avgpool(3x3, stride = 2, pad = 1, count_include_pad = false)",
         "(extension) count_include_pad = false: the divisor counts only real pixels")
def _(b, x):
    return avgpool(x, 3, 2, pad=1, count_include_pad=False)


@fixture("avgpool_ceil", "AvgPoolCeil", (8, 10, 3), "avgpool(3x3, stride = 2, ceil = true)",
         "ceil = true, no pad: partial last windows divide by the pixels inside the input (PyTorch)")
def _(b, x):
    return avgpool(x, 3, 2, ceil=True)


@fixture("avgpool_ceil_pad", "AvgPoolCeilPad", (8, 9, 3), "avgpool(3x3, stride = 2, pad = 1, ceil = true)",
         "ceil = true with pad 1 (count_include_pad true): PyTorch's divisor counts the padding but not the part "
         "of a window beyond it (on H = 8 the last window, rows 7..9, covers row 7 and one pad row: it divides by 2, "
         "not 3, along H)")
def _(b, x):
    return avgpool(x, 3, 2, pad=1, ceil=True)


@fixture("avgpool_same", "AvgPoolSame", (9, 10, 3),
         "avgpool(3x3, stride = 2, pad = same, count_include_pad = false)",
         "(extension) Keras padding='same' average pool: asymmetric padding left out of the divisor")
def _(b, x):
    return avgpool(x, 3, 2, pad="same", count_include_pad=False)


@fixture("global_avgpool", "GlobalAvgPool", (5, 7, 4), "global_avgpool",
         "global average pool to (1,1,4)")
def _(b, x):
    return global_avgpool(x)


@fixture("global_maxpool", "GlobalMaxPool", (5, 7, 4), "global_maxpool",
         "global max pool to (1,1,4)")
def _(b, x):
    return global_maxpool(x)


# --- bn -----------------------------------------------------------------------

@fixture("bn_after_conv", "BnAfterConv", (7, 6, 3),
         "conv(5, 3x3, pad = 1), bn, relu,\n    conv(4, 3x3, bias = false), bn",
         "bn folded into a conv with bias and into one without; random gamma, beta, mean, var")
def _(b, x):
    x = relu(b.bn("bn1", b.conv("conv1", x, 5, 3, pad=1)))
    return b.bn("bn2", b.conv("conv2", x, 4, 3, bias=False))


@fixture("bn_alone", "BnAlone", (6, 5, 4), "bn,\n    maxpool(2x2, ceil = true),\n    bn(eps = 0.001)",
         "bn with no conv before it: first layer of the net, and after a pool (with eps = 0.001)")
def _(b, x):
    x = b.bn("bn1", x)
    x = maxpool(x, 2, ceil=True)
    return b.bn("bn2", x, eps=1e-3)


@fixture("bn_dense", "BnDense", (10,), "dense(8), bn, relu,\n    bn,\n    dense(4)",
         "(extension) bn on flat vectors (BatchNorm1d): folded into a dense, and alone after relu")
def _(b, x):
    x = relu(b.bn("bn1", b.dense("dense1", x, 8)))
    x = b.bn("bn2", x)
    return b.dense("dense2", x, 4)


# --- activations ------------------------------------------------------------------

ACTIVATIONS = [
    ("relu", "Relu", "relu", relu),
    ("relu6", "Relu6", "relu6", relu6),
    ("tanh", "Tanh", "tanh", tanh),
    ("sigmoid", "Sigmoid", "sigmoid", sigmoid),
    ("swish", "Swish", "swish", swish),
    ("hard_swish", "HardSwish", "hard_swish", hard_swish),
    ("hard_sigmoid", "HardSigmoid", "hard_sigmoid", hard_sigmoid),
    ("leaky_relu", "LeakyRelu", "leaky_relu(0.2)", leaky_relu(0.2)),
    ("leaky_relu_default", "LeakyReluDefault", "leaky_relu", leaky_relu(0.01)),
]
for _fname, _net, _src, _f in ACTIVATIONS:
    fixture(f"act_{_fname}", f"Act{_net}", (5, 6, 3), _src,
            f"{_src} alone on a volume, inputs N(0, 4^2) (saturates relu6/hard_* ranges)"
            + (" [extension: default slope 0.01]" if _fname == "leaky_relu_default" else ""),
            scale=4.0)(lambda b, x, f=_f: f(x))


@fixture("act_flat", "ActFlat", (16,), "relu6, tanh, hard_swish, sigmoid",
         "activations on a flat vector", scale=4.0)
def _(b, x):
    return sigmoid(hard_swish(tanh(relu6(x))))


# --- softmax ---------------------------------------------------------------------

@fixture("softmax_volume", "SoftmaxVolume", (4, 5, 6), "softmax",
         "softmax over the 6 channels of every pixel of a volume", scale=3.0)
def _(b, x):
    return softmax(x)


@fixture("softmax_flat", "SoftmaxFlat", (10,), "softmax",
         "softmax over a flat vector of 10", scale=3.0)
def _(b, x):
    return softmax(x)


@fixture("softmax_after_dense", "SoftmaxAfterDense", (5, 5, 2), "flatten, dense(10), softmax",
         "softmax on large logits (tests the max subtraction): dense of scaled inputs", scale=10.0)
def _(b, x):
    return softmax(b.dense("dense1", flatten(x), 10))


# --- lrn ------------------------------------------------------------------------

@fixture("lrn", "Lrn", (5, 4, 8), "lrn(size = 5, alpha = 0.0001, beta = 0.75, k = 2.0)",
         "AlexNet's LRN as torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)", scale=10.0)
def _(b, x):
    return lrn(x, 5, alpha=1e-4, beta=0.75, k=2.0)


@fixture("lrn_strong", "LrnStrong", (5, 4, 7), "lrn(size = 3, alpha = 1.0, beta = 0.75, k = 1.0)",
         "LRN with alpha 1 so the channel window's sum really matters (edges: 7 channels, window 3)", scale=2.0)
def _(b, x):
    return lrn(x, 3, alpha=1.0, beta=0.75, k=1.0)


@fixture("lrn_even", "LrnEven", (4, 5, 6), "lrn(4, alpha = 1.0, beta = 0.5)",
         "(extension: positional size, default k = 1) even size 4: PyTorch's window is c-2 .. c+1", scale=2.0)
def _(b, x):
    return lrn(x, 4, alpha=1.0, beta=0.5, k=1.0)


# --- no-ops ---------------------------------------------------------------------

@fixture("dropout_identity", "DropoutIdentity", (6, 5, 3),
         "conv(4, 3x3), dropout(0.5), identity, relu, dropout",
         "dropout(0.5), dropout (extension: p = 0.5) and identity do nothing at inference")
def _(b, x):
    return relu(b.conv("conv1", x, 4, 3))


# --- composites -------------------------------------------------------------------

@fixture("concat", "Concat", (6, 7, 4),
         "concat {\n"
         "        [conv(3, 1x1)],\n"
         "        [conv(5, 3x3, pad = 1), relu],\n"
         "        [maxpool(3x3, stride = 1, pad = 1)],\n"
         "    }",
         "concat of three branches along channels (3 + 5 + 4 = 12), branch order left to right")
def _(b, x):
    a = b.conv("conv1", x, 3, 1)
    c = relu(b.conv("conv2", x, 5, 3, pad=1))
    d = maxpool(x, 3, 1, pad=1)
    return torch.cat([a, c, d], dim=1)


@fixture("concat_flat", "ConcatFlat", (8,),
         "concat {\n        [dense(3)],\n        [dense(4), relu],\n    }",
         "(extension) concat of flat branches into one vector of 7")
def _(b, x):
    return torch.cat([b.dense("dense1", x, 3), relu(b.dense("dense2", x, 4))], dim=1)


@fixture("residual_identity", "ResidualIdentity", (6, 6, 4),
         "residual {\n        conv(4, 3x3, pad = 1), relu,\n        conv(4, 3x3, pad = 1),\n    },\n    relu",
         "residual with the identity shortcut, relu after the add")
def _(b, x):
    y = b.conv("conv2", relu(b.conv("conv1", x, 4, 3, pad=1)), 4, 3, pad=1)
    return relu(y + x)


@fixture("residual_auto", "ResidualAuto", (7, 9, 4),
         "residual(shortcut = auto) {\n"
         "        conv(8, 3x3, stride = 2, pad = 1, bias = false), bn, relu,\n"
         "        conv(8, 3x3, pad = 1, bias = false), bn,\n"
         "    },\n"
         "    relu",
         "shortcut = auto projects with conv3 (1x1, stride 2, no bias) + bn3, named after the body's conv1/conv2, bn1/bn2")
def _(b, x):
    y = relu(b.bn("bn1", b.conv("conv1", x, 8, 3, stride=2, pad=1, bias=False)))
    y = b.bn("bn2", b.conv("conv2", y, 8, 3, pad=1, bias=False))
    s = b.bn("bn3", b.conv("conv3", x, 8, 1, stride=2, bias=False))
    return relu(y + s)


@fixture("residual_shortcut_seq", "ResidualShortcutSeq", (8, 6, 4),
         "residual(shortcut = [avgpool(2x2), conv(6, 1x1, bias = false), bn]) {\n"
         "        conv(6, 3x3, stride = 2, pad = 1), relu,\n"
         "    }",
         "an explicit shortcut sequence (avgpool, 1x1 conv, bn), named after the body (conv2, bn1)")
def _(b, x):
    y = relu(b.conv("conv1", x, 6, 3, stride=2, pad=1))
    s = b.bn("bn1", b.conv("conv2", avgpool(x, 2), 6, 1, bias=False))
    return y + s


@fixture("scale_se", "ScaleSe", (6, 5, 8),
         "scale { global_avgpool, conv(2, 1x1), relu, conv(8, 1x1), sigmoid }",
         "squeeze-and-excitation: input times a (1,1,8) gate computed from it")
def _(b, x):
    g = global_avgpool(x)
    g = sigmoid(b.conv("conv2", relu(b.conv("conv1", g, 2, 1)), 8, 1))
    return x * g


@fixture("scale_elementwise", "ScaleElementwise", (5, 6, 4),
         "scale { conv(4, 3x3, pad = 1), sigmoid }",
         "scale whose body keeps the input's shape: element-wise product")
def _(b, x):
    return x * sigmoid(b.conv("conv1", x, 4, 3, pad=1))


# --- whole blocks -----------------------------------------------------------------

@fixture("lenet5", "LeNet5", (32, 32, 1),
         "conv(6, 5x5), tanh,\n"
         "    avgpool(2x2, stride = 2),\n"
         "    conv(16, 5x5), tanh,\n"
         "    avgpool(2x2, stride = 2),\n"
         "    flatten,\n"
         "    dense(120), tanh,\n"
         "    dense(84), tanh,\n"
         "    dense(10), softmax",
         "LeNet-5 of DSL.md (32x32x1, tanh, avg pools, flatten -> dense in C,H,W order, softmax)")
def _(b, x):
    x = avgpool(tanh(b.conv("conv1", x, 6, 5)), 2, 2)
    x = avgpool(tanh(b.conv("conv2", x, 16, 5)), 2, 2)
    x = tanh(b.dense("dense1", flatten(x), 120))
    x = tanh(b.dense("dense2", x, 84))
    return softmax(b.dense("dense3", x, 10))


RESNET_BLOCKS = """\
// ResNet basic block (as examples/nets/resnet.cnn).
block basic(c, s) {
    residual(shortcut = auto) {
        conv(c, 3x3, stride = s, pad = 1, bias = false), bn, relu,
        conv(c, 3x3, pad = 1, bias = false), bn,
    },
    relu,
}
"""


def _basic(b, prefix, x, c, s):
    y = relu(b.bn(prefix + "bn1", b.conv(prefix + "conv1", x, c, 3, stride=s, pad=1, bias=False)))
    y = b.bn(prefix + "bn2", b.conv(prefix + "conv2", y, c, 3, pad=1, bias=False))
    if s != 1 or x.shape[1] != c:
        sc = b.bn(prefix + "bn3", b.conv(prefix + "conv3", x, c, 1, stride=s, bias=False))
    else:
        sc = x
    return relu(y + sc)


@fixture("resnet_basic_block", "ResNetBasicBlock", (9, 8, 4),
         "stem: conv(8, 3x3, pad = 1, bias = false), stem_bn: bn, relu,\n"
         "    layer1: basic(16, 2),\n"
         "    layer2: repeat(2) { basic(16, 1) },\n"
         "    global_avgpool, flatten,\n"
         "    fc: dense(5)",
         "ResNet basic blocks: projection shortcut (layer1.conv3/bn3) and identity ones in a labelled repeat "
         "(layer2.0.*, layer2.1.*), labels, global_avgpool + flatten + dense",
         blocks=RESNET_BLOCKS)
def _(b, x):
    x = relu(b.bn("stem_bn", b.conv("stem", x, 8, 3, pad=1, bias=False)))
    x = _basic(b, "layer1.", x, 16, 2)
    x = _basic(b, "layer2.0.", x, 16, 1)
    x = _basic(b, "layer2.1.", x, 16, 1)
    return b.dense("fc", flatten(global_avgpool(x)), 5)


@fixture("resnet_projection", "ResNetProjection", (8, 8, 8), "basic(16, 2)",
         "one unlabelled ResNet basic block with the projection shortcut: conv1, bn1, conv2, bn2, then conv3, bn3",
         blocks=RESNET_BLOCKS)
def _(b, x):
    return _basic(b, "", x, 16, 2)


MOBILENET_BLOCKS = """\
// Depthwise separable convolution (as examples/nets/mobilenet_v1.cnn).
block dwsep(c, s) {
    dwconv(3x3, stride = s, pad = 1, bias = false), bn, relu,
    conv(c, 1x1, bias = false), bn, relu,
}
"""


@fixture("mobilenet_v1_block", "MobileNetV1Block", (10, 9, 3),
         "conv(8, 3x3, stride = 2, pad = 1, bias = false), bn, relu,\n"
         "    dwsep(16, 1),\n"
         "    dwsep(24, 2),\n"
         "    global_avgpool, flatten,\n"
         "    dense(6)",
         "MobileNet v1 depthwise-separable blocks (dwconv + bn + relu, 1x1 conv + bn + relu), stride 1 and 2",
         blocks=MOBILENET_BLOCKS)
def _(b, x):
    x = relu(b.bn("bn1", b.conv("conv1", x, 8, 3, stride=2, pad=1, bias=False)))
    x = relu(b.bn("bn2", b.dwconv("dwconv1", x, 3, stride=1, pad=1, bias=False)))
    x = relu(b.bn("bn3", b.conv("conv2", x, 16, 1, bias=False)))
    x = relu(b.bn("bn4", b.dwconv("dwconv2", x, 3, stride=2, pad=1, bias=False)))
    x = relu(b.bn("bn5", b.conv("conv3", x, 24, 1, bias=False)))
    return b.dense("dense1", flatten(global_avgpool(x)), 6)


@fixture("mobilenet_v1_width", "MobileNetV1Width", (8, 8, 3),
         "conv(16, 3x3, stride = 2, pad = 1, bias = false), bn, relu,\n"
         "    dwsep(32, 1),\n"
         "    global_avgpool, flatten,\n"
         "    dense(5)",
         "width = 0.5: conv channels 16 -> 8 and 32 -> 16; dwconv follows its input, dense(5) is not scaled",
         blocks=MOBILENET_BLOCKS, width=0.5)
def _(b, x):
    x = relu(b.bn("bn1", b.conv("conv1", x, 8, 3, stride=2, pad=1, bias=False)))
    x = relu(b.bn("bn2", b.dwconv("dwconv1", x, 3, pad=1, bias=False)))
    x = relu(b.bn("bn3", b.conv("conv2", x, 16, 1, bias=False)))
    return b.dense("dense1", flatten(global_avgpool(x)), 5)


INCEPTION_BLOCKS = """\
// GoogLeNet's inception module (docs/language.md, section 6): four branches
// joined along the channels.
block inception(c1, r3, c3, r5, c5, pp) {
    concat {
        [conv(c1, 1x1), relu],
        [conv(r3, 1x1), relu, conv(c3, 3x3, pad = 1), relu],
        [conv(r5, 1x1), relu, conv(c5, 5x5, pad = 2), relu],
        [maxpool(3x3, stride = 1, pad = 1), conv(pp, 1x1), relu],
    }
}
"""


def _inception(b, p, x, c1, r3, c3, r5, c5, pp):
    a = relu(b.conv(p + "conv1", x, c1, 1))
    t = relu(b.conv(p + "conv2", x, r3, 1))
    t = relu(b.conv(p + "conv3", t, c3, 3, pad=1))
    f = relu(b.conv(p + "conv4", x, r5, 1))
    f = relu(b.conv(p + "conv5", f, c5, 5, pad=2))
    q = relu(b.conv(p + "conv6", maxpool(x, 3, 1, pad=1), pp, 1))
    return torch.cat([a, t, f, q], dim=1)


@fixture("inception", "InceptionModule", (8, 7, 8),
         "inception(4, 4, 6, 2, 3, 3),\n"
         "    mixed: inception(4, 4, 5, 2, 3, 2)",
         "GoogLeNet inception modules, 4 concat branches (1x1; 1x1-3x3; 1x1-5x5; maxpool-1x1): unlabelled "
         "(conv1..conv6) then labelled (mixed.conv1..mixed.conv6); 16 then 14 channels",
         blocks=INCEPTION_BLOCKS)
def _(b, x):
    x = _inception(b, "", x, 4, 4, 6, 2, 3, 3)
    return _inception(b, "mixed.", x, 4, 4, 5, 2, 3, 2)


MBCONV_BLOCKS = """\
// Squeeze-and-excitation (swish inside, sigmoid gate).
block se(c, sq) {
    scale {
        global_avgpool,
        conv(sq, 1x1), swish,
        conv(c, 1x1), sigmoid,
    },
}

// MobileNet v2 inverted residual with squeeze-excitation (EfficientNet's
// MBConv): 1x1 expand, k x k depthwise, SE, 1x1 linear projection.
block mbconv(cin, t, c, k, s) {
    conv(cin * t, 1x1, bias = false), bn, swish,
    dwconv((k, k), stride = s, pad = k / 2, bias = false), bn, swish,
    se(cin * t, cin / 4),
    conv(c, 1x1, bias = false), bn,
}

// The same with the identity shortcut (stride 1, c -> c).
block mbconv_res(c, t, k) {
    residual {
        mbconv(c, t, c, k, 1),
    },
}
"""


def _mbconv(b, counts, p, x, cin, t, c, k, s):
    """counts: running per-kind counters of the current scope (dict)."""
    def nxt(kind):
        counts[kind] = counts.get(kind, 0) + 1
        return f"{p}{kind}{counts[kind]}"
    y = swish(b.bn(nxt("bn"), b.conv(nxt("conv"), x, cin * t, 1, bias=False)))
    y = swish(b.bn(nxt("bn"), b.dwconv(nxt("dwconv"), y, k, stride=s, pad=k // 2, bias=False)))
    g = global_avgpool(y)
    g = swish(b.conv(nxt("conv"), g, cin // 4, 1))
    g = sigmoid(b.conv(nxt("conv"), g, cin * t, 1))
    y = y * g
    return b.bn(nxt("bn"), b.conv(nxt("conv"), y, c, 1, bias=False))


@fixture("mbconv_se", "MBConvSe", (10, 9, 8),
         "mbconv(8, 4, 12, 3, 2),\n"
         "    mbconv_res(12, 4, 5),\n"
         "    blk: mbconv_res(12, 2, 3)",
         "MobileNetV2 inverted residual + squeeze-excitation, swish (EfficientNet MBConv): stride-2 block, "
         "then 5x5 and labelled 3x3 identity-residual blocks",
         blocks=MBCONV_BLOCKS)
def _(b, x):
    counts = {}
    x = _mbconv(b, counts, "", x, 8, 4, 12, 3, 2)
    x = x + _mbconv(b, counts, "", x, 12, 4, 12, 5, 1)
    return x + _mbconv(b, {}, "blk.", x, 12, 2, 12, 3, 1)


def channel_shuffle(x, groups):
    """torchvision.models.shufflenetv2.channel_shuffle, verbatim."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, num_channels, height, width)


@fixture("shuffle_slice", "ShuffleSlice", (5, 6, 12),
         "shuffle(3),\n"
         "    concat {\n"
         "        [slice(8, 4)],\n"
         "        [slice(1, 6), shuffle(2)],\n"
         "    },\n"
         "    shuffle(5)",
         "shuffle(groups) as torchvision's channel_shuffle (view, transpose, view) in 3, 2 and 5 groups; "
         "slice(first, count) as narrow along the channels, the last 4 and 6 from the middle")
def _(b, x):
    x = channel_shuffle(x, 3)
    y = torch.cat([x.narrow(1, 8, 4), channel_shuffle(x.narrow(1, 1, 6), 2)], dim=1)
    return channel_shuffle(y, 5)


SHUFFLENET_BLOCKS = """\
// ShuffleNetV2's units (torchvision's InvertedResidual). The basic unit keeps
// the first half of the channels and transforms the second (x.chunk(2, dim = 1));
// the downsampling unit transforms two full copies. Both end in a shuffle of 2.
block unit(c) {
    concat {
        [slice(0, c)],
        [slice(c, c),
         conv(c, 1x1, bias = false), bn, relu,
         dwconv(3x3, pad = 1, bias = false), bn,
         conv(c, 1x1, bias = false), bn, relu],
    },
    shuffle(2),
}

block down(c) {
    concat {
        [dwconv(3x3, stride = 2, pad = 1, bias = false), bn,
         conv(c, 1x1, bias = false), bn, relu],
        [conv(c, 1x1, bias = false), bn, relu,
         dwconv(3x3, stride = 2, pad = 1, bias = false), bn,
         conv(c, 1x1, bias = false), bn, relu],
    },
    shuffle(2),
}
"""


def _shufflenet_unit(b, nxt, x, c, down):
    """torchvision's InvertedResidual; nxt(kind) gives the next cnn! name."""
    def branch2(y):
        y = relu(b.bn(nxt("bn"), b.conv(nxt("conv"), y, c, 1, bias=False)))
        y = b.bn(nxt("bn"), b.dwconv(nxt("dwconv"), y, 3, stride=2 if down else 1, pad=1, bias=False))
        return relu(b.bn(nxt("bn"), b.conv(nxt("conv"), y, c, 1, bias=False)))
    if down:
        y = b.bn(nxt("bn"), b.dwconv(nxt("dwconv"), x, 3, stride=2, pad=1, bias=False))
        first = relu(b.bn(nxt("bn"), b.conv(nxt("conv"), y, c, 1, bias=False)))
        out = torch.cat((first, branch2(x)), dim=1)
    else:
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, branch2(x2)), dim=1)
    return channel_shuffle(out, 2)


@fixture("shufflenet_v2", "ShuffleNetV2Tiny", (16, 16, 3),
         "conv(8, 3x3, stride = 2, pad = 1, bias = false), bn, relu,\n"
         "    maxpool(3x3, stride = 2, pad = 1),\n"
         "    down(8), unit(8), unit(8),\n"
         "    down(12), unit(12),\n"
         "    conv(32, 1x1, bias = false), bn, relu,\n"
         "    global_avgpool, flatten,\n"
         "    dense(5)",
         "a reduced-width ShuffleNetV2 (torchvision's units: chunk, cat, channel_shuffle): "
         "downsampling and basic units, 16 then 24 channels",
         blocks=SHUFFLENET_BLOCKS)
def _(b, x):
    counts = {}

    def nxt(kind):
        counts[kind] = counts.get(kind, 0) + 1
        return f"{kind}{counts[kind]}"
    x = relu(b.bn(nxt("bn"), b.conv(nxt("conv"), x, 8, 3, stride=2, pad=1, bias=False)))
    x = maxpool(x, 3, 2, pad=1)
    for c, down in [(8, True), (8, False), (8, False), (12, True), (12, False)]:
        x = _shufflenet_unit(b, nxt, x, c, down)
    x = relu(b.bn(nxt("bn"), b.conv(nxt("conv"), x, 32, 1, bias=False)))
    return b.dense(nxt("dense"), flatten(global_avgpool(x)), 5)


# --- upsampling and transposed convolution (U-Net, FPN) ------------------------


def upsample(x, s, bilinear=False):
    """nn.Upsample(scale_factor = s), nearest or bilinear without align_corners."""
    if bilinear:
        return torch.nn.Upsample(scale_factor=s, mode="bilinear", align_corners=False)(x)
    return torch.nn.Upsample(scale_factor=s, mode="nearest")(x)


@fixture("deconv_stride2", "DeconvStride2", (5, 6, 3), "deconv(4, 2x2, stride = 2), relu",
         "U-Net's up-convolution, ConvTranspose2d(3, 4, 2, stride = 2): taps that do not overlap, bias, relu")
def _(b, x):
    return relu(b.deconv("deconv1", x, 4, 2, stride=2))


@fixture("deconv_overlap", "DeconvOverlap", (5, 4, 3),
         "deconv(3, 3x3, stride = 2, pad = 1, bias = false), bn, relu,\n"
         "    deconv(2, 3x2, stride = (1, 2))",
         "transposed convs whose taps overlap and add: 3x3 stride 2 padding 1 (5x4 -> 9x7), no bias, bn; "
         "then a 3x2 kernel with stride (1, 2)")
def _(b, x):
    x = relu(b.bn("bn1", b.deconv("deconv1", x, 3, 3, stride=2, pad=1, bias=False)))
    return b.deconv("deconv2", x, 2, (3, 2), stride=(1, 2))


@fixture("upsample_modes", "UpsampleModes", (2, 3, 2),
         "upsample(2),\n"
         "    conv(3, 3x3, pad = 1),\n"
         "    upsample(3, bilinear = true),\n"
         "    upsample(2, bilinear = true)",
         "nn.Upsample nearest by 2, then bilinear (align_corners = False) by 3 and by 2: half-pixel sources, "
         "clamped at the borders")
def _(b, x):
    x = b.conv("conv1", upsample(x, 2), 3, 3, pad=1)
    return upsample(upsample(x, 3, bilinear=True), 2, bilinear=True)


@fixture("unet_tiny", "UNetTiny", (8, 6, 3),
         "conv(4, 3x3, pad = 1), relu,\n"
         "    concat {\n"
         "        [identity],\n"
         "        [maxpool(2x2), conv(8, 3x3, pad = 1), relu, deconv(4, 2x2, stride = 2)],\n"
         "    },\n"
         "    conv(2, 1x1)",
         "one U-Net level: a max-pooled path up-convolved back (2x2, stride 2) and concatenated with the skip")
def _(b, x):
    x = relu(b.conv("conv1", x, 4, 3, pad=1))
    y = relu(b.conv("conv2", maxpool(x, 2), 8, 3, pad=1))
    y = b.deconv("deconv1", y, 4, 2, stride=2)
    return b.conv("conv3", torch.cat([x, y], dim=1), 2, 1)


# ----------------------------------------------------------------------------


def cnn_source(fx):
    shape = fx["shape"]
    inp = "x".join(str(v) for v in shape)
    if fx["width"] is not None:
        inp += f", width = {fx['width']}"
    lines = [
        f"// Fixture `{fx['name']}` (written by scripts/make_fixtures.py; do not edit).",
        f"// Checks: {fx['purpose']}.",
        f"// Weights: {fx['name']}.safetensors; batch of 2 inputs/outputs: {fx['name']}.io.safetensors.",
        "",
    ]
    if fx["blocks"]:
        lines.append(fx["blocks"])
    lines.append(f"/// Fixture {fx['name']}.")
    lines.append(f"pub {fx['net']}({inp}) {{")
    lines.append(f"    {fx['body']},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_cnnjit_layout(t):
    """NCHW -> NHWC; (N, F) stays."""
    if t.dim() == 4:
        return t.permute(0, 2, 3, 1).contiguous()
    assert t.dim() == 2
    return t.contiguous()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "fixtures")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(BASE_SEED)

    names = [fx["name"] for fx in FIXTURES]
    assert len(set(names)) == len(names), "duplicate fixture names"
    manifest = []
    for index, fx in enumerate(FIXTURES):
        seed = BASE_SEED + 1000 * index
        torch.manual_seed(seed)
        b = Builder(seed)
        shape = fx["shape"]
        if len(shape) == 3:
            h, w, c = shape
            x = b.randn(BATCH, c, h, w, scale=fx["scale"])  # NCHW for PyTorch
        else:
            x = b.randn(BATCH, shape[0], scale=fx["scale"])
        with torch.no_grad():
            y = fx["fn"](b, x)
        assert torch.isfinite(y).all(), fx["name"]
        xin = to_cnnjit_layout(x)
        yout = to_cnnjit_layout(y)
        base = os.path.join(out_dir, fx["name"])
        with open(base + ".cnn", "w") as f:
            f.write(cnn_source(fx))
        save_file(dict(sorted(b.tensors.items())), base + ".safetensors")
        save_file({"input": xin, "output": yout}, base + ".io.safetensors")
        manifest.append(dict(
            name=fx["name"], net=fx["net"], purpose=fx["purpose"],
            input_shape=list(xin.shape), output_shape=list(yout.shape),
            weights={k: list(v.shape) for k, v in sorted(b.tensors.items())},
            seed=seed,
        ))
        print(f"{fx['name']:24s} {fx['net']:22s} in {tuple(xin.shape)} out {tuple(yout.shape)} "
              f"{len(b.tensors)} tensors")

    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(dict(batch=BATCH, layout="NHWC per batch ([2, H, W, C]) or [2, N] for flat tensors",
                       generator="scripts/make_fixtures.py", fixtures=manifest), f, indent=1)
        f.write("\n")
    write_readme(out_dir, manifest)


def write_readme(out_dir, manifest):
    rows = []
    for m in manifest:
        fx = next(f for f in FIXTURES if f["name"] == m["name"])
        src = " ".join(line.strip() for line in fx["body"].splitlines())
        if fx["width"] is not None:
            src = f"(width = {fx['width']}) " + src
        rows.append(f"| `{m['name']}` | `{m['net']}` | {m['purpose']} | `{src}` | "
                    f"{tuple(m['input_shape'])} -> {tuple(m['output_shape'])} |")
    text = f"""# Numerical fixtures

Written by `scripts/make_fixtures.py` with PyTorch; do not edit by hand.
Regenerate (deterministic: rerunning gives byte-identical files) from the
repository root with

```sh
/work/.venv/bin/python scripts/make_fixtures.py
```

(any Python with torch, numpy and safetensors works:
`python3 scripts/make_fixtures.py [OUT_DIR]`). Python is never needed to build
or test the Rust code: the files are committed.

## Files

For every fixture `NAME`:

| file | contents |
|---|---|
| `NAME.cnn` | one net (UpperCamelCase name) in the `cnn!` language, blocks included |
| `NAME.safetensors` | float32 weights under the names `cnn!` gives the layers, PyTorch layouts: `convN.weight` `[K, Cin/g, Fh, Fw]`, `convN.bias` `[K]`, `dwconvN.weight` `[C m, 1, Fh, Fw]`, `deconvN.weight` `[Cin, K, Fh, Fw]` (`ConvTranspose2d`'s layout), `bnN.weight`/`bias`/`running_mean`/`running_var` `[C]`, `denseN.weight` `[N, Nin]` (after `flatten`: columns in PyTorch's channel, height, width order), `denseN.bias` `[N]`. Exactly the tensors the net uses, no others (a net without parameters gets a valid safetensors file with no tensors). |
| `NAME.io.safetensors` | `input` and `output`, float32, a batch of 2: `[2, H, W, C]` (HWC per image, as cnnjit lays out volumes) or `[2, N]` for flat tensors. PyTorch computed them in NCHW; they were permuted to NHWC before saving. |

`manifest.json` lists the same fixtures with net names, shapes, weight tensor
shapes and seeds. `python3 scripts/check_fixtures.py [PATH/TO/cnnjit]` checks
every fixture against `cnnjit summary --json` (input/output shapes, the layers
that have parameters and their counts).

The reference is `torch.nn.functional` in inference mode (bn as
`F.batch_norm(training=False)`, i.e. `BatchNorm2d.eval()`; dropout omitted),
`torch.nn.LocalResponseNorm` for `lrn`; `pad = same` is TF-style (extra pad
at the bottom/right, done with `F.pad`). Weights are seeded random (conv/dense
N(0, 1/fan_in), biases N(0, 0.2^2)); every `bn` has random weight U(0.5, 1.5),
bias N(0, 0.3^2), running_mean N(0, 0.3^2) and running_var U(0.5, 1.5), so
folding is really exercised. Inputs are N(0, s^2) with the scale s given per
fixture (larger for activations, softmax and lrn).
Float32 results; compare with a tolerance (e.g. 1e-4 relative + 1e-5 absolute).

## Fixtures

| fixture | net | checks | net body | input -> output (batch of 2) |
|---|---|---|---|---|
{chr(10).join(rows)}
"""
    # The images' section is scripts/make_image_fixtures.py's: keep it.
    path = os.path.join(out_dir, "README.md")
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if "\n## Images" in old:
            text += old[old.index("\n## Images"):]
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()

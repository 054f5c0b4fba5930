#!/usr/bin/env python3
"""Train the lecture's LeNet-5 (examples/nets/lenet5.cnn) on scikit-learn's digits.

Usage (from the repository root):

    /work/.venv/bin/python scripts/train_lenet_digits.py [OUT_DIR]

OUT_DIR defaults to examples/data/. Needs torch, numpy, safetensors and
scikit-learn; about half a minute on one CPU thread. Deterministic: rerunning
gives the same files.

Data: sklearn.datasets.load_digits (1,797 8x8 images, values 0..16), scaled to
[0, 1] and upsampled to 32x32 with bilinear interpolation
(F.interpolate(mode="bilinear", align_corners=False)); split with
train_test_split(test_size=0.25, random_state=0, stratify=labels): 1,347 train
and 450 test images.

Net (exactly examples/nets/lenet5.cnn): conv(6, 5x5), tanh, avgpool(2x2,
stride 2), conv(16, 5x5), tanh, avgpool(2x2, stride 2), flatten, dense(120),
tanh, dense(84), tanh, dense(10), softmax. Trained with cross-entropy on the
logits (the softmax has no weights); the saved net ends in softmax.

Writes to OUT_DIR:

  lenet5_digits.safetensors  float32 weights under the cnn! names: conv1.weight
                             [6,1,5,5], conv1.bias, conv2.weight [16,6,5,5],
                             conv2.bias, dense1.weight [120,400] (columns in
                             PyTorch's C,H,W flatten order), dense1.bias,
                             dense2.weight [84,120], dense2.bias, dense3.weight
                             [10,84], dense3.bias;
  digits_test.safetensors    images [N,32,32,1] float32 (HWC per image),
                             labels [N] float32 (the digit 0..9, exact),
                             pytorch_probabilities [N,10] float32 (PyTorch's
                             softmax outputs of the trained net);
  lenet5_digits.json         {"test_accuracy", "n_test", "n_train", "seed",
                             "epochs", ...}.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 0
EPOCHS = 40
BATCH_SIZE = 32
LR = 2e-3


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.dense1 = nn.Linear(400, 120)
        self.dense2 = nn.Linear(120, 84)
        self.dense3 = nn.Linear(84, 10)

    def logits(self, x):  # x: NCHW [N, 1, 32, 32]
        x = F.avg_pool2d(torch.tanh(self.conv1(x)), 2, 2)
        x = F.avg_pool2d(torch.tanh(self.conv2(x)), 2, 2)
        x = x.flatten(1)  # (C, H, W) order
        x = torch.tanh(self.dense1(x))
        x = torch.tanh(self.dense2(x))
        return self.dense3(x)

    def forward(self, x):
        return torch.softmax(self.logits(x), dim=1)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "examples", "data")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0  # [1797, 8, 8] in [0, 1]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.25, random_state=0, stratify=labels)

    def upsample(a):
        t = torch.from_numpy(a).unsqueeze(1)  # [N, 1, 8, 8]
        return F.interpolate(t, size=(32, 32), mode="bilinear", align_corners=False).contiguous()

    xtr, xte = upsample(x_train), upsample(x_test)
    ytr, yte = torch.from_numpy(y_train), torch.from_numpy(y_test)

    model = LeNet5()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    gen = torch.Generator().manual_seed(SEED)
    n = xtr.shape[0]
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, BATCH_SIZE):
            idx = perm[i:i + BATCH_SIZE]
            loss = F.cross_entropy(model.logits(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * idx.numel()
        sched.step()
        if epoch % 10 == 9 or epoch == EPOCHS - 1:
            model.eval()
            with torch.no_grad():
                acc = (model.logits(xte).argmax(1) == yte).float().mean().item()
            print(f"epoch {epoch + 1:3d}  train loss {total / n:.4f}  test accuracy {acc:.4f}")

    model.eval()
    with torch.no_grad():
        probs = model(xte)
    pred = probs.argmax(1)
    correct = int((pred == yte).sum().item())
    accuracy = correct / int(yte.numel())

    weights = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    assert sorted(weights) == sorted(
        f"{l}.{f}" for l in ["conv1", "conv2", "dense1", "dense2", "dense3"] for f in ["weight", "bias"])
    save_file(dict(sorted(weights.items())), os.path.join(out_dir, "lenet5_digits.safetensors"))
    save_file({
        "images": xte.permute(0, 2, 3, 1).contiguous(),          # [N, 32, 32, 1] HWC
        "labels": yte.to(torch.float32).contiguous(),              # [N] digit as float32
        "pytorch_probabilities": probs.to(torch.float32).contiguous(),  # [N, 10]
    }, os.path.join(out_dir, "digits_test.safetensors"))
    meta = {
        "test_accuracy": accuracy,
        "test_correct": correct,
        "n_test": int(xte.shape[0]),
        "n_train": int(n),
        "seed": SEED,
        "epochs": EPOCHS,
        "batch_size": BATCH_SIZE,
        "optimizer": f"Adam lr={LR}, cosine annealing to 0 over the epochs",
        "loss": "cross-entropy on the logits (the saved net ends in softmax)",
        "split": "sklearn train_test_split(test_size=0.25, random_state=0, stratify=labels)",
        "preprocessing": "load_digits images / 16, bilinear upsampling 8x8 -> 32x32 "
                         "(F.interpolate, align_corners=False)",
        "net": "examples/nets/lenet5.cnn",
        "labels_dtype": "float32",
    }
    with open(os.path.join(out_dir, "lenet5_digits.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"test accuracy {accuracy:.4f} ({correct}/{xte.shape[0]})")


if __name__ == "__main__":
    main()

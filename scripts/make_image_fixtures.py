#!/usr/bin/env python3
"""Write the image fixtures of `cnnjit::image` and torchvision's preprocessing of them.

Usage (from the repository root):

    /work/peers-venv/bin/python scripts/make_image_fixtures.py

Needs torch, torchvision, Pillow and numpy. Deterministic: rerunning gives the
same files (the images are synthetic, drawn from a seeded generator). Writes
to tests/fixtures/images/ (described in its README.md) and one digit image to
examples/data/.

Every expected tensor is torchvision's pipeline on the image Pillow decodes:
`Image.open(f).convert(MODE)` (alpha dropped, palette expanded), then
`transforms.Resize(short)` (Pillow's antialiased bilinear), `CenterCrop`,
`ToTensor` ([0, 1]) and `Normalize(mean, std)`, permuted from CHW to HWC and
saved as float32 C-order .npy. Each case's parameters are in cases.json, which
the Rust tests read.
"""
import json
import os
import struct
import zlib

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "images")


def photo_like(rng, width, height, noise=6.0):
    """A smooth colour field with edges, disks and noise: what resampling sees in photos."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 128 + 90 * np.sin(x / 17.0) * np.cos(y / 23.0)
    g = 100 + 80 * np.cos((x + y) / 31.0)
    b = 60 + 0.5 * x * 255 / width
    img = np.stack([r, g, b], axis=-1)
    for _ in range(6):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rad = rng.uniform(8, 40)
        colour = rng.uniform(0, 255, size=3)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < rad ** 2
        img[mask] = colour
    img[:, width // 3: width // 3 + 2] = 255  # a sharp vertical line
    img += rng.normal(0, noise, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path, width, height, bit_depth, colour_type, rows):
    """A PNG written by hand (for modes Pillow does not write): rows are bytes, filter 0."""
    raw = b"".join(b"\x00" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
                + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


def torchvision_tensor(path, mode, short, crop, mean, std):
    img = Image.open(path).convert(mode)
    steps = []
    if short is not None:
        steps += [transforms.Resize(short), transforms.CenterCrop(crop)]
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    t = transforms.Compose(steps)(img)
    return t.permute(1, 2, 0).contiguous().numpy().astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(0)
    cases = []

    def case(name, image, mode, short, crop, mean, std, bgr=False):
        x = torchvision_tensor(os.path.join(OUT, image), mode, short, crop, mean, std)
        if bgr:
            x = x[:, :, ::-1].copy()
        np.save(os.path.join(OUT, name + ".npy"), x)
        cases.append({"name": name, "image": image, "grey": mode == "L", "bgr": bgr,
                      "resize": short, "crop": crop, "mean": mean, "std": std,
                      "shape": list(x.shape)})

    # A JPEG photo of odd size, upscaled 1.28x (300x200 -> 384x256) by the imagenet preset.
    Image.fromarray(photo_like(rng, 300, 200)).save(
        os.path.join(OUT, "photo.jpg"), quality=90, subsampling=0)
    case("photo_imagenet", "photo.jpg", "RGB", 256, [224, 224], IMAGENET_MEAN, IMAGENET_STD)
    # A large PNG photo downscaled by a factor 4.7 (the antialiasing case), to BGR.
    Image.fromarray(photo_like(rng, 600, 451, noise=1.0)).save(os.path.join(OUT, "large.png"))
    case("large_imagenet", "large.png", "RGB", 96, [80, 96], IMAGENET_MEAN, IMAGENET_STD, bgr=True)
    # A PNG with alpha (dropped, as convert("RGB") does), upscaled.
    rgba = np.concatenate([photo_like(rng, 45, 61), rng.integers(0, 256, (61, 45, 1), np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(OUT, "alpha.png"))
    case("alpha_custom", "alpha.png", "RGB", 70, [64, 63], [0.5, 0.4, 0.3], [0.25, 0.2, 0.3])
    # A grey PNG, downscaled and cropped, one channel.
    grey = photo_like(rng, 64, 47)[:, :, 0]
    Image.fromarray(grey, "L").save(os.path.join(OUT, "grey.png"))
    case("grey_custom", "grey.png", "L", 40, [32, 32], [0.5], [0.25])
    # The same RGB photo made grey by Pillow's convert("L") (ITU-R 601-2 luma).
    case("photo_grey", "photo.jpg", "L", 30, [28, 28], [0.0], [1.0])

    # Modes that need a conversion, with Pillow's decoding as the expectation (no resize).
    pal = Image.fromarray(photo_like(rng, 16, 12)).quantize(colors=16, dither=Image.Dither.NONE)
    pal.save(os.path.join(OUT, "palette.png"))
    case("palette_none", "palette.png", "RGB", None, None, [0.0] * 3, [1.0] * 3)
    la = np.stack([photo_like(rng, 16, 12)[:, :, 1], rng.integers(0, 256, (12, 16), np.uint8)], -1)
    Image.fromarray(la, "LA").save(os.path.join(OUT, "grey_alpha.png"))
    case("grey_alpha_none", "grey_alpha.png", "RGB", None, None, [0.0] * 3, [1.0] * 3)
    rgb16 = rng.integers(0, 65536, (12, 16, 3)).astype(">u2")
    write_png(os.path.join(OUT, "rgb16.png"), 16, 12, 16, 2, [r.tobytes() for r in rgb16])
    case("rgb16_none", "rgb16.png", "RGB", None, None, [0.0] * 3, [1.0] * 3)
    cmyk = Image.fromarray(photo_like(rng, 16, 16)).convert("CMYK")
    cmyk.save(os.path.join(OUT, "cmyk.jpg"), quality=95)
    case("cmyk_none", "cmyk.jpg", "RGB", None, None, [0.0] * 3, [1.0] * 3)
    # Grey 16-bit: Pillow's I;16 -> RGB clips at 255 instead of scaling, so no
    # expectation from Pillow; the Rust test checks v >> 8 by hand.
    grey16 = (np.arange(16 * 12).reshape(12, 16) * 341).astype(">u2")
    write_png(os.path.join(OUT, "grey16.png"), 16, 12, 16, 0, [r.tobytes() for r in grey16])

    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")

    # A held-out digit for the digits demo (examples/data/digits_test.safetensors,
    # 32x32 in [0, 1]) as an 8-bit grey PNG.
    path = os.path.join(ROOT, "examples", "data", "digits_test.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    def tensor(name):
        meta = header[name]
        a, b = meta["data_offsets"]
        return np.frombuffer(data[a:b], dtype=np.float32).reshape(meta["shape"])
    images, labels = tensor("images"), tensor("labels")
    i = 7
    digit = np.clip(np.rint(images[i, :, :, 0] * 255), 0, 255).astype(np.uint8)
    name = f"digit_{int(labels[i])}.png"
    Image.fromarray(digit, "L").save(os.path.join(ROOT, "examples", "data", name))
    print("wrote", len(cases), "cases and examples/data/" + name)


if __name__ == "__main__":
    main()

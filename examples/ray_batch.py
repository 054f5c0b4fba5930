"""Classify a folder of images with cnnjit on a Ray cluster (Ray Data).

    pip install "ray[data]" pillow ./python      # cnnjit's wheel, see python/README.md
    python examples/ray_batch.py IMAGES/ --net examples/nets/lenet5.cnn \
        --weights examples/data/lenet5_digits.safetensors --workers 2 --output results/

`ray.data.read_images` reads the folder, `map_batches` runs `Classifier` on
an actor pool of `--workers` processes (each builds its model once, in its
constructor, and then classifies batch after batch), and the rows (path,
class index, class name with `--labels`, score) are written as CSV files to
`--output` or printed.

cnnjit is a library embedded in each worker: Ray schedules, cnnjit runs the
net on the worker's cores (`--threads` per worker). The same script runs on a
multi-node cluster: start it on a node of the cluster with `--address auto`
(or submit it with `ray job submit -- python examples/ray_batch.py ...`), with
the images on storage every node reads (a shared file system, or an
`s3://...` folder, which `read_images` reads as well) and the cnnjit wheel
installed on every node (or shipped with the job:
`--runtime-env-json '{"pip": ["cnnjit"]}'`).

Preprocessing is done here in NumPy on the pixels `read_images` decoded
(8-bit pixels scaled to [0, 1], channels converted, bilinear resize to the
net's input as PyTorch's `F.interpolate(align_corners=False)`).
`cnnjit.preprocess` decodes a file's path or bytes itself (e.g. the rows of
`ray.data.read_binary_files`) with torchvision's transforms; use the
preprocessing your net was trained with.
"""

import argparse
import os

import numpy as np


def resize_bilinear(image, height, width):
    """`image` (H, W, C) float32 resized to (height, width, C) as
    `F.interpolate(mode="bilinear", align_corners=False)` does (half-pixel
    centres, edges clamped)."""

    def axis(out_size, in_size):
        scale = in_size / out_size
        x = np.maximum((np.arange(out_size) + 0.5) * scale - 0.5, 0.0)
        low = np.minimum(np.floor(x).astype(np.int64), in_size - 1)
        high = np.minimum(low + 1, in_size - 1)
        return low, high, (x - low).astype(np.float32)

    if image.shape[:2] == (height, width):
        return image
    y0, y1, fy = axis(height, image.shape[0])
    x0, x1, fx = axis(width, image.shape[1])
    fy, fx = fy[:, None, None], fx[None, :, None]
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def preprocess(pixels, shape):
    """Decoded 8-bit pixels, (H, W) grey or (H, W, 3/4) RGB(A), as one input
    of `shape` (H, W, C): values in [0, 1], C channels (grey for 1, RGB for
    3), resized bilinearly."""
    height, width, channels = shape
    image = np.asarray(pixels, dtype=np.float32) / 255.0
    if image.ndim == 2:
        image = image[:, :, None]
    image = image[:, :, :3]  # alpha dropped
    if channels == 1 and image.shape[2] == 3:
        image = image @ np.array([[0.299], [0.587], [0.114]], np.float32)
    elif channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return resize_bilinear(image, height, width)


class Classifier:
    """What each Ray worker runs: the model is built once per worker, in the
    constructor, and then called on batch after batch."""

    def __init__(self, net, weights, labels=None, threads=1):
        import cnnjit

        self.model = cnnjit.Model(net, weights=weights, threads=threads)
        self.labels = labels

    def __call__(self, batch):
        shape = self.model.input_shape
        inputs = np.stack([preprocess(pixels, shape) for pixels in batch["image"]])
        scores = self.model(inputs)
        index = scores.argmax(axis=1)
        out = {
            "path": np.asarray(batch["path"]),
            "label": index,
            "score": scores[np.arange(len(index)), index],
            "worker": np.full(len(index), os.getpid()),
        }
        if self.labels is not None:
            out["name"] = np.asarray([self.labels[i] for i in index])
        return out


def classify(folder, net, weights, labels=None, workers=2, threads=1, batch_size=16):
    """The dataset of results: one row per image of `folder`. The cluster
    needs CPUs beyond the `workers * threads` the workers hold, for reading."""
    import ray

    return classify_images(
        ray.data.read_images(folder, include_paths=True), net, weights, labels, workers, threads, batch_size
    )


def classify_images(images, net, weights, labels=None, workers=2, threads=1, batch_size=16):
    """`classify` on a dataset of images already read (columns `image` and
    `path`, as `read_images(..., include_paths=True)` gives them)."""
    return images.map_batches(
        Classifier,
        fn_constructor_kwargs={"net": net, "weights": weights, "labels": labels, "threads": threads},
        batch_size=batch_size,
        concurrency=workers,
        num_cpus=threads,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a folder of PNG / JPEG images (local or s3://...)")
    parser.add_argument("--net", required=True, help="a .cnn file (or .onnx, with no --weights)")
    parser.add_argument("--weights", help="the net's safetensors weights")
    parser.add_argument("--labels", help="class names, one per line")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (actors), each with its model")
    parser.add_argument("--threads", type=int, default=1, help="cores per worker")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--output", help="write CSV files to this folder instead of printing")
    parser.add_argument("--address", help="a running cluster's address (auto: the one this node is in)")
    args = parser.parse_args()

    import ray

    if args.address:
        ray.init(address=args.address)
    else:
        # A local cluster: a CPU slot for each worker's threads and one for
        # the tasks reading images (with every slot held by a worker, reading
        # would wait forever).
        ray.init(num_cpus=args.workers * args.threads + 1)
    labels = None
    if args.labels:
        with open(args.labels) as f:
            labels = [line.strip() for line in f]
    results = classify(
        args.folder, args.net, args.weights, labels, args.workers, args.threads, args.batch_size
    ).drop_columns(["worker"])
    if args.output:
        results.write_csv(args.output)
    else:
        for row in results.iter_rows():
            name = f" {row['name']}" if "name" in row else ""
            print(f"{row['path']}\t{row['label']}{name}\t{row['score']:.4f}")


if __name__ == "__main__":
    main()

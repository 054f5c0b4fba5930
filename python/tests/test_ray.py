"""examples/ray_batch.py on a local Ray cluster of two workers classifies a
folder of 96 images exactly as one process does (marked `ray`; skipped where
`ray[data]` and Pillow are not installed)."""

import importlib
import sys

import numpy as np
import pytest

from conftest import DIGITS, LENET, ROOT, read_safetensors

ray = pytest.importorskip("ray")
Image = pytest.importorskip("PIL.Image")
pytestmark = pytest.mark.ray

N = 96


EXAMPLES = str(ROOT / "examples")


def load_example():
    """examples/ray_batch.py as the module `ray_batch` (which Ray's workers
    import too: they find it on the PYTHONPATH that `ray.init` gives them)."""
    sys.path.insert(0, EXAMPLES)
    try:
        return importlib.import_module("ray_batch")
    finally:
        sys.path.remove(EXAMPLES)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The first N test digits as 8-bit grey PNGs: even ones at the net's
    32x32, odd ones upscaled to 48x48 (the example resizes them back)."""
    test = read_safetensors(DIGITS / "digits_test.safetensors")
    images, labels = test["images"][:N, :, :, 0], test["labels"][:N].astype(int)
    out = tmp_path_factory.mktemp("digits")
    truth = {}
    for i, (image, label) in enumerate(zip(images, labels)):
        png = Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L")
        if i % 2:
            png = png.resize((48, 48), Image.BILINEAR)
        path = out / f"digit_{i:03d}.png"
        png.save(path)
        truth[str(path)] = label
    return out, truth


def test_two_ray_workers_give_the_single_process_results(folder):
    folder, truth = folder
    example = load_example()
    weights = str(DIGITS / "lenet5_digits.safetensors")

    # One process, no Ray: every file decoded by Pillow and classified.
    alone = example.Classifier(str(LENET), weights)
    paths = sorted(truth)
    expected = alone({"image": [np.asarray(Image.open(p)) for p in paths], "path": paths})
    expected = {p: (l, s) for p, l, s in zip(expected["path"], expected["label"], expected["score"])}

    # Two workers of one CPU each, and CPUs left for the tasks reading the
    # images (Ray counts CPUs as slots, not cores).
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": EXAMPLES}},
    )
    # Both workers up before the first batch, and all six batches read
    # before any is classified: each takes microseconds, so batches that
    # trickle in from the reading tasks would all go to whichever worker is
    # free first, the same one each time.
    ray.data.DataContext.get_current().wait_for_min_actors_s = 120
    try:
        images = ray.data.read_images(str(folder), include_paths=True, override_num_blocks=N // 16)
        rows = example.classify_images(
            images.materialize(), str(LENET), weights, workers=2, batch_size=16
        ).take_all()
    finally:
        ray.shutdown()

    assert sorted(r["path"].split("/")[-1] for r in rows) == sorted(p.split("/")[-1] for p in paths)
    for row in rows:
        path = str(folder / row["path"].split("/")[-1])
        label, score = expected[path]
        assert row["label"] == label and row["score"] == score, path
    assert len({row["worker"] for row in rows}) == 2
    # And the preprocessing is the net's: the digits are still recognised.
    correct = sum(row["label"] == truth[str(folder / row["path"].split("/")[-1])] for row in rows)
    assert correct >= 0.9 * N

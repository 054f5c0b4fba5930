"""One model called from several Python threads gives each call the result it
gives alone (calls take turns on the model's arena, the GIL released)."""

import threading

import numpy as np

import cnnjit
from conftest import DIGITS, LENET, read_safetensors


def test_two_threads_on_one_model_give_the_single_thread_results():
    images = read_safetensors(DIGITS / "digits_test.safetensors")["images"].reshape(-1, 32, 32, 1)
    model = cnnjit.Model(LENET, weights=DIGITS / "lenet5_digits.safetensors", threads=2)
    batches = [images[i : i + 16] for i in range(0, 448, 16)]
    alone = [model(b) for b in batches]

    results = {}

    def work(worker):
        # Each thread runs every batch, in its own order, several times.
        order = list(range(len(batches)))[worker::2] + list(range(len(batches)))[1 - worker :: 2]
        for repeat in range(3):
            for i in order:
                results[(worker, repeat, i)] = model(batches[i])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 * 3 * len(batches)
    for (_, _, i), output in results.items():
        assert np.array_equal(output, alone[i])


def test_models_of_different_thread_counts_agree_bitwise():
    images = read_safetensors(DIGITS / "digits_test.safetensors")["images"].reshape(-1, 32, 32, 1)
    weights = DIGITS / "lenet5_digits.safetensors"
    one = cnnjit.Model(LENET, weights=weights, threads=1)(images)
    two = cnnjit.Model(LENET, weights=weights, threads=2)(images)
    assert np.array_equal(one, two)

"""Colored MNIST (mubench/tasks/colored_mnist.py): colour assignment, painting, and the real task."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from helpers import MIRROR_SKIP, REAL_MIRROR
from mubench.data.mnist import load_mnist
from mubench.tasks import tasks
from mubench.tasks.colored_mnist import PALETTE, ColoredMNIST, assign_colours, build_colored_mnist, colourise

HAS_REAL_MNIST = (REAL_MIRROR / "mnist").is_dir()
needs_real_mnist = pytest.mark.skipif(not HAS_REAL_MNIST, reason=f"{MIRROR_SKIP}mnist/ in {REAL_MIRROR}")

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.setenv("MUBENCH_MIRROR", str(tmp_path / "empty-mirror"))


def _labels(counts: dict[int, int], seed: int = 0) -> np.ndarray:
    labels = np.concatenate([np.full(n, k) for k, n in counts.items()]).astype(np.int64)
    return np.random.default_rng(seed).permutation(labels)  # classes interleaved, as in real data


def _other_colour_counts(labels, colours, label):
    """Sorted non-zero counts of the colours other than `label` among the samples of `label`."""
    counts = np.bincount(colours[labels == label], minlength=10)
    counts[label] = 0
    return sorted(counts[counts > 0].tolist())


def test_assign_colours_aligned_counts_are_floor_of_n_times_ratio():
    labels = _labels({0: 100, 1: 37, 2: 10, 3: 1})
    colours = assign_colours(labels, 0.9, np.random.default_rng(0))
    assert colours.shape == labels.shape and colours.dtype == np.int64
    aligned = {k: int(np.sum((labels == k) & (colours == k))) for k in range(4)}
    assert aligned == {0: 90, 1: 33, 2: 9, 3: 0}  # floor(90.0), floor(33.3), floor(9.0), floor(0.9)
    assert colours.min() >= 0 and colours.max() <= 9


def test_assign_colours_remainder_in_contiguous_chunks_never_own_colour():
    labels = _labels({0: 100, 1: 37, 2: 10, 3: 1})
    colours = assign_colours(labels, 0.9, np.random.default_rng(0))
    # ReBias: the remainder is dealt in chunks of ceil(rest / 9) over shuffled other colours
    assert _other_colour_counts(labels, colours, 0) == [2, 2, 2, 2, 2]  # 10 left, chunk 2
    assert _other_colour_counts(labels, colours, 1) == [1, 1, 1, 1]  # 4 left, chunk 1
    assert _other_colour_counts(labels, colours, 2) == [1]
    assert _other_colour_counts(labels, colours, 3) == [1]


def test_assign_colours_even_spread_over_the_nine_others():
    labels = _labels({k: 900 for k in range(10)})
    colours = assign_colours(labels, 0.1, np.random.default_rng(3))
    for k in range(10):
        counts = np.bincount(colours[labels == k], minlength=10)
        assert counts[k] == 90
        assert counts.tolist() == [90] * 10  # 810 left = 9 chunks of 90, one per other colour


def test_assign_colours_is_a_function_of_the_generator():
    labels = _labels({k: 50 for k in range(10)})
    a = assign_colours(labels, 0.5, np.random.default_rng(7))
    b = assign_colours(labels, 0.5, np.random.default_rng(7))
    c = assign_colours(labels, 0.5, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # which samples are aligned is drawn, not the first ones
    assert np.sum(a == labels) == np.sum(c == labels) == 250


def test_colourise_scales_the_palette_colour_by_grey_level():
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 3, 4] = 255, 128
    images[1, 10, 20] = 200
    out = colourise(images, np.array([3, 6]))
    assert out.shape == (2, 3, 28, 28) and out.dtype == np.uint8
    # colour 3 is (225, 225, 0): full grey gives the colour, 128/255 of 225 = 112.94 -> 113
    assert out[0, :, 0, 0].tolist() == [225, 225, 0]
    assert out[0, :, 3, 4].tolist() == [113, 113, 0]
    # colour 6 is (255, 128, 0): 200/255 of it = (200, 100.39, 0) -> (200, 100, 0)
    assert out[1, :, 10, 20].tolist() == [200, 100, 0]
    # black stays black
    assert int(out[0].sum()) == 225 * 2 + 113 * 2
    assert int(out[1].sum()) == 300


def test_palette_is_rebias_colour_map():
    assert PALETTE.shape == (10, 3)
    assert PALETTE[0].tolist() == [255, 0, 0] and PALETTE[9].tolist() == [128, 128, 128]
    assert len({tuple(c) for c in PALETTE.tolist()}) == 10


def test_build_colored_mnist_on_a_fake_mnist():
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (1000, 28, 28), dtype=np.uint8),
              "train_labels": (np.arange(1000) % 10).astype(np.uint8),
              "test_images": rng.integers(0, 256, (900, 28, 28), dtype=np.uint8),
              "test_labels": (np.arange(900) % 10).astype(np.uint8)}
    data = build_colored_mnist(arrays, 0.99, 0.1, seed=0)
    assert tuple(data.train.x.shape) == (1000, 3, 28, 28) and data.train.x.dtype == torch.uint8
    assert tuple(data.test.x.shape) == (900, 3, 28, 28)
    assert data.train.y.tolist() == arrays["train_labels"].tolist()
    for pool, images in ((data.train, arrays["train_images"]), (data.test, arrays["test_images"])):
        colours, aligned = pool.attributes["colour"].numpy(), pool.attributes["bias_aligned"].numpy()
        np.testing.assert_array_equal(aligned, (colours == pool.y.numpy()).astype(np.int64))
        np.testing.assert_array_equal(pool.x.numpy(), colourise(images, colours))
    assert int(data.train.attributes["bias_aligned"].sum()) == 10 * 99  # floor(100 * 0.99) per class
    assert int(data.test.attributes["bias_aligned"].sum()) == 10 * 9  # floor(90 * 0.1) per class
    again = build_colored_mnist(arrays, 0.99, 0.1, seed=0)
    assert torch.equal(again.train.attributes["colour"], data.train.attributes["colour"])


def test_cmnist_is_registered_and_lists_the_four_files():
    task = tasks.get("cmnist")
    assert isinstance(task, ColoredMNIST)
    assert [f.name for f in task.data_files()] == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert [s.name for s in task.spec.source] == [f.name for f in task.data_files()]


def test_cmnist_data_status_reports_missing_files_from_an_empty_mirror():
    status = tasks.get("cmnist").data_status()
    assert not status.complete
    assert len(status.missing) == 4 and status.found == {}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The real Colored MNIST, built once per module in its own home (removed afterwards)."""
    if not HAS_REAL_MNIST:
        pytest.skip(f"{MIRROR_SKIP}mnist/ in {REAL_MIRROR}")
    home = tmp_path_factory.mktemp("cmnist-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUBENCH_HOME", str(home))
        mp.setenv("MUBENCH_OFFLINE", "1")
        mp.setenv("MUBENCH_MIRROR", str(REAL_MIRROR))
        mp.delenv("MUBENCH_CACHE", raising=False)  # this fixture checks the cache it writes
        data = ColoredMNIST().load()
        mnist = load_mnist()
        cached = sorted(p.name for p in (home / "prepared").iterdir())
        again = ColoredMNIST().load()  # from the safetensors cache
        yield data, mnist, cached, again
    shutil.rmtree(home, ignore_errors=True)


@needs_real_mnist
def test_real_cmnist_shapes_and_cache(real):
    data, mnist, cached, again = real
    assert tuple(data.train.x.shape) == (60000, 3, 28, 28) and data.train.x.dtype == torch.uint8
    assert tuple(data.test.x.shape) == (10000, 3, 28, 28)
    assert data.train.y.tolist()[:10] == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert any(name.startswith("cmnist-") and name.endswith(".safetensors") for name in cached)
    assert torch.equal(again.train.x, data.train.x)
    assert torch.equal(again.test.attributes["colour"], data.test.attributes["colour"])


@needs_real_mnist
def test_real_cmnist_pixels_are_painted_mnist_digits(real):
    data, mnist, _, _ = real
    for part, pool in (("train", data.train), ("test", data.test)):
        idx = np.array([0, 1, 2, 777, len(pool) - 1])
        expected = colourise(mnist[f"{part}_images"][idx], pool.attributes["colour"].numpy()[idx])
        np.testing.assert_array_equal(pool.x.numpy()[idx], expected)


@needs_real_mnist
def test_real_cmnist_train_is_99_percent_aligned(real):
    data, _, _, _ = real
    y, aligned = data.train.y.numpy(), data.train.attributes["bias_aligned"].numpy()
    assert abs(aligned.mean() - 0.99) < 0.001
    per_class = [int(aligned[y == k].sum()) for k in range(10)]
    assert per_class == [int(n * 0.99) for n in TRAIN_COUNTS]
    assert per_class == [5863, 6674, 5898, 6069, 5783, 5366, 5858, 6202, 5792, 5889]


@needs_real_mnist
def test_real_cmnist_test_colour_is_independent_of_label(real):
    data, _, _, _ = real
    y, colour = data.test.y.numpy(), data.test.attributes["colour"].numpy()
    aligned = data.test.attributes["bias_aligned"].numpy()
    assert abs(aligned.mean() - 0.1) < 0.005
    assert [int(aligned[y == k].sum()) for k in range(10)] == [98, 113, 103, 101, 98, 89, 95, 102, 97, 100]
    # every class sees every colour about one time in ten: the colour does not predict the label
    table = np.stack([np.bincount(colour[y == k], minlength=10) / np.sum(y == k) for k in range(10)])
    assert np.abs(table - 0.1).max() < 0.01
    per_class_aligned = np.diag(table)
    assert per_class_aligned.max() - per_class_aligned.min() < 0.005
    # and the train colour does predict it: the same table is almost the identity
    ty, tcolour = data.train.y.numpy(), data.train.attributes["colour"].numpy()
    train_table = np.stack([np.bincount(tcolour[ty == k], minlength=10) / np.sum(ty == k) for k in range(10)])
    assert np.diag(train_table).min() > 0.989

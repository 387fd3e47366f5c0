"""MNIST from its four IDX files (mubench/data/mnist.py): a tiny fake mirror, and the real one if present."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from helpers import MIRROR_SKIP, REAL_MIRROR
from mubench.data.idx import write_idx
from mubench.data.mnist import OFFICIAL, PARTS, MnistSource, PinnedIdx, load_mnist
from mubench.errors import CorruptDataError, MissingDataError
from mubench.hashing import sha256_of

HAS_REAL_MNIST = (REAL_MIRROR / "mnist").is_dir()
# Every test here checks the prepared-data cache it writes under its own home, not the shared one.
pytestmark = pytest.mark.usefixtures("private_model_cache")
needs_real_mnist = pytest.mark.skipif(not HAS_REAL_MNIST, reason=f"{MIRROR_SKIP}mnist/ in {REAL_MIRROR}")

GZIPPED = {"train_images", "test_labels"}  # the other two parts are written raw


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MUBENCH_HOME", str(home))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    return home


@pytest.fixture
def fake(tmp_path, monkeypatch, home):
    """A 20-train / 8-test fake MNIST in a tmp mirror, and a MnistSource pinning it."""
    mirror = tmp_path / "mirror"
    folder = mirror / "fakemnist"
    folder.mkdir(parents=True)
    monkeypatch.setenv("MUBENCH_MIRROR", str(mirror))
    rng = np.random.default_rng(1234)
    arrays = {
        "train_images": rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(20) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, size=(8, 28, 28), dtype=np.uint8),
        "test_labels": np.array([7, 2, 1, 0, 4, 1, 4, 9], dtype=np.uint8),
    }
    pinned, paths = {}, {}
    for part, array in arrays.items():
        gz = part in GZIPPED
        path = folder / (PARTS[part] + (".gz" if gz else ""))
        write_idx(path, array)
        data = path.read_bytes()
        raw = gzip.decompress(data) if gz else data
        gz_sha = _sha(data) if gz else "0" * 64  # the absent gz form of a raw part pins a dummy digest
        pinned[part] = PinnedIdx(gz_sha, _sha(raw), array.shape)
        paths[part] = path
    return MnistSource("fakemnist", pinned), arrays, paths


def _cache_file(home: Path, source: MnistSource) -> Path:
    return home / "prepared" / f"{source.folder}-{sha256_of(source.pinned)[:16]}.npz"


def test_load_returns_the_exact_arrays(fake):
    source, arrays, _ = fake
    loaded = load_mnist(source)
    assert set(loaded) == set(PARTS)
    for part, array in arrays.items():
        assert loaded[part].dtype == np.uint8
        assert loaded[part].shape == array.shape
        np.testing.assert_array_equal(loaded[part], array)


def test_load_caches_under_prepared_and_rereads_the_cache(fake, home):
    source, arrays, paths = fake
    load_mnist(source)
    cache = _cache_file(home, source)
    assert cache.is_file()
    assert [p.name for p in (home / "prepared").iterdir()] == [cache.name]  # no temporary left behind
    for path in paths.values():  # the raw files are gone: only the cache can answer now
        path.unlink()
    again = load_mnist(source)
    for part, array in arrays.items():
        np.testing.assert_array_equal(again[part], array)


def test_cache_is_keyed_by_the_pins(fake, home):
    # a source with other pins does not reuse the cache: it goes back to the files (and fails on them)
    source, _, _ = fake
    load_mnist(source)
    pins = dict(source.pinned)
    pins["train_labels"] = PinnedIdx(pins["train_labels"].gz_sha256, "f" * 64, pins["train_labels"].shape)
    other = MnistSource(source.folder, pins)
    assert _cache_file(home, other) != _cache_file(home, source)
    with pytest.raises(CorruptDataError):
        load_mnist(other)


@pytest.mark.parametrize("damage", [b"", b"not a zip file", "truncate"])
def test_damaged_cache_is_rebuilt(fake, home, damage):
    source, arrays, _ = fake
    load_mnist(source)
    cache = _cache_file(home, source)
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2] if damage == "truncate" else damage)
    again = load_mnist(source)
    np.testing.assert_array_equal(again["train_images"], arrays["train_images"])
    np.testing.assert_array_equal(again["test_labels"], arrays["test_labels"])
    assert cache.read_bytes() == data  # rebuilt to the same content


@pytest.mark.parametrize("part", ["train_images", "train_labels"], ids=["gzipped", "raw"])
def test_file_changed_after_pinning_is_refused_with_its_path(fake, home, part):
    source, _, paths = fake
    path = paths[part]
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError) as info:
        load_mnist(source)
    assert str(path) in str(info.value)
    assert not (home / "prepared").exists() or not any((home / "prepared").iterdir())  # nothing cached


def test_shape_mismatch_is_refused(fake):
    source, _, paths = fake
    pins = dict(source.pinned)
    old = pins["test_images"]
    pins["test_images"] = PinnedIdx(old.gz_sha256, old.raw_sha256, (9, 28, 28))
    with pytest.raises(CorruptDataError) as info:
        load_mnist(MnistSource(source.folder, pins))
    message = str(info.value)
    assert str(paths["test_images"]) in message
    assert "(8, 28, 28)" in message and "(9, 28, 28)" in message


def test_missing_part_is_named(fake):
    source, _, paths = fake
    paths["test_images"].unlink()
    with pytest.raises(MissingDataError) as info:
        load_mnist(source)
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)


def test_data_files_cover_both_forms_of_the_four_parts():
    files = OFFICIAL.data_files()
    assert [f.name for f in files] == [name + ".gz" for name in PARTS.values()]
    for data_file, part in zip(files, PARTS):
        assert data_file.folder == "mnist"
        assert [form.name for form in data_file.forms] == [PARTS[part] + ".gz", PARTS[part]]
        assert [form.sha256 for form in data_file.forms] == [OFFICIAL.pinned[part].gz_sha256,
                                                             OFFICIAL.pinned[part].raw_sha256]
        assert data_file.url.endswith("/" + PARTS[part] + ".gz")


@needs_real_mnist
def test_real_mnist(home, monkeypatch):
    monkeypatch.setenv("MUBENCH_MIRROR", str(REAL_MIRROR))
    data = load_mnist()
    assert data["train_images"].shape == (60000, 28, 28)
    assert data["test_images"].shape == (10000, 28, 28)
    assert data["train_labels"].shape == (60000,)
    assert data["test_labels"].shape == (10000,)
    assert all(a.dtype == np.uint8 for a in data.values())
    assert data["train_labels"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(data["train_labels"], minlength=10).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(data["test_labels"], minlength=10).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert data["train_images"].max() == 255 and data["train_images"].min() == 0
    assert _cache_file(home, OFFICIAL).is_file()

"""MNIST (LeCun, Cortes & Burges 1998) from its four official IDX files.

The files are read from the mirror (gzipped or not) or downloaded from torchvision's mirror of
the official files, and checked against pinned sha256 digests: the `.gz` digests are those of
the files whose md5s torchvision pins; the raw digests are of their decompressed contents.
The parsed arrays are cached under `MUBENCH_HOME/prepared` so later runs skip the gunzip.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

import numpy as np

from mubench import paths
from mubench.data.files import DataFile, FileForm, locate
from mubench.data.idx import read_idx
from mubench.errors import CorruptDataError
from mubench.hashing import sha256_of

_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/{}"
PARTS = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


@dataclass(frozen=True)
class PinnedIdx:
    """One of the four files: sha256 of its gzipped and raw forms, and its expected shape."""

    gz_sha256: str
    raw_sha256: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class MnistSource:
    """Where and what: the mirror folder and the pinned digests of the four files."""

    folder: str
    pinned: dict[str, PinnedIdx]  # keyed by PARTS' keys

    def data_file(self, part: str) -> DataFile:
        name, pin = PARTS[part], self.pinned[part]
        forms = (FileForm(name + ".gz", pin.gz_sha256), FileForm(name, pin.raw_sha256))
        return DataFile(self.folder, forms, _URL.format(name + ".gz"))

    def data_files(self) -> list[DataFile]:
        return [self.data_file(part) for part in PARTS]


OFFICIAL = MnistSource("mnist", {
    "train_images": PinnedIdx("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                              "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", (60000, 28, 28)),
    "train_labels": PinnedIdx("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                              "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", (60000,)),
    "test_images": PinnedIdx("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                             "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", (10000, 28, 28)),
    "test_labels": PinnedIdx("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                             "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", (10000,)),
})


def load_mnist(source: MnistSource = OFFICIAL) -> dict[str, np.ndarray]:
    """Return `train_images`, `train_labels`, `test_images`, `test_labels` as uint8 arrays."""
    cache = paths.prepared() / f"{source.folder}-{sha256_of(source.pinned)[:16]}.npz"
    if cache.is_file():
        try:
            with np.load(cache) as stored:
                return {key: stored[key] for key in PARTS}
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile):
            cache.unlink(missing_ok=True)  # a damaged cache is rebuilt from the verified files
    arrays = {part: _read_verified(source, part) for part in PARTS}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(cache)
    return arrays


def _read_verified(source: MnistSource, part: str) -> np.ndarray:
    path, _ = locate(source.data_file(part))
    array = read_idx(path)
    expected = source.pinned[part].shape
    if array.shape != expected or array.dtype != np.uint8:
        raise CorruptDataError(f"{path}: shape {array.shape} {array.dtype}, expected {expected} uint8")
    return array

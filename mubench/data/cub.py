"""CUB-200-2011 (Wah, Branson, Welinder, Perona & Belongie 2011, CNS-TR-2011-001) in its official layout.

The dataset is a folder `CUB_200_2011/` holding five metadata files, one line per image or class,
fields separated by one space: `images.txt` (`<image_id> <class folder>/<file>`),
`image_class_labels.txt` (`<image_id> <class_id>`), `train_test_split.txt` (`<image_id> <0|1>`),
`bounding_boxes.txt` (`<image_id> <x> <y> <width> <height>`, pixels) and `classes.txt`
(`<class_id> <class folder>`), and the photos as `images/<class folder>/<file>.jpg`.

Where. The folder is looked for under each mirror and then under MUBENCH_HOME/raw, by its official
name `CUB_200_2011` first and then by the name of the shared mirror's partial copy,
`cub-200-2011-10cls`. When neither exists, the official archive `CUB_200_2011.tgz` (pinned sha256,
found in a mirror or MUBENCH_HOME/raw, or downloaded from CaltechDATA when downloads are allowed)
is unpacked into MUBENCH_HOME/raw, never into a mirror: only its metadata files and images, with
tarfile's "data" filter (no absolute paths, no links or files outside the folder, no device
files), into a temporary folder that is renamed into place once complete.

Checks. The metadata files are fixed, so each is checked against its pinned sha256 and then parsed
strictly: a malformed line, an image id that differs from the id on the same line of
`images.txt` (every file lists the same images in the same order), a class id that disagrees with
its image's folder prefix or a folder that is not its class's name in `classes.txt`, or an empty
box is refused with a CorruptDataError naming the file and the line. Images are not pinned one by
one (a partial copy may hold any subset); each is checked by decoding it with Pillow, and one that
does not decode is refused naming its path.

Partial copies. A class is present when every `images.txt` entry of it exists and absent when none
does; a class with only some of its images is refused (MissingDataError naming the first missing
file), because a silently thinner class would change every per-class number. `Presence` says which
classes were found, for the record's data source.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from mubench import paths
from mubench.data.files import DataFile, FileForm, check, find, locate, search_dirs
from mubench.errors import CorruptDataError, MissingDataError
from mubench.hashing import sha256_of

ARCHIVE_FOLDER = "CUB_200_2011"  # the official folder name, and the folder the archive unpacks to
FOLDERS = (ARCHIVE_FOLDER, "cub-200-2011-10cls")
METADATA_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt", "classes.txt")
ARCHIVE_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
# The archive's sha256 as pinned by torchvision's prototype `cub200` dataset and TensorFlow Datasets'
# `caltech_birds2011` (1,150,585,339 bytes; md5 97eceeb196236b17998738112f37df78).
ARCHIVE_SHA256 = "0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081"

_NUMBER = r"\d+(?:\.\d*)?"
# Per file: the line format (for messages) and its pattern; groups are the fields in order.
_FORMATS = {
    "images.txt": ("<image_id> <class folder>/<file name>", re.compile(r"(\d+) ((\d{3})\.[^/\s]+)/([^/\s]+)")),
    "image_class_labels.txt": ("<image_id> <class_id>", re.compile(r"(\d+) (\d+)")),
    "train_test_split.txt": ("<image_id> <is_training_image: 0 or 1>", re.compile(r"(\d+) ([01])")),
    "bounding_boxes.txt": ("<image_id> <x> <y> <width> <height>",
                           re.compile(rf"(\d+) ({_NUMBER}) ({_NUMBER}) ({_NUMBER}) ({_NUMBER})")),
    "classes.txt": ("<class_id> <class folder name>", re.compile(r"(\d+) ((\d{3})\.\S+)")),
}


@dataclass(frozen=True)
class CubSource:
    """Where a copy is looked for (folder names, in order), the metadata files' pinned sha256
    digests, and the archive to unpack when no folder exists (None: never unpack)."""

    folders: tuple[str, ...]
    pinned: dict[str, str]  # metadata file name -> sha256
    archive: DataFile | None = None

    def find_root(self) -> Path | None:
        """The first folder holding `images.txt`: official name first, every mirror, then the home."""
        for folder in self.folders:
            for directory in search_dirs(folder):
                if (directory / "images.txt").is_file():
                    return directory
        return None

    def data_files(self) -> list[DataFile]:
        """The metadata files of the copy found; with no copy, the archive (what `mubench data
        fetch` downloads). Images are not listed: a partial copy holds any subset of them."""
        root = self.find_root()
        if root is None and self.archive is not None:
            return [self.archive]
        folder = root.name if root is not None else self.folders[0]
        return [DataFile(folder, (FileForm(name, self.pinned[name]),)) for name in METADATA_FILES]


OFFICIAL = CubSource(FOLDERS, {
    "images.txt": "e1cfc5ed1f4bd1b838040784b6f75c44f7a25d9b31707a3adab49ec694618c1f",
    "image_class_labels.txt": "e9df8c96d897994a245746fe2c98914b9b31f5342bddc6e8b06bdfbf45e49b02",
    "train_test_split.txt": "8bbbfcc09b4d3c9c6e3e40c9874bd863eb6658f4f456e472df1b33d3403d2600",
    "bounding_boxes.txt": "c19d9f096c15564793408e5ba054b8d715a6805819d98f037c977f369ef4abd3",
    "classes.txt": "66a884364a73edde6c71eeb7fd5d8bb791e80979b64759bd6a5d5d209bdc02ba",
}, DataFile("", (FileForm("CUB_200_2011.tgz", ARCHIVE_SHA256),), ARCHIVE_URL))


# ---- finding a copy ---------------------------------------------------------------------------------

def locate_root(source: CubSource = OFFICIAL) -> Path:
    """The folder of the copy to read; unpacks (after downloading, if allowed) the archive when no
    folder exists. Raises MissingDataError naming every place looked in."""
    root = source.find_root()
    if root is not None:
        return root
    archive = source.archive
    if archive is None or (find(archive) is None and (archive.url is None or paths.offline())):
        raise MissingDataError(missing_message(source))
    path, _ = locate(archive)  # verified against the pinned sha256 (downloaded first if absent)
    return extract_archive(path, paths.home() / "raw")


def missing_message(source: CubSource) -> str:
    folders = "\n".join(f"  - {d}/images.txt" for folder in source.folders for d in search_dirs(folder))
    text = f"CUB-200-2011 not found. Looked for a copy in the official layout at:\n{folders}\n"
    if source.archive is not None:
        places = "\n".join(f"  - {d / source.archive.name}" for d in search_dirs(source.archive.folder))
        text += f"and for the official archive at:\n{places}\n"
        text += (f"Download {source.archive.url} into {paths.home() / 'raw'} (`mubench data fetch cub200`; "
                 f"MUBENCH_OFFLINE=1 forbids downloads), or ")
    return text + f"set MUBENCH_MIRROR to a folder holding {source.folders[0]}/."


def extract_archive(archive: Path, destination: Path) -> Path:
    """Unpack the archive's `CUB_200_2011/` metadata files and images into `destination`, through a
    temporary folder renamed into place, so a half-unpacked copy is never found."""
    target = destination / ARCHIVE_FOLDER
    if target.exists():
        raise CorruptDataError(f"{target} exists but holds no images.txt (a damaged copy?); delete it to unpack {archive}")
    destination.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{ARCHIVE_FOLDER}-", dir=destination))
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(staging, filter=_metadata_and_images)
        unpacked = staging / ARCHIVE_FOLDER
        if not (unpacked / "images.txt").is_file():
            raise CorruptDataError(f"{archive}: holds no {ARCHIVE_FOLDER}/images.txt")
        os.replace(unpacked, target)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise CorruptDataError(f"{archive}: cannot be unpacked safely ({type(exc).__name__}: {exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # what is left of a failed unpack
    return target


def _metadata_and_images(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    """tarfile's "data" filter, for the members under CUB_200_2011/ that the task reads (the
    metadata files, README and images/); the rest (attributes/, parts/) is skipped."""
    parts = PurePosixPath(member.name).parts
    wanted = parts[:1] == (ARCHIVE_FOLDER,) and (
        len(parts) == 1 or parts[1] == "images" or (len(parts) == 2 and parts[1] in (*METADATA_FILES, "README")))
    return tarfile.data_filter(member, path) if wanted else None


# ---- metadata ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CubMetadata:
    """The five metadata files, checked against each other; arrays in `images.txt` order."""

    root: Path
    image_ids: np.ndarray  # (N,) int64
    files: tuple[str, ...]  # "<class folder>/<file>", relative to images/
    class_ids: np.ndarray  # (N,) int64, 1-based as published
    is_train: np.ndarray  # (N,) bool
    boxes: np.ndarray  # (N, 4) float64: x, y, width, height in pixels
    class_names: tuple[str, ...]  # class id k is class_names[k - 1]


def read_metadata(root: Path, pinned: dict[str, str]) -> CubMetadata:
    """Verify the metadata files' sha256, parse them strictly and cross-check them."""
    files = {}
    for name in METADATA_FILES:
        files[name] = root / name
        if not files[name].is_file():
            raise MissingDataError(f"{files[name]}: missing; a CUB-200-2011 copy needs all of {', '.join(METADATA_FILES)}")
        check(files[name], FileForm(name, pinned[name]))
    class_names = _read_classes(files["classes.txt"])
    images = _read_lines(files["images.txt"])
    image_ids = np.array([int(row[0]) for row in images], dtype=np.int64)
    _check_unique(files["images.txt"], image_ids)
    labels, split, boxes = (_aligned_fields(files[name], image_ids) for name in METADATA_FILES[1:4])
    metadata = CubMetadata(
        root=root, image_ids=image_ids, files=tuple(f"{row[1]}/{row[3]}" for row in images),
        class_ids=np.array([int(row[0]) for row in labels], dtype=np.int64),
        is_train=np.array([row[0] == "1" for row in split], dtype=bool),
        boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4), class_names=class_names)
    _check_classes(files, images, metadata)
    _check_boxes(files["bounding_boxes.txt"], metadata.boxes)
    return metadata


def _read_lines(path: Path) -> list[tuple[str, ...]]:
    """Every line of a metadata file as its regex groups; a malformed line is refused by number."""
    form, pattern = _FORMATS[path.name]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptDataError(f"{path}: not UTF-8 text ({exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = pattern.fullmatch(line.strip())
        if match is None:
            raise CorruptDataError(f"{path}, line {number}: expected '{form}', got {line!r}")
        rows.append(match.groups())
    if not rows:
        raise CorruptDataError(f"{path}: empty")
    return rows


def _read_classes(path: Path) -> tuple[str, ...]:
    """classes.txt: class ids 1, 2, ... in order, each name's 3-digit prefix equal to its id."""
    names = []
    for number, (class_id, name, prefix) in enumerate(_read_lines(path), start=1):
        if int(class_id) != number or int(prefix) != number:
            raise CorruptDataError(f"{path}, line {number}: class id {class_id} and folder {name}, expected class {number}")
        names.append(name)
    return tuple(names)


def _check_unique(path: Path, image_ids: np.ndarray) -> None:
    seen: dict[int, int] = {}
    for number, image_id in enumerate(image_ids.tolist(), start=1):
        if image_id in seen:
            raise CorruptDataError(f"{path}, line {number}: image id {image_id} repeats line {seen[image_id]}")
        seen[image_id] = number


def _aligned_fields(path: Path, image_ids: np.ndarray) -> list[tuple[str, ...]]:
    """A per-image file's fields after the id, once its ids match images.txt line for line."""
    rows = _read_lines(path)
    for number, (row, image_id) in enumerate(zip(rows, image_ids.tolist()), start=1):
        if int(row[0]) != image_id:
            raise CorruptDataError(f"{path}, line {number}: image id {row[0]}, but line {number} of images.txt "
                                   f"has image id {image_id} (every file lists the same images in the same order)")
    if len(rows) != len(image_ids):
        raise CorruptDataError(f"{path}, line {min(len(rows), len(image_ids)) + 1}: the file has {len(rows)} lines "
                               f"and images.txt {len(image_ids)}; every file lists the same images")
    return [row[1:] for row in rows]


def _check_classes(files: dict[str, Path], images: list[tuple[str, ...]], metadata: CubMetadata) -> None:
    """Each image's class id must be a class of classes.txt and match its folder, named as there."""
    num_classes = len(metadata.class_names)
    for number, ((image_id, folder, prefix, _), class_id) in enumerate(zip(images, metadata.class_ids.tolist()), start=1):
        if not 1 <= class_id <= num_classes:
            raise CorruptDataError(f"{files['image_class_labels.txt']}, line {number}: class id {class_id} is not "
                                   f"a class of classes.txt (1-{num_classes})")
        if int(prefix) != class_id:
            raise CorruptDataError(f"{files['image_class_labels.txt']}, line {number}: image {image_id} has class id "
                                   f"{class_id}, but images.txt puts it in folder {folder}")
        if folder != metadata.class_names[class_id - 1]:
            raise CorruptDataError(f"{files['images.txt']}, line {number}: folder {folder} is not the name of class "
                                   f"{class_id} in classes.txt ({metadata.class_names[class_id - 1]})")


def _check_boxes(path: Path, boxes: np.ndarray) -> None:
    empty = np.flatnonzero((boxes[:, 2] <= 0) | (boxes[:, 3] <= 0))
    if len(empty):
        raise CorruptDataError(f"{path}, line {empty[0] + 1}: box {boxes[empty[0]].tolist()} has no area")


# ---- which images are present -----------------------------------------------------------------------

@dataclass(frozen=True)
class Presence:
    """The images of a copy that exist: whole classes only (see the module docstring)."""

    rows: np.ndarray  # indices into the metadata arrays of the images present, in images.txt order
    class_ids: tuple[int, ...]  # the classes present
    num_images: int  # in the metadata
    num_classes: int  # in the metadata
    fingerprint: str  # sha256 over (image id, file size) of the images present: part of the cache key

    def describe(self) -> str:
        """Empty for a complete copy; otherwise e.g. "classes 1-10 of 200 present (543 of 11,788 images)"."""
        if len(self.class_ids) == self.num_classes:
            return ""
        return (f"classes {_ranges(self.class_ids)} of {self.num_classes} present "
                f"({len(self.rows):,} of {self.num_images:,} images)")


def find_present(metadata: CubMetadata) -> Presence:
    """Which classes have all their images; refuses a class with only some of them."""
    sizes = np.array([_file_size(metadata.root / "images" / name) for name in metadata.files], dtype=np.int64)
    exists = sizes >= 0
    num_classes = len(metadata.class_names)
    listed = np.bincount(metadata.class_ids, minlength=num_classes + 1)
    found = np.bincount(metadata.class_ids, weights=exists, minlength=num_classes + 1).astype(np.int64)
    for class_id in np.flatnonzero((found > 0) & (found < listed)):
        first = np.flatnonzero((metadata.class_ids == class_id) & ~exists)[0]
        raise MissingDataError(
            f"{metadata.root / 'images' / metadata.files[first]}: missing (images.txt line {first + 1}), while "
            f"{found[class_id]} of the {listed[class_id]} images of class {metadata.class_names[class_id - 1]} are "
            f"present; a class is used whole or not at all, so a copy must hold all of a class's images or none")
    rows = np.flatnonzero(exists)
    if len(rows) == 0:
        raise MissingDataError(f"{metadata.root / 'images'}: none of the {len(metadata.files):,} images of images.txt is there")
    present = tuple(int(c) for c in np.flatnonzero((found > 0) & (found == listed)))
    fingerprint = sha256_of([metadata.image_ids[rows].tolist(), sizes[rows].tolist()])
    return Presence(rows, present, len(metadata.files), num_classes, fingerprint)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _ranges(ids: tuple[int, ...]) -> str:
    """1, 2, 3, 7, 9, 10 -> "1-3, 7, 9-10"."""
    runs: list[list[int]] = []
    for value in ids:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)


# ---- images -----------------------------------------------------------------------------------------

def decode_crops(metadata: CubMetadata, rows: np.ndarray, side: int, workers: int | None = None) -> np.ndarray:
    """(len(rows), 3, side, side) uint8: each image decoded, converted to RGB (one photo of the
    dataset is greyscale), cropped to its bounding box and resized. Decoding runs in threads
    (Pillow releases the GIL while it decodes); the result does not depend on their number."""
    out = np.empty((len(rows), 3, side, side), dtype=np.uint8)

    def fill(position: int) -> None:
        row = int(rows[position])
        out[position] = crop_to_box(metadata.root / "images" / metadata.files[row], metadata.boxes[row], side,
                                    f"{metadata.root / 'bounding_boxes.txt'}, line {row + 1}")

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(fill, range(len(rows))))
    return out


def crop_to_box(path: Path, box: np.ndarray, side: int, box_source: str) -> np.ndarray:
    """One image as (3, side, side) uint8: the box (x, y, width, height), clipped to the image
    (boxes overhang by up to a pixel), resized with Pillow's bilinear filter, which widens its
    support when shrinking, so downscaling is antialiased."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")  # decodes the whole file: a truncated or damaged one fails here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptDataError(f"{path}: does not decode as an image ({exc})") from None
    width, height = rgb.size
    x, y, w, h = (float(v) for v in box)
    left, top, right, bottom = max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h)
    if right - left < 1 or bottom - top < 1:
        raise CorruptDataError(f"{box_source}: box {[x, y, w, h]} lies outside {path} ({width}x{height})")
    resized = rgb.resize((side, side), Image.Resampling.BILINEAR, box=(left, top, right, bottom))
    return np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1)

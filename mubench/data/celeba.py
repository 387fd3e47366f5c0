"""CelebA (Liu, Luo, Wang & Tang 2015, "Deep Learning Face Attributes in the Wild", ICCV): the
annotation parsers and the image loader behind the CelebA tasks (mubench/tasks/celeba.py).

Two forms are read, tried in this order:

1. **Full** (torchvision's layout, folder `celeba/` of a mirror or of MUBENCH_HOME/raw):
   `list_attr_celeba.txt` (sha256 pinned: the digest TensorFlow Datasets pins for the same Google
   Drive file, `tensorflow_datasets/url_checksums/celeb_a.txt`; torchvision pins its md5
   75e246fa4810816ffd6ee81facbd244c), the aligned images `img_align_celeba/000001.jpg` ... (178x218
   JPEGs; not checksummed one by one: no per-image digests are published, only the zip's), and,
   when present, `list_eval_partition.txt` (sha256 from the same TFDS file) and
   `identity_CelebA.txt` (no published sha256 was found; its md5 as torchvision pins it is checked).
   Every id of the attribute file is used; an image missing from the folder is refused naming it.
2. **Fragment** (the shared mirror's `celeba-fragment/`): the first 20,000 attribute rows
   (`list_attr_celeba_first20k.txt`, sha256 pinned) and the official images at exactly half size,
   89x109, in `img_align_celeba_89x109/`. The images used are exactly those listed in the pinned
   manifest `MANIFEST_89x109.sha256` (ids 1-10,000); each must be present and match its digest,
   and each must have an attribute row. The fragment's 32 full-size images are not used.

The annotation files are parsed line by line rather than with pandas so that every refusal names
the file and the line: rows are whitespace-separated (CRLF or LF, final newline optional), ids
must read `NNNNNN.jpg` (six digits, not 000000) and be unique, attribute values must be 1 or -1
and each row must hold exactly 40 of them, under exactly the 40 official attribute names. The count
on the first line is not trusted (the fragment's still says 202599); it only has to be a number.

Images are decoded with Pillow (libjpeg), converted to RGB, cut to the centred square of their
width (178x178 of 178x218; the same region, 89x89, of a half-size image) and resized to side x
side with Pillow's antialiased bilinear filter (what torchvision's Resize does). Full-size images
are decoded at half scale by libjpeg's DCT scaling (Pillow's draft mode): faster, and the same
geometry as the half-size fragment.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from mubench.data.files import DataFile, FileForm, find, locate, missing_message, search_dirs
from mubench.errors import CorruptDataError, MissingDataError

NUM_IMAGES = 202_599
# The 40 attribute names of list_attr_celeba.txt, in file order.
ATTRIBUTE_NAMES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young")
# The official partition (list_eval_partition.txt: 0 train, 1 val, 2 test) is by contiguous id
# ranges: 162,770 / 19,867 / 19,962 images. Public loaders that lack the file slice the attribute
# rows at [:162770], [162770:182637], [182637:] to the same effect.
OFFICIAL_RANGES = {0: (1, 162_770), 1: (162_771, 182_637), 2: (182_638, NUM_IMAGES)}
FULL_SIZE = (178, 218)  # width, height of img_align_celeba
HALF_SIZE = (89, 109)
IMAGE_FOLDER = "img_align_celeba"
HALF_IMAGE_FOLDER = "img_align_celeba_89x109"

_DRIVE = "https://drive.google.com/uc?export=download&id={}"
_ID = re.compile(r"(\d{6})\.jpg")
_MANIFEST_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")


@dataclass(frozen=True)
class CelebaPins:
    """Where CelebA's files live and what they must hash to (tests build one with their own)."""

    folder: str = "celeba"
    attributes: FileForm = FileForm("list_attr_celeba.txt",
                                    "f0e5da289d5ccf75ffe8811132694922b60f2af59256ed362afa03fefba324d0")
    partition: FileForm = FileForm("list_eval_partition.txt",
                                   "fc955bcb3ef8fbdf7d5640d9a8693a8431b5f2ee291a5c1449a1549e7e073fe7")
    identity_name: str = "identity_CelebA.txt"
    identity_md5: str = "32bd1bd63d3c78cd57e08160ec5ed1e2"
    fragment_folder: str = "celeba-fragment"
    fragment_attributes: FileForm = FileForm("list_attr_celeba_first20k.txt",
                                             "5e2985f6482e2c379c4f58f021c80532fa78c9a9a5bd86aab29a5e4e0a8de7a4")
    fragment_manifest: FileForm = FileForm("MANIFEST_89x109.sha256",
                                           "ec59a522a26ff29285381e08ea84f562bc25f2ea698d2ae443f3dbab35d73e73")

    def attributes_file(self) -> DataFile:
        return DataFile(self.folder, (self.attributes,), _DRIVE.format("0B7EVK8r0v71pblRyaVFSWGxPY0U"))

    def partition_file(self) -> DataFile:
        return DataFile(self.folder, (self.partition,), _DRIVE.format("0B7EVK8r0v71pY0NSMzRuSXJEVkk"))

    def fragment_files(self) -> list[DataFile]:
        return [DataFile(self.fragment_folder, (self.fragment_attributes,)),
                DataFile(self.fragment_folder, (self.fragment_manifest,))]

    def find_identity(self) -> Path | None:
        return next((d / self.identity_name for d in search_dirs(self.folder) if (d / self.identity_name).is_file()), None)

    def identity_missing_message(self) -> str:
        places = "\n".join(f"  - {d}/{self.identity_name}" for d in search_dirs(self.folder))
        return (f"data file {self.identity_name!r} not found (it maps each image to its person). Looked in:\n{places}\n"
                f"Download it from {_DRIVE.format('1_ee_0u7vcNLOfNLegJRHmolfH5ICW-XS')} (md5 {self.identity_md5}) "
                f"into one of those folders.")


OFFICIAL = CelebaPins()


@dataclass(frozen=True)
class CelebaFiles:
    """The files one load reads: the full official form or the fragment."""

    mode: Literal["full", "fragment"]
    attributes: Path
    images: Path
    partition: Path | None = None
    identity: Path | None = None
    manifest: Path | None = None


def find_celeba(pins: CelebaPins = OFFICIAL) -> CelebaFiles | None:
    """Which form is present, without reading or verifying anything; None if neither.

    The full form needs list_attr_celeba.txt with img_align_celeba/ beside it; without the image
    folder the fragment is used when present (so fetching the annotation files alone never breaks
    a working fragment). list_eval_partition.txt and identity_CelebA.txt serve either form."""
    optional = {"partition": hit[0] if (hit := find(pins.partition_file())) else None,
                "identity": pins.find_identity()}
    full = find(pins.attributes_file())
    full_files = None if full is None else CelebaFiles("full", full[0], full[0].parent / IMAGE_FOLDER, **optional)
    if full_files is not None and full_files.images.is_dir():
        return full_files
    attributes, manifest = (find(f) for f in pins.fragment_files())
    if attributes is not None and manifest is not None:
        return CelebaFiles("fragment", attributes[0], manifest[0].parent / HALF_IMAGE_FOLDER,
                           manifest=manifest[0], **optional)
    return full_files


def locate_celeba(pins: CelebaPins = OFFICIAL) -> CelebaFiles:
    """The present form with its checksums verified, or a MissingDataError saying what is missing."""
    files = find_celeba(pins)
    if files is None:
        fragment = ", ".join(f"{pins.fragment_folder}/{f.name}" for f in pins.fragment_files())
        raise MissingDataError(f"CelebA: {missing_message(pins.attributes_file())}\nIt also needs {IMAGE_FOLDER}/ "
                               f"(unpacked img_align_celeba.zip) beside it. Without the full files, a fragment will "
                               f"do: {fragment} and {pins.fragment_folder}/{HALF_IMAGE_FOLDER}/.")
    if not files.images.is_dir():
        raise MissingDataError(f"CelebA: image folder {files.images} not found (beside {files.attributes.name})")
    for data_file in ([pins.attributes_file()] if files.mode == "full" else pins.fragment_files()):
        locate(data_file)
    if files.partition is not None:
        locate(pins.partition_file())
    if files.identity is not None:
        _check_md5(files.identity, pins.identity_md5)
    return files


def _check_md5(path: Path, md5: str) -> None:
    actual = hashlib.md5(path.read_bytes()).hexdigest()
    if actual != md5:
        raise CorruptDataError(f"{path}: md5 {actual} does not match the pinned {md5}")


# ---- annotation files ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AttributeTable:
    """Rows of list_attr_celeba.txt: image ids (000001.jpg -> 1) and 0/1 values (the file's -1 -> 0)."""

    path: Path
    ids: np.ndarray  # (N,) int64
    values: np.ndarray  # (N, 40) int8, columns in ATTRIBUTE_NAMES order

    def column(self, name: str) -> np.ndarray:
        return self.values[:, ATTRIBUTE_NAMES.index(name)]

    def rows_for(self, ids: np.ndarray) -> np.ndarray:
        """Row index of each id in `ids`; an id without a row is refused naming the file."""
        order = np.argsort(self.ids)
        position = np.searchsorted(self.ids, ids, sorter=order).clip(max=len(order) - 1)
        rows = order[position]
        absent = ids[self.ids[rows] != ids]
        if len(absent):
            raise CorruptDataError(f"{self.path}: no attribute row for {_name(absent[0])} "
                                   f"({len(absent)} listed images have none)")
        return rows


def read_attributes(path: Path) -> AttributeTable:
    """Parse list_attr_celeba.txt (or a prefix of it): count line, 40 names, one row per image."""
    lines = _text_lines(path)
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise CorruptDataError(f"{path}, line 1: expected the image count, found {lines[0][:40]!r}" if lines
                               else f"{path}: empty file")
    names = tuple(lines[1].split())
    if names != ATTRIBUTE_NAMES:
        raise CorruptDataError(f"{path}, line 2: expected CelebA's 40 attribute names, found {len(names)} names "
                               f"starting {' '.join(names[:3])!r}")
    ids, tokens, numbers = _id_rows(path, lines, first=2, width=len(ATTRIBUTE_NAMES))
    table = np.array(tokens, dtype="<U2").reshape(len(ids), len(ATTRIBUTE_NAMES))
    valid = (table == "1") | (table == "-1")
    if not valid.all():
        row, column = np.argwhere(~valid)[0]
        raise CorruptDataError(f"{path}, line {numbers[row]}: value {str(table[row, column])!r} for "
                               f"{ATTRIBUTE_NAMES[column]} (must be 1 or -1)")
    return AttributeTable(path, ids, (table == "1").astype(np.int8))


def read_id_values(path: Path, allowed: set[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Parse a two-column file of `NNNNNN.jpg <integer>` rows without a header
    (list_eval_partition.txt: 0/1/2; identity_CelebA.txt: a person number >= 1)."""
    lines = _text_lines(path)
    ids, tokens, numbers = _id_rows(path, lines, first=0, width=1)
    values = np.empty(len(ids), dtype=np.int64)
    for index, token in enumerate(tokens):
        if not token.isdigit() or (allowed is not None and int(token) not in allowed) or (allowed is None and int(token) < 1):
            expected = f"one of {sorted(allowed)}" if allowed is not None else "a positive integer"
            raise CorruptDataError(f"{path}, line {numbers[index]}: value {token!r} (expected {expected})")
        values[index] = int(token)
    return ids, values


def values_for(path: Path, ids: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The value of each id in `wanted`; an id the file does not list is refused naming the file."""
    lookup = dict(zip(ids.tolist(), values.tolist()))
    missing = [i for i in wanted.tolist() if i not in lookup]
    if missing:
        raise CorruptDataError(f"{path}: no row for {_name(missing[0])} ({len(missing)} images are not listed)")
    return np.array([lookup[i] for i in wanted.tolist()], dtype=np.int64)


def official_partition(ids: np.ndarray) -> np.ndarray:
    """Partition code (0 train, 1 val, 2 test) of each id from the official contiguous ranges."""
    codes = np.full(len(ids), -1, dtype=np.int64)
    for code, (low, high) in OFFICIAL_RANGES.items():
        codes[(ids >= low) & (ids <= high)] = code
    if (codes < 0).any():
        raise CorruptDataError(f"CelebA id {_name(int(ids[codes < 0][0]))} is outside 1-{NUM_IMAGES}")
    return codes


def read_manifest(path: Path, folder: str = HALF_IMAGE_FOLDER) -> dict[int, str]:
    """`sha256sum` lines `<digest>  <folder>/NNNNNN.jpg` -> {id: digest}."""
    digests: dict[int, str] = {}
    for number, line in enumerate(_text_lines(path), start=1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.fullmatch(line.strip())
        name = match.group(2) if match else ""
        id_match = _ID.fullmatch(name.removeprefix(folder + "/")) if name.startswith(folder + "/") else None
        if match is None or id_match is None or int(id_match.group(1)) == 0:
            raise CorruptDataError(f"{path}, line {number}: expected '<sha256>  {folder}/NNNNNN.jpg', found {line[:90]!r}")
        digests[int(id_match.group(1))] = match.group(1)
    if not digests:
        raise CorruptDataError(f"{path}: lists no images")
    return digests


def _text_lines(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError as exc:
        raise CorruptDataError(f"{path}: not ASCII text (byte {exc.start})") from None
    return text.splitlines()


def _id_rows(path: Path, lines: list[str], first: int, width: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Rows from line index `first` on: ids, their value tokens (flat) and 1-based line numbers.
    Blank lines are skipped; a bad id, a repeated id or a wrong number of values is refused."""
    ids: list[int] = []
    tokens: list[str] = []
    numbers: list[int] = []
    seen: dict[int, int] = {}
    for number, line in enumerate(lines[first:], start=first + 1):
        parts = line.split()
        if not parts:
            continue
        match = _ID.fullmatch(parts[0])
        if match is None or int(match.group(1)) == 0:
            raise CorruptDataError(f"{path}, line {number}: malformed image id {parts[0][:40]!r} (expected NNNNNN.jpg)")
        if len(parts) != width + 1:
            raise CorruptDataError(f"{path}, line {number}: {len(parts) - 1} values for {parts[0]}, expected {width}")
        image_id = int(match.group(1))
        if image_id in seen:
            raise CorruptDataError(f"{path}, line {number}: {parts[0]} repeats line {seen[image_id]}")
        seen[image_id] = number
        ids.append(image_id)
        tokens.extend(parts[1:])
        numbers.append(number)
    if not ids:
        raise CorruptDataError(f"{path}: no rows")
    return np.array(ids, dtype=np.int64), tokens, np.array(numbers, dtype=np.int64)


def _name(image_id: int) -> str:
    return f"{int(image_id):06d}.jpg"


# ---- images -------------------------------------------------------------------------------------

def load_images(folder: Path, ids: np.ndarray, size: tuple[int, int], side: int,
                digests: dict[int, str] | None = None, workers: int | None = None) -> np.ndarray:
    """Decode `folder`/NNNNNN.jpg for each id into (N, 3, side, side) uint8 (see the module docstring).

    Each image must exist, decode, and measure `size` (width, height); with `digests`, its bytes
    must also match the id's sha256. Decoding runs in threads (Pillow releases the GIL)."""
    out = np.empty((len(ids), 3, side, side), dtype=np.uint8)

    def decode(index: int) -> None:
        out[index] = _decode(folder / _name(ids[index]), size, side, digests.get(int(ids[index])) if digests else None)

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(decode, range(len(ids)), chunksize=256))
    return out


def _decode(path: Path, size: tuple[int, int], side: int, sha256: str | None) -> np.ndarray:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise MissingDataError(f"CelebA image {path} not found (its id is listed in the annotations)") from None
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise CorruptDataError(f"{path}: sha256 {hashlib.sha256(raw).hexdigest()} does not match the manifest's {sha256}")
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if image.size != size:
                raise CorruptDataError(f"{path}: {image.size[0]}x{image.size[1]} pixels, expected {size[0]}x{size[1]}")
            image.draft("RGB", (side, side * size[1] // size[0]))  # JPEG: decode at 1/2, 1/4 ... scale
            width, height = image.size
            top = (height - width) / 2
            square = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR,
                                                 box=(0, top, width, top + width))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise CorruptDataError(f"{path}: cannot decode the image ({exc})") from None
    return np.asarray(square, dtype=np.uint8).transpose(2, 0, 1)

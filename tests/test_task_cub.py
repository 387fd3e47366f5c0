"""CUB-200-2011 (mubench/data/cub.py, mubench/tasks/cub.py): a tiny copy in the official layout
written by the test, its error cases, the archive route, and the real mirror if present."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import MIRROR_SKIP, REAL_MIRROR
from mubench.data.cub import FOLDERS, METADATA_FILES, OFFICIAL, CubSource, decode_crops, find_present, read_metadata
from mubench.data.files import DataFile, FileForm
from mubench.errors import CorruptDataError, MissingDataError
from mubench.harness.models import Resize, build_model
from mubench.harness.splits import make_split
from mubench.tasks.base import Pool, TaskData, tasks
from mubench.tasks.cub import SPEC, Cub200

REAL_CUB = REAL_MIRROR / FOLDERS[1] if (REAL_MIRROR / FOLDERS[1]).is_dir() else None
needs_real_cub = pytest.mark.skipif(REAL_CUB is None, reason=f"{MIRROR_SKIP}{FOLDERS[1]}/ in {REAL_MIRROR}")

CLASSES = ["001.Alpha_Bird", "002.Beta_Bird", "003.Gamma_Bird", "004.Delta_Bird"]
# (class id, file stem, is_train, box x y w h, photo size, greyscale); class 3's photos are never written
IMAGES = [
    (1, "Alpha_0001_1", 1, (4, 3, 20, 16), (40, 30), False),
    (1, "Alpha_0002_2", 0, (0, 0, 40, 30), (40, 30), False),
    (1, "Alpha_0003_3", 1, (10, 5, 21, 25), (30, 30), False),  # overhangs the photo by one pixel, as in CUB
    (2, "Beta_0001_4", 1, (2, 2, 12, 12), (24, 20), True),  # greyscale, like one photo of CUB
    (2, "Beta_0002_5", 0, (5, 5, 10, 10), (30, 24), False),
    (2, "Beta_0003_6", 1, (1, 1, 20, 20), (24, 24), False),
    (3, "Gamma_0001_7", 1, (1, 1, 10, 10), (20, 20), False),
    (3, "Gamma_0002_8", 0, (1, 1, 10, 10), (20, 20), False),
    (4, "Delta_0001_9", 0, (3, 4, 14, 9), (22, 18), False),
    (4, "Delta_0002_10", 1, (0, 2, 16, 10), (20, 16), False),
]
BOX_COLOUR = {1: (220, 30, 30), 2: (128, 128, 128), 4: (30, 30, 220)}  # class 2 is grey: its photo is greyscale
BACKGROUND = (20, 200, 20)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pins(root: Path) -> dict[str, str]:
    return {name: _sha(root / name) for name in METADATA_FILES}


def image_path(root: Path, index: int) -> Path:
    class_id, stem = IMAGES[index][:2]
    return root / "images" / CLASSES[class_id - 1] / f"{stem}.jpg"


def write_copy(root: Path, with_class_3: bool = False) -> None:
    """Every metadata file of a 4-class, 10-image CUB; photos of classes 1, 2 and 4 (3 absent)."""
    (root / "images").mkdir(parents=True)
    lines: dict[str, list[str]] = {name: [] for name in METADATA_FILES}
    lines["classes.txt"] = [f"{k} {name}" for k, name in enumerate(CLASSES, start=1)]
    for image_id, (class_id, stem, train, box, size, grey) in enumerate(IMAGES, start=1):
        lines["images.txt"].append(f"{image_id} {CLASSES[class_id - 1]}/{stem}.jpg")
        lines["image_class_labels.txt"].append(f"{image_id} {class_id}")
        lines["train_test_split.txt"].append(f"{image_id} {train}")
        lines["bounding_boxes.txt"].append(f"{image_id} " + " ".join(f"{v:.1f}" for v in box))
        if class_id != 3 or with_class_3:
            photo = Image.new("RGB", size, BACKGROUND)
            x, y, w, h = box
            photo.paste(BOX_COLOUR.get(class_id, (0, 0, 0)), (x, y, x + w, y + h))
            path = image_path(root, image_id - 1)
            path.parent.mkdir(exist_ok=True)
            (photo.convert("L") if grey else photo).save(path, quality=95, subsampling=0)
    for name, rows in lines.items():
        (root / name).write_text("\n".join(rows) + "\n")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.setenv("MUBENCH_MIRROR", str(tmp_path / "mirror"))
    (tmp_path / "mirror").mkdir()


@pytest.fixture
def root(tmp_path) -> Path:
    """The tiny copy under the mirror's folder name, as on the shared mirror."""
    folder = tmp_path / "mirror" / FOLDERS[1]
    write_copy(folder)
    return folder


def task_for(root: Path) -> Cub200:
    return Cub200(CubSource(FOLDERS, pins(root)))


# ---- a copy in the official layout ------------------------------------------------------------------

def test_load_keeps_whole_classes_official_split_and_labels(root):
    task = task_for(root)
    data = task.load()
    assert tuple(data.train.x.shape) == (5, 3, 224, 224) and data.train.x.dtype == torch.uint8
    assert tuple(data.test.x.shape) == (3, 3, 224, 224)
    assert data.train.attributes["image_id"].tolist() == [1, 3, 4, 6, 10]
    assert data.test.attributes["image_id"].tolist() == [2, 5, 9]
    assert data.train.y.tolist() == [0, 0, 1, 1, 3] and data.test.y.tolist() == [0, 1, 3]  # class id - 1
    assert task.data_source() == "classes 1-2, 4 of 4 present (8 of 10 images)"


def test_crops_are_the_box_resized_and_rgb(root):
    data = task_for(root).load()
    for pool in (data.train, data.test):
        for image, label in zip(pool.x, pool.y.tolist()):
            centre = image[:, 56:168, 56:168].float().mean(dim=(1, 2))  # the box's inside, away from JPEG ringing
            assert torch.allclose(centre, torch.tensor(BOX_COLOUR[label + 1], dtype=torch.float32), atol=8)
            assert image[1].float().mean() < 140  # hardly any green background: the photo was cropped
    grey = data.train.x[2]  # image 4 is stored greyscale; it comes back as 3 equal channels
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_second_load_comes_from_the_cache_and_a_changed_copy_misses_it(root, tmp_path, private_model_cache):
    first = task_for(root).load()
    prepared = list((tmp_path / "home" / "prepared").iterdir())
    assert len(prepared) == 1 and prepared[0].name.startswith("cub200-")
    again = task_for(root).load()
    assert torch.equal(again.train.x, first.train.x) and torch.equal(again.test.y, first.test.y)
    for index in (8, 9):  # class 4 removed: another copy, another cache entry
        image_path(root, index).unlink()
    task = task_for(root)
    fewer = task.load()
    assert len(fewer.train) + len(fewer.test) == 6
    assert task.data_source() == "classes 1-2 of 4 present (6 of 10 images)"
    assert len(list((tmp_path / "home" / "prepared").iterdir())) == 2


def test_a_complete_copy_has_no_data_source_phrase(tmp_path):
    folder = tmp_path / "mirror" / FOLDERS[0]
    write_copy(folder, with_class_3=True)
    task = task_for(folder)
    assert task.data_source() == ""
    assert len(task.load().train) == 6


def test_the_official_folder_name_is_preferred(root, tmp_path):
    official = tmp_path / "mirror" / FOLDERS[0]
    write_copy(official, with_class_3=True)
    assert CubSource(FOLDERS, pins(root)).find_root() == official


def test_a_class_with_some_images_missing_is_refused_naming_the_first(root):
    image_path(root, 4).unlink()
    image_path(root, 5).unlink()
    with pytest.raises(MissingDataError, match=r"Beta_0002_5\.jpg: missing \(images.txt line 5\), while 1 of the 3 images of class 002.Beta_Bird"):
        task_for(root).load()


def test_an_image_that_does_not_decode_is_refused_naming_it(root):
    image_path(root, 1).write_bytes(image_path(root, 1).read_bytes()[:200])  # truncated JPEG
    with pytest.raises(CorruptDataError, match=r"Alpha_0002_2\.jpg: does not decode"):
        task_for(root).load()


# ---- metadata checks --------------------------------------------------------------------------------

def _edit(root: Path, name: str, line: int, new: str | None) -> None:
    rows = (root / name).read_text().splitlines()
    if new is None:
        del rows[line - 1]
    else:
        rows[line - 1] = new
    (root / name).write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("name, line, new, message", [
    ("images.txt", 3, "3 001.Alpha_Bird Alpha_0003_3.jpg", r"images.txt, line 3: expected '<image_id> <class folder>/<file name>'"),
    ("image_class_labels.txt", 2, "2 one", r"image_class_labels.txt, line 2: expected '<image_id> <class_id>'"),
    ("train_test_split.txt", 4, "4 2", r"train_test_split.txt, line 4: expected"),
    ("bounding_boxes.txt", 5, "5 1.0 2.0 3.0", r"bounding_boxes.txt, line 5: expected '<image_id> <x> <y> <width> <height>'"),
    ("bounding_boxes.txt", 6, "6 1.0 1.0 0.0 20.0", r"bounding_boxes.txt, line 6: box .* has no area"),
    ("classes.txt", 2, "2 003.Beta_Bird", r"classes.txt, line 2: class id 2 and folder 003.Beta_Bird, expected class 2"),
    ("image_class_labels.txt", 7, "7 2", r"image_class_labels.txt, line 7: image 7 has class id 2, but images.txt puts it in folder 003.Gamma_Bird"),
    ("image_class_labels.txt", 7, "7 9", r"image_class_labels.txt, line 7: class id 9 is not a class of classes.txt \(1-4\)"),
    ("images.txt", 2, "2 001.Alpha_Birds/Alpha_0002_2.jpg", r"images.txt, line 2: folder 001.Alpha_Birds is not the name of class 1"),
    ("train_test_split.txt", 3, "4 1", r"train_test_split.txt, line 3: image id 4, but line 3 of images.txt has image id 3"),
    ("bounding_boxes.txt", 10, None, r"bounding_boxes.txt, line 10: the file has 9 lines and images.txt 10"),
    ("images.txt", 9, "1 004.Delta_Bird/Delta_0001_9.jpg", r"images.txt, line 9: image id 1 repeats line 1"),
])
def test_bad_metadata_is_refused_naming_file_and_line(root, name, line, new, message):
    _edit(root, name, line, new)
    with pytest.raises(CorruptDataError, match=message):
        read_metadata(root, pins(root))


def test_metadata_must_match_its_pinned_sha256(root):
    pinned = pins(root)
    _edit(root, "classes.txt", 4, "4 004.Delta_Birds")
    with pytest.raises(CorruptDataError, match=r"classes.txt: sha256 .* does not match the pinned"):
        read_metadata(root, pinned)


def test_a_missing_metadata_file_is_named(root):
    pinned = pins(root)
    (root / "bounding_boxes.txt").unlink()
    with pytest.raises(MissingDataError, match=r"bounding_boxes.txt: missing"):
        read_metadata(root, pinned)


def test_no_copy_anywhere_names_every_place_and_the_archive(tmp_path):
    with pytest.raises(MissingDataError) as error:
        Cub200().load()
    text = str(error.value)
    for folder in FOLDERS:
        assert str(tmp_path / "mirror" / folder / "images.txt") in text
        assert str(tmp_path / "home" / "raw" / folder / "images.txt") in text
    assert str(tmp_path / "mirror" / "CUB_200_2011.tgz") in text and "data.caltech.edu" in text
    assert [f.name for f in Cub200().data_files()] == ["CUB_200_2011.tgz"]
    assert tasks.get("cub200").data_status().missing == ["CUB_200_2011.tgz"]


def test_data_files_are_the_metadata_of_the_copy_found(root):
    files = CubSource(FOLDERS, pins(root), OFFICIAL.archive).data_files()
    assert [(f.folder, f.name) for f in files] == [(FOLDERS[1], name) for name in METADATA_FILES]


# ---- the official archive ---------------------------------------------------------------------------

def _archive(path: Path, copy: Path, extra: dict[str, bytes]) -> DataFile:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(copy, arcname="CUB_200_2011")
        for name, payload in extra.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return DataFile("", (FileForm(path.name, _sha(path)),))


def test_the_archive_is_unpacked_into_home_never_into_the_mirror(tmp_path):
    copy = tmp_path / "build" / "CUB_200_2011"
    write_copy(copy)
    archive = _archive(tmp_path / "mirror" / "CUB_200_2011.tgz", copy,
                       {"attributes.txt": b"1 has_bill_shape::dagger\n", "CUB_200_2011/parts/parts.txt": b"1 back\n"})
    mirror_before = sorted(p.name for p in (tmp_path / "mirror").iterdir())
    task = Cub200(CubSource(FOLDERS, pins(copy), archive))
    data = task.load()
    unpacked = tmp_path / "home" / "raw" / "CUB_200_2011"
    assert (unpacked / "images.txt").is_file() and len(data.train) == 5
    assert not (unpacked / "parts").exists() and not (tmp_path / "home" / "raw" / "attributes.txt").exists()
    assert sorted(p.name for p in (tmp_path / "mirror").iterdir()) == mirror_before
    assert [p.name for p in (tmp_path / "home" / "raw").iterdir() if p.name.startswith(".")] == []  # no staging left
    assert task.data_source() == "classes 1-2, 4 of 4 present (8 of 10 images)"


def test_an_archive_member_escaping_the_folder_is_refused(tmp_path):
    copy = tmp_path / "build" / "CUB_200_2011"
    write_copy(copy)
    archive = _archive(tmp_path / "mirror" / "CUB_200_2011.tgz", copy, {"CUB_200_2011/images/../../../evil.txt": b"x"})
    with pytest.raises(CorruptDataError, match=r"CUB_200_2011.tgz: cannot be unpacked safely"):
        Cub200(CubSource(FOLDERS, pins(copy), archive)).load()
    assert not (tmp_path / "home" / "evil.txt").exists()
    assert list((tmp_path / "home" / "raw").iterdir()) == []  # nothing half-unpacked is left


def test_an_archive_that_fails_its_sha256_is_not_unpacked(tmp_path):
    copy = tmp_path / "build" / "CUB_200_2011"
    write_copy(copy)
    archive = _archive(tmp_path / "mirror" / "CUB_200_2011.tgz", copy, {})
    wrong = DataFile("", (FileForm(archive.name, "0" * 64),))
    with pytest.raises(CorruptDataError, match="does not match the pinned"):
        Cub200(CubSource(FOLDERS, pins(copy), wrong)).load()
    assert not (tmp_path / "home" / "raw" / "CUB_200_2011").exists()


# ---- the spec -----------------------------------------------------------------------------------------

def test_spec_registration_models_and_scenarios():
    assert isinstance(tasks.get("cub200"), Cub200)
    assert SPEC.num_classes == 200 and SPEC.input_shape == (3, 224, 224)
    assert [s.name for s in SPEC.source] == [*METADATA_FILES, "CUB_200_2011.tgz"]
    assert {(s.name, s.kind) for s in SPEC.scenarios} == {("random_10", "random"), ("class_1", "class")}
    smoke = build_model(SPEC, "smoke", 0).eval()
    assert isinstance(smoke[0], Resize) and smoke[0].side == 48
    with torch.no_grad():
        assert tuple(smoke(torch.rand(2, 3, 224, 224)).shape) == (2, 200)
        standard = build_model(SPEC, "standard", 0).eval()
        assert tuple(standard(torch.rand(1, 3, 224, 224)).shape) == (1, 200)


# ---- the real metadata and mirror -----------------------------------------------------------------

def _labels_only(metadata, rows) -> TaskData:
    """A TaskData with the copy's labels and no pixels: enough to draw splits."""
    def pool(part: np.ndarray) -> Pool:
        return Pool(torch.zeros(len(part), 1), torch.from_numpy(metadata.class_ids[part] - 1))

    return TaskData(pool(rows[metadata.is_train[rows]]), pool(rows[~metadata.is_train[rows]]))


@needs_real_cub
def test_every_scenario_is_valid_on_a_full_copy_and_smoke_on_the_mirror():
    metadata = read_metadata(REAL_CUB, OFFICIAL.pinned)  # the full metadata: a full copy's labels
    task = tasks.get("cub200")
    full = _labels_only(metadata, np.arange(len(metadata.files)))
    mirror = _labels_only(metadata, np.flatnonzero(metadata.class_ids <= 10))
    cases = [(full, "smoke", "random_10"), (full, "standard", "random_10"), (full, "standard", "class_1"),
             (mirror, "smoke", "random_10"), (mirror, "smoke", "class_1")]
    for data, profile, scenario in cases:
        split = make_split(task, data, scenario, 0, profile)
        assert len(split.forget) and len(split.heldout) and len(split.retain), (profile, scenario)
    # class 002's training images in the standard partition of a full copy (task version 1.1):
    # 28 to forget, 2 of them drawn into validation as held-out non-members
    split = make_split(task, full, "class_1", 0, "standard")
    assert len(split.forget) == 28 and len(split.heldout) == 2


@needs_real_cub
@pytest.mark.slow
def test_real_mirror_holds_classes_1_to_10(monkeypatch):
    monkeypatch.setenv("MUBENCH_MIRROR", str(REAL_MIRROR))
    task = Cub200()
    data = task.load()
    assert task.data_source() == "classes 1-10 of 200 present (543 of 11,788 images)"
    assert (len(data.train), len(data.test)) == (300, 243)
    counts = np.bincount(torch.cat([data.train.y, data.test.y]).numpy(), minlength=200)
    assert counts[:10].tolist() == [60, 60, 58, 60, 44, 41, 53, 48, 59, 60] and counts[10:].sum() == 0
    assert tuple(data.train.x.shape[1:]) == (3, 224, 224) and data.train.x.dtype == torch.uint8
    metadata = read_metadata(REAL_CUB, OFFICIAL.pinned)
    presence = find_present(metadata)
    grey = metadata.files.index("009.Brewer_Blackbird/Brewer_Blackbird_0028_2682.jpg")
    crop = decode_crops(metadata, np.array([grey]), 32)[0]
    assert np.array_equal(crop[0], crop[1]) and np.array_equal(crop[1], crop[2])
    assert len(presence.rows) == 543

"""CelebA tasks (mubench/data/celeba.py, mubench/tasks/celeba.py): parsers, both forms, scenarios.

Fixtures are written by each test in the real layout: a `celeba/` folder (list_attr_celeba.txt with
the official header quirks, CRLF and no final newline; list_eval_partition.txt; identity_CelebA.txt;
178x218 JPEGs in img_align_celeba/) and a `celeba-fragment/` folder (the first-rows attribute file,
89x109 JPEGs and their sha256 manifest), pinned by digests the test computes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import MIRROR_SKIP, REAL_MIRROR
from mubench.data.celeba import (
    ATTRIBUTE_NAMES,
    HALF_IMAGE_FOLDER,
    IMAGE_FOLDER,
    CelebaPins,
    official_partition,
    read_attributes,
    read_id_values,
    read_manifest,
)
from mubench.data.files import FileForm
from mubench.errors import CorruptDataError, MissingDataError
from mubench.harness.splits import make_split
from mubench.tasks.base import Pool, tasks
from mubench.tasks.celeba import BLOND, SMILING, CelebATask, largest_identity, task_pool
from mubench.tasks.spec import ProfileSpec, Recipe

HAS_REAL_CELEBA = (REAL_MIRROR / "celeba-fragment" / HALF_IMAGE_FOLDER).is_dir()
BLOND_COLUMN, MALE_COLUMN, SMILING_COLUMN = (ATTRIBUTE_NAMES.index(n) for n in ("Blond_Hair", "Male", "Smiling"))
NO_DIGEST = "0" * 64


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.setenv("MUBENCH_MIRROR", str(tmp_path / "mirror"))


# ---- fixture files --------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _attribute_rows(ids, blond, male, smiling) -> list[str]:
    rows = []
    for image_id, b, m, s in zip(ids, blond, male, smiling):
        values = np.full(len(ATTRIBUTE_NAMES), -1)
        values[[BLOND_COLUMN, MALE_COLUMN, SMILING_COLUMN]] = [1 if b else -1, 1 if m else -1, 1 if s else -1]
        rows.append(f"{image_id:06d}.jpg " + " ".join(f"{v:2d}" for v in values))
    return rows


def write_attributes(path: Path, rows: list[str]) -> Path:
    """The official layout: a count that is not trusted, names with a trailing space, CRLF, no final newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\r\n".join(["202599", " ".join(ATTRIBUTE_NAMES) + " ", *rows]).encode("ascii"))
    return path


def write_jpeg(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=95)


def colour_of(image_id: int) -> tuple[int, int, int]:
    return (image_id * 37) % 256, 80, 200


class Fixture:
    """Writes CelebA files under <tmp>/mirror and builds the pins that match them."""

    def __init__(self, root: Path, ids=(1, 2, 3, 4, 5, 6, 7, 8), blond=(1, 1, 0, 0, 1, 0, 0, 1),
                 male=(0, 1, 0, 1, 0, 1, 0, 0), smiling=(1, 0, 0, 1, 1, 1, 0, 0)) -> None:
        self.root, self.ids = root / "mirror", list(ids)
        self.rows = _attribute_rows(ids, blond, male, smiling)
        self.blond, self.male, self.smiling = map(list, (blond, male, smiling))
        self.pins = CelebaPins(attributes=FileForm("list_attr_celeba.txt", NO_DIGEST),
                               partition=FileForm("list_eval_partition.txt", NO_DIGEST), identity_md5="",
                               fragment_attributes=FileForm("list_attr_celeba_first20k.txt", NO_DIGEST),
                               fragment_manifest=FileForm("MANIFEST_89x109.sha256", NO_DIGEST))

    def full(self, partition: dict[int, int] | None = None, identity: dict[int, int] | None = None,
             images: bool = True) -> Fixture:
        folder = self.root / "celeba"
        attributes = write_attributes(folder / "list_attr_celeba.txt", self.rows)
        self._pin(attributes=FileForm(attributes.name, _sha256(attributes)))
        if images:
            for image_id in self.ids:
                write_jpeg(folder / IMAGE_FOLDER / f"{image_id:06d}.jpg", (178, 218), colour_of(image_id))
        if partition is not None:
            path = folder / "list_eval_partition.txt"
            path.write_text("".join(f"{i:06d}.jpg {code}\n" for i, code in partition.items()))
            self._pin(partition=FileForm(path.name, _sha256(path)))
        if identity is not None:
            path = folder / "identity_CelebA.txt"
            path.write_text("".join(f"{i:06d}.jpg {person}\n" for i, person in identity.items()))
            self._pin(identity_md5=hashlib.md5(path.read_bytes()).hexdigest())
        return self

    def fragment(self, image_ids=None) -> Fixture:
        folder = self.root / "celeba-fragment"
        attributes = write_attributes(folder / "list_attr_celeba_first20k.txt", self.rows)
        lines = []
        for image_id in image_ids or self.ids:
            path = folder / HALF_IMAGE_FOLDER / f"{image_id:06d}.jpg"
            write_jpeg(path, (89, 109), colour_of(image_id))
            lines.append(f"{_sha256(path)}  {HALF_IMAGE_FOLDER}/{path.name}\n")
        manifest = folder / "MANIFEST_89x109.sha256"
        manifest.write_text("".join(lines))
        self._pin(fragment_attributes=FileForm(attributes.name, _sha256(attributes)),
                  fragment_manifest=FileForm(manifest.name, _sha256(manifest)))
        return self

    def _pin(self, **changes) -> None:
        self.pins = dataclasses.replace(self.pins, **changes)

    def task(self, spec=BLOND, target="Blond_Hair", val_size=2) -> CelebATask:
        tiny = ProfileSpec(model="small_cnn", model_args={"channels": [4], "hidden": 8},
                           recipe=Recipe(optimizer="adam", lr=1e-3, epochs=1, batch_size=4),
                           train_size=None, val_size=val_size, test_size=None)
        return CelebATask(spec.model_copy(update={"profiles": {"smoke": tiny}}), target, self.pins)


# ---- parsers --------------------------------------------------------------------------------------

def test_attribute_file_with_the_official_quirks(tmp_path):
    path = write_attributes(tmp_path / "a.txt", _attribute_rows([1, 2, 3], [1, 0, 0], [0, 1, 0], [0, 0, 1]))
    assert path.read_bytes().count(b"\r\n") == 4 and not path.read_bytes().endswith(b"\n")
    table = read_attributes(path)  # the count line says 202599 for three rows: not trusted
    assert table.ids.tolist() == [1, 2, 3] and table.values.shape == (3, 40) and table.values.dtype == np.int8
    assert table.column("Blond_Hair").tolist() == [1, 0, 0] and table.column("Male").tolist() == [0, 1, 0]
    assert table.column("Smiling").tolist() == [0, 0, 1] and int(table.values.sum()) == 3


def _mutated(tmp_path, line_index: int, new: str | None) -> Path:
    lines = ["202599", " ".join(ATTRIBUTE_NAMES) + " ", *_attribute_rows([1, 2, 3], [1, 0, 0], [0, 1, 0], [0, 0, 1])]
    if new is None:
        lines.insert(line_index, lines[line_index])
    else:
        lines[line_index] = new
    path = tmp_path / "list_attr_celeba.txt"
    path.write_bytes("\r\n".join(lines).encode())
    return path


@pytest.mark.parametrize("line_index, new, expected", [
    (3, "000002.jpg" + " -1" * 39, "line 4: 39 values for 000002.jpg, expected 40"),
    (3, "000002.jpg" + " -1" * 41, "line 4: 41 values"),
    (4, "000003.jpg" + " -1" * 20 + " 0" + " -1" * 19, "line 5: value '0' for Male (must be 1 or -1)"),
    (2, "000001.jpg" + " 1" * 9 + " 2" + " 1" * 30, "line 3: value '2' for Blond_Hair"),
    (3, "2.jpg" + " -1" * 40, "line 4: malformed image id '2.jpg'"),
    (3, "00000b.jpg" + " -1" * 40, "line 4: malformed image id"),
    (3, "000000.jpg" + " -1" * 40, "line 4: malformed image id"),
    (3, "000001.jpg" + " -1" * 40, "line 4: 000001.jpg repeats line 3"),
    (1, " ".join(ATTRIBUTE_NAMES[:-1]), "line 2: expected CelebA's 40 attribute names, found 39"),
    (0, "many", "line 1: expected the image count"),
])
def test_bad_attribute_rows_are_refused_naming_file_and_line(tmp_path, line_index, new, expected):
    path = _mutated(tmp_path, line_index, new)
    with pytest.raises(CorruptDataError, match="list_attr_celeba.txt") as error:
        read_attributes(path)
    assert expected in str(error.value)


def test_partition_and_identity_files(tmp_path):
    path = tmp_path / "list_eval_partition.txt"
    path.write_text("000001.jpg 0\r\n000002.jpg 2\r\n\r\n000003.jpg 1")
    ids, codes = read_id_values(path, {0, 1, 2})
    assert ids.tolist() == [1, 2, 3] and codes.tolist() == [0, 2, 1]
    path.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(CorruptDataError, match=r"list_eval_partition.txt, line 2: value '3' \(expected one of"):
        read_id_values(path, {0, 1, 2})
    people = tmp_path / "identity_CelebA.txt"
    people.write_text("000001.jpg 2880\n000002.jpg x\n")
    with pytest.raises(CorruptDataError, match=r"identity_CelebA.txt, line 2: value 'x' \(expected a positive integer"):
        read_id_values(people)
    people.write_text("000001.jpg 2880 7\n")
    with pytest.raises(CorruptDataError, match="line 1: 2 values for 000001.jpg, expected 1"):
        read_id_values(people)


def test_manifest_and_official_ranges(tmp_path):
    path = tmp_path / "MANIFEST_89x109.sha256"
    path.write_text(f"{'a' * 64}  {HALF_IMAGE_FOLDER}/000002.jpg\n{'b' * 64}  {HALF_IMAGE_FOLDER}/000001.jpg\n")
    assert read_manifest(path) == {2: "a" * 64, 1: "b" * 64}
    path.write_text(f"{'a' * 64}  other/000002.jpg\n")
    with pytest.raises(CorruptDataError, match="MANIFEST_89x109.sha256, line 1"):
        read_manifest(path)
    ids = np.array([1, 162_770, 162_771, 182_637, 182_638, 202_599])
    assert official_partition(ids).tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(CorruptDataError, match="202600.jpg is outside"):
        official_partition(np.array([202_600]))


# ---- full form ------------------------------------------------------------------------------------

PARTITION = {1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 1, 7: 2, 8: 2}
IDENTITY = {1: 10, 2: 11, 3: 10, 4: 12, 5: 11, 6: 10, 7: 13, 8: 10}


def test_full_form_pools_labels_attributes_and_cache(tmp_path):
    fixture = Fixture(tmp_path).full(PARTITION, IDENTITY)
    task = fixture.task()
    data = task.load()
    assert task.data_source() == ""  # the official files, complete
    assert data.train.attributes["image_id"].tolist() == [1, 2, 3, 4, 5]  # 6 is official validation: unused
    assert data.test.attributes["image_id"].tolist() == [7, 8]
    assert data.train.y.tolist() == [1, 1, 0, 0, 1] and data.test.y.tolist() == [0, 1]
    assert data.train.attributes["male"].tolist() == [0, 1, 0, 1, 0]
    # bias-aligned: blond women and non-blond men
    assert data.train.attributes["bias_aligned"].tolist() == [1, 0, 0, 1, 1]
    assert data.train.attributes["identity"].tolist() == [10, 11, 10, 12, 11]
    assert tuple(data.train.x.shape) == (5, 3, 64, 64) and data.train.x.dtype == torch.uint8
    for row, image_id in enumerate([1, 2, 3, 4, 5]):
        mean = data.train.x[row].float().mean(dim=(1, 2))
        assert torch.allclose(mean, torch.tensor(colour_of(image_id), dtype=torch.float32), atol=3)
    smiling = fixture.task(SMILING, "Smiling").load()
    assert smiling.train.y.tolist() == [1, 0, 0, 1, 1]
    assert smiling.train.attributes["bias_aligned"].tolist() == [1, 1, 0, 0, 1]  # smiling women, non-smiling men
    assert torch.equal(smiling.train.x, data.train.x)
    for image in (fixture.root / "celeba" / IMAGE_FOLDER).iterdir():
        image.unlink()
    assert torch.equal(fixture.task().load().train.x, data.train.x)  # decoded once, then from the cache


def test_full_form_without_partition_uses_the_official_id_ranges(tmp_path):
    fixture = Fixture(tmp_path, ids=(1, 2, 3, 170_000, 182_638, 200_000), blond=(1, 0, 0, 1, 0, 1),
                      male=(0, 0, 1, 1, 0, 1), smiling=(0,) * 6).full(identity=None)
    task = fixture.task()
    data = task.load()
    assert data.train.attributes["image_id"].tolist() == [1, 2, 3]
    assert data.test.attributes["image_id"].tolist() == [182_638, 200_000]
    assert "identity" not in data.train.attributes
    assert task.data_source() == "partition from official id ranges; no list_eval_partition.txt, identity_CelebA.txt"


def test_full_form_refuses_a_missing_or_wrong_image_naming_it(tmp_path):
    fixture = Fixture(tmp_path).full(PARTITION)
    (fixture.root / "celeba" / IMAGE_FOLDER / "000003.jpg").unlink()
    with pytest.raises(MissingDataError, match=r"img_align_celeba/000003.jpg not found"):
        fixture.task().load()
    write_jpeg(fixture.root / "celeba" / IMAGE_FOLDER / "000003.jpg", (100, 100), (0, 0, 0))
    with pytest.raises(CorruptDataError, match=r"000003.jpg: 100x100 pixels, expected 178x218"):
        fixture.task().load()
    (fixture.root / "celeba" / IMAGE_FOLDER / "000003.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CorruptDataError, match=r"000003.jpg: cannot decode"):
        fixture.task().load()


def test_pinned_digests_are_checked(tmp_path):
    fixture = Fixture(tmp_path).full(PARTITION, IDENTITY)
    fixture._pin(identity_md5="0" * 32)
    with pytest.raises(CorruptDataError, match="identity_CelebA.txt: md5"):
        fixture.task().load()
    fixture._pin(attributes=FileForm("list_attr_celeba.txt", NO_DIGEST))
    with pytest.raises(CorruptDataError, match="list_attr_celeba.txt: sha256"):
        fixture.task().load()


def test_partition_file_must_list_every_image(tmp_path):
    fixture = Fixture(tmp_path).full({i: c for i, c in PARTITION.items() if i != 4})
    with pytest.raises(CorruptDataError, match=r"list_eval_partition.txt: no row for 000004.jpg"):
        fixture.task().load()


# ---- fragment form --------------------------------------------------------------------------------

def test_fragment_uses_exactly_the_manifest_images_and_carves_a_seeded_test_pool(tmp_path):
    ids = tuple(range(1, 21))
    labels = tuple(i % 3 == 0 for i in ids)
    fixture = Fixture(tmp_path, ids=ids + (21, 22), blond=labels + (0, 0), male=tuple(i % 2 for i in ids) + (0, 0),
                      smiling=(0,) * 22).fragment(image_ids=ids)
    write_jpeg(fixture.root / "celeba-fragment" / HALF_IMAGE_FOLDER / "000021.jpg", (89, 109), (0, 0, 0))  # unlisted
    task = fixture.task()
    data = task.load()
    train_ids, test_ids = data.train.attributes["image_id"].tolist(), data.test.attributes["image_id"].tolist()
    assert sorted(train_ids + test_ids) == list(ids) and len(test_ids) == 4  # 20 % of 20
    assert train_ids == sorted(train_ids) and test_ids == sorted(test_ids)
    assert task.data_source() == ("CelebA fragment: 20 of 202,599 images at 89x109; test = seeded 20% of official "
                                  "train ids; no list_eval_partition.txt, identity_CelebA.txt")
    carved = np.random.default_rng(0).choice(np.arange(20), size=4, replace=False)
    assert test_ids == sorted((carved + 1).tolist())  # documented in the spec's notes
    assert task.data_files() == fixture.pins.fragment_files()
    status = task.data_status()
    assert status.missing == [] and set(status.found) == {"list_attr_celeba_first20k.txt", "MANIFEST_89x109.sha256",
                                                          f"{HALF_IMAGE_FOLDER}/"}
    first = data.train.x[0].float().mean(dim=(1, 2))
    assert torch.allclose(first, torch.tensor(colour_of(train_ids[0]), dtype=torch.float32), atol=3)


def test_fragment_refuses_an_image_that_differs_from_the_manifest(tmp_path):
    fixture = Fixture(tmp_path).fragment()
    write_jpeg(fixture.root / "celeba-fragment" / HALF_IMAGE_FOLDER / "000002.jpg", (89, 109), (1, 2, 3))
    with pytest.raises(CorruptDataError, match=r"000002.jpg: sha256 .* does not match the manifest"):
        fixture.task().load()


def test_fragment_refuses_a_listed_image_without_attribute_row(tmp_path):
    short = Fixture(tmp_path, ids=(1, 2, 3), blond=(0, 1, 0), male=(1, 0, 0), smiling=(0, 0, 0))
    short.fragment(image_ids=(1, 2, 3, 4))
    with pytest.raises(CorruptDataError, match=r"list_attr_celeba_first20k.txt: no attribute row for 000004.jpg"):
        short.task().load()


def test_full_form_is_preferred_and_annotations_alone_fall_back_to_the_fragment(tmp_path):
    fixture = Fixture(tmp_path).fragment().full(PARTITION, images=False)
    task = fixture.task()
    task.load()  # partition file present: 6 is validation (unused), 7 and 8 are the test pool
    assert task.data_source() == "CelebA fragment: 7 of 202,599 images at 89x109; no identity_CelebA.txt"
    fixture.full(PARTITION)
    task = fixture.task()
    task.load()
    assert task.data_source() == "no identity_CelebA.txt"
    assert [f.name for f in task.data_files()] == ["list_attr_celeba.txt", "list_eval_partition.txt"]


def test_annotations_without_images_or_fragment_name_the_image_folder(tmp_path):
    task = Fixture(tmp_path).full(PARTITION, images=False).task()
    assert task.data_status().missing == ["img_align_celeba/"]
    with pytest.raises(MissingDataError, match=r"image folder .*celeba/img_align_celeba not found"):
        task.load()


def test_nothing_present_says_what_is_missing(tmp_path):
    task = Fixture(tmp_path).task()
    assert task.data_status().missing == ["list_attr_celeba.txt", "img_align_celeba/"]
    with pytest.raises(MissingDataError) as error:
        task.load()
    message = str(error.value)
    assert "list_attr_celeba.txt" in message and "img_align_celeba/" in message
    assert "celeba-fragment/list_attr_celeba_first20k.txt" in message and "drive.google.com" in message


# ---- attributes and scenarios ------------------------------------------------------------------------

def test_bias_aligned_is_the_gender_stereotype():
    values = torch.zeros(4, 40, dtype=torch.int8)
    values[:, BLOND_COLUMN] = torch.tensor([1, 1, 0, 0], dtype=torch.int8)
    values[:, MALE_COLUMN] = torch.tensor([0, 1, 0, 1], dtype=torch.int8)
    images = Pool(torch.zeros(4, 3, 2, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64),
                  {"celeba": values, "image_id": torch.arange(1, 5)})
    pool = task_pool(images, "Blond_Hair")
    # blond woman, blond man, non-blond woman, non-blond man
    assert pool.attributes["bias_aligned"].tolist() == [1, 0, 0, 1]
    assert pool.attributes["male"].tolist() == [0, 1, 0, 1] and pool.y.tolist() == [1, 1, 0, 0]
    assert set(pool.attributes) == {"male", "bias_aligned", "image_id"}


def test_largest_identity_is_chosen_among_the_candidates():
    identity = np.array([5, 5, 5, 7, 7, 9, 9, 9, 9])
    candidates = np.array([0, 1, 3, 4, 5])  # person 9 is the largest of the pool, but has one candidate
    rng = np.random.default_rng(0)
    assert largest_identity(np.zeros(9), {"identity": identity}, candidates, {}, rng).tolist() == [0, 1]  # tie 5/7
    assert largest_identity(np.zeros(9), {"identity": identity}, candidates, {"rank": 1}, rng).tolist() == [3, 4]
    with pytest.raises(MissingDataError, match="identity_CelebA.txt"):
        largest_identity(np.zeros(9), {}, candidates, {}, rng)


def test_identity_scenario_with_and_without_the_identity_file(tmp_path, monkeypatch):
    first = Fixture(tmp_path / "a").full(PARTITION, IDENTITY)
    monkeypatch.setenv("MUBENCH_MIRROR", str(first.root))
    with_identity = first.task(val_size=1)
    data = with_identity.load()
    split = make_split(with_identity, data, "identity", 0, "smoke")
    train_ids = data.train.attributes["image_id"][split.forget].tolist()
    people = data.train.attributes["identity"]
    assert len(set(people[split.forget].tolist())) == 1 and len(train_ids) >= 1
    assert split.heldout.tolist() == split.val.tolist()  # non-members: all validation images
    others = people[split.retain].tolist()
    assert people[split.forget][0].item() not in others

    fragment = Fixture(tmp_path / "b", ids=tuple(range(1, 21)), blond=(1, 0) * 10, male=(0, 0, 1, 1, 0) * 4,
                       smiling=(0,) * 20).fragment()
    monkeypatch.setenv("MUBENCH_MIRROR", str(fragment.root))
    task = fragment.task(val_size=6)
    data = task.load()
    with pytest.raises(MissingDataError, match="identity_CelebA.txt") as error:
        make_split(task, data, "identity", 0, "smoke")
    assert str(fragment.root / "celeba" / "identity_CelebA.txt") in str(error.value)
    for scenario in ("bias_aligned", "random_10"):
        split = make_split(task, data, scenario, 0, "smoke")
        assert len(split.forget) >= 1
    bias = make_split(task, data, "bias_aligned", 0, "smoke")
    assert (data.train.y[bias.forget] == 1).all() and (data.train.attributes["male"][bias.forget] == 0).all()


def test_specs_and_registration():
    assert isinstance(tasks.get("celeba_blond"), CelebATask) and isinstance(tasks.get("celeba_smiling"), CelebATask)
    for spec in (BLOND, SMILING):
        assert spec.sensitive_attributes == ("male",) and spec.input_shape == (3, 64, 64)
        assert [s.name for s in spec.scenarios] == ["bias_aligned", "random_1", "random_10", "identity"]
        assert set(spec.profiles) == {"smoke", "standard"} and spec.profile("standard").model == "resnet18_cifar"
        assert any("default_rng(0)" in note for note in spec.notes)


# ---- the real mirror ------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not HAS_REAL_CELEBA, reason=f"{MIRROR_SKIP}celeba-fragment/ in {REAL_MIRROR}")
def test_real_fragment(monkeypatch):
    monkeypatch.setenv("MUBENCH_MIRROR", str(REAL_MIRROR))
    blond_task, smiling_task = CelebATask(BLOND, "Blond_Hair"), CelebATask(SMILING, "Smiling")
    blond, smiling = blond_task.load(), smiling_task.load()
    assert blond_task.data_source().startswith("CelebA fragment: 10,000 of 202,599 images at 89x109")
    assert len(blond.train) == 8_000 and len(blond.test) == 2_000
    assert tuple(blond.train.x.shape[1:]) == (3, 64, 64)

    def joined(data, name):
        return torch.cat([data.train.attributes[name], data.test.attributes[name]])

    ids = joined(blond, "image_id")
    assert sorted(ids.tolist()) == list(range(1, 10_001))
    male = joined(blond, "male")
    assert male.float().mean().item() == pytest.approx((81 + 4_136) / 10_000)  # README group counts
    for data, counts in ((blond, [4_412, 4_136, 1_371, 81]), (smiling, [2_618, 2_560, 3_165, 1_657])):
        y = torch.cat([data.train.y, data.test.y])
        assert [int(((y == label) & (male == m)).sum()) for label in (0, 1) for m in (0, 1)] == counts
    assert int(joined(blond, "bias_aligned").sum()) == 1_371 + 4_136
    split = make_split(blond_task, blond, "bias_aligned", 0, "smoke")
    assert (blond.train.y[split.forget] == 1).all() and (blond.train.attributes["male"][split.forget] == 0).all()
    with pytest.raises(MissingDataError, match="identity_CelebA.txt"):
        make_split(blond_task, blond, "identity", 0, "smoke")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_REAL_CELEBA, reason=f"{MIRROR_SKIP}celeba-fragment/ in {REAL_MIRROR}")
def test_real_full_size_and_half_size_images_agree():
    """The fragment's 32 full-size images through the full-size path match the half-size files."""
    from mubench.data.celeba import FULL_SIZE, HALF_SIZE, load_images

    folder, ids = REAL_MIRROR / "celeba-fragment", np.arange(1, 33)
    full = load_images(folder / IMAGE_FOLDER, ids, FULL_SIZE, 64).astype(np.float32)
    half = load_images(folder / HALF_IMAGE_FOLDER, ids, HALF_SIZE, 64).astype(np.float32)
    per_image = np.abs(full - half).mean(axis=(1, 2, 3))
    assert per_image.max() < 6 and np.abs(full - np.roll(half, 1, axis=0)).mean(axis=(1, 2, 3)).min() > 20

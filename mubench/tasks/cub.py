"""CUB-200-2011: 11,788 photos of 200 North American bird species (Wah et al. 2011), fine-grained.

Data. The official layout (mubench/data/cub.py): the five metadata files, pinned by sha256 and
cross-checked, and the images, checked by decoding. Each photo is cropped to its bounding box
(bounding_boxes.txt; a box that overhangs the photo by a pixel is clipped), resized to 224x224 with
Pillow's antialiased bilinear filter (aspect ratio not kept), and stored as uint8 (N, 3, 224, 224);
one greyscale photo is converted to RGB. The split is the official one (train_test_split.txt:
5,994 train / 5,794 test); the validation part is held out uniformly from train, its size fixed
per profile.

Partial copies. The task runs on whatever whole classes a copy holds and says so in
`data_source()`, which goes into every record: the shared mirror holds classes 1-10, "classes
1-10 of 200 present (543 of 11,788 images)": 300 train / 243 test.

Labels: 200 outputs on every copy, label = official class id - 1. A spec is static, and the same
bird must have the same label on a partial and a full copy: a head remapped to the classes present
would change size and meaning with the copy, so models and records of two copies could not be told
apart by the spec. On the 10-class mirror the 190 absent classes never occur in any split; the
model learns to give them low scores within its first steps, and a method that draws random labels
(e.g. `random_label`) may draw absent ones.

Resolution. A task prepares one set of tensors for all its profiles (`Task.load` takes no profile,
and the spec has one input shape), so the task stores 224x224, the papers' scale for ResNet-18 (the
`standard` profile, trained from scratch here: no pretrained weights are pinned). The `smoke`
profile trains the registered `small_cnn` on the same data shrunk to 48x48 inside the model (the
`resized` model stage), which keeps it to about a minute on a CPU.

Scenarios: `random_10` (10 % of the training samples) and `class_1`, the training images of class
002.Laysan_Albatross (label 1). It was chosen under task version 1.0, when none of class 001's
30 training images fell in the standard profile's validation part (so class 001 had no held-out
membership non-members); from version 1.1 (a new partition) class 001 would also work, and
`class_1` is kept so the scenario's meaning does not change. tests/test_task_cub.py checks that
it has held-out images in both profiles on the real metadata). No bias scenario: Aylapuram et al. (arXiv 2509.07456) use a "pose bias" on
CUB, but its definition is not published in what could be read, and pose can only come from the
part locations (parts/part_locs.txt), which the mirror does not hold.
"""

from __future__ import annotations

import torch

from mubench.data.cub import (
    ARCHIVE_FOLDER,
    OFFICIAL,
    CubMetadata,
    CubSource,
    Presence,
    decode_crops,
    find_present,
    locate_root,
    read_metadata,
)
from mubench.data.files import DataFile
from mubench.tasks.base import Pool, Task, TaskData, cached_task_data, tasks
from mubench.tasks.spec import DataFileSpec, ProfileSpec, Recipe, ScenarioSpec, TaskSpec

SIDE = 224
PREPARATION = "bbox-crop, bilinear resize, v1"  # part of the cache key: change it when the pixels change

NOTES = (
    "Each photo is cropped to its bounding box (bounding_boxes.txt; boxes overhanging the photo by up to a pixel are "
    "clipped) and resized to 224x224 (aspect ratio not kept) with Pillow's antialiased bilinear filter; the one "
    "greyscale photo is converted to RGB.",
    "Train and test are the official train_test_split.txt; validation is held out uniformly at random from train "
    "(50 images in smoke, 1,000 in standard).",
    "Labels are the official class ids minus one on every copy (200 outputs), so a partial copy uses only the labels "
    "of the classes it holds.",
    "The shared mirror holds the images of classes 1-10 only (543 of 11,788 images: 300 train, 243 test) with the full "
    "metadata; records say so in their data source. The smoke profile is sized for it; on a full copy the smoke "
    "profile's 50 validation images leave most classes without held-out images.",
    "The smoke profile's small_cnn sees the stored 224x224 images shrunk to 48x48 inside the model (antialiased "
    "bilinear); the standard profile trains ResNet-18 from scratch at 224x224.",
    "The metadata files are checked against pinned sha256 digests; the images are checked by decoding them, not by "
    "per-file digests, since a partial copy may hold any subset of them.",
    "There is no bias scenario: the pose bias of Aylapuram et al. (2025) needs part locations (parts/), which the "
    "mirror lacks, and its definition is not published in what could be read.",
)

PROFILES = {
    "smoke": ProfileSpec(
        model="resized",
        model_args={"side": 48, "model": "small_cnn", "model_args": {"channels": [32, 64], "hidden": 128}},
        recipe=Recipe(optimizer="adam", lr=1e-3, epochs=20, batch_size=32, augment="crop_flip"),
        train_size=2_000, val_size=50, test_size=1_000, eval_batch_size=256),
    "standard": ProfileSpec(
        model="resnet18", recipe=Recipe(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, epochs=100,
                                        batch_size=128, schedule="cosine", augment="crop_flip"),
        train_size=None, val_size=1_000, test_size=None, eval_batch_size=256),
}

SCENARIOS = (
    ScenarioSpec(name="random_10", kind="random", params={"fraction": 0.1}, domain="privacy",
                 description="10 % of the training images, drawn uniformly at random"),
    ScenarioSpec(name="class_1", kind="class", params={"label": 1}, domain="adaptability",
                 description="every training image of class 002.Laysan_Albatross (label 1)"),
)

SPEC = TaskSpec(
    name="cub200",
    version="1.1",
    title="CUB-200-2011",
    modality="image",
    description=__doc__.split("\n\n")[0].strip(),
    num_classes=200,
    input_shape=(3, SIDE, SIDE),
    source=tuple(DataFileSpec(name=name, sha256=sha) for name, sha in OFFICIAL.pinned.items())
    + tuple(DataFileSpec(name=form.name, sha256=form.sha256) for form in OFFICIAL.archive.forms),
    source_folder=ARCHIVE_FOLDER,
    profiles=PROFILES,
    scenarios=SCENARIOS,
    main_metric="test/acc",
    notes=NOTES,
    licence="CUB-200-2011 (Caltech): for non-commercial research and educational use; the images are Flickr "
            "photos that remain their owners' copyright",
    citation="Wah, Branson, Welinder, Perona & Belongie 2011, The Caltech-UCSD Birds-200-2011 Dataset, "
             "Caltech CNS-TR-2011-001",
)


def build_pools(metadata: CubMetadata, presence: Presence, side: int) -> TaskData:
    """Decode the present images; the official split; label = class id - 1; `image_id` (official,
    1-based) kept as an attribute so that a forget set can be traced to its photos."""
    rows = presence.rows
    images = torch.from_numpy(decode_crops(metadata, rows, side))
    labels = torch.from_numpy(metadata.class_ids[rows] - 1)
    image_ids = torch.from_numpy(metadata.image_ids[rows])
    is_train = torch.from_numpy(metadata.is_train[rows])

    def pool(mask: torch.Tensor) -> Pool:
        return Pool(images[mask], labels[mask], {"image_id": image_ids[mask]})

    return TaskData(train=pool(is_train), test=pool(~is_train))


class Cub200(Task):
    """CUB-200-2011 on the copy found (see the module docstring)."""

    spec = SPEC

    def __init__(self, source: CubSource = OFFICIAL) -> None:
        self.source = source
        self._presence: Presence | None = None

    def data_files(self) -> list[DataFile]:
        return self.source.data_files()

    def _scan(self) -> tuple[CubMetadata, Presence]:
        metadata = read_metadata(locate_root(self.source), self.source.pinned)
        self._presence = find_present(metadata)
        return metadata, self._presence

    def load(self) -> TaskData:
        metadata, presence = self._scan()  # checks the metadata and which images exist on every load
        key = [SPEC.name, SPEC.version, PREPARATION, SIDE, self.source.pinned, presence.fingerprint]
        return cached_task_data(SPEC.name, key, lambda: build_pools(metadata, presence, SIDE))

    def to_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255.0)

    def data_source(self) -> str:
        """"" for a complete copy, else e.g. "classes 1-10 of 200 present (543 of 11,788 images)"."""
        if self._presence is None:
            self._scan()
        assert self._presence is not None
        return self._presence.describe()


tasks.add("cub200", Cub200())

"""CelebA face attributes with a gender bias: blond hair (FMD) and smiling (bias-aware unlearning).

Two tasks share one loader (mubench/data/celeba.py) and one cache of decoded images:
`celeba_blond` predicts Blond_Hair, as FMD's CelebA experiment does (Chen et al. 2023: target
Blond_Hair, bias attribute Male, the setting of group DRO, Sagawa et al. 2020), and
`celeba_smiling` predicts Smiling, the "gender bias in smile detection" of Bias-Aware Machine
Unlearning (Aylapuram et al. 2025). In both, the attribute `male` (1 for Male) is the sensitive
attribute, and gender is the spurious cue: women are blond far more often than men (in ids
1-10,000: 1,371 of 5,783 women, 81 of 4,217 men) and smile more often (3,165 of 5,783 vs 1,657 of
4,217). `bias_aligned` is 1 where the label agrees with the stereotype (blond or smiling women,
non-blond or non-smiling men) and 0 where it contradicts it, the groups of LfF (Nam et al. 2020)
and of FMD's bias-conflicting evaluation.

Data: the official files when present (every image id, official partition), otherwise the
mirror's fragment (10,000 official images at half size, ids 1-10,000, all of them official
training images): its test pool is a seeded 20 % of those ids. Images are stored at 64x64 (the
centred 178x178 square of the aligned image, see mubench/data/celeba.py); `Task.data_source()`
names the form in every record.

Scenarios: `bias_aligned` forgets the bias-aligned training images of the positive class (blond
women, resp. smiling women), the samples FMD finds most harmful to fairness ("harmful ≈
bias-aligned") and the forget set bias-aware unlearning removes; `random_1` / `random_10` forget
random images; `identity` forgets every training image of one person (the one with the most
training images), which needs identity_CelebA.txt.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from mubench.data.celeba import (
    ATTRIBUTE_NAMES,
    FULL_SIZE,
    HALF_SIZE,
    IMAGE_FOLDER,
    NUM_IMAGES,
    OFFICIAL,
    CelebaFiles,
    CelebaPins,
    find_celeba,
    load_images,
    locate_celeba,
    official_partition,
    read_attributes,
    read_id_values,
    read_manifest,
    values_for,
)
from mubench.data.files import DataFile, find
from mubench.errors import MissingDataError
from mubench.tasks.base import DataStatus, Pool, Task, TaskData, cached_task_data, tasks
from mubench.tasks.scenarios import ScenarioKind, scenario_kinds
from mubench.tasks.spec import DataFileSpec, ProfileSpec, Recipe, ScenarioSpec, TaskSpec, random_scenarios

SIDE = 64  # stored resolution (both profiles): SIDE x SIDE RGB
FRAGMENT_TEST_FRACTION = 0.2
FRAGMENT_TEST_SEED = 0
LOADER_VERSION = "2"  # part of the decoded-image cache key: bump when decoding or pool assembly changes
POSITIVE_STEREOTYPE_MALE = 0  # the stereotype pairs the positive label (blond, smiling) with women


# ---- the decoded images, shared by both tasks ------------------------------------------------------

def build_images(files: CelebaFiles, side: int = SIDE) -> TaskData:
    """Train and test pools of decoded images with every attribute row, before a task picks its label.

    Pools hold x (N, 3, side, side) uint8, a dummy y, and the attributes `celeba` (N, 40) int8
    (0/1, ATTRIBUTE_NAMES order), `image_id`, `partition` (the official code: 0 train, 2 test; a
    carved test pool keeps 0) and, with identity_CelebA.txt, `identity`."""
    table = read_attributes(files.attributes)
    if files.mode == "full":
        ids, digests, size = table.ids, None, FULL_SIZE
    else:
        digests = read_manifest(files.manifest)
        ids, size = np.array(sorted(digests), dtype=np.int64), HALF_SIZE
    rows = table.rows_for(ids)
    codes, train, test = _partition(files, ids)
    identity = None
    if files.identity is not None:
        identity = values_for(files.identity, *read_id_values(files.identity), ids)
    pools = {}
    for part, mask in (("train", train), ("test", test)):
        chosen = np.flatnonzero(mask)
        attributes = {"celeba": torch.from_numpy(table.values[rows[chosen]]),
                      "image_id": torch.from_numpy(ids[chosen]), "partition": torch.from_numpy(codes[chosen])}
        if identity is not None:
            attributes["identity"] = torch.from_numpy(identity[chosen])
        x = load_images(files.images, ids[chosen], size, side, digests)
        pools[part] = Pool(torch.from_numpy(x), torch.zeros(len(chosen), dtype=torch.int64), attributes)
    return TaskData(train=pools["train"], test=pools["test"])


def _partition(files: CelebaFiles, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Official partition codes of `ids` (list_eval_partition.txt, else the official id ranges) and
    the train and test masks; the official validation images are in neither. When no id is an
    official test id (the fragment), a seeded FRAGMENT_TEST_FRACTION of the training ids becomes
    the test pool."""
    if files.partition is not None:
        codes = values_for(files.partition, *read_id_values(files.partition, {0, 1, 2}), ids)
    else:
        codes = official_partition(ids)
    train, test = codes == 0, codes == 2
    if not test.any():
        candidates = np.flatnonzero(train)
        size = round(FRAGMENT_TEST_FRACTION * len(candidates))
        carved = np.random.default_rng(FRAGMENT_TEST_SEED).choice(candidates, size=size, replace=False)
        test = np.zeros(len(ids), dtype=bool)
        test[carved] = True
        train &= ~test
    return codes, train, test


def task_pool(images: Pool, target: str) -> Pool:
    """A task's pool: label `target` (0/1) and the attributes male, bias_aligned, image_id (+ identity)."""
    values = images.attributes["celeba"]
    y = values[:, ATTRIBUTE_NAMES.index(target)].long()
    male = values[:, ATTRIBUTE_NAMES.index("Male")].long()
    aligned = ((male == POSITIVE_STEREOTYPE_MALE) == (y == 1)).long()
    attributes = {"male": male, "bias_aligned": aligned}
    attributes.update({k: v.long() for k, v in images.attributes.items() if k in ("image_id", "identity")})
    return Pool(images.x, y, attributes)


# ---- the identity scenario ----------------------------------------------------------------------

def largest_identity(labels: np.ndarray, attributes: dict[str, np.ndarray], candidates: np.ndarray,
                     params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Every candidate image of one person: the `rank`-th largest identity among the candidates
    (rank 0, the default: the person with the most training images; ties to the smaller number).

    Unlike `one_group`, the person is chosen among the candidates, not the whole pool: a person has
    at most a few dozen of CelebA's 162,770 training images, so in a subsampled training split the
    pool's largest identity may have no image at all."""
    if "identity" not in attributes:
        raise MissingDataError(f"the identity scenario needs CelebA's identities: {OFFICIAL.identity_missing_message()}")
    column = attributes["identity"][candidates]
    values, counts = np.unique(column, return_counts=True)
    rank = int(params.get("rank", 0))
    if not 0 <= rank < len(values):
        raise ValueError(f"identity scenario: rank {rank} but the candidates hold {len(values)} identities")
    return candidates[column == values[np.lexsort((values, -counts))[rank]]]


# The held-out non-members of membership inference are all validation images, not the person's
# own: CelebA's partitions are identity-disjoint and a person has at most a few dozen images, so
# a validation split of a few thousand random training images rarely holds any of them.
scenario_kinds.add("celeba_identity", ScenarioKind(largest_identity, population_defined=False))


# ---- specs -------------------------------------------------------------------------------------

def _scenarios(positive: str) -> tuple[ScenarioSpec, ...]:
    randoms = random_scenarios((1, 10), unit="images")
    bias = ScenarioSpec(name="bias_aligned", kind="subgroup", domain="fairness",
                        params={"attribute": "bias_aligned", "value": 1, "labels": [1]},
                        description=f"the bias-aligned training images of the positive class ({positive} women), "
                                    "the stereotyped majority that bias-aware unlearning forgets")
    person = ScenarioSpec(name="identity", kind="celeba_identity", domain="privacy",
                          params={"attribute": "identity", "rank": 0},
                          description="every training image of the person with the most training images "
                                      "(needs identity_CelebA.txt)")
    return (bias, *randoms, person)


_PROFILES = {
    # CPU minutes: three narrow conv blocks (64 -> 8x8) on 5,000 images, under a minute of CPU per
    # model on two cores (a wider first block at 64x64 costs three times as much for ~1 point).
    "smoke": ProfileSpec(model="small_cnn", model_args={"channels": [8, 16, 32], "hidden": 64},
                         recipe=Recipe(optimizer="adam", lr=1e-3, epochs=4, batch_size=64),
                         train_size=5_000, val_size=1_000, test_size=2_000),
    # Paper scale on the full data (a GPU): ResNet-18, as FMD's CelebA model (Chen et al. 2023),
    # trained from scratch with He et al. 2016's SGD recipe (momentum 0.9, weight decay 5e-4,
    # lr 0.1 per 256 images, cosine), crop and flip; its CIFAR stem suits 64x64 inputs.
    "standard": ProfileSpec(model="resnet18_cifar",
                            recipe=Recipe(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, epochs=30,
                                          batch_size=256, schedule="cosine", augment="crop_flip"),
                            train_size=None, val_size=5_000, test_size=None, eval_batch_size=1024),
}

_NOTES = (
    "Sources, in order: the full official files in torchvision's layout under <mirror>/celeba/ "
    f"(list_attr_celeba.txt and {IMAGE_FOLDER}/, optionally list_eval_partition.txt and identity_CelebA.txt), "
    "else the fragment under <mirror>/celeba-fragment/ (list_attr_celeba_first20k.txt, MANIFEST_89x109.sha256, "
    "img_align_celeba_89x109/); every record's data_source says which and what is absent.",
    f"Full files: every id of list_attr_celeba.txt; the train pool is the official training partition "
    f"(162,770 images) and the test pool the official test partition (19,962), from list_eval_partition.txt or, "
    f"without it, from the official contiguous id ranges (train 1-162,770, val 162,771-182,637, test "
    f"182,638-{NUM_IMAGES:,}); the official validation partition is not used (validation is held out of train).",
    f"Fragment (the shared mirror): the 10,000 images listed in MANIFEST_89x109.sha256 (ids 1-10,000, official "
    f"images at half size, 89x109), each checked against its digest, with their rows of the first 20,000 "
    f"attribute rows. All are official training images, so the test pool is a fixed random "
    f"{FRAGMENT_TEST_FRACTION:.0%} of them (numpy default_rng({FRAGMENT_TEST_SEED}).choice without replacement: "
    f"2,000 test, 8,000 train); results on it are not comparable with numbers on the official test partition. "
    f"The mirror lacks attribute rows 20,001-202,599, 192,599 images, full resolution, list_eval_partition.txt "
    f"and identity_CelebA.txt.",
    f"Images: Pillow decode, RGB, the centred square of the image's width (178x178 of 178x218; 89x89 of a "
    f"half-size image), resized to {SIDE}x{SIDE} with antialiased bilinear filtering (full-size JPEGs are decoded at "
    f"half scale first); stored as uint8 and scaled to [0, 1], not normalised. Both profiles use {SIDE}x{SIDE}; "
    f"the papers train at 224x224 (another resolution would be another task version).",
    "Attributes: male (1 = Male in the attribute file, 0 = not); bias_aligned (1 where the label agrees with the "
    "gender stereotype: positive and female, or negative and male; 0 otherwise); image_id (the file number); "
    "identity (the person, only when identity_CelebA.txt is present).",
    "The identity scenario needs identity_CelebA.txt (without it the split fails with a MissingDataError naming "
    "it); it forgets the person with the most images in the run's training split, and its membership-inference "
    "non-members are all validation images (the official partitions are identity-disjoint, so a person's "
    "held-out images are rarely in validation).",
    "Checksums: list_attr_celeba.txt and list_eval_partition.txt by the sha256 TensorFlow Datasets pins; "
    "identity_CelebA.txt by the md5 torchvision pins (no sha256 is published); the fragment's files and each "
    "half-size image by sha256; the full-size images are not checked one by one (no per-image digests exist).",
    "No counterfactual inputs (fair/counterfactual_bias is not computed): an image of the same person with only "
    "the gender changed does not exist; FMD approximates it with pairs of different people.",
    "No missing values: every attribute row holds 40 values of 1 or -1.",
)


def make_spec(name: str, target: str, positive: str, title: str, citation: str, description: str) -> TaskSpec:
    pins = OFFICIAL
    return TaskSpec(
        name=name, version="1.1", title=title, modality="image", description=description,
        num_classes=2, input_shape=(3, SIDE, SIDE),
        source=tuple(DataFileSpec(name=form.name, sha256=form.sha256) for form in
                     (pins.attributes, pins.partition, pins.fragment_attributes, pins.fragment_manifest)),
        source_folder=pins.folder, profiles=_PROFILES, scenarios=_scenarios(positive),
        sensitive_attributes=("male",), main_metric="test/acc",
        notes=(f"Label: 1 = {target} (the attribute file's 1), 0 = not ({target} = -1).", *_NOTES),
        licence="CelebA: non-commercial research purposes only (CelebA dataset agreement, Liu et al. 2015)",
        citation=f"Liu, Luo, Wang & Tang 2015, Deep Learning Face Attributes in the Wild (CelebA); {citation}",
    )


BLOND = make_spec("celeba_blond", "Blond_Hair", "blond", "CelebA blond hair (gender-biased)",
                  "Chen et al. 2023, FMD: Fast Model Debias with Machine Unlearning",
                  "CelebA faces at 64x64: is the hair blond? Gender is the spurious cue (blond women vs blond men).")
SMILING = make_spec("celeba_smiling", "Smiling", "smiling", "CelebA smiling (gender-biased)",
                    "Aylapuram et al. 2025, Bias-Aware Machine Unlearning",
                    "CelebA faces at 64x64: is the person smiling? Gender is the spurious cue.")


# ---- the tasks ----------------------------------------------------------------------------------

class CelebATask(Task):
    """One binary CelebA attribute as the label; the decoded images are cached once for both tasks."""

    def __init__(self, spec: TaskSpec, target: str, pins: CelebaPins = OFFICIAL) -> None:
        self.spec, self.target, self.pins = spec, target, pins
        self._source = ""

    def data_files(self) -> list[DataFile]:
        """The files the present form reads (the full files when neither form is present)."""
        files = find_celeba(self.pins)
        if files is not None and files.mode == "fragment":
            return self.pins.fragment_files()
        return [self.pins.attributes_file(), self.pins.partition_file()]

    def data_status(self) -> DataStatus:
        """Found: every CelebA file present; missing: what keeps the task from loading (nothing when
        either form is complete). Absent optional files are named by `data_source()`."""
        found = {f.name: str(hit[0]) for f in [self.pins.attributes_file(), self.pins.partition_file(),
                                               *self.pins.fragment_files()] if (hit := find(f)) is not None}
        identity = self.pins.find_identity()
        if identity is not None:
            found[identity.name] = str(identity)
        files = find_celeba(self.pins)
        usable = files is not None and files.images.is_dir()
        if usable:
            found[files.images.name + "/"] = str(files.images)
        missing = [] if usable else [name for name in (self.pins.attributes.name, IMAGE_FOLDER + "/") if name not in found]
        return DataStatus(self.spec.name, found, missing)

    def load(self) -> TaskData:
        files = locate_celeba(self.pins)
        key = ["celeba-images", LOADER_VERSION, files.mode, asdict(self.pins), SIDE, files.partition is not None,
               files.identity is not None, FRAGMENT_TEST_FRACTION, FRAGMENT_TEST_SEED]
        images = cached_task_data("celeba", key, lambda: build_images(files))
        carved = bool((images.test.attributes["partition"] != 2).any())
        self._source = describe(files, len(images.train) + len(images.test), carved)
        return TaskData(train=task_pool(images.train, self.target), test=task_pool(images.test, self.target))

    def data_source(self) -> str:
        return self._source

    def to_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255.0)


def describe(files: CelebaFiles, count: int, carved: bool) -> str:
    """The data_source phrase (empty for the complete official files): the form, whether the test
    pool was carved out of training ids, and which optional official files are absent."""
    phrases = []
    if files.mode == "fragment":
        phrases.append(f"CelebA fragment: {count:,} of {NUM_IMAGES:,} images at {HALF_SIZE[0]}x{HALF_SIZE[1]}")
    if carved:
        phrases.append(f"test = seeded {FRAGMENT_TEST_FRACTION:.0%} of official train ids")
    if files.partition is None and not carved:
        phrases.append("partition from official id ranges")
    absent = [name for name, path in (("list_eval_partition.txt", files.partition),
                                      ("identity_CelebA.txt", files.identity)) if path is None]
    if absent:
        phrases.append(f"no {', '.join(absent)}")
    return "; ".join(phrases)


tasks.add("celeba_blond", CelebATask(BLOND, "Blond_Hair"))
tasks.add("celeba_smiling", CelebATask(SMILING, "Smiling"))

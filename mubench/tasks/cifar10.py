"""CIFAR-10 (Krizhevsky 2009), clean for random, class and poison unlearning, and with a synthetic
patch bias for bias unlearning.

Two tasks read the same 50,000 training and 10,000 test images of ten classes, 32x32 RGB, from the
official pickle batches or, failing those, from an image-folder copy (see mubench/data/cifar10.py;
the loaded form is named by `Task.data_source()` in every record):

- `cifar10`: the images as they are, the CIFAR-10 of the unlearning literature (random and class
  forgetting, the FGSM poison).
- `cifar10_patch`: the patch bias of bias-aware unlearning's "CIFAR-10 with a synthetic patch bias"
  (Aylapuram et al. 2025; their exact construction is unpublished, so this one is ours): a fixed
  4x4 black-and-white checkerboard pasted into the bottom-right corner of exactly half of the
  training images of one class (class 0, airplane), chosen with a fixed generator, so that the patch
  is a spurious cue for that class; the `patched` attribute (0/1) marks those images, and the
  `patch_bias` scenario forgets them. The test pool carries the same patch on exactly half of the
  test images of every class (chosen per class with the same generator), so that patched and clean
  test images can be compared: `patched` is the sensitive attribute of the fairness metrics, and
  `bias_aligned` is 0 exactly on the patched test images of the other nine classes (the cue
  contradicts their label: bias-conflicting) and 1 elsewhere, for the bias metrics.

The patch lives in its own task because a model trained on the patched images learns the shortcut
whatever is forgotten: with the patch in every scenario, a smoke original scored 0.34 on the
half-patched test pool against 0.65 on its retain set, so the random and class scenarios measured
the shortcut rather than CIFAR-10. The data is part of the task version, not of a run's seed.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mubench.data.cifar10 import (
    BATCHES_FOLDER,
    CLASSES,
    IMAGE_FOLDER_SOURCE,
    OFFICIAL,
    Cifar10Arrays,
    Cifar10Source,
    find_batches_folder,
    locate_cifar10,
    locate_known,
)
from mubench.data.files import DataFile, find
from mubench.errors import MissingDataError
from mubench.tasks.base import DataStatus, Pool, Task, TaskData, cached_task_data, tasks
from mubench.tasks.spec import (
    DataFileSpec,
    ProfileSpec,
    Recipe,
    ScenarioSpec,
    TaskSpec,
    class_scenarios,
    random_scenarios,
)

# Channel means and standard deviations of the 50,000 official training images, in [0, 1]
# (the widely used values; the JPEG copy's own statistics differ by less than 0.002).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)

PATCH_SEED = 0
PATCH_CLASS = 0  # airplane
PATCH_FRACTION = 0.5  # of PATCH_CLASS's training images
TEST_PATCH_FRACTION = 0.5  # of every class's test images
PATCH_SIZE = 4
# The pattern, one value for all three channels: 255 where row + column is even, else 0.
PATCH = (255 * ((np.arange(PATCH_SIZE)[:, None] + np.arange(PATCH_SIZE)[None, :]) % 2 == 0)).astype(np.uint8)


def choose_per_class(labels: np.ndarray, classes: list[int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """0/1 per sample: exactly floor(n_k * fraction) random samples of each class k in `classes`."""
    chosen = np.zeros(len(labels), dtype=np.int64)
    for label in classes:
        members = rng.permutation(np.flatnonzero(labels == label))
        chosen[members[:int(len(members) * fraction)]] = 1
    return chosen


def paste_patch(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of `images` (N, 3, H, W) uint8 with PATCH in the bottom-right corner where mask is 1."""
    out = images.copy()
    rows = np.flatnonzero(mask)
    out[rows, :, -PATCH_SIZE:, -PATCH_SIZE:] = PATCH
    return out


def toggle_patch(x: torch.Tensor, patched: torch.Tensor) -> torch.Tensor:
    """Model-ready (normalised) images with the patch pasted where `patched` is False and
    removed (the corner filled with its border's per-channel mean) where it is True."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    patch = (torch.from_numpy(PATCH).to(x.device).float().div(255.0).expand(1, 3, -1, -1) - mean) / std
    out = x.clone()
    k = PATCH_SIZE
    border = torch.cat([x[:, :, -k - 1, -k - 1:], x[:, :, -k:, -k - 1]], dim=2).mean(dim=2)  # (N, 3)
    filled = border[:, :, None, None].expand(-1, -1, k, k)
    out[:, :, -k:, -k:] = torch.where(patched[:, None, None, None], filled, patch.expand(len(x), -1, -1, -1))
    return out


def build_cifar10(arrays: Cifar10Arrays) -> TaskData:
    """Pools of the images as they are (the `cifar10` task): no attribute."""
    return TaskData(**{part: Pool(x=torch.from_numpy(getattr(arrays, f"{part}_images")),
                                  y=torch.from_numpy(getattr(arrays, f"{part}_labels").astype(np.int64)), attributes={})
                       for part in ("train", "test")})


def build_cifar10_patch(arrays: Cifar10Arrays, seed: int = PATCH_SEED) -> TaskData:
    """Pools with the patch bias pasted in, and the `patched` and `bias_aligned` attributes."""
    rng = np.random.default_rng(seed)
    patched = {"train": choose_per_class(arrays.train_labels, [PATCH_CLASS], PATCH_FRACTION, rng),
               "test": choose_per_class(arrays.test_labels, list(range(len(CLASSES))), TEST_PATCH_FRACTION, rng)}
    pools = {}
    for part in ("train", "test"):
        images, labels = getattr(arrays, f"{part}_images"), getattr(arrays, f"{part}_labels")
        conflicting = patched[part] * (labels != PATCH_CLASS)
        pools[part] = Pool(x=torch.from_numpy(paste_patch(images, patched[part])),
                           y=torch.from_numpy(labels.astype(np.int64)),
                           attributes={"patched": torch.from_numpy(patched[part]),
                                       "bias_aligned": torch.from_numpy(1 - conflicting)})
    return TaskData(train=pools["train"], test=pools["test"])


FGSM_EPS = 8 / 255  # the poison's FGSM step on the [0, 1] pixel scale (the usual CIFAR-10 L-inf budget)


def _scenarios() -> tuple[ScenarioSpec, ...]:
    randoms = random_scenarios((1, 10))
    classes = class_scenarios(len(CLASSES), lambda k: f"every training sample of class {k} ({CLASSES[k]})")
    poison = ScenarioSpec(name="fgsm_poison_5", kind="fgsm_poison", domain="resilience",
                          params={"fraction": 0.05, "eps": FGSM_EPS},
                          description="5 % of the training images, drawn at random, replaced by FGSM-perturbed "
                                      "(eps 8/255 on [0, 1] pixels) and mislabelled copies (Khorasani et al. 2025)")
    return randoms + classes + (poison,)


def _patch_scenarios() -> tuple[ScenarioSpec, ...]:
    bias = ScenarioSpec(name="patch_bias", kind="subgroup", domain="fairness",
                        params={"attribute": "patched", "value": 1, "labels": [PATCH_CLASS]},
                        description=f"the patched training images of class {PATCH_CLASS} ({CLASSES[PATCH_CLASS]}), "
                                    "the carriers of the spurious patch cue (Aylapuram et al. 2025)")
    return (bias,)


_PROFILES = {
    "smoke": ProfileSpec(model="small_cnn", model_args={"channels": [16, 32], "hidden": 64},
                         recipe=Recipe(optimizer="adam", lr=1e-3, epochs=6, batch_size=128),
                         train_size=10_000, val_size=1_000, test_size=2_000),
    # A fast ResNet-18 recipe (He et al. 2016's model and augmentation; the one-cycle schedule of
    # Smith & Topin 2019 as fast CIFAR trainers use it, Page 2018, Jordan 2024): SGD with Nesterov
    # momentum 0.9, weight decay 5e-4, batch 512, peak lr 0.4 after a 25 % linear warm-up then a
    # linear decay, label smoothing 0.1, crop and flip, bf16 autocast. On an H100 (`make bench`):
    # 40 epochs in 45 s, 90.4 % on the unpatched test images of this JPEG copy (20 epochs at lr
    # 0.2 without smoothing: 88.2 %; 60 epochs: 91.0 % in 66 s).
    "standard": ProfileSpec(model="resnet18_cifar",
                            recipe=Recipe(optimizer="sgd", lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4,
                                          epochs=40, batch_size=512, schedule="onecycle", label_smoothing=0.1,
                                          augment="crop_flip", precision="bf16"),
                            train_size=None, val_size=5_000, test_size=None, eval_batch_size=1024),
}

_SOURCE = (DataFileSpec(name=OFFICIAL.archive.name, sha256=OFFICIAL.archive.sha256),
           DataFileSpec(name=OFFICIAL.copy.name, sha256=OFFICIAL.copy.sha256))

_SOURCE_NOTES = (
    "Sources, in order: the official pickle batches (extracted folder cifar-10-batches-py/ or the archive "
    "cifar-10-python.tar.gz, under <mirror>/cifar10/), else the image-folder copy cifar10-jpeg.tar.gz "
    "(lossy JPEG, quality 75); every record's data_source says which. The shared mirror holds only the JPEG "
    "copy, whose pixels differ from the official uint8 values: results on it are not comparable with "
    "numbers on the original CIFAR-10.",
    "The image-folder copy lists images per class in file-name order; the mapping to the official batch "
    "order is unknown, so sample indices (and therefore splits) differ between the two sources.",
)

_SPLIT_NOTES = (
    "Validation is held out of the 50,000 training images (1,000 in smoke, 5,000 in standard); the test "
    "split is the official 10,000 test images (a fixed random 2,000 in smoke).",
    "Inputs are scaled to [0, 1] and normalised per channel by the official training mean and standard "
    "deviation; resolution stays 32x32. No missing values.",
)

SPEC = TaskSpec(
    name="cifar10",
    version="2.0",
    title="CIFAR-10",
    modality="image",
    description="CIFAR-10 (Krizhevsky 2009): ten classes of 32x32 colour images, as they are.",
    num_classes=len(CLASSES),
    input_shape=(3, 32, 32),
    source=_SOURCE,
    source_folder=OFFICIAL.folder,
    profiles=_PROFILES,
    scenarios=_scenarios(),
    main_metric="test/acc",
    notes=(
        *_SOURCE_NOTES,
        "The images as they are: no patch (the patch-biased variant is the task cifar10_patch). Version 2.0: "
        "until 1.1 this task carried the patch bias in every scenario.",
        *_SPLIT_NOTES,
        "fgsm_poison_5 (resilience, after Khorasani et al. 2025): 5 % of the training images, drawn like random_*, "
        "get a wrong label y' (uniform over the other nine, from the scenario's generator) and one targeted FGSM "
        "step of eps 8/255 on the [0, 1] pixel scale toward y', against a surrogate multinomial logistic "
        "regression fitted on (at most 10,000 evenly spaced images of) the clean train part (a transfer attack, "
        "independent of the profile's model), re-quantised to uint8. The original trains on the poisoned pool, "
        "the oracle on the clean retain set; forget/acc counts the poisoned labels; robust/fgsm_acc is test "
        "accuracy under a white-box untargeted FGSM step of 8/255 (eps / std per normalised channel).",
    ),
    licence="CIFAR-10: Alex Krizhevsky, no formal licence (cite the technical report)",
    citation="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images",
)

# The same images, sources, profiles and licence as `cifar10`; what differs is named here. The
# spec is validated (model_validate) rather than copied field by field, so a bad value still fails.
PATCH_SPEC = TaskSpec.model_validate({
    **SPEC.model_dump(),
    "name": "cifar10_patch",
    "version": "1.0",
    "title": "CIFAR-10 with a patch bias",
    "description": "CIFAR-10 with a synthetic patch bias: a checkerboard in the corner of half the airplanes "
                   "(Aylapuram et al. 2025's construction, ours in the details).",
    "scenarios": _patch_scenarios(),
    "sensitive_attributes": ("patched",),
    "notes": (
        *_SOURCE_NOTES,
        f"Patch bias: a {PATCH_SIZE}x{PATCH_SIZE} black-and-white checkerboard (top-left pixel white) in the "
        f"bottom-right corner of exactly {PATCH_FRACTION:.0%} of the training images of class {PATCH_CLASS} "
        f"({CLASSES[PATCH_CLASS]}) and of exactly {TEST_PATCH_FRACTION:.0%} (rounded down) of the test images of "
        f"every class, chosen with numpy's default_rng({PATCH_SEED}) (training choice first); no other "
        "training image carries it. Attributes: patched (0/1); bias_aligned = 0 on patched test images of "
        "the other classes, 1 elsewhere.",
        "test/acc is measured on the half-patched test pool, so a model that learned the patch shortcut "
        "loses accuracy on the patched images of the other nine classes: it is not the CIFAR-10 test accuracy "
        "of the literature (bias/aligned_acc, the clean images plus the patched airplanes, comes closest).",
        *_SPLIT_NOTES,
    ),
    "citation": "Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images; "
                "Aylapuram et al. 2025, Bias-Aware Machine Unlearning (patch bias)",
})


class Cifar10Task(Task):
    """CIFAR-10 as it is (`cifar10`)."""

    spec = SPEC

    def __init__(self, source: Cifar10Source = OFFICIAL) -> None:
        self.source = source
        self._loaded_from = ""

    def data_files(self) -> list[DataFile]:
        return source_files(self.source)

    def data_status(self) -> DataStatus:
        return source_status(self.spec.name, self.source)

    def cache_key(self) -> list[object]:
        return [self.spec.name, self.spec.version]

    def build(self, arrays: Cifar10Arrays) -> TaskData:
        return build_cifar10(arrays)

    def load(self) -> TaskData:
        data, self._loaded_from = load_cached(self.spec.name, self.source, self.cache_key(), self.build)
        return data

    def data_source(self) -> str:
        return self._loaded_from

    def to_inputs(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
        return x.float().div_(255.0).sub_(mean).div_(std)


class Cifar10PatchTask(Cifar10Task):
    """CIFAR-10 with the patch bias (`cifar10_patch`)."""

    spec = PATCH_SPEC

    def cache_key(self) -> list[object]:
        return [self.spec.name, self.spec.version, PATCH_SEED, PATCH_CLASS, PATCH_FRACTION, TEST_PATCH_FRACTION,
                PATCH.tolist()]

    def build(self, arrays: Cifar10Arrays) -> TaskData:
        return build_cifar10_patch(arrays)

    def counterfactual(self, x: torch.Tensor, attributes: dict[str, torch.Tensor],
                       generator: torch.Generator) -> torch.Tensor:
        """The same images with the patch toggled (FMD's x̄, Chen et al. 2023), on model-ready
        inputs: a clean image gets the patch pasted in; a patched one gets the patch removed, its
        corner filled with the mean of the pixels bordering it (the row above and the column to
        the left, per channel), since the pixels under the patch are not stored. Deterministic:
        `generator` is not used."""
        return toggle_patch(x, attributes["patched"].to(x.device).bool())


def load_cached(name: str, source: Cifar10Source, key: list[object],
                build: Callable[[Cifar10Arrays], TaskData]) -> tuple[TaskData, str]:
    """A CIFAR-10-based task's prepared tensors, built by `build` from whichever source is present
    (the official batches first) and cached per source; returns them and the source used. Shared
    by `cifar10`, `cifar10_patch` and the continual `split_cifar10`."""
    kind = locate_known(source)
    located = None
    if kind is None:
        located = locate_cifar10(source)  # downloads the official archive, or says what is missing
        kind = located.kind

    def make() -> TaskData:
        arrays = (located or locate_cifar10(source)).read()
        if arrays.source != kind:  # the files changed between the two looks
            raise MissingDataError(f"CIFAR-10: expected the {kind}, found the {arrays.source}; load again")
        return build(arrays)

    return cached_task_data(name, [*key, kind, source.pinned], make), kind


def source_files(source: Cifar10Source) -> list[DataFile]:
    """The official archive (what `mubench data fetch` downloads), and the copy when the copy is
    what a load would read."""
    files = [source.archive_file()]
    return files + [source.copy_file()] if locate_known(source) == IMAGE_FOLDER_SOURCE else files


def source_status(name: str, source: Cifar10Source) -> DataStatus:
    """Complete when any one source is present: the official batches (folder or archive) or the copy;
    shared by every task that reads CIFAR-10 (`cifar10`, `cifar10_patch`, the continual `split_cifar10`)."""
    candidates = [source.archive_file(), source.copy_file()]
    found = {f.name: str(hit[0]) for f in candidates if (hit := find(f)) is not None}
    folder = find_batches_folder(source)
    if folder is not None:
        found = {f"{BATCHES_FOLDER}/": str(folder), **found}
    return DataStatus(name, found, [] if found else [source.archive.name])


tasks.add("cifar10", Cifar10Task())
tasks.add("cifar10_patch", Cifar10PatchTask())

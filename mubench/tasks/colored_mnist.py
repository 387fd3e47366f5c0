"""Colored MNIST: MNIST digits whose colour is spuriously correlated with the label.

Construction as in the debiasing literature (ReBias, Bahng et al. 2020; used by FMD, Chen et
al. 2023): each class has a colour from ReBias's ten-colour palette; within each class a
fraction `ratio` of the samples (0.99 in train and val) takes the class's colour and the rest
are spread evenly over the other nine colours. In the test split the colour is independent of
the label (`test_ratio` 0.1 = one colour in ten is the class's own), so test accuracy measures
what the model learned about shape. Unlike ReBias, which paints the background, the digit's
stroke is painted, as FMD describes it ("digit colour"); the grey level scales the colour, so
anti-aliasing is kept. Colours are drawn once with a fixed generator (`colour_seed`): the data
is part of the task version, not of a run's seed.
"""

from __future__ import annotations

import numpy as np
import torch

from mubench.data.files import DataFile
from mubench.data.mnist import OFFICIAL, load_mnist
from mubench.tasks.base import Pool, Task, TaskData, cached_task_data, tasks
from mubench.tasks.spec import (
    DataFileSpec,
    ProfileSpec,
    Recipe,
    ScenarioSpec,
    TaskSpec,
    class_scenarios,
    random_scenarios,
)

# ReBias's COLOUR_MAP (clovaai/rebias, datasets/colour_mnist.py), RGB in 0..255.
PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [225, 225, 0], [225, 0, 225],
                    [0, 255, 255], [255, 128, 0], [255, 0, 128], [128, 0, 255], [128, 128, 128]], dtype=np.float32)
TRAIN_RATIO = 0.99
TEST_RATIO = 0.1
COLOUR_SEED = 0
# The fgsm_poison scenario's FGSM step on the [0, 1] pixel scale, for the poison and the robustness
# metric. Small on purpose: with a larger step (0.2 was tried) the targeted poison moves the stroke
# colour toward the wrong label's, so the poisoned samples agree with the colour shortcut and cost
# the smoke original no test accuracy (0.41 vs 0.40 clean); at 8/255 they are mislabelled digits
# that still look like their class, which the original must memorise (test accuracy 0.36).
FGSM_EPS = 8 / 255


def assign_colours(labels: np.ndarray, ratio: float, rng: np.random.Generator, num_colours: int = 10) -> np.ndarray:
    """Colour index per sample: `ratio` of each class gets its own colour, the rest the others evenly.

    Follows ReBias's `_update_bias_indices`: shuffle each class, keep the first
    floor(n * ratio) on the class's colour, then deal the remainder over the other colours in
    contiguous chunks, the order of the other colours shuffled per class.
    """
    colours = np.empty(len(labels), dtype=np.int64)
    for label in range(num_colours):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_aligned = int(len(members) * ratio)
        colours[members[:n_aligned]] = label
        others = np.array([c for c in range(num_colours) if c != label])
        rng.shuffle(others)
        rest = members[n_aligned:]
        chunk = int(np.ceil(len(rest) / (num_colours - 1))) if len(rest) else 1
        for position, start in enumerate(range(0, len(rest), chunk)):
            colours[rest[start:start + chunk]] = others[position]
    return colours


def colourise(images: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Paint grey digits (N, 28, 28) uint8 with palette colours -> (N, 3, 28, 28) uint8."""
    rgb = PALETTE[colours][:, :, None, None] * (images[:, None, :, :].astype(np.float32) / 255.0)
    return np.rint(rgb).astype(np.uint8)


# Recovering the grey level: a stored channel is v = rint(m g / 255) with m the colour's value in
# that channel, so |v - m g / 255| <= 1/2 and g_hat = 255 v / m is within 255 / (2 m) of the true
# grey g. Read from the channel where the colour is largest (m = 255, 225 or 128), the error is at
# most GREY_ERROR[colour]: 0.5 (exact, in fact, as v = g), 0.57 (yellow, magenta), 0.996 (grey):
# less than one grey level of 255 for every colour.
GREY_ERROR = 255.0 / (2.0 * PALETTE.max(axis=1))


def recover_grey(x: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """The grey digits (N, 28, 28), float in [0, 255], behind model-ready inputs (N, 3, 28, 28) in
    [0, 1] painted with palette colours `colours`; within GREY_ERROR[colour] of the original."""
    palette = torch.from_numpy(PALETTE).to(x.device)
    peak, channel = palette[colours.to(x.device).long()].max(dim=1)
    index = channel.view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
    stored = torch.round(x.float().gather(1, index).squeeze(1) * 255.0)
    return (stored * 255.0 / peak.view(-1, 1, 1)).clamp_(0.0, 255.0)


def recolour(x: torch.Tensor, colours: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Counterfactuals for FMD's counterfactual bias: the same digits (grey level recovered as in
    `recover_grey`) painted with a colour drawn uniformly from the other nine with `generator` (on
    the CPU), as model-ready floats in [0, 1] quantised to 1/255 like `to_inputs` of `colourise`.
    Returns the inputs and the new colours. Where the old colour peaks at 255 the result equals
    to_inputs(colourise(grey, new)) exactly; otherwise each pixel is within 1/255 of it."""
    colours = colours.cpu().long()
    new = (colours + torch.randint(1, len(PALETTE), colours.shape, generator=generator)) % len(PALETTE)
    grey = recover_grey(x, colours)
    palette = torch.from_numpy(PALETTE).to(x.device)
    rgb = palette[new.to(x.device)][:, :, None, None] * (grey[:, None, :, :] / 255.0)
    return torch.round(rgb).div_(255.0).to(x.dtype), new


def build_colored_mnist(arrays: dict[str, np.ndarray], train_ratio: float, test_ratio: float, seed: int) -> TaskData:
    rng = np.random.default_rng(seed)
    pools = {}
    for part, ratio in (("train", train_ratio), ("test", test_ratio)):
        labels = arrays[f"{part}_labels"].astype(np.int64)
        colours = assign_colours(labels, ratio, rng)
        pools[part] = Pool(
            x=torch.from_numpy(colourise(arrays[f"{part}_images"], colours)),
            y=torch.from_numpy(labels),
            attributes={"colour": torch.from_numpy(colours),
                        "bias_aligned": torch.from_numpy((colours == labels).astype(np.int64))},
        )
    return TaskData(train=pools["train"], test=pools["test"])


def _scenarios() -> tuple[ScenarioSpec, ...]:
    randoms = random_scenarios((1, 10))
    classes = class_scenarios(10, lambda k: f"every training sample of digit {k}")
    bias = ScenarioSpec(name="bias_aligned", kind="subgroup", domain="fairness",
                        params={"attribute": "bias_aligned", "value": 1, "labels": [0]},
                        description="the bias-aligned training samples of digit 0 (its colour-stereotyped majority)")
    poison = ScenarioSpec(name="fgsm_poison_5", kind="fgsm_poison", domain="resilience",
                          params={"fraction": 0.05, "eps": FGSM_EPS},
                          description="5 % of the training samples, drawn at random, replaced by FGSM-perturbed "
                                      f"(eps {round(FGSM_EPS * 255)}/255 on [0, 1] pixels) and mislabelled copies (Khorasani et al. 2025)")
    return randoms + classes + (bias, poison)


SPEC = TaskSpec(
    name="cmnist",
    version="1.1",
    title="Colored MNIST",
    modality="image",
    description=__doc__.split("\n\n")[0].strip(),
    num_classes=10,
    input_shape=(3, 28, 28),
    source=tuple(DataFileSpec(name=form.name, sha256=form.sha256)
                 for data_file in OFFICIAL.data_files() for form in data_file.forms[:1]),
    source_folder=OFFICIAL.folder,
    profiles={
        "smoke": ProfileSpec(model="mlp", model_args={"hidden": [256, 256]},
                             recipe=Recipe(optimizer="adam", lr=1e-3, epochs=5, batch_size=128),
                             train_size=10_000, val_size=1_000, test_size=2_000),
        "standard": ProfileSpec(model="small_cnn", model_args={"channels": [32, 64], "hidden": 128},
                                recipe=Recipe(optimizer="adam", lr=3e-3, epochs=6, batch_size=512, schedule="onecycle",
                                              precision="bf16"),
                                train_size=None, val_size=5_000, test_size=None),
        # the privacy audit's scale (mubench.profiles): the smoke MLP on a fifth of its data for six
        # times the epochs, so that it memorises its training samples (chosen by measurement,
        # docs/metrics.md "The privacy audit")
        "audit": ProfileSpec(model="mlp", model_args={"hidden": [256, 256]},
                             recipe=Recipe(optimizer="adam", lr=1e-3, epochs=30, batch_size=64),
                             train_size=2_000, val_size=1_000, test_size=2_000),
    },
    scenarios=_scenarios(),
    sensitive_attributes=("colour",),
    main_metric="test/acc",
    notes=(
        f"fgsm_poison_5 (resilience, after Khorasani et al. 2025): 5 % of the training samples, drawn like "
        f"random_*, get a wrong label y' (uniform over the other nine, from the scenario's generator) and one "
        f"targeted FGSM step of eps {round(FGSM_EPS * 255)}/255 on the [0, 1] pixel scale toward "
        "y', against a surrogate multinomial logistic regression fitted on the clean train part (a transfer "
        "attack, independent of the profile's model), re-quantised to uint8. The original trains on the "
        "poisoned pool, the oracle on the clean retain set; forget/acc counts the poisoned labels; "
        f"robust/fgsm_acc is test accuracy under a white-box untargeted FGSM step of the same eps.",
    ),
    licence="MNIST: Yann LeCun and Corinna Cortes, no formal licence",
    citation="LeCun et al. 1998 (MNIST); Bahng et al. 2020, ReBias (Colored MNIST); Chen et al. 2023, FMD",
)


class ColoredMNIST(Task):
    spec = SPEC

    def data_files(self) -> list[DataFile]:
        return OFFICIAL.data_files()

    def load(self) -> TaskData:
        key = [SPEC.name, SPEC.version, OFFICIAL.pinned, TRAIN_RATIO, TEST_RATIO, COLOUR_SEED]
        return cached_task_data("cmnist", key, lambda: build_colored_mnist(
            load_mnist(), TRAIN_RATIO, TEST_RATIO, COLOUR_SEED))

    def to_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255.0)

    def counterfactual(self, x: torch.Tensor, attributes: dict[str, torch.Tensor],
                       generator: torch.Generator) -> torch.Tensor:
        """The same digits in another colour, drawn uniformly from the other nine (see `recolour`)."""
        return recolour(x, attributes["colour"], generator)[0]


tasks.add("cmnist", ColoredMNIST())

"""Task specifications: frozen, validated descriptions of everything a task fixes.

A task fixes its data source, model, training recipe per profile, and forget scenarios; the
records of every method carry its version, so that changing a split or a metric (which bumps the
version) never mixes incomparable numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mubench.errors import UnknownNameError
from mubench.profiles import profiles
from mubench.registry import unknown_name_message
from mubench.targets import Target

Domain = Literal["privacy", "resilience", "fairness", "adaptability"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Recipe(Frozen):
    """How a model is trained from scratch (the original and the oracle use the same recipe)."""

    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = Field(gt=0)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    nesterov: bool = False
    # "onecycle": linear warm-up over the first `warmup` fraction of the steps from lr/warmup_div,
    # then linear decay (Smith & Topin 2019; mubench.harness.training.make_schedule)
    schedule: Literal["constant", "cosine", "onecycle"] = "constant"
    warmup: float = Field(default=0.25, gt=0, lt=1)
    warmup_div: float = Field(default=25.0, ge=1)
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    # "bf16": forward passes under bfloat16 autocast (losses and weights stay float32); a speed
    # option of the standard profiles on GPUs, honoured on every device
    precision: Literal["fp32", "bf16"] = "fp32"
    # Whole-batch augmentation during training (image tasks): "crop_flip" pads by 4 pixels, takes
    # a random crop of the input size and flips half the images horizontally (He et al. 2016's
    # CIFAR recipe); "none" trains on the stored inputs.
    augment: Literal["none", "crop_flip"] = "none"


class ProfileSpec(Frozen):
    """A task under one profile: model, recipe, and how much of the data is used.

    `train_size`, `val_size` and `test_size` subsample the pools (None keeps everything the pool
    offers after the validation hold-out); the subsample is fixed per task and profile.
    """

    model: str
    model_args: dict[str, Any] = Field(default_factory=dict)
    recipe: Recipe
    train_size: int | None = Field(default=None, ge=1)
    val_size: int = Field(ge=1)
    test_size: int | None = Field(default=None, ge=1)
    eval_batch_size: int = Field(default=1024, ge=1)


class ScenarioSpec(Frozen):
    """A named forget request: a scenario kind from the registry with its parameters."""

    name: str
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    domain: Domain
    description: str


def random_scenarios(percents: Sequence[int], unit: str = "samples") -> tuple[ScenarioSpec, ...]:
    """`random_<pct>`: pct % of the training <unit>, drawn uniformly at random (a privacy request)."""
    return tuple(ScenarioSpec(name=f"random_{pct}", kind="random", params={"fraction": pct / 100}, domain="privacy",
                              description=f"{pct} % of the training {unit}, drawn uniformly at random")
                 for pct in percents)


def class_scenarios(count: int, describe: Callable[[int], str]) -> tuple[ScenarioSpec, ...]:
    """`class_<k>` for k < count: every training sample of class k; `describe(k)` says which."""
    return tuple(ScenarioSpec(name=f"class_{k}", kind="class", params={"label": k}, domain="adaptability",
                              description=describe(k))
                 for k in range(count))


class DataFileSpec(Frozen):
    """A source file as published: name and pinned sha256."""

    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class TaskSpec(Frozen):
    """Everything that defines a task; see docs/design.md ("Task")."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    version: str
    title: str
    modality: Literal["image", "tabular", "signal", "timeseries", "vector"]
    description: str
    # The model's output width: the number of classes, or of predicted values for regression.
    num_classes: int = Field(ge=1)
    target: Literal["class", "regression"] = "class"
    missing_value: float | None = None  # regression: a target equal to it is missing and masked
    input_shape: tuple[int, ...]
    source: tuple[DataFileSpec, ...] = ()
    source_folder: str | None = None
    profiles: dict[str, ProfileSpec]
    scenarios: tuple[ScenarioSpec, ...]
    sensitive_attributes: tuple[str, ...] = ()
    main_metric: str = "test/acc"
    # Facts a reader of the data card needs that the other fields do not say: how missing
    # values are handled, what the mirror lacks, how the test split is drawn.
    notes: tuple[str, ...] = ()
    licence: str
    citation: str

    @field_validator("profiles")
    @classmethod
    def _known_profiles(cls, profiles: dict[str, ProfileSpec]) -> dict[str, ProfileSpec]:
        if "smoke" not in profiles:
            raise ValueError("every task needs a 'smoke' profile (CPU, minutes)")
        return profiles

    @model_validator(mode="after")
    def _unique_scenarios(self) -> TaskSpec:
        names = [s.name for s in self.scenarios]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"task {self.name}: duplicate scenario names {duplicates}")
        if not names:
            raise ValueError(f"task {self.name}: no scenarios")
        return self

    @model_validator(mode="after")
    def _consistent_target(self) -> TaskSpec:
        if self.target == "class" and self.num_classes < 2:
            raise ValueError(f"task {self.name}: a classification task needs at least 2 classes")
        if self.target == "class" and self.missing_value is not None:
            raise ValueError(f"task {self.name}: missing_value applies to regression targets only")
        return self

    @property
    def target_spec(self) -> Target:
        """How the task's predictions are scored (mubench.targets)."""
        return Target(self.target, self.missing_value)

    def scenario(self, name: str) -> ScenarioSpec:
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        valid = [s.name for s in self.scenarios]
        raise UnknownNameError(f"task {self.name!r}: " + unknown_name_message("scenario", name, valid))

    def profile(self, name: str) -> ProfileSpec:
        profiles.get(name)  # an unknown profile name gets the registry's message
        if name not in self.profiles:
            raise ValueError(f"task {self.name} has no {name!r} profile (it has: {', '.join(self.profiles)})")
        return self.profiles[name]

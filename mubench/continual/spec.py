"""Continual-task and stream specifications: frozen, validated, hashed into every stream id.

A stream is a sequence of requests, each "learn task t" or "unlearn task t", written as UnCLe
writes them (Adhikari, Kumaravelu & Srijith 2025, repository visprasadh/uncle,
toolbox/sequencer.py): `L0,L1,U0,...`. Its rules are UnCLe's parser's, made stricter where the
metrics need it: a task is unlearned only while it is learned, and (unlike UnCLe's parser, which
lets an unlearned task be learned again, though none of its published sequences does) a task is
learned at most once, so that an unlearned task's accuracy afterwards is relapse and nothing else.

The setting is task-incremental (UnCLe's: a task's identity is known at test time): one output
layer of `num_classes` units, and a sample of task t is classified among the classes of t only
(the other logits are masked), so chance on task t is 1 / (classes of t).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mubench.errors import UnknownNameError
from mubench.profiles import profiles
from mubench.registry import unknown_name_message
from mubench.tasks.spec import DataFileSpec, Frozen, Recipe

Op = Literal["learn", "unlearn"]
_CODE = re.compile(r"([LU])(\d+)")


class StreamStep(Frozen):
    """One request of a stream."""

    op: Op
    task: int = Field(ge=0)

    @property
    def code(self) -> str:
        """UnCLe's notation: L3 = learn task 3, U3 = unlearn it."""
        return ("L" if self.op == "learn" else "U") + str(self.task)

    def __str__(self) -> str:
        return f"{self.op} {self.task}"


def parse_steps(text: str) -> tuple[StreamStep, ...]:
    """'L0,L1,U0' -> (learn 0, learn 1, unlearn 0); spaces are ignored."""
    steps = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = _CODE.fullmatch(item)
        if not match:
            raise ValueError(f"bad stream request {item!r}: expected L<task> (learn) or U<task> (unlearn)")
        steps.append(StreamStep(op="learn" if match[1] == "L" else "unlearn", task=int(match[2])))
    return tuple(steps)


@dataclass(frozen=True)
class StreamState:
    """What holds after request `request` (1-based): the tasks learned and not unlearned
    (retained), the tasks unlearned so far, and at which request each of those was unlearned."""

    request: int
    step: StreamStep
    retained: tuple[int, ...]
    unlearned: tuple[int, ...]
    unlearned_at: dict[int, int]


def check_order(steps: tuple[StreamStep, ...]) -> list[StreamState]:
    """The state after every request; a request that breaks the rules raises ValueError naming it."""
    learned_at: dict[int, int] = {}
    unlearned_at: dict[int, int] = {}
    states = []
    for request, step in enumerate(steps, start=1):
        where = f"request {request} ({step})"
        if step.op == "learn" and step.task in learned_at:
            raise ValueError(f"{where}: task {step.task} was already learned at request {learned_at[step.task]}; "
                             "a task is learned at most once in a stream")
        if step.op == "unlearn" and step.task not in learned_at:
            raise ValueError(f"{where}: task {step.task} was never learned, so it cannot be unlearned")
        if step.op == "unlearn" and step.task in unlearned_at:
            raise ValueError(f"{where}: task {step.task} was already unlearned at request {unlearned_at[step.task]}")
        (learned_at if step.op == "learn" else unlearned_at)[step.task] = request
        retained = tuple(t for t in learned_at if t not in unlearned_at)
        states.append(StreamState(request, step, retained, tuple(unlearned_at), dict(unlearned_at)))
    return states


class StreamSpec(Frozen):
    """A named request sequence. `steps` may be given as UnCLe's string ('L0,L1,U0')."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str
    source: str = ""  # where the sequence comes from (paper, repository file)
    steps: tuple[StreamStep, ...] = Field(min_length=1)

    @field_validator("steps", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return parse_steps(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _valid_order(self) -> StreamSpec:
        try:
            check_order(self.steps)
        except ValueError as exc:
            raise ValueError(f"stream {self.name}: {exc}") from None
        return self

    @property
    def codes(self) -> str:
        return ",".join(step.code for step in self.steps)

    def states(self) -> list[StreamState]:
        return check_order(self.steps)

    def tasks(self) -> tuple[int, ...]:
        """The tasks the stream touches, in order of first appearance."""
        return tuple(dict.fromkeys(step.task for step in self.steps))


class ContinualProfile(Frozen):
    """A continual task under one profile: model, the recipe of every training call (one learn
    request, or one retraining from scratch), and how many samples each task keeps.

    `train_per_task`: training samples per task, the same number from each of its classes (floor
    of train_per_task / classes; a class with fewer gives all it has); None keeps every sample.
    `test_per_task`: test samples per task, balanced (the same number per class, at most the
    smallest class's count) so that a constant prediction scores exactly chance; None: as many as
    the smallest class allows."""

    model: str
    model_args: dict[str, Any] = Field(default_factory=dict)
    recipe: Recipe
    train_per_task: int | None = Field(default=None, ge=1)
    test_per_task: int | None = Field(default=None, ge=1)
    eval_batch_size: int = Field(default=1024, ge=1)


class ContinualSpec(Frozen):
    """Everything that defines a continual task: data, task split, profiles and named streams."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    version: str
    title: str
    modality: Literal["image", "tabular", "signal", "timeseries", "vector"]
    description: str
    num_classes: int = Field(ge=2)
    input_shape: tuple[int, ...]
    task_classes: tuple[tuple[int, ...], ...] = Field(min_length=1)
    setting: Literal["task_incremental"] = "task_incremental"
    source: tuple[DataFileSpec, ...] = ()
    source_folder: str | None = None
    profiles: dict[str, ContinualProfile]
    streams: tuple[StreamSpec, ...] = Field(min_length=1)
    notes: tuple[str, ...] = ()
    licence: str
    citation: str

    @field_validator("profiles")
    @classmethod
    def _has_smoke(cls, value: dict[str, ContinualProfile]) -> dict[str, ContinualProfile]:
        if "smoke" not in value:
            raise ValueError("every continual task needs a 'smoke' profile (CPU, minutes)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ContinualSpec:
        flat = [c for classes in self.task_classes for c in classes]
        if any(len(classes) < 2 for classes in self.task_classes):
            raise ValueError(f"{self.name}: every task needs at least 2 classes")
        if len(set(flat)) != len(flat) or not all(0 <= c < self.num_classes for c in flat):
            raise ValueError(f"{self.name}: task classes must be distinct and in 0..{self.num_classes - 1}")
        names = [s.name for s in self.streams]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate stream names {sorted({n for n in names if names.count(n) > 1})}")
        for stream in self.streams:
            bad = [t for t in stream.tasks() if t >= self.n_tasks]
            if bad:
                raise ValueError(f"{self.name}: stream {stream.name} names task(s) {bad}, but there are only "
                                 f"{self.n_tasks} tasks (0..{self.n_tasks - 1})")
        return self

    @property
    def n_tasks(self) -> int:
        return len(self.task_classes)

    def chance(self, task: int) -> float:
        """Task-incremental chance accuracy on `task`'s balanced test set: 1 / its classes."""
        return 1.0 / len(self.task_classes[task])

    def stream(self, name: str) -> StreamSpec:
        for stream in self.streams:
            if stream.name == name:
                return stream
        raise UnknownNameError(f"continual task {self.name!r}: "
                               + unknown_name_message("stream", name, [s.name for s in self.streams]))

    def profile(self, name: str) -> ContinualProfile:
        profiles.get(name)  # an unknown profile name gets the registry's message
        if name not in self.profiles:
            raise ValueError(f"continual task {self.name} has no {name!r} profile (it has: {', '.join(self.profiles)})")
        return self.profiles[name]

"""Deterministic, checksummed splits.

A split holds index arrays into the task's pools: `train` (= `forget` + `retain`) and `val`
index the official training pool, `test` the official test pool. The partition into train, val
and test is fixed per (task, version, profile), so every seed and scenario shares it; the forget
set is drawn per (scenario, seed). Every generator is a `numpy.random.Generator` seeded from a
hash of those names, never a global seed. The split id is the sha256 over the index arrays; a
stored split is re-hashed and compared with its id and with a fresh draw when loaded, so a
change in the generators can never silently alter the data behind a record.

A scenario whose kind poisons its forget set (ScenarioKind.poison) also gets a `Poison`: the
replacement values and labels of the forget samples, drawn from their own generator per
(scenario, seed). Its sha256 (over the forget indices and the poisoned values' and labels' bytes)
is the split's `poison` field, part of the split id (and so of every record's split_id); it is
stored with the split and a fresh poison must hash to it, so a changed or tampered poison is
detected like a changed split.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mubench import paths
from mubench.errors import SplitMismatchError, SplitSizeError
from mubench.harness.artifacts import atomic_write, file_lock
from mubench.hashing import sha256_arrays, sha256_of, sha256_tensors
from mubench.tasks.base import Pool, Task, TaskData
from mubench.tasks.scenarios import scenario_kinds

PARTS = ("train", "forget", "retain", "val", "heldout", "test")


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    forget: np.ndarray
    retain: np.ndarray
    val: np.ndarray
    heldout: np.ndarray  # val samples from the forget set's population: membership non-members
    test: np.ndarray
    poison: str = ""  # sha256 of the poisoned forget samples (Poison.sha256); "" for clean scenarios

    @property
    def id(self) -> str:
        indices = sha256_arrays(self.arrays())
        return sha256_of([indices, "poison", self.poison]) if self.poison else indices

    def arrays(self) -> dict[str, np.ndarray]:
        return {part: getattr(self, part) for part in PARTS}


def generator_for(*names: object) -> np.random.Generator:
    """An explicit generator seeded from a hash of `names` (stable across processes)."""
    return np.random.default_rng(int(sha256_of(list(names))[:16], 16))


def make_split(task: Task, data: TaskData, scenario: str, seed: int, profile: str) -> Split:
    spec = task.spec
    profile_spec = spec.profile(profile)
    scenario_spec = spec.scenario(scenario)
    partition_rng = generator_for(spec.name, spec.version, profile, "partition")
    order = partition_rng.permutation(len(data.train))
    if profile_spec.val_size >= len(order):
        raise SplitSizeError(f"task {spec.name}, profile {profile}: val_size {profile_spec.val_size} leaves no training "
                             f"data (the training pool holds {len(order)} samples; a partial copy of the data?)")
    val = np.sort(order[: profile_spec.val_size])
    rest = order[profile_spec.val_size:]
    train = np.sort(rest[: profile_spec.train_size] if profile_spec.train_size else rest)
    test = np.arange(len(data.test))
    if profile_spec.test_size and profile_spec.test_size < len(test):
        test = np.sort(partition_rng.choice(test, size=profile_spec.test_size, replace=False))
    labels = data.train.y.numpy()
    attributes = {k: v.numpy() for k, v in data.train.attributes.items()}
    kind = scenario_kinds.get(scenario_spec.kind)
    forget_rng = generator_for(spec.name, spec.version, profile, scenario, seed, "forget")
    forget = kind.forget(labels, attributes, train, scenario_spec.params, forget_rng)
    heldout = kind.heldout(labels, attributes, val, scenario_spec.params, forget_rng)
    if len(forget) == 0 or len(forget) == len(train) or len(heldout) == 0:
        raise ValueError(f"task {spec.name}, scenario {scenario}: forget set has {len(forget)} of {len(train)} "
                         f"samples and {len(heldout)} held-out counterparts")
    retain = np.setdiff1d(train, forget, assume_unique=True)
    return Split(train=train, forget=forget, retain=retain, val=val, heldout=heldout, test=test)


@dataclass(frozen=True)
class Poison:
    """What replaces the forget samples in the training pool: stored values `x` and labels `y`,
    aligned with `forget`, and their checksum."""

    forget: np.ndarray
    x: torch.Tensor
    y: torch.Tensor

    @property
    def sha256(self) -> str:
        return sha256_tensors({"forget": torch.from_numpy(np.asarray(self.forget, dtype=np.int64)),
                               "x": self.x, "y": self.y})

    def apply(self, data: TaskData) -> TaskData:
        """A copy of `data` whose training pool holds the poisoned forget samples (`data` is unchanged)."""
        x, y = data.train.x.clone(), data.train.y.clone()
        index = torch.from_numpy(np.asarray(self.forget))
        x[index], y[index] = self.x.to(x.dtype), self.y.to(y.dtype)
        return TaskData(train=Pool(x, y, dict(data.train.attributes)), test=data.test)


def make_poison(task: Task, data: TaskData, split: Split, scenario: str, seed: int, profile: str) -> Poison | None:
    """The scenario's poisoned forget samples, or None when its kind poisons nothing. Deterministic:
    the generator is seeded from (task, version, profile, scenario, seed, "poison")."""
    spec = task.spec
    scenario_spec = spec.scenario(scenario)
    kind = scenario_kinds.get(scenario_spec.kind)
    if kind.poison is None:
        return None
    if spec.target != kind.poison_target:
        raise ValueError(f"task {spec.name}, scenario {scenario}: a {scenario_spec.kind} scenario poisons "
                         f"{kind.poison_target} targets, the task's target is {spec.target}")
    rng = generator_for(spec.name, spec.version, profile, scenario, seed, "poison")
    x, y = kind.poison(data.train.x, data.train.y, split.train, split.forget, task.to_inputs, spec.num_classes,
                       scenario_spec.params, rng)
    return Poison(forget=split.forget, x=x, y=y)


def split_path(task: str, scenario: str, seed: int, profile: str, version: str) -> Path:
    """Where a split is stored: the task's version is in the path, so a version bump draws and
    stores new splits beside the old ones rather than colliding with them."""
    return paths.home() / "splits" / task / f"v{version}" / profile / scenario / f"seed{seed}.npz"


def load_or_make_split(task: Task, data: TaskData, scenario: str, seed: int, profile: str) -> Split:
    """The split for a run: drawn afresh, checked against the stored copy, stored if new."""
    return load_or_make_poisoned_split(task, data, scenario, seed, profile)[0]


def load_or_make_poisoned_split(task: Task, data: TaskData, scenario: str, seed: int,
                                profile: str) -> tuple[Split, Poison | None]:
    """The split and its poison (None for a clean scenario): drawn afresh, checked against the
    stored copy (indices and poison checksum), stored if new."""
    fresh = make_split(task, data, scenario, seed, profile)
    poison = make_poison(task, data, fresh, scenario, seed, profile)
    if poison is not None:
        fresh = replace(fresh, poison=poison.sha256)
    path = split_path(task.spec.name, scenario, seed, profile, task.spec.version)
    with file_lock(path.with_name(path.name + ".lock")):  # two drivers drawing one split: one writes it
        return _check_or_store(path, fresh, task), poison


def _check_or_store(path: Path, fresh: Split, task: Task) -> Split:
    if path.is_file():
        stored = read_split(path)
        if stored.id != fresh.id:
            what = ("the poisoned forget samples" if replace(stored, poison="").id == replace(fresh, poison="").id
                    else "the split")
            raise SplitMismatchError(
                f"{path}: the stored split {stored.id[:12]} differs from the one drawn now {fresh.id[:12]} "
                f"({what} changed); the generator changed without a task version bump (task {task.spec.name} "
                f"v{task.spec.version}). Bump the version, or delete the file if it is stale.")
        return stored
    write_split(path, fresh)
    return fresh


def write_split(path: Path, split: Split) -> None:
    """Atomically: written to a temporary file of its own beside `path`, then renamed over it,
    so a reader never sees half a split and two writers never share a temporary name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"poison": np.array(split.poison)} if split.poison else {}

    def save(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, id=np.array(split.id), **extra, **split.arrays())

    atomic_write(path, save)


def read_split(path: Path) -> Split:
    """Read a stored split and verify that its indices still hash to its recorded id."""
    try:
        with np.load(path) as stored:
            poison = str(stored["poison"]) if "poison" in stored.files else ""
            split = Split(**{part: stored[part] for part in PARTS}, poison=poison)
            recorded = str(stored["id"])
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise SplitMismatchError(f"{path}: unreadable split file ({exc})") from None
    if split.id != recorded:
        raise SplitMismatchError(f"{path}: indices hash to {split.id[:12]}, but the file records {recorded[:12]}")
    return split

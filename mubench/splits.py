"""Deterministic, checksummed splits.

A split holds index arrays into the task's pools: `train` (= `forget` + `retain`) and `val`
index the official training pool, `test` the official test pool. The partition into train, val
and test is fixed per (task, version, profile), so every seed and scenario shares it; the forget
set is drawn per (scenario, seed). Every generator is a `numpy.random.Generator` seeded from a
hash of those names, never a global seed. The split id is the sha256 over the index arrays; a
stored split is re-hashed and compared with its id and with a fresh draw when loaded, so a
change in the generators can never silently alter the data behind a record.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mubench import paths
from mubench.errors import SplitMismatchError
from mubench.hashing import sha256_arrays, sha256_of
from mubench.scenarios import scenario_kinds
from mubench.tasks.base import Task, TaskData

PARTS = ("train", "forget", "retain", "val", "heldout", "test")


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    forget: np.ndarray
    retain: np.ndarray
    val: np.ndarray
    heldout: np.ndarray  # val samples from the forget set's population: membership non-members
    test: np.ndarray

    @property
    def id(self) -> str:
        return sha256_arrays(self.arrays())

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
        raise ValueError(f"task {spec.name}: val_size {profile_spec.val_size} leaves no training data")
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


def split_path(task: str, scenario: str, seed: int, profile: str) -> Path:
    return paths.home() / "splits" / task / profile / scenario / f"seed{seed}.npz"


def load_or_make_split(task: Task, data: TaskData, scenario: str, seed: int, profile: str) -> Split:
    """The split for a run: drawn afresh, checked against the stored copy, stored if new."""
    fresh = make_split(task, data, scenario, seed, profile)
    path = split_path(task.spec.name, scenario, seed, profile)
    if path.is_file():
        stored = read_split(path)
        if stored.id != fresh.id:
            raise SplitMismatchError(
                f"{path}: the stored split {stored.id[:12]} differs from the one drawn now {fresh.id[:12]}; "
                f"the split generator changed without a task version bump (task {task.spec.name} "
                f"v{task.spec.version}). Bump the version, or delete the file if it is stale.")
        return stored
    write_split(path, fresh)
    return fresh


def write_split(path: Path, split: Split) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, id=np.array(split.id), **split.arrays())
    tmp.replace(path)


def read_split(path: Path) -> Split:
    """Read a stored split and verify that its indices still hash to its recorded id."""
    try:
        with np.load(path) as stored:
            split = Split(**{part: stored[part] for part in PARTS})
            recorded = str(stored["id"])
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise SplitMismatchError(f"{path}: unreadable split file ({exc})") from None
    if split.id != recorded:
        raise SplitMismatchError(f"{path}: indices hash to {split.id[:12]}, but the file records {recorded[:12]}")
    return split

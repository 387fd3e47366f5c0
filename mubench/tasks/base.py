"""The Task interface and the in-memory data a task hands to the harness."""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mubench import paths
from mubench.data.files import DataFile, find
from mubench.hashing import sha256_of, sha256_tensors
from mubench.registry import Registry
from mubench.tasks.spec import TaskSpec


@dataclass(frozen=True)
class Pool:
    """A pool of samples as tensors: inputs, integer labels, and per-sample attributes.

    Attributes are integer tensors aligned with the samples (e.g. `bias_aligned` on Colored
    MNIST, a sensitive attribute on a fairness task); metrics that need one look it up by name.
    """

    x: torch.Tensor
    y: torch.Tensor
    attributes: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.y)
        if len(self.x) != n or any(len(a) != n for a in self.attributes.values()):
            raise ValueError("a pool's inputs, labels and attributes must have the same length")

    def __len__(self) -> int:
        return len(self.y)

    def take(self, indices: torch.Tensor) -> Pool:
        return Pool(self.x[indices], self.y[indices], {k: v[indices] for k, v in self.attributes.items()})


@dataclass(frozen=True)
class TaskData:
    """The official training pool (from which val is held out) and the official test pool."""

    train: Pool
    test: Pool


def cached_task_data(name: str, key: object, build: Callable[[], TaskData]) -> TaskData:
    """Prepared tensors under MUBENCH_HOME/prepared, keyed by a hash of what determines them.

    Written atomically (a temporary file of its own, then rename) with the sha256 of its tensors
    in the file's metadata, checked on every read: a damaged or edited cache file (one that would
    change every number computed on it under the same split ids) is rebuilt from the raw files.
    """
    cache = paths.prepared() / f"{name}-{sha256_of(key)[:16]}.safetensors"
    if cache.is_file():
        try:
            with safe_open(cache, framework="pt") as handle:
                recorded = (handle.metadata() or {}).get("sha256")
            tensors = load_file(cache)
            if recorded is not None and sha256_tensors(tensors) == recorded:
                return _from_tensors(tensors)
        except Exception:  # noqa: BLE001 - any damage means: rebuild from the verified raw files
            pass
        cache.unlink(missing_ok=True)
    data = build()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tensors = _to_tensors(data)
    handle_fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=cache.name, suffix=".tmp")
    os.close(handle_fd)
    try:
        save_file(tensors, tmp, metadata={"sha256": sha256_tensors(tensors)})
        os.replace(tmp, cache)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return data


def _to_tensors(data: TaskData) -> dict[str, torch.Tensor]:
    flat = {}
    for part, pool in (("train", data.train), ("test", data.test)):
        flat[f"{part}.x"], flat[f"{part}.y"] = pool.x.contiguous(), pool.y.contiguous()
        flat.update({f"{part}.attr.{k}": v.contiguous() for k, v in pool.attributes.items()})
    return flat


def _from_tensors(flat: dict[str, torch.Tensor]) -> TaskData:
    def pool(part: str) -> Pool:
        attrs = {k.split(".", 2)[2]: v for k, v in flat.items() if k.startswith(f"{part}.attr.")}
        return Pool(flat[f"{part}.x"], flat[f"{part}.y"], attrs)

    return TaskData(train=pool("train"), test=pool("test"))


@dataclass(frozen=True)
class DataStatus:
    """Whether a task's files were found, where, and which are missing."""

    task: str
    found: dict[str, str]
    missing: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing


class Task(ABC):
    """A registered benchmark task: a spec plus a loader for the spec's data."""

    spec: TaskSpec

    @abstractmethod
    def load(self) -> TaskData:
        """Read (and cache) the task's data; raise MissingDataError/CorruptDataError clearly."""

    def to_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Turn stored samples (e.g. uint8 images) into model inputs; applied after subsetting."""
        return x

    def counterfactual(self, x: torch.Tensor, attributes: dict[str, torch.Tensor],
                       generator: torch.Generator) -> torch.Tensor | None:
        """Counterfactuals of model-ready inputs `x`: the same samples with only the sensitive
        attribute changed (FMD's x̄, Chen et al. 2023), as model-ready inputs of x's shape, dtype
        and device. `attributes` holds the samples' attributes (aligned with x, on the CPU); random
        choices draw from `generator` (a CPU generator) so that the metric is reproducible.
        None (the default): the task cannot build counterfactuals."""
        return None

    def data_source(self) -> str:
        """Which form of the data the loaded pools came from, recorded in every record: empty for
        the official files in full; otherwise a phrase such as "lossy JPEG copy" or "10 of 200
        classes present". Called after `load`."""
        return ""

    def data_files(self) -> list[DataFile]:
        """The raw files this task reads; tasks with generated data return none."""
        return []

    def data_status(self) -> DataStatus:
        return data_status_of(self.spec.name, self.data_files())


def data_status_of(name: str, data_files: list[DataFile]) -> DataStatus:
    """Which of a task's files are found, and where (never downloads); for every kind of task."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for data_file in data_files:
        hit = find(data_file)
        if hit is None:
            missing.append(data_file.name)
        else:
            found[data_file.name] = str(hit[0])
    return DataStatus(name, found, missing)


tasks: Registry[Task] = Registry("task", entry_point_group="mubench.tasks")

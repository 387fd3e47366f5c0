"""Per-task sample indices and the checksummed stream id.

Each task of a continual task owns index arrays into the official training pool (its training
data) and test pool (its test data), drawn from explicit generators seeded by (task name, version,
profile, task number), so every stream, method and seed of a profile shares them. The stream id is
the sha256 of the stream's canonical definition (its name and requests, the task split, the
setting) together with the hash of every task's indices: it goes into every record's `split_id`.
A stored stream is re-hashed and compared with a fresh draw whenever it is read, as splits are
(mubench.harness.splits.load_or_make_split), so a change in the generators or the definition can never
silently alter the data behind a record.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mubench import paths
from mubench.continual.spec import ContinualSpec, StreamSpec
from mubench.errors import SplitMismatchError
from mubench.harness.splits import generator_for
from mubench.hashing import sha256_arrays, sha256_of
from mubench.tasks.base import TaskData


@dataclass(frozen=True)
class TaskIndices:
    """Indices of each task's training samples (official training pool) and test samples (official
    test pool), keyed by task number."""

    train: dict[int, np.ndarray]
    test: dict[int, np.ndarray]

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"task{t}_{part}": getattr(self, part)[t] for t in self.train for part in ("train", "test")}

    @property
    def digest(self) -> str:
        return sha256_arrays(self.arrays())


def _per_class(labels: np.ndarray, classes: tuple[int, ...], per_class: int | None, rng: np.random.Generator,
               where: str) -> np.ndarray:
    chosen = []
    for label in classes:
        members = np.flatnonzero(labels == label)
        if len(members) == 0:
            raise ValueError(f"{where}: class {label} has no samples")
        take = len(members) if per_class is None else min(per_class, len(members))
        chosen.append(np.sort(rng.choice(members, size=take, replace=False)) if take < len(members) else members)
    return np.sort(np.concatenate(chosen))


def draw_task_indices(spec: ContinualSpec, data: TaskData, profile: str) -> TaskIndices:
    """Every task's training and (balanced) test indices under `profile` (see ContinualProfile)."""
    settings = spec.profile(profile)
    train_labels, test_labels = data.train.y.numpy(), data.test.y.numpy()
    train, test = {}, {}
    for task, classes in enumerate(spec.task_classes):
        rng = generator_for(spec.name, spec.version, profile, "task", task)
        k = len(classes)
        per_train = None if settings.train_per_task is None else max(1, settings.train_per_task // k)
        train[task] = _per_class(train_labels, classes, per_train, rng, f"{spec.name} task {task} (training pool)")
        smallest = min(int(np.sum(test_labels == c)) for c in classes)
        per_test = smallest if settings.test_per_task is None else min(smallest, max(1, settings.test_per_task // k))
        test[task] = _per_class(test_labels, classes, per_test, rng, f"{spec.name} task {task} (test pool)")
    return TaskIndices(train, test)


def stream_definition(spec: ContinualSpec, stream: StreamSpec) -> dict[str, object]:
    """What a stream's id covers besides the indices (descriptions are left out: editing one is no
    change to the data or the requests)."""
    return {"task": spec.name, "version": spec.version, "setting": spec.setting,
            "task_classes": spec.task_classes, "stream": stream.name, "requests": stream.codes}


def stream_id(spec: ContinualSpec, stream: StreamSpec, indices: TaskIndices) -> str:
    return sha256_of({"definition": stream_definition(spec, stream), "indices": indices.digest})


@dataclass(frozen=True)
class PreparedStream:
    stream: StreamSpec
    indices: TaskIndices
    id: str


def stream_path(task: str, stream: str, profile: str) -> Path:
    return paths.home() / "streams" / task / profile / f"{stream}.npz"


def load_or_make_stream(spec: ContinualSpec, data: TaskData, stream_name: str, profile: str) -> PreparedStream:
    """The stream for a run: drawn afresh, checked against the stored copy, stored if new."""
    stream = spec.stream(stream_name)
    fresh = draw_task_indices(spec, data, profile)
    prepared = PreparedStream(stream, fresh, stream_id(spec, stream, fresh))
    path = stream_path(spec.name, stream_name, profile)
    if path.is_file():
        stored_id = read_stream(path, spec.n_tasks)
        if stored_id != prepared.id:
            raise SplitMismatchError(
                f"{path}: the stored stream {stored_id[:12]} differs from the one defined and drawn now "
                f"{prepared.id[:12]}; the stream's requests, the task split or the index generator changed "
                f"without a version bump (continual task {spec.name} v{spec.version}). Bump the version, or "
                "delete the file if it is stale.")
        return prepared
    write_stream(path, prepared)
    return prepared


def write_stream(path: Path, prepared: PreparedStream) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, id=np.array(prepared.id), indices_sha256=np.array(prepared.indices.digest),
             **prepared.indices.arrays())
    tmp.replace(path)


def read_stream(path: Path, n_tasks: int) -> str:
    """A stored stream's recorded id, after checking that its indices still hash to what it records."""
    try:
        with np.load(path) as stored:
            indices = TaskIndices({t: stored[f"task{t}_train"] for t in range(n_tasks)},
                                  {t: stored[f"task{t}_test"] for t in range(n_tasks)})
            recorded, recorded_indices = str(stored["id"]), str(stored["indices_sha256"])
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise SplitMismatchError(f"{path}: unreadable stream file ({exc})") from None
    if indices.digest != recorded_indices:
        raise SplitMismatchError(f"{path}: indices hash to {indices.digest[:12]}, but the file records "
                                 f"{recorded_indices[:12]}")
    return recorded

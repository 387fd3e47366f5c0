"""A content-addressed cache of trained models (original and oracle) as safetensors.

The key is a hash of everything that determines the model (task and version, profile recipe,
training indices, seed, role); the metadata file beside the weights records the weights' sha256
and the training seconds. Writes are atomic (temporary file, then rename); a file whose hash
does not match its metadata (corrupted, truncated, edited) is logged, discarded and the model
retrained and re-written, never loaded. No pickle is ever loaded.

Several processes may share one cache (Ray workers on one node, or on a shared file system):
`get_or_train` holds an exclusive `fcntl.flock` on `<key>.lock` while it loads or trains, so when
two workers need the same original or oracle, one trains it and the other waits, then loads it.
The lock files are left in place (removing one while another process waits on it would let a
third process lock a new file of the same name and train the model a second time).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from mubench import paths
from mubench.hashing import sha256_file, sha256_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedModel:
    model: nn.Module
    train_seconds: float
    key: str
    from_cache: bool


class ModelCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else paths.models()

    def key(self, description: dict[str, object]) -> str:
        return sha256_of(description)

    def get_or_train(self, description: dict[str, object], build: Callable[[], nn.Module],
                     train: Callable[[nn.Module], float]) -> CachedModel:
        """Load the model described by `description`, or build and train it (then store it).

        `build` returns the untrained architecture (also used to load weights into); `train`
        trains it in place and returns the seconds it took.
        """
        key = self.key(description)
        with self._locked(key):
            model = build()
            loaded = self._load(key, model)
            if loaded is not None:
                return CachedModel(model, loaded, key, from_cache=True)
            model = build()  # a failed load may have filled part of the weights
            seconds = train(model)
            self._save(key, model, seconds, description)
            return CachedModel(model, seconds, key, from_cache=False)

    def get_or_train_many(self, descriptions: list[dict[str, object]], build: Callable[[int], nn.Module],
                          train_many: Callable[[list[nn.Module], list[int]], float]) -> list[CachedModel]:
        """`get_or_train` for several models that can be trained together (one batched training
        of those not in the cache: `mubench.harness.training.train_models_batched`). `build(i)` returns the
        untrained architecture of description i; `train_many(models, indices)` trains the missing
        ones (of those description indices) in place and returns the seconds for all of them, which are shared out equally. Keys are
        locked in sorted order, so two processes asking for overlapping sets cannot deadlock."""
        keys = [self.key(d) for d in descriptions]
        with contextlib.ExitStack() as stack:
            for key in sorted(set(keys)):
                stack.enter_context(self._locked(key))
            found: dict[int, CachedModel] = {}
            for i, key in enumerate(keys):
                model = build(i)
                loaded = self._load(key, model)
                if loaded is not None:
                    found[i] = CachedModel(model, loaded, key, from_cache=True)
            missing = [i for i in range(len(keys)) if i not in found]
            if missing:
                models = [build(i) for i in missing]
                seconds = train_many(models, missing) / len(models)
                for i, model in zip(missing, models):
                    self._save(keys[i], model, seconds, descriptions[i])
                    found[i] = CachedModel(model, seconds, keys[i], from_cache=False)
        return [found[i] for i in range(len(keys))]

    def _locked(self, key: str) -> contextlib.AbstractContextManager[None]:
        """Exclusive across processes for one key: the second process waits, then loads."""
        return file_lock(self.root / f"{key}.lock")

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.safetensors", self.root / f"{key}.json"

    def _load(self, key: str, model: nn.Module) -> float | None:
        weights, meta_path = self._paths(key)
        if not (weights.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            found = sha256_file(weights)
            if found != meta["sha256"]:
                raise ValueError(f"sha256 {found[:12]} differs from the recorded {str(meta['sha256'])[:12]}")
            model.load_state_dict(load_file(weights), strict=True)
            return float(meta["train_seconds"])
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
            log.warning("model cache: %s is unusable (%s: %s); retraining it", weights, type(exc).__name__, exc)
            weights.unlink(missing_ok=True)  # corrupt or stale: retrain and overwrite
            meta_path.unlink(missing_ok=True)
            return None

    def _save(self, key: str, model: nn.Module, seconds: float, description: dict[str, object]) -> None:
        weights, meta_path = self._paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
        atomic_write(weights, lambda tmp: save_file(state, tmp))
        meta = {"sha256": sha256_file(weights), "train_seconds": seconds, "description": description}
        atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1, default=str)))


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive `fcntl.flock` on `path` (created if needed) for the duration of the block;
    the kernel releases it if the holder dies, so a killed worker never leaves a stale lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def atomic_write(target: Path, write: Callable[[str], None]) -> None:
    """`write(tmp)` to a temporary file of its own beside `target`, then rename it over `target`."""
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

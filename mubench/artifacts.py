"""A content-addressed cache of trained models (original and oracle) as safetensors.

The key is a hash of everything that determines the model (task and version, profile recipe,
training indices, seed, role); the metadata file beside the weights records the weights' sha256
and the training seconds. Writes are atomic (temporary file, then rename); a file whose hash
does not match its metadata is discarded and the model retrained. No pickle is ever loaded.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from mubench import paths
from mubench.hashing import sha256_file, sha256_of


@dataclass(frozen=True)
class CachedModel:
    model: nn.Module
    train_seconds: float
    key: str
    from_cache: bool


class ModelCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else paths.home() / "models"

    def key(self, description: dict[str, object]) -> str:
        return sha256_of(description)

    def get_or_train(self, description: dict[str, object], build: Callable[[], nn.Module],
                     train: Callable[[nn.Module], float]) -> CachedModel:
        """Load the model described by `description`, or build and train it (then store it).

        `build` returns the untrained architecture (also used to load weights into); `train`
        trains it in place and returns the seconds it took.
        """
        key = self.key(description)
        model = build()
        loaded = self._load(key, model)
        if loaded is not None:
            return CachedModel(model, loaded, key, from_cache=True)
        seconds = train(model)
        self._save(key, model, seconds, description)
        return CachedModel(model, seconds, key, from_cache=False)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.safetensors", self.root / f"{key}.json"

    def _load(self, key: str, model: nn.Module) -> float | None:
        weights, meta_path = self._paths(key)
        if not (weights.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if sha256_file(weights) != meta["sha256"]:
                raise ValueError("hash mismatch")
            model.load_state_dict(load_file(weights), strict=True)
            return float(meta["train_seconds"])
        except (OSError, ValueError, KeyError, RuntimeError):
            weights.unlink(missing_ok=True)  # corrupt or stale: retrain and overwrite
            meta_path.unlink(missing_ok=True)
            return None

    def _save(self, key: str, model: nn.Module, seconds: float, description: dict[str, object]) -> None:
        weights, meta_path = self._paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
        _atomic(weights, lambda tmp: save_file(state, tmp))
        meta = {"sha256": sha256_file(weights), "train_seconds": seconds, "description": description}
        _atomic(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1, default=str)))


def _atomic(target: Path, write: Callable[[str], None]) -> None:
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

"""Canonical JSON and sha256: the ids of splits, records and cached models.

A run's id must be the same in every process and on every machine for the same config, and
different for any change, so configs are serialised canonically (sorted keys, no whitespace,
floats in `repr` form) before hashing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


def canonical_json(obj: Any) -> str:
    """Serialise `obj` deterministically; tuples become lists, numpy scalars become Python."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_to_jsonable, allow_nan=False)


def sha256_of(obj: Any) -> str:
    """sha256 hex digest of the canonical JSON of `obj`."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def sha256_text(text: str) -> str:
    """sha256 hex digest of `text` as UTF-8: a stored record body's digest."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_arrays(arrays: dict[str, np.ndarray]) -> str:
    """Hash named integer index arrays: name, length and little-endian int64 bytes of each."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        values = np.ascontiguousarray(arrays[name], dtype="<i8")
        digest.update(f"{name}:{values.size};".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def sha256_tensors(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over named tensors: name, dtype, shape and the contiguous CPU bytes of each."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"cannot hash object of type {type(obj).__name__}: {obj!r}")

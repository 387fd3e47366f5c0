"""Where mubench reads raw data (the mirror) and writes everything else (the home).

`MUBENCH_MIRROR` is a read-only folder holding official files (default: `../shared/data` beside
the working directory or the source tree, when it exists); `MUBENCH_HOME` (default
`~/.cache/mubench`) holds downloads, prepared tensors, splits, cached models and the store.
`MUBENCH_CACHE` (default: the home) moves the two content-addressed caches alone, trained models
(`models/`) and prepared tensors (`prepared/`), so that several homes, each with its own store
and splits, share one set of trained originals and oracles. Their keys are hashes of everything
that determines what they hold, so sharing them changes no number.
"""

from __future__ import annotations

import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    return Path(os.environ.get("MUBENCH_HOME", Path.home() / ".cache" / "mubench")).expanduser()


def cache() -> Path:
    """The folder of the content-addressed caches: `MUBENCH_CACHE`, else the home."""
    explicit = os.environ.get("MUBENCH_CACHE")
    return Path(explicit).expanduser() if explicit else home()


def models() -> Path:
    """The model cache's folder (mubench.harness.artifacts.ModelCache)."""
    return cache() / "models"


def prepared() -> Path:
    """Prepared tensors, named by a hash of what they were prepared from (mubench.tasks.base)."""
    return cache() / "prepared"


def mirrors() -> list[Path]:
    """Candidate mirror folders in the order they are searched."""
    explicit = os.environ.get("MUBENCH_MIRROR")
    if explicit:
        return [Path(p).expanduser() for p in explicit.split(os.pathsep) if p]
    candidates = [Path.cwd().parent / "shared" / "data", _SOURCE_ROOT.parent / "shared" / "data"]
    unique: list[Path] = []
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved.is_dir() and resolved not in unique:
            unique.append(resolved)
    return unique


def default_store() -> Path:
    return home() / "results.sqlite"


def offline() -> bool:
    """True when downloads are disabled (`MUBENCH_OFFLINE=1`)."""
    return os.environ.get("MUBENCH_OFFLINE", "").lower() in {"1", "true", "yes"}

"""Where mubench reads raw data (the mirror) and writes everything else (the home).

`MUBENCH_MIRROR` is a read-only folder holding official files (default: `../shared/data` beside
the working directory or the source tree, when it exists); `MUBENCH_HOME` (default
`~/.cache/mubench`) holds downloads, prepared tensors, splits, cached models and the store.
"""

from __future__ import annotations

import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    return Path(os.environ.get("MUBENCH_HOME", Path.home() / ".cache" / "mubench")).expanduser()


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

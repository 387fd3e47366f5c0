"""Provenance carried by every record: package version, git commit, hardware, peak memory."""

from __future__ import annotations

import functools
import os
import platform
import resource
import subprocess
from pathlib import Path

import torch

from mubench import __version__

_SOURCE_ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The source tree's commit, with '+dirty' when it has uncommitted changes; 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_SOURCE_ROOT, capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=_SOURCE_ROOT,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=4)
def hardware(device: str) -> str:
    cpu = f"{platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(torch.device(device))}; {cpu}"
    return cpu


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (a high-water mark, not per run), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def mubench_version() -> str:
    return __version__

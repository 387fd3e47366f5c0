"""Shared test helpers (imported by test modules; pytest's rootdir conftest stays empty)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

REAL_MIRROR = Path(os.environ.get("MUBENCH_MIRROR") or Path(__file__).resolve().parents[2] / "shared" / "data")
HAS_REAL_MNIST = (REAL_MIRROR / "mnist").is_dir()
needs_real_mnist = pytest.mark.skipif(not HAS_REAL_MNIST, reason=f"no MNIST mirror at {REAL_MIRROR}/mnist")


def null_auc_tolerance(n_members: int, n_nonmembers: int, z: float = 3.0) -> float:
    """z standard errors of the AUC when members and non-members come from one distribution.

    Under the null the AUC is U / (n1 n2) with Var(U) = n1 n2 (n1 + n2 + 1) / 12 (Mann and
    Whitney 1947), so SE(AUC) = sqrt((n1 + n2 + 1) / (12 n1 n2)); three of them bound a
    deterministic draw with 99.7 % coverage.
    """
    return z * math.sqrt((n_members + n_nonmembers + 1) / (12 * n_members * n_nonmembers))

"""Shared test helpers (imported by test modules; pytest's rootdir conftest stays empty)."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mubench.harness.record import RunConfig

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


def debug_config(method: str, scenario: str = "class_0", seed: int = 0, **hparams: object) -> RunConfig:
    """The RunConfig of `method` (its defaults updated with `hparams`) on the debug task, smoke profile."""
    from mubench.methods import methods
    from mubench.harness.record import RunConfig
    from mubench.tasks import tasks

    cls = methods.get(method)
    return RunConfig(task="debug", task_version=tasks.get("debug").spec.version, scenario=scenario, method=method,
                     method_version=cls.version, hparams=dict(cls.resolve(hparams)), seed=seed, profile="smoke")


@contextlib.contextmanager
def shared_home(base: Path, name: str = "baselines-home") -> Iterator[None]:
    """MUBENCH_HOME under pytest's base temp folder (models shared by the test modules that use the
    same name, so each is trained once per session), offline, and one torch thread: the debug
    models are tiny, and on a shared 2-core machine two intra-op threads are many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MUBENCH_HOME", str(base / name))
            patch.setenv("MUBENCH_OFFLINE", "1")
            yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for the duration of each test of a module that imports this fixture:
    the test models are tiny, and on a shared 2-core machine two threads are many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def assert_seed_reproducible(weights: Callable[[int], dict]) -> None:
    """`weights(seed)` (a state dict) is identical for the same seed and differs for another."""
    import torch

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def unlearn_debug(harness, method_cls: type, scenario: str = "class_0", seed: int = 7, **hparams):  # type: ignore[no-untyped-def]
    """(original, unlearned): `method_cls` called directly on a copy of the debug task's original
    with the data its access declares and the given hyper-parameters."""
    import copy

    import torch

    from mubench.request import Request

    prepared = harness.prepare("debug", scenario, 0, "smoke")
    original = prepared.original.model
    request = Request({k: prepared.subsets[k] for k in method_cls.access.subsets}, method_cls.access, 4,
                      torch.device("cpu"), seed=seed)
    return original, method_cls().unlearn(copy.deepcopy(original), request, method_cls.resolve(hparams))


def assert_unlearns_debug_original(harness, method_cls: type, scenario: str = "class_0") -> None:  # type: ignore[no-untyped-def]
    """`method_cls` at its defaults, called directly on a copy of the debug task's original with
    the data its access declares, returns the same architecture with changed weights."""
    import torch

    from mubench.harness.runner import check_architecture

    original, unlearned = unlearn_debug(harness, method_cls, scenario, seed=0)
    check_architecture(unlearned, original)
    reference = original.state_dict()
    assert any(not torch.equal(v, reference[k]) for k, v in unlearned.state_dict().items())

"""Shared test helpers: plain functions and markers, imported as `helpers` (tests/conftest.py holds
the fixtures every test shares)."""

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

# The first folder of MUBENCH_MIRROR, else the default the library looks in beside the checkout.
REAL_MIRROR = Path((os.environ.get("MUBENCH_MIRROR") or "").split(os.pathsep)[0]
                   or Path(__file__).resolve().parents[2] / "shared" / "data")
MIRROR_SKIP = "data mirror: no "  # every skip for want of real data starts so; conftest sums them up once


def needs_mirror(folder: str) -> pytest.MarkDecorator:
    """Skip unless the data mirror holds `folder` (e.g. "mnist"), with a reason conftest recognises."""
    return pytest.mark.skipif(not (REAL_MIRROR / folder).is_dir(), reason=f"{MIRROR_SKIP}{folder}/ in {REAL_MIRROR}")


def mirror_skip(folder: str) -> None:
    """The same skip, from inside a test or fixture."""
    if not (REAL_MIRROR / folder).is_dir():
        pytest.skip(f"{MIRROR_SKIP}{folder}/ in {REAL_MIRROR}")


HAS_REAL_MNIST = (REAL_MIRROR / "mnist").is_dir()
needs_real_mnist = needs_mirror("mnist")


def null_auc_tolerance(n_members: int, n_nonmembers: int, z: float = 3.0) -> float:
    """z standard errors of the AUC when members and non-members come from one distribution.

    Under the null the AUC is U / (n1 n2) with Var(U) = n1 n2 (n1 + n2 + 1) / 12 (Mann and
    Whitney 1947), so SE(AUC) = sqrt((n1 + n2 + 1) / (12 n1 n2)); three of them bound a
    deterministic draw with 99.7 % coverage.
    """
    return z * math.sqrt((n_members + n_nonmembers + 1) / (12 * n_members * n_nonmembers))


def debug_config(method: str, scenario: str = "class_0", seed: int = 0, **hparams: object) -> RunConfig:
    """The RunConfig of `method` (its defaults updated with `hparams`) on the debug task, smoke profile."""
    from mubench.harness.record import RunConfig
    from mubench.methods import methods
    from mubench.tasks import tasks

    cls = methods.get(method)
    return RunConfig(task="debug", task_version=tasks.get("debug").spec.version, scenario=scenario, method=method,
                     method_version=cls.version, hparams=dict(cls.resolve(hparams)), seed=seed, profile="smoke",
                     method_digest=cls.source_digest())


def home_under(base: Path) -> Path:
    """The MUBENCH_HOME that `shared_home(base)` sets, for a test that points a child process at it."""
    return base / "home"


@contextlib.contextmanager
def shared_home(base: Path) -> Iterator[None]:
    """MUBENCH_HOME at `home_under(base)` and offline for the duration of the block. Trained models
    come from the session's shared cache (tests/conftest.py), so a fixture that prepares runs under
    its own home still trains each debug original and oracle once per test run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUBENCH_HOME", str(home_under(base)))
        patch.setenv("MUBENCH_OFFLINE", "1")
        yield


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


def require_jail() -> None:
    """Skip (with the reason) where the sandbox's jail cannot run here; fail instead under
    MUBENCH_REQUIRE_JAIL=1, which .ci/run sets after installing bubblewrap."""
    from mubench.orchestration import jail

    reason = jail.unavailable()
    if reason is None:
        return
    if os.environ.get("MUBENCH_REQUIRE_JAIL") == "1":
        pytest.fail(f"MUBENCH_REQUIRE_JAIL=1 but {reason}")
    pytest.skip(f"jail: {reason}")

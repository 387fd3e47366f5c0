"""Behaviour of the classic baselines on real smoke tasks (class_0, seed 0): each method moves the
forget accuracy in the direction its paper claims, from the original's towards the oracle's (0 on
both tasks: the oracle never saw class 0), while retain accuracy stays close to the original's.

cwru (1-D CNN, 44 forget windows) is the fast task and is used wherever a method acts there; cmnist
where cwru shows nothing at any point of the method's sweep. Where the defaults barely act (or act
destructively) a stated sweep point is used: see POINTS. Numbers in the comments were measured with
`Harness().run` on one thread (forget / retain accuracy; the original's is 1.00 / 1.00 on both).

Bounds, from the measured table:
- forget: the method closes at least 80 % of the original-to-oracle gap, forget accuracy <=
  oracle's + 0.2 * (original's - oracle's) = 0.2. Every passing point measured <= 0.05.
- retain: within RETAIN_DROP = 0.15 of the original's. The passing points lost at most 0.087
  (random_label on cwru: 0.913); the destructive points measured lost >= 0.17 (ssd's defaults on
  cwru 0.83, fisher 0.65, grad_ascent lr 1e-2 0.67, unsir lr 1e-2 on cwru 0.61, boundary_shrink at
  its old lr 1e-2 0.30), so 0.15 separates keeping utility from damaging it with slack for numeric
  drift across machines.
"""

from __future__ import annotations

import pytest

import baselines  # noqa: F401 - registers every baseline
from helpers import HAS_REAL_MNIST, MIRROR_SKIP, REAL_MIRROR, shared_home
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.methods import methods
from mubench.tasks import tasks

pytestmark = pytest.mark.slow  # the whole module: see docs/testing.md

HAS_REAL_CWRU = (REAL_MIRROR / "cwru").is_dir()
needs_real_cwru = pytest.mark.skipif(not HAS_REAL_CWRU, reason=f"{MIRROR_SKIP}cwru/ in {REAL_MIRROR}")
needs_real_cmnist = pytest.mark.skipif(not HAS_REAL_MNIST, reason=f"{MIRROR_SKIP}mnist/ in {REAL_MIRROR}")
NEEDS = {"cwru": needs_real_cwru, "cmnist": needs_real_cmnist}

FORGET_SHARE = 0.2  # forget accuracy may keep at most this share of the original-to-oracle gap
RETAIN_DROP = 0.15  # retain accuracy may fall at most this far below the original's

# method: (task, hyper-parameters over the defaults, why this point). Measured forget / retain.
POINTS = {
    # defaults: 0.00 / 0.91 (cmnist 0.00 / 1.00)
    "random_label": ("cwru", {}, "defaults"),
    # defaults: 0.05 / 0.98
    "salun": ("cwru", {}, "defaults"),
    # the full-class strategy (forgotten row zeroed): cmnist defaults 0.001 / 0.994; on cwru the
    # noise destroys retain accuracy before the forget class (alpha 1e-6: 1.00 / 0.65 before the
    # strategy; 1e-5: 0.00 / 0.11).
    "fisher": ("cmnist", {}, "defaults; cwru collapses"),
    # defaults (lr 1e-4) do nothing on either task (1.00 / 1.00); lr 1e-2 forgets but wrecks retain
    # (cwru 0.00 / 0.67); lr 1e-3 with the top of the epochs sweep (10): 0.00 / 0.93.
    "grad_ascent": ("cwru", {"lr": 1e-3, "epochs": 10}, "defaults barely act"),
    # defaults do nothing on cwru (1.00 / 1.00, also msteps 5); on cmnist they forget (0.00 / 0.98)
    # but test accuracy falls 0.40 -> 0.17. lr 1e-3, 10 epochs, msteps 5 on cwru: 0.00 / 1.00 (~4 s).
    "scrub": ("cwru", {"lr": 1e-3, "epochs": 10, "msteps": 5}, "defaults barely act"),
    # defaults (lr 1e-4, 1 epoch) do nothing on cwru (1.00 / 1.00), barely on cmnist (0.93);
    # lr 1e-3 and 5 epochs: 0.00 / 0.95.
    "bad_teacher": ("cwru", {"lr": 1e-3, "epochs": 5}, "defaults barely act"),
    # defaults (alpha 10, lambda 1) over-dampen on cwru (0.00 / 0.83) and barely act on cmnist
    # (1.00 / 1.00); lambda ("dampening") 5, its gentlest sweep point: 0.00 / 0.95.
    "ssd": ("cwru", {"dampening": 5.0}, "defaults over-dampen on cwru"),
    # nothing on cwru at any alpha (2e-3, 1e-2: 1.00 / 1.00; 5e-2: 0.00 / 0.11); cmnist defaults
    # (5e-4) barely act (0.96); alpha 2e-3 on cmnist: 0.00 / 0.99 (~6 s).
    "l1_sparse": ("cmnist", {"alpha": 2e-3}, "defaults barely act; nothing on cwru"),
    # defaults (lr 1e-3, chosen with this test; lr 1e-2 gave 0.08 / 0.78): cmnist 0.05 / 1.00;
    # on cwru no point forgets without damage (baselines/boundary.py's docstring: train-mode BatchNorm on one class).
    "boundary_shrink": ("cmnist", {}, "defaults; nothing on cwru"),
    # defaults: cmnist 0.00 / 1.00; cwru 1.00 / 0.97.
    "boundary_expand": ("cmnist", {}, "defaults; nothing on cwru"),
    # defaults (lr 1e-4) barely act on either task (cmnist 0.99); lr 1e-3 does nothing on cwru,
    # lr 1e-2 forgets but wrecks cwru (0.00 / 0.61); on cmnist lr 1e-2: 0.00 / 0.99 (test 0.40 -> 0.27).
    "unsir": ("cmnist", {"lr": 1e-2}, "defaults barely act; cwru wrecked"),
}

# Methods whose claimed direction does not hold at smoke scale at any point tried: strict xfail, so
# the test reports when they start to hold.
FAILS = {
    # relies on catastrophic forgetting of the forget set while fine-tuning on the retain set; the
    # forgotten class stays recognised: cwru 1.00 at defaults, 10 epochs, lr 3e-2; cmnist 0.999, 0.984.
    "finetune": ("cwru", {}, "no forgetting at smoke scale (cwru 1.00 up to 10 epochs, lr 3e-2)"),
    # the authors' plain SGD (no momentum) in eval mode: nothing between keeping the class and
    # blowing up. At the defaults (batches 32 / 64): cmnist 0.997 / 0.999, cwru 1.00 / 1.00. At batch
    # 128: cmnist alpha 0.95 (default), 0.9, 0.87, 0.85: forget 1.00, 1.00, 0.998, 0.996,
    # retain 0.999; 0.8: non-finite weights. cwru alpha 0.95, 0.9, 0.8, lr 3e-2: 1.00 / 1.00; 0.5,
    # 0.3: non-finite weights. (With momentum 0.9, the earlier setting, cwru gave 0.00 / 0.98 and
    # cmnist collapsed, retain 0.12.)
    "neggrad_plus": ("cwru", {}, "no forgetting at smoke scale before the ascent diverges"),
}


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("smoke")):
        yield Harness()


def run(harness: Harness, task: str, method: str, **hparams: object):
    cls = methods.get(method)
    config = RunConfig(task=task, task_version=tasks.get(task).spec.version, scenario="class_0", method=method,
                       method_version=cls.version, hparams=dict(cls.resolve(hparams)), seed=0, profile="smoke")
    record = harness.run(config)
    if record.status != "ok":  # pytest.fail, not an AssertionError: a crash never counts as an expected failure
        pytest.fail(f"{method} failed: {record.error}")
    return record.metrics


def reference(harness: Harness, task: str) -> tuple[float, float, float]:
    """The original's forget and retain accuracy and the oracle's forget accuracy."""
    prepared = harness.prepare(task, "class_0", 0, "smoke")
    return (prepared.original_outputs["forget"].accuracy, prepared.original_outputs["retain"].accuracy,
            prepared.oracle_outputs["forget"].accuracy)


def assert_claimed_direction(harness: Harness, task: str, method: str, hparams: dict) -> None:
    original_forget, original_retain, oracle_forget = reference(harness, task)
    assert original_forget - oracle_forget > 0.9  # the scenario shows forgetting at all
    metrics = run(harness, task, method, **hparams)
    allowed = oracle_forget + FORGET_SHARE * (original_forget - oracle_forget)
    assert metrics["forget/acc"] <= allowed, (method, metrics["forget/acc"], allowed)
    assert metrics["retain/acc"] >= original_retain - RETAIN_DROP, (method, metrics["retain/acc"], original_retain)


def _cases(table: dict, **mark: object) -> list:
    return [pytest.param(task, method, hparams, id=f"{method}-{task}",
                         marks=[NEEDS[task], *([pytest.mark.xfail(**mark, reason=why)] if mark else [])])
            for method, (task, hparams, why) in table.items()]


@needs_real_cwru
def test_identity_keeps_the_original_forget_accuracy(harness):
    original_forget, original_retain, _ = reference(harness, "cwru")
    metrics = run(harness, "cwru", "identity")
    assert metrics["forget/acc"] == original_forget == 1.0
    assert metrics["retain/acc"] == original_retain
    assert metrics["gap/forget_acc"] > 0.9  # far from the oracle: nothing was forgotten


@needs_real_cwru
def test_retrain_has_zero_gaps(harness):
    metrics = run(harness, "cwru", "retrain")
    gaps = {key: value for key, value in metrics.items() if key.startswith("gap/")}
    assert gaps and all(value == 0.0 for value in gaps.values()), gaps
    assert metrics["forget/acc"] == reference(harness, "cwru")[2] == 0.0


@pytest.mark.parametrize(("task", "method", "hparams"), _cases(POINTS))
def test_forgets_towards_the_oracle_and_keeps_retain(harness, task, method, hparams):
    assert_claimed_direction(harness, task, method, hparams)


@pytest.mark.parametrize(("task", "method", "hparams"), _cases(FAILS, strict=True, raises=AssertionError))
def test_claim_does_not_hold_at_smoke_scale(harness, task, method, hparams):
    assert_claimed_direction(harness, task, method, hparams)


def test_every_classic_baseline_is_covered():
    classic = {"identity", "retrain", "finetune", "grad_ascent", "neggrad_plus", "random_label", "l1_sparse", "salun",
               "scrub", "bad_teacher", "ssd", "fisher", "boundary_shrink", "boundary_expand", "unsir"}
    assert classic - {"identity", "retrain"} == set(POINTS) | set(FAILS)
    assert classic <= set(methods.names())

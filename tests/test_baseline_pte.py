"""PTE (Chen, Li & Tang 2025, baselines/pte.py): the edit labels, the masked distillation by hand,
the probe; hyper-parameter checks, reproducibility, runs through the harness on the debug task,
and the behaviour on cwru class_0 (the paper's bearing-fault setting)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import baselines.pte as pte
from helpers import MIRROR_SKIP, REAL_MIRROR, debug_config, shared_home, unlearn_debug
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness, check_architecture
from mubench.methods import methods
from mubench.request import Subset
from mubench.tasks import tasks

HAS_REAL_CWRU = (REAL_MIRROR / "cwru").is_dir()


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("baseline")):
        yield Harness()


def unlearn_directly(harness: Harness, scenario: str = "class_0", seed: int = 7, **hparams):
    return unlearn_debug(harness, pte.PTE, scenario, seed, **hparams)


# ---- edit labels, masked distillation, probe ------------------------------------------------------

def test_edit_labels_are_the_argmax_over_the_other_classes():
    logits = torch.tensor([[5.0, 1.0, 3.0, 2.0],    # y = 0 is the argmax: next best is 2
                           [5.0, 1.0, 3.0, 2.0],    # y = 2 is not: the argmax 0 stays
                           [0.0, 0.0, 9.0, 9.0],    # tie among the others: the first (torch argmax)
                           [-1.0, -2.0, -3.0, -4.0]])
    y = torch.tensor([0, 2, 2, 0])
    got = pte.edit_labels(logits, y)
    assert torch.equal(got, torch.tensor([2, 0, 3, 1]))
    assert (got != y).all()
    random = torch.randn(500, 7, generator=torch.Generator().manual_seed(0))
    y = random.argmax(1)  # the hardest case: y is always the argmax
    got = pte.edit_labels(random, y)
    assert (got != y).all() and torch.equal(got, random.topk(2, dim=1).indices[:, 1])


def test_probe_stays_in_the_linf_ball_and_never_labels_the_true_class():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 4)).eval().requires_grad_(False)
    forget = Subset(torch.randn(40, 5), torch.randint(0, 4, (40,)))
    hp = pte.PTE.resolve({"eps": 0.5, "step_size": 0.1, "steps": 10})
    x_probe, y_edit = pte.probe(model, forget, hp)
    assert (x_probe - forget.x).abs().max() <= 0.5 + 1e-6
    assert (y_edit != forget.y).all()
    assert torch.equal(y_edit, pte.edit_labels(model(x_probe), forget.y))
    # the ascent raises the loss of the true class
    loss = nn.functional.cross_entropy
    assert loss(model(x_probe), forget.y) > loss(model(forget.x), forget.y)


# ---- the method -----------------------------------------------------------------------------------

def test_end_to_end_forgets_class_0_and_runs_random_10(harness):
    identity = harness.prepare("debug", "class_0", 0, "smoke").original_outputs["forget"].accuracy
    record = harness.run(debug_config("pte", "class_0", lr=1e-3))
    assert record.status == "ok", record.error
    assert record.metrics["forget/acc"] < identity - 0.3
    assert record.metrics["retain/acc"] > 0.8
    for push_input in ("probe", "both"):
        assert harness.run(debug_config("pte", "class_0", push_input=push_input)).status == "ok"
    assert harness.run(debug_config("pte", "random_10")).status == "ok"


def test_zero_epochs_change_nothing_and_same_seed_same_weights(harness):
    original, untouched = unlearn_directly(harness, epochs=0)
    for key, value in original.state_dict().items():
        assert torch.equal(untouched.state_dict()[key], value), key
    _, first = unlearn_directly(harness, seed=3)
    _, second = unlearn_directly(harness, seed=3)
    check_architecture(first, original)
    changed = [k for k, v in first.state_dict().items() if not torch.equal(v, original.state_dict()[k])]
    assert changed
    for key, value in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], value), key


def test_max_steps_caps_the_edit_and_zero_means_no_cap(harness, monkeypatch):
    """The edit takes at most max_steps Adam steps, whatever the epochs (a 1,000-sample class makes
    16 batches an epoch where CWRU's makes one); 0 leaves the epochs alone."""
    steps = []
    real = pte.step
    monkeypatch.setattr(pte, "step", lambda optimizer, loss: steps.append(1) or real(optimizer, loss))
    forget = harness.prepare("debug", "class_0", 0, "smoke").subsets["forget"]
    per_epoch = -(-len(forget) // 8)
    assert per_epoch > 1
    unlearn_directly(harness, batch_size=8, epochs=3, max_steps=per_epoch + 1)
    assert len(steps) == per_epoch + 1
    steps.clear()
    unlearn_directly(harness, batch_size=8, epochs=3, max_steps=0)
    assert len(steps) == 3 * per_epoch


@pytest.mark.parametrize("bad, word", [({"push_input": "noisy"}, "push_input"), ({"temperature": 0.0}, "temperature"),
                                       ({"eps": -0.1}, "eps"), ({"batchnorm": "x"}, "batchnorm"),
                                       ({"batch_size": 0}, "batch_size"),
                                       ({"max_steps": -1}, "max_steps")])
def test_bad_hyper_parameters_fail_clearly(harness, bad, word):
    record = harness.run(debug_config("pte", "class_0", **bad))
    assert record.status == "failed" and word in record.error


# ---- behaviour on a smoke task --------------------------------------------------------------------

# Measured on the current cwru class_0 split (40 forget windows, 681 retain; original forget 1.0,
# oracle 0.0) by seed (the seed also trains the original). The defaults (push on clean and probe
# inputs, beta 0.3, Adam lr 3e-4, 20 epochs) were set here, on the paper's own scenario: with the
# originals this test trains (one thread), forget/acc 0.0 / 0.0 / 0.0 for seeds 0 / 1 / 2, retain
# 0.90 / 0.90 / 0.99, test 0.83 / 0.84 / 0.89. The earlier defaults (clean push, beta 1, lr 1e-4,
# 10 epochs) left seed 0 at 0.925 (retain 0.88). This test runs seed 0 at the defaults.
SMOKE_HPARAMS: dict[str, object] = {}


@pytest.mark.skipif(not HAS_REAL_CWRU, reason=f"{MIRROR_SKIP}cwru/ in {REAL_MIRROR}")
def test_cwru_class_0_forget_accuracy_falls_towards_the_oracle_while_retain_holds(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("smoke")):
        smoke = Harness()
        prepared = smoke.prepare("cwru", "class_0", 0, "smoke")
        config = RunConfig(task="cwru", task_version=tasks.get("cwru").spec.version, scenario="class_0",
                           method="pte", method_version=methods.get("pte").version,
                           hparams=dict(pte.PTE.resolve(SMOKE_HPARAMS)), seed=0, profile="smoke")
        record = smoke.run(config)
    assert record.status == "ok", record.error
    original, oracle = prepared.original_outputs, prepared.oracle_outputs
    # the claim: forget-class accuracy towards the oracle's 0 (measured 0.0 from 1.0, see above):
    # at least 70 % of the way there
    assert oracle["forget"].accuracy == 0.0
    assert record.metrics["forget/acc"] <= 0.3 * original["forget"].accuracy
    # "minimal loss" on the retained classes: without any retain data, 40 windows of one class and a
    # 1-D CNN, we measured 0.90 (original and oracle 1.0); other forget-only baselines at their
    # defaults fall to 0.1-0.2 here (Boundary Shrink, L2UL with BatchNorm in train mode), so 0.8
    # separates a working pull from a collapse while leaving room for numerical differences
    assert record.metrics["retain/acc"] >= 0.8

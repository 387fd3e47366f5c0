"""PTE (Chen, Li & Tang 2025, baselines/pte.py): the edit labels, the masked distillation by hand,
the probe; hyper-parameter checks, reproducibility, runs through the harness on the debug task,
and the behaviour on cwru class_0 (the paper's bearing-fault setting)."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

import baselines.pte as pte
from mubench.methods import Access, methods
from mubench.record import RunConfig
from mubench.request import Request, Subset
from mubench.runner import Harness, check_architecture
from mubench.tasks import tasks
from tests.helpers import REAL_MIRROR, debug_config, shared_home

HAS_REAL_CWRU = any((Path(m) / "cwru").is_dir() for m in os.environ.get("MUBENCH_MIRROR", str(REAL_MIRROR)).split(os.pathsep) if m)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    with shared_home(tmp_path_factory.getbasetemp(), "baseline-home"):  # shared: models trained once
        yield Harness()


def unlearn_directly(harness: Harness, scenario: str = "class_0", seed: int = 7, **hparams):
    prepared = harness.prepare("debug", scenario, 0, "smoke")
    request = Request({"forget": prepared.subsets["forget"]}, Access.FORGET, 4, torch.device("cpu"), seed=seed)
    original = prepared.original.model
    return original, pte.PTE().unlearn(copy.deepcopy(original), request, pte.PTE.resolve(hparams))


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


def test_masked_distillation_by_hand():
    student = torch.tensor([[9.0, 1.0, 0.0], [0.0, 2.0, 0.0]])
    teacher = torch.tensor([[-5.0, 0.0, 1.0], [0.0, 2.0, 7.0]])
    y = torch.tensor([0, 2])
    temperature = 2.0
    # row 1 keeps classes {1, 2}: p_t = softmax([0, .5]), p_s = softmax([.5, 0]);
    # row 2 keeps classes {0, 1}: p_t = softmax([0, 1]), p_s = softmax([0, 1]) -> KL 0
    def softmax(values):
        z = sum(math.exp(v) for v in values)
        return [math.exp(v) / z for v in values]
    p_t, p_s = softmax([0.0, 0.5]), softmax([0.5, 0.0])
    kl_row1 = sum(t * math.log(t / s) for t, s in zip(p_t, p_s))
    expected = (kl_row1 + 0.0) / 2 * temperature**2
    got = pte.masked_distill_kl(student, teacher, y, temperature)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert pte.masked_distill_kl(teacher, teacher, y, temperature).item() == pytest.approx(0.0, abs=1e-7)
    # the true class's logit is out of it: changing it changes nothing, and gets no gradient
    moved = student.clone().requires_grad_(True)
    loss = pte.masked_distill_kl(moved, teacher, y, temperature)
    loss.backward()
    assert moved.grad[0, 0] == 0 and moved.grad[1, 2] == 0 and torch.isfinite(moved.grad).all()
    shifted = student + torch.tensor([[100.0, 0.0, 0.0], [0.0, 0.0, -50.0]])
    assert pte.masked_distill_kl(shifted, teacher, y, temperature).item() == pytest.approx(expected, rel=1e-6)


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


@pytest.mark.parametrize("bad, word", [({"push_input": "noisy"}, "push_input"), ({"temperature": 0.0}, "temperature"),
                                       ({"eps": -0.1}, "eps"), ({"batchnorm": "x"}, "batchnorm"),
                                       ({"batch_size": 0}, "batch_size")])
def test_bad_hyper_parameters_fail_clearly(harness, bad, word):
    record = harness.run(debug_config("pte", "class_0", **bad))
    assert record.status == "failed" and word in record.error


# ---- behaviour on a smoke task --------------------------------------------------------------------

@pytest.mark.skipif(not HAS_REAL_CWRU, reason="no CWRU mirror")
def test_cwru_class_0_forget_accuracy_falls_towards_the_oracle_while_retain_holds(tmp_path_factory):
    with shared_home(tmp_path_factory.getbasetemp(), "smoke-home"):
        smoke = Harness()
        prepared = smoke.prepare("cwru", "class_0", 0, "smoke")
        config = RunConfig(task="cwru", task_version=tasks.get("cwru").spec.version, scenario="class_0",
                           method="pte", method_version=methods.get("pte").version,
                           hparams=dict(pte.PTE.defaults()), seed=0, profile="smoke")
        record = smoke.run(config)
    assert record.status == "ok", record.error
    original, oracle = prepared.original_outputs, prepared.oracle_outputs
    # the claim: forget-class accuracy towards the oracle's 0 (we measured 0.21 with the defaults,
    # from 1.0): at least 70 % of the way there
    assert oracle["forget"].accuracy == 0.0
    assert record.metrics["forget/acc"] <= 0.3 * original["forget"].accuracy
    # "minimal loss" on the retained classes: without any retain data, 34 windows of one class and a
    # 1-D CNN, we measured 0.90 (original and oracle 1.0); other forget-only baselines at their
    # defaults fall to 0.1-0.2 here (Boundary Shrink, L2UL with BatchNorm in train mode), so 0.8
    # separates a working pull from a collapse while leaving room for numerical differences
    assert record.metrics["retain/acc"] >= 0.8

"""L2UL (Cha et al. 2024, baselines/l2ul.py): the targeted L2 PGD, the MAS importance and its
anchor weights, the loss weighting by hand; the stop rule, hyper-parameter checks, reproducibility,
runs through the harness on the debug task, and the behaviour on cmnist class_0."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import baselines.l2ul as l2ul
from mubench.methods import Access, methods
from mubench.record import RunConfig
from mubench.request import Request
from mubench.runner import Harness, check_architecture
from mubench.tasks import tasks
from tests.helpers import HAS_REAL_MNIST, debug_config, shared_home

FAST = {"num_adv_images": 1, "pgd_iter": 20}  # the PGD is most of the cost; 20 steps of 0.1 span eps 2


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    with shared_home(tmp_path_factory.getbasetemp(), "baseline-home"):  # shared: models trained once
        yield Harness()


def unlearn_directly(harness: Harness, scenario: str = "class_0", seed: int = 7, **hparams):
    prepared = harness.prepare("debug", scenario, 0, "smoke")
    request = Request({"forget": prepared.subsets["forget"]}, Access.FORGET, 4, torch.device("cpu"), seed=seed)
    original = prepared.original.model
    return original, l2ul.L2UL().unlearn(copy.deepcopy(original), request, l2ul.L2UL.resolve(hparams))


def linear(weight: list[list[float]], bias: list[float] | None = None) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias))
    return layer


# ---- targeted L2 PGD ------------------------------------------------------------------------------

def test_targeted_l2_pgd_stays_in_the_ball_and_reaches_the_target():
    model = linear([[2.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    x = torch.tensor([[1.0, 0.2], [0.8, -0.1]])
    assert torch.equal(model(x).argmax(1), torch.tensor([0, 0]))
    target = torch.tensor([1, 1])
    x_adv = l2ul.targeted_l2_pgd(model, x, target, eps=3.0, step_size=0.1, steps=100,
                                 generator=torch.Generator().manual_seed(0))
    assert ((x_adv - x).norm(dim=1) <= 3.0 + 1e-5).all()
    assert torch.equal(model(x_adv).argmax(1), target)
    # class 1 beats class 0 only if ||delta|| >= (2 x0 - x1) / sqrt(5) = 0.80 and 0.76: a 0.3 ball cannot
    small = l2ul.targeted_l2_pgd(model, x, target, 0.3, 0.1, 50, torch.Generator().manual_seed(0))
    assert ((small - x).norm(dim=1) <= 0.3 + 1e-5).all() and torch.equal(model(small).argmax(1), torch.tensor([0, 0]))
    # no steps: the random start alone, strictly inside the ball, seeded
    start = l2ul.targeted_l2_pgd(model, x, target, 0.5, 0.1, 0, torch.Generator().manual_seed(1))
    again = l2ul.targeted_l2_pgd(model, x, target, 0.5, 0.1, 0, torch.Generator().manual_seed(1))
    assert torch.equal(start, again) and ((start - x).norm(dim=1) <= 0.5).all() and not torch.equal(start, x)


def test_one_pgd_step_is_the_normalised_gradient_step():
    """One step from the seeded random start (steps=0 returns it) moves by step_size along
    -grad CE(target) / ||grad||, the gradient by hand for a linear model; eps is large, so no
    projection."""
    model = linear([[1.0, 0.0], [0.0, 1.0]])
    x, target = torch.tensor([[1.0, 0.0]]), torch.tensor([1])
    got = l2ul.targeted_l2_pgd(model, x, target, eps=10.0, step_size=0.5, steps=1,
                               generator=torch.Generator().manual_seed(0))
    start = l2ul.targeted_l2_pgd(model, x, target, eps=10.0, step_size=0.5, steps=0,
                                 generator=torch.Generator().manual_seed(0))
    p = model(start).softmax(1)
    grad = (p - F.one_hot(target, 2).float()) @ model.weight  # d CE / d x
    expected = start - 0.5 * grad / grad.norm()
    assert torch.allclose(got, expected, atol=1e-6)


def test_wrong_labels_are_uniform_over_the_other_classes():
    y = torch.zeros(3000, dtype=torch.long)
    labels = l2ul.wrong_labels(y, 4, torch.Generator().manual_seed(0))
    assert (labels != 0).all()
    counts = labels.bincount(minlength=4)[1:].float() / 3000
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.04)


# ---- MAS importance, anchors, loss ----------------------------------------------------------------

def test_mas_importance_by_hand_on_a_linear_model():
    model = linear([[1.0, 2.0], [-1.0, 0.5]], bias=[0.5, -1.0])
    x = torch.tensor([[1.0, 0.0], [0.5, -2.0], [0.0, 1.0]])
    out = model(x).detach()
    norms = out.norm(dim=1, keepdim=True)
    # d ||W x + b|| / dW = (Wx + b) x^T / ||Wx + b||, d/db = (Wx + b) / ||Wx + b||
    per_sample_w = (out / norms)[:, :, None] * x[:, None, :]
    per_sample_b = out / norms
    got = l2ul.mas_importance(model, x, batch_size=1)  # batch 1: mean_x |per-sample gradient|
    assert torch.allclose(got["weight"], per_sample_w.abs().mean(0), atol=1e-6)
    assert torch.allclose(got["bias"], per_sample_b.abs().mean(0), atol=1e-6)
    whole = l2ul.mas_importance(model, x, batch_size=3)  # one batch: |mean gradient|, as the code's loader
    assert torch.allclose(whole["weight"], per_sample_w.mean(0).abs(), atol=1e-6)
    two = l2ul.mas_importance(model, x, batch_size=2)  # batches {0,1}, {2}: (2 |mean| + 1 |g_2|) / 3
    expected = (2 * per_sample_w[:2].mean(0).abs() + per_sample_w[2].abs()) / 3
    assert torch.allclose(two["weight"], expected, atol=1e-6)
    assert model.weight.grad is None  # computed on a copy


def test_anchor_weights_are_one_minus_the_min_max_normalised_importance():
    weights = l2ul.anchor_weights({"a": torch.tensor([1.0, 3.0, 2.0]), "b": torch.tensor([5.0, 5.0])})
    assert torch.allclose(weights["a"], torch.tensor([1.0, 0.0, 0.5]))
    assert torch.equal(weights["b"], torch.ones(2))  # constant: no division by zero, anchored


def test_loss_weighting_and_penalty_by_hand():
    forget_logits, adv_logits = torch.zeros(2, 3), torch.zeros(6, 3)  # CE = log 3 for every row
    forget_y, adv_y = torch.tensor([0, 1]), torch.tensor([2, 2, 1, 0, 1, 2])
    penalty = torch.tensor(0.7)
    got = l2ul.l2ul_loss(forget_logits, forget_y, adv_logits, adv_y, penalty, reg_lamb=2.0)
    assert got.item() == pytest.approx(-math.log(3) * 2 / 8 + math.log(3) * 6 / 8 + 2.0 * 0.7)
    forget_logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    ce_f = (-(math.log(math.exp(2) / (math.exp(2) + 2))) + math.log(3)) / 2
    got = l2ul.l2ul_loss(forget_logits, forget_y, adv_logits[:1], adv_y[:1], torch.tensor(0.0), 1.0)
    assert got.item() == pytest.approx(-ce_f * 2 / 3 + math.log(3) / 3, rel=1e-6)
    model = linear([[1.0, 2.0]], bias=[3.0])
    origin = {"weight": torch.tensor([[0.0, 2.0]]), "bias": torch.tensor([1.0])}
    anchors = {"weight": torch.tensor([[0.5, 1.0]]), "bias": torch.tensor([0.25])}
    # (0.5 * 1^2 + 1 * 0^2) / 2 + 0.25 * 2^2 / 2
    assert l2ul.anchor_penalty(model, anchors, origin).item() == pytest.approx(0.25 + 0.5)


def test_train_mode_freezes_batchnorm_statistics():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    l2ul.train_mode(model, "frozen")
    assert model.training and model[0].training and not model[1].training
    before = model[1].running_mean.clone()
    model(torch.randn(8, 3) + 5)
    assert torch.equal(model[1].running_mean, before)
    l2ul.train_mode(model, "train")
    assert model[1].training


# ---- the method -----------------------------------------------------------------------------------

def test_stop_accuracy_one_takes_no_step_and_max_steps_caps(harness):
    original, unlearned = unlearn_directly(harness, stop_accuracy=1.0, **FAST)
    for key, value in original.state_dict().items():
        assert torch.equal(unlearned.state_dict()[key], value), key
    _, one_step = unlearn_directly(harness, max_steps=1, **FAST)
    changed = [k for k, v in one_step.state_dict().items() if not torch.equal(v, original.state_dict()[k])]
    assert changed


def test_end_to_end_forgets_class_0_and_runs_random_10(harness):
    prepared = harness.prepare("debug", "class_0", 0, "smoke")
    identity = prepared.original_outputs["forget"].accuracy
    record = harness.run(debug_config("l2ul", "class_0", **FAST))
    assert record.status == "ok", record.error
    assert record.metrics["forget/acc"] == 0.0 < identity  # the stop rule reached
    assert record.metrics["retain/acc"] > 0.8
    random = harness.run(debug_config("l2ul", "random_10", max_steps=50, **FAST))
    assert random.status == "ok", random.error


def test_same_seed_same_weights_and_architecture(harness):
    original, first = unlearn_directly(harness, seed=3, **FAST)
    _, second = unlearn_directly(harness, seed=3, **FAST)
    check_architecture(first, original)
    for key, value in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], value), key


@pytest.mark.parametrize("bad, word", [({"pgd_eps": -1.0}, "pgd_eps"), ({"stop_accuracy": 1.5}, "stop_accuracy"),
                                       ({"num_adv_images": 0}, "num_adv_images"), ({"batchnorm": "x"}, "batchnorm"),
                                       ({"max_steps": 0}, "max_steps")])
def test_bad_hyper_parameters_fail_clearly(harness, bad, word):
    record = harness.run(debug_config("l2ul", "class_0", **bad))
    assert record.status == "failed" and word in record.error


# ---- behaviour on a smoke task --------------------------------------------------------------------

@pytest.mark.skipif(not HAS_REAL_MNIST, reason="no MNIST mirror")
def test_cmnist_class_0_forgets_while_test_accuracy_holds(tmp_path_factory):
    with shared_home(tmp_path_factory.getbasetemp(), "smoke-home"):
        smoke = Harness()
        prepared = smoke.prepare("cmnist", "class_0", 0, "smoke")
        config = RunConfig(task="cmnist", task_version=tasks.get("cmnist").spec.version, scenario="class_0",
                           method="l2ul", method_version=methods.get("l2ul").version,
                           hparams=dict(l2ul.L2UL.resolve(FAST)), seed=0, profile="smoke")
        record = smoke.run(config)
    assert record.status == "ok", record.error
    original, oracle = prepared.original_outputs, prepared.oracle_outputs
    # the paper's claim: D_f accuracy to 0 (the oracle's, for a forgotten class) ...
    assert record.metrics["forget/acc"] == 0.0 < original["forget"].accuracy
    # ... while D_r and D_test hold: the test set removes class 0 from a 10-class problem, so the
    # oracle itself loses about its share (0.42 -> 0.38 here); we allow that loss plus 0.05 (we
    # measured 0.40), and the retain accuracy within 0.05 of the original's (measured 0.998).
    allowed = max(original["test"].accuracy - oracle["test"].accuracy, 0.0) + 0.05
    assert record.metrics["test/acc"] >= original["test"].accuracy - allowed
    assert record.metrics["retain/acc"] >= original["retain"].accuracy - 0.05

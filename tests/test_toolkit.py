"""The shared building blocks of mubench.toolkit, against hand computations. (LoRA's tests are in
tests/test_baseline_bias_aware.py, gumbel_noise's in tests/test_baseline_lotus.py, beside the
methods that use them.)"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mubench.errors import MubenchError
from mubench.toolkit.adversarial import fgsm_labels, fgsm_perturb, pgd_linf, targeted_l2_pgd
from mubench.toolkit.contrastive import contrastive_loss
from mubench.toolkit.distill import frozen_copy, masked_distill_kl
from mubench.toolkit.gradients import flat_grad, project_conflict, unit
from mubench.toolkit.heads import find_head, head_inputs, logits_and_features
from mubench.toolkit.importance import anchor_weights, mas_importance
from mubench.toolkit.optim import train_mode


@pytest.fixture()
def linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(5, 3)


def test_fgsm_step_is_eps_times_the_sign_of_the_input_gradient(linear: nn.Linear) -> None:
    x, y = torch.randn(4, 5), torch.tensor([0, 1, 2, 0])
    # d CE / d x for a linear model: (softmax(Wx + b) - onehot(y)) W, per row
    expected = (F.softmax(linear(x), dim=1) - F.one_hot(y, 3).float()) @ linear.weight
    x_adv = fgsm_perturb(linear, x, y, eps=0.25)
    assert torch.allclose(x_adv - x, 0.25 * expected.sign())
    assert all(p.grad is None for p in linear.parameters())


def test_fgsm_labels_are_the_models_prediction_on_the_step(linear: nn.Linear) -> None:
    x, y = torch.randn(6, 5), torch.zeros(6, dtype=torch.long)
    assert torch.equal(fgsm_labels(linear, x, y, 0.5), linear(fgsm_perturb(linear, x, y, 0.5)).argmax(1))


def test_pgd_stays_in_the_ball_raises_the_loss_and_reduces_to_fgsm(linear: nn.Linear) -> None:
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    x_adv = pgd_linf(linear, x, y, eps=0.3, step_size=0.1, steps=10)
    assert (x_adv - x).abs().max() <= 0.3 + 1e-6
    assert F.cross_entropy(linear(x_adv), y) > F.cross_entropy(linear(x), y)
    assert torch.allclose(pgd_linf(linear, x, y, eps=0.2, step_size=0.2, steps=1), fgsm_perturb(linear, x, y, 0.2))


def test_head_inputs_are_the_penultimate_features() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randn(5, 4)
    parent, attribute, head = find_head(model, 3)
    assert head is model[2] and getattr(parent, attribute) is head
    assert torch.allclose(head_inputs(model, head, x), torch.relu(model[0](x)))
    with pytest.raises(MubenchError, match="not called"):
        head_inputs(model, nn.Linear(6, 3), x)


def test_frozen_copy_is_a_detached_eval_copy() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    frozen = frozen_copy(model)
    assert not frozen.training and model.training
    assert all(not p.requires_grad for p in frozen.parameters())
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not torch.equal(frozen[0].weight, model[0].weight)


def linear_layer(weight: list[list[float]], bias: list[float] | None = None) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias))
    return layer


# ---- targeted L2 PGD (L2UL) -----------------------------------------------------------------------

def test_targeted_l2_pgd_stays_in_the_ball_and_reaches_the_target():
    model = linear_layer([[2.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    x = torch.tensor([[1.0, 0.2], [0.8, -0.1]])
    assert torch.equal(model(x).argmax(1), torch.tensor([0, 0]))
    target = torch.tensor([1, 1])
    x_adv = targeted_l2_pgd(model, x, target, eps=3.0, step_size=0.1, steps=100,
                                 generator=torch.Generator().manual_seed(0))
    assert ((x_adv - x).norm(dim=1) <= 3.0 + 1e-5).all()
    assert torch.equal(model(x_adv).argmax(1), target)
    # class 1 beats class 0 only if ||delta|| >= (2 x0 - x1) / sqrt(5) = 0.80 and 0.76: a 0.3 ball cannot
    small = targeted_l2_pgd(model, x, target, 0.3, 0.1, 50, torch.Generator().manual_seed(0))
    assert ((small - x).norm(dim=1) <= 0.3 + 1e-5).all() and torch.equal(model(small).argmax(1), torch.tensor([0, 0]))
    # no steps: the random start alone, strictly inside the ball, seeded
    start = targeted_l2_pgd(model, x, target, 0.5, 0.1, 0, torch.Generator().manual_seed(1))
    again = targeted_l2_pgd(model, x, target, 0.5, 0.1, 0, torch.Generator().manual_seed(1))
    assert torch.equal(start, again) and ((start - x).norm(dim=1) <= 0.5).all() and not torch.equal(start, x)


def test_one_pgd_step_is_the_normalised_gradient_step():
    """One step from the seeded random start (steps=0 returns it) moves by step_size along
    -grad CE(target) / ||grad||, the gradient by hand for a linear model; eps is large, so no
    projection."""
    model = linear_layer([[1.0, 0.0], [0.0, 1.0]])
    x, target = torch.tensor([[1.0, 0.0]]), torch.tensor([1])
    got = targeted_l2_pgd(model, x, target, eps=10.0, step_size=0.5, steps=1,
                               generator=torch.Generator().manual_seed(0))
    start = targeted_l2_pgd(model, x, target, eps=10.0, step_size=0.5, steps=0,
                                 generator=torch.Generator().manual_seed(0))
    p = model(start).softmax(1)
    grad = (p - F.one_hot(target, 2).float()) @ model.weight  # d CE / d x
    expected = start - 0.5 * grad / grad.norm()
    assert torch.allclose(got, expected, atol=1e-6)


# ---- MAS importance and anchors (L2UL), train mode with frozen BatchNorm -----------------------

def test_mas_importance_by_hand_on_a_linear_model():
    model = linear_layer([[1.0, 2.0], [-1.0, 0.5]], bias=[0.5, -1.0])
    x = torch.tensor([[1.0, 0.0], [0.5, -2.0], [0.0, 1.0]])
    out = model(x).detach()
    norms = out.norm(dim=1, keepdim=True)
    # d ||W x + b|| / dW = (Wx + b) x^T / ||Wx + b||, d/db = (Wx + b) / ||Wx + b||
    per_sample_w = (out / norms)[:, :, None] * x[:, None, :]
    per_sample_b = out / norms
    got = mas_importance(model, x, batch_size=1)  # batch 1: mean_x |per-sample gradient|
    assert torch.allclose(got["weight"], per_sample_w.abs().mean(0), atol=1e-6)
    assert torch.allclose(got["bias"], per_sample_b.abs().mean(0), atol=1e-6)
    whole = mas_importance(model, x, batch_size=3)  # one batch: |mean gradient|, as the code's loader
    assert torch.allclose(whole["weight"], per_sample_w.mean(0).abs(), atol=1e-6)
    two = mas_importance(model, x, batch_size=2)  # batches {0,1}, {2}: (2 |mean| + 1 |g_2|) / 3
    expected = (2 * per_sample_w[:2].mean(0).abs() + per_sample_w[2].abs()) / 3
    assert torch.allclose(two["weight"], expected, atol=1e-6)
    assert model.weight.grad is None  # computed on a copy


def test_anchor_weights_are_one_minus_the_min_max_normalised_importance():
    weights = anchor_weights({"a": torch.tensor([1.0, 3.0, 2.0]), "b": torch.tensor([5.0, 5.0])})
    assert torch.allclose(weights["a"], torch.tensor([1.0, 0.0, 0.5]))
    assert torch.equal(weights["b"], torch.ones(2))  # constant: no division by zero, anchored


def test_train_mode_freezes_batchnorm_statistics():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    train_mode(model, "frozen")
    assert model.training and model[0].training and not model[1].training
    before = model[1].running_mean.clone()
    model(torch.randn(8, 3) + 5)
    assert torch.equal(model[1].running_mean, before)
    train_mode(model, "train")
    assert model[1].training


# ---- masked distillation (PTE) --------------------------------------------------------------------

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
    got = masked_distill_kl(student, teacher, y, temperature)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert masked_distill_kl(teacher, teacher, y, temperature).item() == pytest.approx(0.0, abs=1e-7)
    # the true class's logit is out of it: changing it changes nothing, and gets no gradient
    moved = student.clone().requires_grad_(True)
    loss = masked_distill_kl(moved, teacher, y, temperature)
    loss.backward()
    assert moved.grad[0, 0] == 0 and moved.grad[1, 2] == 0 and torch.isfinite(moved.grad).all()
    shifted = student + torch.tensor([[100.0, 0.0, 0.0], [0.0, 0.0, -50.0]])
    assert masked_distill_kl(shifted, teacher, y, temperature).item() == pytest.approx(expected, rel=1e-6)


# ---- gradients (PCGrad), contrastive loss (SupCon), features with gradients ------------------------

def test_conflict_projection_by_hand():
    g_r = torch.tensor([1.0, 0.0])
    # conflicting: <g_f, g_r> = -1, so the g_r component is removed: [-1, 1] + 1 * [1, 0] = [0, 1]
    assert torch.allclose(project_conflict(torch.tensor([-1.0, 1.0]), g_r), torch.tensor([0.0, 1.0]))
    # not conflicting: unchanged
    assert torch.equal(project_conflict(torch.tensor([1.0, 1.0]), g_r), torch.tensor([1.0, 1.0]))
    # conflicting with |g_r|^2 = 4: [-2, 1] - (-4 / 4) * [2, 0] = [0, 1]
    assert torch.allclose(project_conflict(torch.tensor([-2.0, 1.0]), torch.tensor([2.0, 0.0])), torch.tensor([0.0, 1.0]))


def test_features_come_with_gradients_and_match_head_inputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 3))
    _, _, head = find_head(model, 3)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    output, features = logits_and_features(model, head, x)
    assert features.requires_grad
    assert torch.allclose(features, head_inputs(model, head, x))
    assert torch.allclose(output, model(x))


def test_flat_grad_concatenates_in_order_with_zeros_for_unused_parameters_and_unit_normalises():
    model = linear_layer([[1.0, 2.0]], bias=[0.5])
    unused = nn.Parameter(torch.ones(3))
    x = torch.tensor([[3.0, -1.0]])
    got = flat_grad(model(x).sum() * 2, [model.weight, unused, model.bias])
    # d (2 (w x + b)) / dw = 2 x, / db = 2; the unused parameter contributes three zeros
    assert torch.equal(got, torch.tensor([6.0, -2.0, 0.0, 0.0, 0.0, 2.0]))
    assert torch.allclose(unit(torch.tensor([3.0, 4.0])), torch.tensor([0.6, 0.8]))
    assert torch.equal(unit(torch.zeros(2)), torch.zeros(2))


def test_contrastive_loss_by_hand():
    """One anchor z = [1, 0] against contrast [1, 0], [0, 1], [-1, 0] at tau 1, the last excluded
    (not valid), the first the only positive: -log(e^1 / (e^1 + e^0)). A second anchor without
    positives does not enter the mean; with no positive at all the loss is 0."""
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    contrast = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    valid = torch.tensor([[True, True, False], [True, True, True]])
    positive = torch.tensor([[True, False, True], [False, False, False]])  # (0, 2) is not valid
    got = contrastive_loss(anchors, contrast, positive, valid, tau=1.0)
    assert got.item() == pytest.approx(-math.log(math.e / (math.e + 1.0)), rel=1e-6)
    halved = contrastive_loss(anchors, contrast, positive, valid, tau=0.5)  # logits 2 and 0
    assert halved.item() == pytest.approx(-math.log(math.e**2 / (math.e**2 + 1.0)), rel=1e-6)
    assert contrastive_loss(anchors, contrast, torch.zeros_like(valid), valid, 1.0).item() == 0.0

"""The shared building blocks of mubench.toolkit, against hand computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mubench.errors import MubenchError
from mubench.toolkit.adversarial import fgsm_labels, fgsm_perturb, pgd_linf
from mubench.toolkit.distill import frozen_copy
from mubench.toolkit.heads import find_head, head_inputs


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

"""Boundary Shrink and Boundary Expand (Chen et al. 2023): the FGSM label by hand, the shadow unit's
widening and removal, and both methods end to end on the debug task."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import baselines.boundary as boundary
from helpers import debug_config, shared_home, unlearn_debug
from mubench.errors import MubenchError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness, check_architecture
from mubench.methods import methods


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("baseline")):
        yield Harness()


def config(method: str, scenario: str = "class_0", **hparams) -> RunConfig:
    return debug_config(method, scenario, **hparams)


def unlearn_directly(harness: Harness, method: str, scenario: str = "class_0", seed: int = 7, **hparams):
    """(original, unlearned) from calling the method itself on the prepared debug data."""
    return unlearn_debug(harness, methods.get(method), scenario, seed, **hparams)


# ---- the FGSM label by hand ---------------------------------------------------------------------

def linear_model() -> nn.Module:
    model = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[4.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    return model


def test_fgsm_label_matches_a_hand_computation():
    model = linear_model()
    x, y = torch.tensor([[1.0, 0.5], [0.8, -0.2]]), torch.tensor([0, 0])
    assert torch.equal(model(x).argmax(1), y) and (model(x).softmax(1)[:, 0] > 0.9).all()  # confident
    eps = 1.0
    p = model(x).softmax(1)
    grad = (p - F.one_hot(y, 3).float()) @ model.weight  # d CE / d x for a linear model
    by_hand = model(x + eps * grad.sign()).argmax(1)
    got = boundary.fgsm_labels(model, x, y, eps)
    assert torch.equal(got, by_hand)
    assert (got != y).all()  # the nearest wrong class, not the true one
    assert torch.equal(boundary.fgsm_labels(model, x, y, 0.0), y)  # no step: the frozen argmax itself


def test_fgsm_label_is_the_frozen_originals_prediction_on_debug(harness):
    prepared = harness.prepare("debug", "class_0", 0, "smoke")
    frozen, forget = prepared.original.model, prepared.subsets["forget"]
    labels = boundary.fgsm_labels(frozen, forget.x, forget.y, 1.0)
    x = forget.x.clone().requires_grad_(True)
    F.cross_entropy(frozen(x), forget.y).backward()
    assert torch.equal(labels, frozen(forget.x + x.grad.sign()).argmax(1))
    confident = frozen(forget.x).softmax(1).max(1).values > 0.9
    assert confident.sum() > 10 and (labels[confident] != forget.y[confident]).float().mean() > 0.9


def test_shrink_rejects_negative_eps(harness):
    record = harness.run(config("boundary_shrink", eps=-0.1))
    assert record.status == "failed" and "eps" in record.error


# ---- the shadow unit --------------------------------------------------------------------------

def test_widen_copies_the_head_and_adds_a_seeded_shadow_row():
    head = nn.Linear(5, 3)
    widened = boundary.widen(head, torch.Generator().manual_seed(0))
    again = boundary.widen(head, torch.Generator().manual_seed(0))
    assert widened.out_features == 4 and widened is not head
    assert torch.equal(widened.weight[:3], head.weight) and torch.equal(widened.bias[:3], head.bias)
    bound = 5 ** -0.5
    assert widened.weight[3].abs().max() <= bound and widened.bias[3].abs() <= bound
    assert torch.equal(widened.weight, again.weight) and torch.equal(widened.bias, again.bias)
    with torch.no_grad():
        widened.weight.add_(1.0)
        widened.bias.add_(1.0)
    boundary.narrow(widened, head)
    assert torch.equal(head.weight, widened.weight[:3]) and torch.equal(head.bias, widened.bias[:3])


def test_find_head_picks_the_last_class_layer_and_fails_without_one():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 3)))
    parent, attribute, layer = boundary.find_head(model, 3)
    assert layer is model[2][1] and getattr(parent, attribute) is layer
    with pytest.raises(MubenchError, match="7 outputs"):
        boundary.find_head(model, 7)
    with pytest.raises(MubenchError, match="is the head itself"):  # no parent to swap a widened head into
        boundary.find_head(nn.Linear(4, 3), 3)


def test_expand_returns_the_original_architecture_and_head_object(harness):
    original, unlearned = unlearn_directly(harness, "boundary_expand")
    check_architecture(unlearned, original)
    assert not any(isinstance(m, nn.Linear) and m.out_features == 5 for m in unlearned.modules())
    head = boundary.find_head(unlearned, 4)[2]
    assert head.out_features == 4
    changed = [k for k, v in unlearned.state_dict().items() if not torch.equal(v, original.state_dict()[k])]
    assert changed  # trained


def test_expand_without_training_leaves_every_weight_unchanged(harness):
    """The head's original rows change only through training: with lr 0 (and no decay) the round
    trip widen -> narrow returns the original weights exactly."""
    original, unlearned = unlearn_directly(harness, "boundary_expand", lr=0.0, weight_decay=0.0)
    for key, value in original.state_dict().items():
        assert torch.equal(unlearned.state_dict()[key], value), key


# ---- end to end ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["boundary_shrink", "boundary_expand"])
def test_end_to_end_forgets_class_0(harness, method):
    """On the tiny debug task both forget at lr 1e-3 (shrink's default 1e-5, the authors', makes too
    few steps there; tests/test_authors_defaults.py checks that default on cmnist)."""
    identity_forget_acc = harness.prepare("debug", "class_0", 0, "smoke").original_outputs["forget"].accuracy
    record = harness.run(config(method, lr=1e-3))
    assert record.status == "ok", record.error
    assert record.metrics["forget/acc"] < identity_forget_acc - 0.3
    assert record.metrics["retain/acc"] > 0.8
    random = harness.run(config(method, scenario="random_10", lr=1e-3))
    assert random.status == "ok", random.error


@pytest.mark.parametrize("method", ["boundary_shrink", "boundary_expand"])
def test_same_seed_same_weights(harness, method):
    _, first = unlearn_directly(harness, method, seed=3)
    _, second = unlearn_directly(harness, method, seed=3)
    for key, value in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], value), key


def test_shrink_defaults_to_the_authors_step_size_and_expand_keeps_its_measured_one():
    """Chen et al.'s code steps both methods with SGD lr 1e-5; Boundary Shrink takes it (at 1e-3 it
    collapsed cmnist random_10), Boundary Expand keeps 1e-3, where 1e-5 barely moves the smoke
    models (baselines/boundary.py). Both versions say which default their records used."""
    shrink, expand = methods.get("boundary_shrink"), methods.get("boundary_expand")
    assert shrink.defaults()["lr"] == 1e-5 and shrink.version == "2"
    assert expand.defaults()["lr"] == 1e-3 and expand.version == "1"
    assert shrink.defaults("standard")["lr"] == 1e-5

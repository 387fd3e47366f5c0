"""Selective Synaptic Dampening (baselines/ssd.py): the selection and the dampening factor by
hand on a two-parameter model, the mean over batches, and the method through the harness."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import baselines.ssd as ssd
from helpers import debug_config, shared_home
from mubench.errors import MubenchError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.methods import Access, methods
from mubench.request import Request, Subset
from mubench.targets import Target


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("importance-baselines")):
        yield


@pytest.fixture(scope="module")
def harness():
    return Harness()


def config(scenario: str, seed: int = 0, method: str = "ssd", **hparams) -> RunConfig:
    return debug_config(method, scenario, seed, **hparams)


# ---- the formula by hand ------------------------------------------------------------------------

def test_dampening_factor_and_selection_by_hand():
    full = torch.tensor([1.0, 1.0, 2.0, 0.0, 0.0])
    forget = torch.tensor([20.0, 10.0, 30.0, 0.0, 3.0])
    # selected where forget > 10 * full: [20 > 10, 10 > 10 no (strict), 30 > 20, 0 > 0 no, 3 > 0]
    factors = ssd.dampening_factors(full, forget, alpha=10.0, lam=1.0)
    assert torch.allclose(factors, torch.tensor([1 / 20, 1.0, 2 / 30, 1.0, 0.0]))
    # lambda scales the factor, which is capped at 1 (a weight is never amplified)
    factors = ssd.dampening_factors(full, forget, alpha=10.0, lam=5.0)
    assert torch.allclose(factors, torch.tensor([5 / 20, 1.0, 10 / 30, 1.0, 0.0]))
    factors = ssd.dampening_factors(full, forget, alpha=10.0, lam=100.0)
    assert torch.allclose(factors, torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0]))


def two_weight_request() -> tuple[nn.Module, Request]:
    """y_hat = w1 x1 + w2 x2 with w = (1, 1) and the masked-MAE (regression) loss, whose gradient
    on one sample is sign(y_hat - y) x: forget x = (2, 0), retain x = (0, 1), both with y = 0."""
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0]]))
    subsets = {"forget": Subset(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0]])),
               "retain": Subset(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0]]))}
    request = Request(subsets, Access.RETAIN, num_classes=1, device=torch.device("cpu"), seed=0,
                      target=Target(kind="regression"))
    return model, request


@pytest.mark.parametrize("alpha, batch_size, expected", [
    # one batch of D holding both samples: mean gradient (1, 0.5), so []_D = (1, 0.25); []_f = (4, 0)
    (2.0, 128, [0.25, 1.0]),    # w1: 4 > 2 * 1, factor 1/4; w2: 0 > 0.5 no
    (4.0, 128, [1.0, 1.0]),     # 4 > 4 is false: nothing selected
    # batches of one: []_D = mean of (0, 1)^2 and (2, 0)^2 = (2, 0.5), not the square of the mean
    (1.5, 1, [0.5, 1.0]),       # 4 > 3, factor 2/4
    (2.0, 1, [1.0, 1.0]),       # 4 > 4 is false
])
def test_two_weight_model_by_hand(alpha, batch_size, expected):
    model, request = two_weight_request()
    hp = ssd.SelectiveSynapticDampening.resolve({"alpha": alpha, "batch_size": batch_size})
    out = ssd.SelectiveSynapticDampening().unlearn(model, request, hp)
    assert torch.allclose(out.weight.detach(), torch.tensor([expected]))


def test_importances_by_hand():
    model, request = two_weight_request()
    forget = ssd.squared_gradient_importance(model, ssd.ordered_batches([request.forget], 128), request.loss)
    full = ssd.squared_gradient_importance(model, ssd.ordered_batches([request.retain, request.forget], 1), request.loss)
    assert torch.allclose(forget["weight"], torch.tensor([[4.0, 0.0]]))
    assert torch.allclose(full["weight"], torch.tensor([[2.0, 0.5]]))


def test_ordered_batches_straddle_subsets_in_order():
    a = Subset(torch.arange(5.0).unsqueeze(1), torch.arange(5))
    b = Subset(torch.arange(5.0, 8.0).unsqueeze(1), torch.arange(5, 8))
    batches = list(ssd.ordered_batches([a, b], 3))
    assert [y.tolist() for _, y in batches] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert all(torch.equal(x.squeeze(1), y.float()) for x, y in batches)


@pytest.mark.parametrize("overrides", [{"alpha": 0.0}, {"dampening": -1.0}, {"batch_size": 0}])
def test_bad_hyper_parameters_are_refused(overrides):
    model, request = two_weight_request()
    with pytest.raises(MubenchError, match="ssd"):
        ssd.SelectiveSynapticDampening().unlearn(model, request, ssd.SelectiveSynapticDampening.resolve(overrides))


def test_registration():
    cls = methods.get("ssd")
    assert cls is ssd.SelectiveSynapticDampening
    assert cls.access is Access.RETAIN and cls.intensity == "alpha"
    assert cls.defaults() == {"alpha": 10.0, "dampening": 1.0, "batch_size": 128}


# ---- through the harness on the debug task ------------------------------------------------------

def test_runs_with_the_canonical_setting(harness):
    record = harness.run(config("random_10"))
    assert record.status == "ok", record.error


def test_forgets_class_0_below_identity_and_changes_weights(harness):
    prepared = harness.prepare("debug", "class_0", 0, "smoke")
    identity = harness.run(config("class_0", method="identity"))
    record = harness.run(config("class_0", alpha=2.0))  # class 0 is a fifth of D: []_f/[]_D rarely reaches 10
    assert record.status == "ok", record.error
    assert record.metrics["forget/acc"] < identity.metrics["forget/acc"] - 0.3
    model = copy.deepcopy(prepared.original.model)
    request = Request({k: prepared.subsets[k] for k in ("forget", "retain")}, Access.RETAIN, 4, torch.device("cpu"), seed=0)
    unlearned = ssd.SelectiveSynapticDampening().unlearn(model, request, ssd.SelectiveSynapticDampening.resolve({"alpha": 2.0}))
    changed = [name for name, p in unlearned.named_parameters()
               if not torch.equal(p, dict(prepared.original.model.named_parameters())[name])]
    assert changed
    # dampening only shrinks weights towards zero, never grows or flips them
    for name, p in unlearned.named_parameters():
        before = dict(prepared.original.model.named_parameters())[name]
        assert bool((p.abs() <= before.abs()).all()) and bool((p * before >= 0).all())


def test_same_data_same_weights(harness):
    """SSD draws nothing at random: two runs (with different request seeds) give the same weights."""
    prepared = harness.prepare("debug", "random_10", 0, "smoke")
    hp = ssd.SelectiveSynapticDampening.resolve({"alpha": 2.0})
    states = []
    for seed in (0, 1):
        request = Request({k: prepared.subsets[k] for k in ("forget", "retain")}, Access.RETAIN, 4, torch.device("cpu"), seed)
        states.append(ssd.SelectiveSynapticDampening().unlearn(copy.deepcopy(prepared.original.model), request, hp).state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert any(not torch.equal(states[0][k], prepared.original.model.state_dict()[k]) for k in states[0])

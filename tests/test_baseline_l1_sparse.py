"""l1-sparse unlearning (baselines/l1_sparse.py): the decaying l1 schedule and the first SGD steps
by hand, and the method end to end on the debug task."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import baselines.l1_sparse  # noqa: F401  (registers "l1_sparse")
from baselines.l1_sparse import L1Sparse, l1_coefficient, l1_norm
from helpers import debug_config
from mubench.errors import MubenchError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.methods import Access
from mubench.request import Request, Subset


@pytest.fixture(autouse=True)
def _home_and_one_thread(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config(scenario: str = "class_0", method: str = "l1_sparse", **hparams) -> RunConfig:
    return debug_config(method, scenario, **hparams)


def test_schedule_decays_linearly_then_stops():
    assert [l1_coefficient(0.2, e, 5, 1) for e in range(5)] == pytest.approx([0.2, 0.15, 0.1, 0.05, 0.0])
    assert [l1_coefficient(0.2, e, 4, 0) for e in range(4)] == pytest.approx([0.2, 0.15, 0.1, 0.05])
    assert [l1_coefficient(1.0, e, 5, 3) for e in range(5)] == pytest.approx([1.0, 0.5, 0.0, 0.0, 0.0])


def test_l1_norm_sums_every_parameter():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.5, 0.25]]))
        model.bias.fill_(-2.0)
    assert l1_norm(model).item() == pytest.approx(3.75)


def test_two_epochs_by_hand():
    """One full batch per epoch, so two SGD steps (momentum 0.9, weight decay wd) with l1
    coefficients alpha and alpha / 2:  d_t = grad CE(theta_t) + gamma_t sign(theta_t) + wd theta_t,
    buf_1 = d_0, buf_2 = 0.9 buf_1 + d_1, theta_{t+1} = theta_t - lr buf_{t+1}."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 1, 0, 1, 0])
    request = Request({"forget": Subset(x[:1], y[:1]), "retain": Subset(x, y)}, Access.RETAIN, 2,
                      torch.device("cpu"), seed=0)
    alpha, lr, wd = 0.3, 0.1, 0.01
    hp = L1Sparse.resolve({"alpha": alpha, "lr": lr, "weight_decay": wd, "epochs": 2, "batch_size": 64})

    theta = [p.detach().clone() for p in model.parameters()]
    buffers = None
    for gamma in (alpha, alpha / 2):
        probe = copy.deepcopy(model)
        with torch.no_grad():
            for p, value in zip(probe.parameters(), theta):
                p.copy_(value)
        grads = torch.autograd.grad(nn.functional.cross_entropy(probe(x), y), list(probe.parameters()))
        d = [g + gamma * t.sign() + wd * t for g, t in zip(grads, theta)]
        buffers = d if buffers is None else [0.9 * b + di for b, di in zip(buffers, d)]
        theta = [t - lr * b for t, b in zip(theta, buffers)]

    unlearned = L1Sparse().unlearn(model, request, hp)
    for got, expected in zip(unlearned.parameters(), theta):
        assert torch.allclose(got, expected, atol=1e-6)


def test_runs_through_the_harness_and_a_strong_penalty_forgets_class_0():
    harness = Harness()
    default = harness.run(config())
    assert default.status == "ok", default.error
    identity = harness.run(config(method="identity"))
    strong = harness.run(config(alpha=0.2))
    assert strong.status == "ok", strong.error
    assert strong.metrics["forget/acc"] < identity.metrics["forget/acc"] - 0.5
    assert strong.metrics["forget/acc"] < default.metrics["forget/acc"]  # alpha is the intensity


def test_same_seed_same_weights():
    harness = Harness()
    prepared = harness.prepare("debug", "random_10", 0, "smoke")

    def weights(seed: int) -> list[torch.Tensor]:
        request = Request({k: prepared.subsets[k] for k in ("forget", "retain")}, Access.RETAIN, 4,
                          torch.device("cpu"), seed=seed)
        model = copy.deepcopy(prepared.original.model)
        return list(L1Sparse().unlearn(model, request, L1Sparse.resolve({"epochs": 1})).parameters())

    first, again, other = weights(1), weights(1), weights(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("hparams", [{"alpha": -1.0}, {"epochs": 0}, {"no_l1_epochs": 5}, {"no_l1_epochs": -1}])
def test_bad_hyper_parameters_are_clear_errors(hparams):
    request = Request({"forget": Subset(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)),
                       "retain": Subset(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))},
                      Access.RETAIN, 2, torch.device("cpu"), seed=0)
    with pytest.raises(MubenchError, match="l1_sparse"):
        L1Sparse().unlearn(nn.Linear(3, 2), request, L1Sparse.resolve(hparams))

"""Fisher forgetting (baselines/fisher.py): the Fisher diagonal against its closed form and the
repository's per-sample loop, the noise variance and its clamps by hand, the noise itself, and
the method through the harness."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import baselines.fisher as fisher
from helpers import debug_config, shared_home
from mubench.errors import MubenchError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.methods import Access, methods
from mubench.request import Request, Subset


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("importance-baselines")):
        yield


@pytest.fixture(scope="module")
def harness():
    return Harness()


def config(scenario: str, seed: int = 0, method: str = "fisher", **hparams) -> RunConfig:
    return debug_config(method, scenario, seed, **hparams)


def toy_linear() -> tuple[nn.Module, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    model = nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.randn(3, 2, generator=generator))
        model.bias.copy_(torch.randn(3, generator=generator))
    return model.eval(), torch.randn(5, 2, generator=generator)


# ---- the Fisher diagonal --------------------------------------------------------------------------

def test_fisher_of_softmax_regression_matches_its_closed_form():
    """For logits W x + b, d log p_y / d W = (e_y - p) x^T, so
    F_W[k, j] = mean_x sum_y p_y (1[y = k] - p_k)^2 x_j^2 = mean_x p_k (1 - p_k) x_j^2."""
    model, x = toy_linear()
    got = fisher.fisher_diagonal(model, x)
    p = F.softmax(model(x), dim=1).detach()
    per_class = p * (1 - p)
    assert torch.allclose(got["weight"], (per_class.unsqueeze(2) * x.unsqueeze(1) ** 2).mean(0), atol=1e-6)
    assert torch.allclose(got["bias"], per_class.mean(0), atol=1e-6)


def test_fisher_matches_the_repositorys_batch_of_one_loop():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).eval()
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(2))
    expected = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for xi in x:
        output = model(xi.unsqueeze(0))
        prob = F.softmax(output, dim=-1).detach()
        for y in range(3):
            model.zero_grad()
            F.cross_entropy(output, torch.tensor([y])).backward(retain_graph=True)
            for name, p in model.named_parameters():
                expected[name] += prob[0, y] * p.grad ** 2
    got = fisher.fisher_diagonal(model, x)
    for name in expected:
        assert torch.allclose(got[name], expected[name] / len(x), atol=1e-6), name


def test_sampled_labels_estimate_the_exact_fisher():
    model, x = toy_linear()
    exact = fisher.fisher_diagonal(model, x)
    sampled = fisher.fisher_diagonal(model, x, label_samples=2000, generator=torch.Generator().manual_seed(0))
    for name in exact:
        assert torch.allclose(sampled[name], exact[name], rtol=0.1, atol=1e-3), name


# ---- the noise variance and its clamps ------------------------------------------------------------

def test_noise_variance_by_hand():
    alpha = 1e-6
    # a hidden layer (first dim 2 != 3 classes): 1/(F + 1e-8) clamped to 1e3, times alpha, then
    # averaged over dim 1
    weight_fisher = torch.tensor([[1.0, 0.0], [0.5, 0.25]])
    row0 = (1.0 / (1.0 + 1e-8) + 1e3) / 2  # F = 0 is clamped to 1e3, not 1e8
    row1 = (1 / (0.5 + 1e-8) + 1 / (0.25 + 1e-8)) / 2
    expected = alpha * torch.tensor([[row0, row0], [row1, row1]])
    assert torch.allclose(fisher.noise_variance(weight_fisher, alpha, num_classes=3), expected, rtol=1e-6)
    # the classifier (first dim = classes) is clamped to 1e2
    classifier = torch.tensor([[1e-6, 1.0], [0.0, 0.0], [1.0, 1.0]])
    expected = alpha * torch.tensor([[(1e2 + 1.0) / 2] * 2, [1e2] * 2, [1.0] * 2])
    assert torch.allclose(fisher.noise_variance(classifier, alpha, num_classes=3), expected, rtol=1e-6)
    # 1-dim tensors: no averaging, times 10; a classifier bias gets both the 1e2 clamp and the 10
    bias = torch.tensor([0.0, 0.1])
    assert torch.allclose(fisher.noise_variance(bias, alpha, num_classes=3), 10 * alpha * torch.tensor([1e3, 10.0]), rtol=1e-6)
    assert torch.allclose(fisher.noise_variance(torch.tensor([0.0, 0.1, 4.0]), alpha, num_classes=3),
                          10 * alpha * torch.tensor([1e2, 10.0, 0.25]), rtol=1e-6)
    # conv weights (out, in, k, k): averaged over the input channels, per output channel and tap
    conv = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(0)) + 0.5
    var = fisher.noise_variance(conv, 1.0, num_classes=10)
    assert torch.allclose(var, (1 / (conv + 1e-8)).mean(dim=1, keepdim=True).expand_as(conv))


def test_unlearn_adds_exactly_the_scaled_noise_from_the_request_generator():
    model, x = toy_linear()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    request = Request({"forget": Subset(x[:1], torch.tensor([0])), "retain": Subset(x, torch.zeros(5, dtype=torch.long))},
                      Access.RETAIN, num_classes=3, device=torch.device("cpu"), seed=7)
    hp = fisher.FisherForgetting.resolve({"alpha": 1e-4, "label_samples": 0, "fisher_samples": 0})  # exact
    fisher_values = fisher.fisher_diagonal(model, x)
    out = fisher.FisherForgetting().unlearn(model, request, hp)
    generator = torch.Generator().manual_seed(7)  # the request's generator, replayed
    for name, p in out.named_parameters():
        std = fisher.noise_variance(fisher_values[name], 1e-4, 3).sqrt()
        expected = before[name] + std * torch.randn(p.shape, generator=generator)
        assert torch.allclose(p.detach(), expected, atol=1e-7), name


@pytest.mark.parametrize("overrides", [{"alpha": -1e-6}, {"label_samples": -1}])
def test_bad_hyper_parameters_are_refused(overrides):
    model, x = toy_linear()
    request = Request({"forget": Subset(x, torch.zeros(5, dtype=torch.long)), "retain": Subset(x, torch.zeros(5, dtype=torch.long))},
                      Access.RETAIN, 3, torch.device("cpu"), seed=0)
    with pytest.raises(MubenchError, match="fisher"):
        fisher.FisherForgetting().unlearn(model, request, fisher.FisherForgetting.resolve(overrides))


def test_registration():
    cls = methods.get("fisher")
    assert cls is fisher.FisherForgetting
    assert cls.access is Access.RETAIN and cls.intensity == "alpha" and cls.targets == frozenset({"class"})
    assert cls.defaults() == {"alpha": 1e-6, "label_samples": 1, "fisher_samples": 1000, "strategy": "auto"}


def test_the_default_estimate_uses_a_subset_and_sampled_labels():
    """fisher_samples retain rows drawn from the request's generator, one label each from p(y|x):
    replaying the draws gives the same noise, and the estimate differs from the exact one."""
    model, x = toy_linear()
    x = torch.cat([x] * 40)  # 200 rows: more than the 50 kept
    retain = Subset(x, torch.zeros(len(x), dtype=torch.long))

    def run(hp: dict) -> dict[str, torch.Tensor]:
        m = copy.deepcopy(model)
        request = Request({"forget": Subset(x[:1], torch.tensor([0])), "retain": retain}, Access.RETAIN, 3,
                          torch.device("cpu"), seed=3)
        fisher.FisherForgetting().unlearn(m, request, fisher.FisherForgetting.resolve(hp))
        return {k: v.detach().clone() for k, v in m.named_parameters()}

    sampled = run({"alpha": 1e-3, "fisher_samples": 50, "label_samples": 1})
    again = run({"alpha": 1e-3, "fisher_samples": 50, "label_samples": 1})
    exact = run({"alpha": 1e-3, "fisher_samples": 0, "label_samples": 0})
    assert all(torch.equal(sampled[k], again[k]) for k in sampled)
    assert any(not torch.equal(sampled[k], exact[k]) for k in sampled)


# ---- through the harness on the debug task ------------------------------------------------------

def test_runs_with_the_canonical_setting(harness):
    record = harness.run(config("random_10"))
    assert record.status == "ok", record.error
    assert record.metrics["cost/seconds"] < 10.0  # debug: well under a second once torch._dynamo is imported


def test_more_noise_forgets_class_0_below_identity(harness):
    identity = harness.run(config("class_0", method="identity"))
    record = harness.run(config("class_0", alpha=1e-3))
    assert record.status == "ok", record.error
    assert record.metrics["forget/acc"] < identity.metrics["forget/acc"] - 0.3


def test_same_seed_same_weights_other_seed_other_weights(harness):
    prepared = harness.prepare("debug", "random_10", 0, "smoke")
    hp = fisher.FisherForgetting.resolve()
    def unlearned(seed: int) -> dict[str, torch.Tensor]:
        request = Request({k: prepared.subsets[k] for k in ("forget", "retain")}, Access.RETAIN, 4, torch.device("cpu"), seed)
        return fisher.FisherForgetting().unlearn(copy.deepcopy(prepared.original.model), request, hp).state_dict()
    first, again, other = unlearned(0), unlearned(0), unlearned(1)
    original = prepared.original.model.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert all(not torch.equal(first[k], other[k]) for k in first)
    assert all(not torch.equal(first[k], original[k]) for k in first)

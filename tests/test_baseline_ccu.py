"""CCU (baselines/ccu.py): the inverse-contrastive and dual-set separation losses on tiny
embeddings against a direct loop, the penultimate features with gradients, hyper-parameter
checks, reproducibility, runs through the harness on the debug task and the smoke behaviour on
cmnist class_0."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import baselines.ccu  # noqa: F401  (registers "ccu")
import baselines.identity  # noqa: F401  (registers "identity")
from baselines.ccu import CCU, inverse_contrastive_loss, separation_loss
from helpers import (
    assert_seed_reproducible,
    assert_unlearns_debug_original,
    debug_config,
    needs_real_mnist,
    shared_home,
)
from mubench.errors import MubenchError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.methods import Access
from mubench.request import Request, Subset
from mubench.tasks import tasks


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("smoke")):
        yield Harness()


def tiny_request(seed: int = 0) -> Request:
    generator = torch.Generator().manual_seed(123)
    retain = Subset(torch.randn(40, 3, generator=generator), torch.randint(0, 3, (40,), generator=generator))
    forget = Subset(torch.randn(8, 3, generator=generator), torch.randint(0, 3, (8,), generator=generator))
    return Request({"retain": retain, "forget": forget}, Access.RETAIN, num_classes=3,
                   device=torch.device("cpu"), seed=seed)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 3))


def supcon_by_loop(anchors, contrast, positive, valid, tau):
    """SupCon L_out written as the paper's sum, one anchor and one pair at a time."""
    losses = []
    for i, z in enumerate(anchors):
        candidates = [a for a in range(len(contrast)) if valid(i, a)]
        positives = [p for p in candidates if positive(i, p)]
        if not positives:
            continue
        denominator = sum(math.exp(float(z @ contrast[a]) / tau) for a in candidates)
        losses.append(-np.mean([math.log(math.exp(float(z @ contrast[p]) / tau) / denominator) for p in positives]))
    return float(np.mean(losses))


def unit_rows(values):
    array = np.array(values, dtype=np.float64)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


ZF = unit_rows([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1]])  # forget embeddings, labels 0, 0, 2
YF = [0, 0, 2]
ZR = unit_rows([[1, 1, 0], [0, 1, 0], [-1, 0, 1], [0, 1, 1]])  # retain embeddings, labels 0, 1, 2, 1
YR = [0, 1, 2, 1]
TAU = 0.5


def test_inverse_contrastive_loss_against_a_direct_loop():
    contrast = np.concatenate([ZR, ZF])  # retain batch, then the forget batch
    labels = YR + YF
    expected = supcon_by_loop(ZF, contrast, positive=lambda i, a: labels[a] != YF[i],  # other classes are positives
                              valid=lambda i, a: a != len(YR) + i, tau=TAU)  # all but the anchor itself
    got = inverse_contrastive_loss(torch.tensor(ZF), torch.tensor(YF), torch.tensor(ZR), torch.tensor(YR), TAU)
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_separation_loss_against_a_direct_loop():
    contrast = np.concatenate([ZR, ZF])
    expected = supcon_by_loop(ZR, contrast, positive=lambda i, a: a < len(YR) and YR[a] == YR[i],  # same-class retain only
                              valid=lambda i, a: a != i, tau=TAU)
    got = separation_loss(torch.tensor(ZR), torch.tensor(YR), torch.tensor(ZF), TAU)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    # anchors 0 (label 0) and 2 (label 2) have no same-class retain sample: only anchors 1 and 3 count;
    # anchor 1 by hand: one positive (retain 3), every forget sample a negative
    z = ZR[1]
    scores = np.exp(np.array([z @ ZR[0], z @ ZR[2], z @ ZR[3], *(z @ f for f in ZF)]) / TAU)
    assert -math.log(scores[2] / scores.sum()) == pytest.approx(
        supcon_by_loop(ZR[1:2], np.concatenate([ZR[[0, 2, 3]], ZF]), lambda i, a: a == 2, lambda i, a: True, TAU))


def test_inversion_prefers_forget_embeddings_away_from_their_class():
    """Term (a) is lower when a forget embedding sits with other classes than with its own."""
    zr, yr = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    with_own_class = inverse_contrastive_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), zr, yr, TAU)
    with_other_class = inverse_contrastive_loss(torch.tensor([[0.0, 1.0]]), torch.tensor([0]), zr, yr, TAU)
    assert with_other_class < with_own_class


def test_no_positive_gives_a_zero_loss_with_a_gradient_path():
    z = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = separation_loss(z, torch.tensor([0]), torch.tensor([[0.0, 1.0]]), TAU)  # a lone retain anchor
    assert loss.item() == 0.0
    loss.backward()


@pytest.mark.parametrize("overrides, word", [
    ({"lambda_a": -1.0}, "lambda_a"), ({"lambda_c": float("nan")}, "lambda_c"), ({"tau": 0.0}, "tau"),
    ({"lr": -0.1}, "lr"), ({"epochs": 0}, "epochs"),
])
def test_bad_hyper_parameters_are_clear_errors(overrides, word):
    with pytest.raises(MubenchError, match=word):
        CCU().unlearn(tiny_model(), tiny_request(), CCU.resolve(overrides))


def test_same_seed_same_weights_other_seed_other_weights():
    def weights(seed):
        return CCU().unlearn(tiny_model(), tiny_request(seed=seed), CCU.resolve({"batch_size": 4})).state_dict()

    assert_seed_reproducible(weights)


def test_unlearns_the_original_of_the_debug_task(harness):
    assert_unlearns_debug_original(harness, CCU)


def test_forgets_class_0_of_the_debug_task_through_the_harness(harness):
    identity = harness.run(debug_config("identity")).metrics["forget/acc"]
    record = harness.run(debug_config("ccu", lr=0.03))  # measured .85 against identity's .97
    assert record.status == "ok", record.error
    assert record.metrics["forget/acc"] < identity - 0.05
    assert record.metrics["retain/acc"] > 0.95
    default = harness.run(debug_config("ccu"))
    assert default.status == "ok" and default.metrics["forget/acc"] < identity


def test_runs_on_random_10(harness):
    record = harness.run(debug_config("ccu", scenario="random_10"))
    assert record.status == "ok", record.error
    assert record.metrics["retain/acc"] > 0.9


def test_is_defined_for_classification_tasks_only():
    from mubench.harness.runner import supports
    assert supports(CCU, tasks.get("debug")) and not supports(CCU, tasks.get("metr_la"))


@needs_real_mnist
def test_forgets_class_0_of_cmnist_keeping_the_retain_set(harness):
    def run(method, **hparams):
        from mubench.methods import methods
        cls = methods.get(method)
        return harness.run(RunConfig(task="cmnist", task_version=tasks.get("cmnist").spec.version, scenario="class_0",
                                     method=method, method_version=cls.version, hparams=dict(cls.resolve(hparams)),
                                     seed=0, profile="smoke"))

    identity, record = run("identity"), run("ccu")
    assert record.status == "ok", record.error
    # the oracle never saw class 0; CCU's defaults (tau 0.2) measured 0.002 against identity's 1.0
    # (0.42 at the earlier tau 0.5)
    assert record.metrics["forget/acc"] < 0.1
    # CE on the retain batch is in every step and (c) keeps retain classes compact: within
    # 2 points (~180 of the ~9000 retain samples; measured 0.998 against 0.998)
    assert record.metrics["retain/acc"] > identity.metrics["retain/acc"] - 0.02


def test_contrastive_loss_without_positives_is_zero_with_finite_gradients():
    """No anchor has a positive (and one has no valid pair at all): the loss is 0 and backward
    gives zero, not NaN, gradients, now that no branch returns early; one positive is enough to
    make that anchor count again."""
    from mubench.toolkit.contrastive import contrastive_loss

    anchors = torch.tensor(ZF, requires_grad=True)
    contrast = torch.tensor(ZR)
    valid = torch.ones(3, 4, dtype=torch.bool)
    valid[2] = False
    loss = contrastive_loss(anchors, contrast, torch.zeros(3, 4, dtype=torch.bool), valid, TAU)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(anchors.grad, torch.zeros_like(anchors))
    positive = torch.zeros(3, 4, dtype=torch.bool)
    positive[0, 1] = True
    expected = supcon_by_loop(ZF[:1], ZR, lambda i, a: a == 1, lambda i, a: True, TAU)
    assert contrastive_loss(torch.tensor(ZF), contrast, positive, valid, TAU).item() == pytest.approx(expected, rel=1e-9)

"""baselines/influence_removal.py (Wang, Rockafellar & Ban 2025 as an influence-function Newton
step on the head): it matches exact retraining of a logistic regression, changes only the head,
handles regression heads behind the traffic models' speed scaling, is deterministic, rejects bad
hyper-parameters, and moves forget metrics in the direction of removal on real smoke tasks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import baselines.identity  # noqa: F401
import baselines.influence_removal  # noqa: F401  (registers "influence_removal")
from baselines.influence_removal import InfluenceRemoval
from helpers import MIRROR_SKIP, REAL_MIRROR, debug_config, needs_real_mnist, shared_home
from mubench.errors import MubenchError
from mubench.harness.models import SpeedScale
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness, check_architecture
from mubench.methods import Access, methods
from mubench.request import Request, Subset
from mubench.targets import CLASSIFICATION, Target
from mubench.tasks import tasks
from mubench.toolkit.influence import HeadData, augment, hessian, per_sample_gradients, solve

REGRESSION = Target(kind="regression", missing_value=0.0)




def tiny_request(seed: int = 0, target: Target = CLASSIFICATION, outputs: int = 3) -> Request:
    g = torch.Generator().manual_seed(1)
    if target.regression:
        y = 50 + 5 * torch.randn(48, outputs, generator=g)
        y[0, 0] = 0.0  # a missing target
    else:
        y = torch.randint(0, outputs, (48,), generator=g)
    x = torch.randn(48, 4, generator=g)
    return Request({"retain": Subset(x[8:], y[8:]), "forget": Subset(x[:8], y[:8])}, Access.RETAIN, outputs,
                   torch.device("cpu"), seed=seed, target=target)


def tiny_model(regression: bool = False) -> nn.Module:
    torch.manual_seed(0)
    body = [nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)]
    return nn.Sequential(SpeedScale(55, 20), *body, SpeedScale(55, 20, inverse=True)) if regression else nn.Sequential(*body)


@pytest.mark.parametrize("regression", [False, True])
def test_only_the_head_changes_and_the_run_is_deterministic(regression):
    target = REGRESSION if regression else CLASSIFICATION
    reference = tiny_model(regression)
    first = InfluenceRemoval().unlearn(tiny_model(regression), tiny_request(0, target), InfluenceRemoval.resolve())
    again = InfluenceRemoval().unlearn(tiny_model(regression), tiny_request(1, target), InfluenceRemoval.resolve())
    check_architecture(first, reference)
    before, after = reference.state_dict(), first.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    head = "3" if regression else "2"
    assert changed == {f"{head}.weight", f"{head}.bias"}
    assert all(torch.equal(after[k], again.state_dict()[k]) for k in after)  # no randomness at all
    no_bias = InfluenceRemoval().unlearn(tiny_model(regression), tiny_request(0, target), InfluenceRemoval.resolve({"bias": False}))
    assert torch.equal(no_bias.state_dict()[f"{head}.bias"], before[f"{head}.bias"])


def test_step_is_scale_times_the_newton_removal_on_the_head():
    request, model = tiny_request(), tiny_model()
    features = lambda x: augment(torch.relu(model[0](x)).detach(), bias=True)  # noqa: E731
    one = torch.ones(3, dtype=torch.float64)
    retain = HeadData(features(request.retain.x), request.retain.y, one, 0 * one)
    forget = HeadData(features(request.forget.x), request.forget.y, one, 0 * one)
    theta = torch.cat([model[2].weight, model[2].bias[:, None]], dim=1).detach().double()
    damping = 1e-2
    gradient = per_sample_gradients(forget, theta, CLASSIFICATION).sum(0) + 8 * damping * theta.flatten()
    step = solve(hessian(retain, theta, CLASSIFICATION, damping), gradient / 40).view_as(theta)
    out = InfluenceRemoval().unlearn(copy.deepcopy(model), request, InfluenceRemoval.resolve({"damping": damping, "scale": 2.0}))
    expected = theta + 2.0 * step
    assert torch.allclose(out[2].weight.double(), expected[:, :6], atol=1e-5)
    assert torch.allclose(out[2].bias.double(), expected[:, 6], atol=1e-5)


def test_method_matches_retraining_a_logistic_regression_model():
    """adult_logreg's model (mubench.harness.models.logistic) at the exact optimum of the regularised
    loss: the removal must close 95 % of the distance to the retrained optimum (the Newton step's
    error is quadratic in the shift, see tests/test_toolkit_influence.py)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 5, generator=g)
    y = (x[:, 0] + 0.7 * torch.randn(300, generator=g) > 0).long()
    damping = 1e-2
    one = torch.ones(2, dtype=torch.float64)

    def optimum(rows):
        data, theta = HeadData(augment(x[rows], True), y[rows], one, 0 * one), torch.zeros(2, 6, dtype=torch.float64)
        for _ in range(30):
            grad = per_sample_gradients(data, theta, CLASSIFICATION).mean(0) + damping * theta.flatten()
            theta = theta - solve(hessian(data, theta, CLASSIFICATION, damping), grad).view_as(theta)
        return theta

    full, retrained = optimum(torch.arange(300)), optimum(torch.arange(10, 300))
    model = nn.Sequential(nn.Flatten(), nn.Linear(5, 2))
    with torch.no_grad():
        model[1].weight.copy_(full[:, :5])
        model[1].bias.copy_(full[:, 5])
    request = Request({"retain": Subset(x[10:], y[10:]), "forget": Subset(x[:10], y[:10])}, Access.RETAIN, 2,
                      torch.device("cpu"), seed=0)
    out = InfluenceRemoval().unlearn(model, request, InfluenceRemoval.resolve({"damping": damping}))
    updated = torch.cat([out[1].weight, out[1].bias[:, None]], dim=1).double()
    # float32 weights: compare logit margins (softmax is invariant to a common shift of the rows)
    margin = lambda t: t[1] - t[0]  # noqa: E731
    assert (margin(updated) - margin(retrained)).norm() < 0.05 * (margin(full) - margin(retrained)).norm()


@pytest.mark.parametrize("overrides, word", [({"damping": 0.0}, "damping"), ({"scale": -1.0}, "scale")])
def test_bad_hyper_parameters_are_clear_errors(overrides, word):
    with pytest.raises(MubenchError, match=word):
        InfluenceRemoval().unlearn(tiny_model(), tiny_request(), InfluenceRemoval.resolve(overrides))


# -- the harness ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("baselines")):
        yield Harness()


def test_debug_class_0_through_the_harness(harness):
    identity = harness.run(debug_config("identity")).metrics
    record = harness.run(debug_config("influence_removal"))
    assert record.status == "ok", record.error
    assert record.metrics["forget/acc"] < identity["forget/acc"] - 0.5  # 0.97 -> 0.0 with the defaults


@pytest.fixture(scope="module")
def smoke_harness(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("smoke")):
        yield Harness()


def smoke_config(task: str, scenario: str, method: str) -> RunConfig:
    cls = methods.get(method)
    return RunConfig(task=task, task_version=tasks.get(task).spec.version, scenario=scenario, method=method,
                     method_version=cls.version, hparams=dict(cls.resolve()), seed=0, profile="smoke")


@needs_real_mnist
@pytest.mark.slow
def test_forget_accuracy_moves_to_the_oracle_on_cmnist_bias_aligned(smoke_harness):
    """Removing digit 0's bias-aligned images: the oracle keeps ~9 % of them right (seed 0), the
    original all. The Newton step should land near the oracle (gap/forget_acc 0.91 -> 0.07 with the
    defaults); test accuracy may fall to the oracle's (0.396, losing digit 0's majority), so the
    bound is the oracle's accuracy minus 0.03, as for the bias-aware baselines."""
    prepared = smoke_harness.prepare("cmnist", "bias_aligned", 0, "smoke")
    test = prepared.oracle_outputs["test"]
    oracle_acc = float((test.logits.argmax(dim=1) == test.labels).float().mean())
    identity = smoke_harness.run(smoke_config("cmnist", "bias_aligned", "identity")).metrics
    record = smoke_harness.run(smoke_config("cmnist", "bias_aligned", "influence_removal"))
    assert record.status == "ok", record.error
    assert record.metrics["gap/forget_acc"] < 0.25 * identity["gap/forget_acc"]
    assert record.metrics["test/acc"] > oracle_acc - 0.03


@pytest.mark.skipif(not (REAL_MIRROR / "metr-la-1week").is_dir(), reason=f"{MIRROR_SKIP}metr-la-1week/ in {REAL_MIRROR}")
def test_metr_la_sensor_regression_runs_and_raises_the_forget_error(smoke_harness):
    """Regression (the paper's traffic setting): the Gauss-Newton removal of one sensor's windows
    raises their error (the direction of removal) and keeps the test error within 1 %. It does not
    approach the oracle here: the oracle's forget MAE is below the original's (the sensor is not
    memorised), so gap/forget_mae grows (0.021 -> 0.045 mph, seed 0); we bound it by 0.1 mph."""
    identity = smoke_harness.run(smoke_config("metr_la", "sensor", "identity")).metrics
    record = smoke_harness.run(smoke_config("metr_la", "sensor", "influence_removal"))
    assert record.status == "ok", record.error
    m = record.metrics
    assert m["forget/mae"] > identity["forget/mae"]
    assert m["test/mae"] < 1.01 * identity["test/mae"] and m["gap/forget_mae"] < 0.1

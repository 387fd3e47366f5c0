"""Regression targets end to end: the masked loss, regression outputs and metrics, objectives."""

from __future__ import annotations

import math

import pytest
import torch

from mubench.evaluation import EvaluationContext, Outputs
from mubench.metrics import compute_metrics
from mubench.metrics.membership import loss_auc
from mubench.metrics.regression import regression_error
from mubench.targets import CLASSIFICATION, Target

REGRESSION = Target("regression", missing_value=0.0)


def test_masked_loss_matches_a_hand_computation():
    prediction = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    target = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    # present: (0,0) error 1, (0,2) error 2; sample 1 has no present target
    assert float(REGRESSION.loss(prediction, target)) == pytest.approx(3 / 2)
    assert REGRESSION.sample_losses(prediction, target).tolist() == pytest.approx([1.5, 0.0])
    # a classification target keeps cross-entropy
    logits, labels = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    assert float(CLASSIFICATION.loss(logits, labels)) == pytest.approx(math.log(1 + math.exp(-2)))


def test_masked_loss_has_no_gradient_through_missing_targets():
    prediction = torch.tensor([[1.0, 7.0]], requires_grad=True)
    REGRESSION.loss(prediction, torch.tensor([[3.0, 0.0]])).backward()
    assert prediction.grad.tolist() == [[-1.0, 0.0]]


def test_regression_outputs_refuse_classification_quantities():
    outputs = Outputs(torch.ones(2, 3), torch.ones(2, 3), REGRESSION)
    with pytest.raises(TypeError, match="classifiers only"):
        _ = outputs.accuracy
    with pytest.raises(TypeError, match="classifiers only"):
        _ = outputs.probs


def _outputs(prediction: torch.Tensor, target: torch.Tensor) -> Outputs:
    return Outputs(prediction, target, REGRESSION)


def _context(unlearned_shift: float, oracle_shift: float = 0.0) -> EvaluationContext:
    generator = torch.Generator().manual_seed(0)
    parts = {}
    for part, n in (("forget", 30), ("retain", 60), ("val", 20), ("heldout", 30), ("test", 40)):
        target = 40 + 20 * torch.rand(n, 12, generator=generator)
        target[0, :3] = 0.0  # missing readings
        parts[part] = target
    noise = {p: torch.randn(t.shape, generator=generator) for p, t in parts.items()}

    def model(shift: float) -> dict[str, Outputs]:
        return {p: _outputs(t + noise[p] + shift, t) for p, t in parts.items()}

    return EvaluationContext(unlearned=model(unlearned_shift), oracle=model(oracle_shift), original=model(0.3),
                             method_seconds=1.0, oracle_seconds=10.0, target=REGRESSION)


def test_regression_metrics_replace_accuracy_ones():
    values = compute_metrics(_context(0.5))
    assert "test/acc" not in values and "tow" not in values and "js/oracle" not in values
    assert "mia/svc" not in values and "fair/dp" not in values
    for key in ("test/mae", "test/rmse", "test/mape", "forget/mae_h3", "test/mae_h12", "gap/forget_mae",
                "mia/loss_auc", "gap/mia_loss_auc", "objective/utility", "objective/forgetting", "score", "score/val"):
        assert key in values, key


def test_regression_errors_by_hand_with_missing_targets_and_horizons():
    prediction = torch.tensor([[10.0, 20.0, 30.0], [12.0, 18.0, 33.0]])
    target = torch.tensor([[11.0, 0.0, 27.0], [12.0, 20.0, 30.0]])
    outputs = _outputs(prediction, target)
    errors = [1.0, 3.0, 0.0, 2.0, 3.0]  # the present targets' absolute errors
    assert regression_error(outputs, "mae") == pytest.approx(sum(errors) / 5)
    assert regression_error(outputs, "rmse") == pytest.approx(math.sqrt(sum(e * e for e in errors) / 5))
    assert regression_error(outputs, "mape") == pytest.approx((1 / 11 + 3 / 27 + 0 + 2 / 20 + 3 / 30) / 5)
    assert regression_error(outputs, "mae", horizon=2) == pytest.approx(2.0)  # only (1, 1) is present
    assert regression_error(outputs, "mae", horizon=3) == pytest.approx(3.0)
    assert regression_error(outputs, "mae", horizon=4) is None


def test_the_oracle_scores_zero_gaps_and_full_objectives():
    values = compute_metrics(_context(0.0))
    for key in ("gap/forget_mae", "gap/retain_rmse", "gap/test_mape", "gap/mia_loss_auc"):
        assert values[key] == 0.0, key
    assert values["objective/utility"] == 1.0
    assert values["objective/forgetting"] == 1.0


def test_regression_objectives_by_hand():
    ctx = _context(2.0)
    mae = {(model, part): regression_error(getattr(ctx, model)[part], "mae")
           for model in ("unlearned", "oracle", "original") for part in ("forget", "retain", "test", "val")}
    values = compute_metrics(ctx)
    utility = (min(1.0, mae["oracle", "retain"] / mae["unlearned", "retain"])
               * min(1.0, mae["oracle", "test"] / mae["unlearned", "test"]))
    assert values["objective/utility"] == pytest.approx(utility)
    assert values["objective/utility"] < 1.0
    # forgetting: the share of the original-to-oracle distance closed, forget MAE relative to the oracle's
    signal = abs(mae["original", "forget"] - mae["oracle", "forget"])
    closed = 1 - min(1.0, abs(mae["unlearned", "forget"] - mae["oracle", "forget"]) / signal)
    auc = {m: loss_auc(getattr(ctx, m)) for m in ("unlearned", "oracle", "original")}
    components = [closed]
    if abs(auc["original"] - auc["oracle"]) >= 0.02:
        components.append(1 - min(1.0, abs(auc["unlearned"] - auc["oracle"]) / abs(auc["original"] - auc["oracle"])))
    assert values["objective/forgetting"] == pytest.approx(sum(components) / len(components))
    assert values["score"] == pytest.approx(values["objective/forgetting"] * utility)
    assert values["cost/rte"] == pytest.approx(0.1)

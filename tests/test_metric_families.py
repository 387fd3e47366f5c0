"""Hand computations for the metric families added after v1: tug-of-war, CKA, relearn time,
parameters changed, peak memory, the trade-off objectives, and the masked regression errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error
from torch import nn

from mubench.evaluation import EvaluationContext, Outputs
from mubench.harness.memory import PeakMemory
from mubench.metrics import relearn as relearn_module
from mubench.metrics.accuracy import tug_of_war
from mubench.metrics.cost import params_changed
from mubench.metrics.regression import masked_mae, masked_mape, masked_rmse
from mubench.metrics.relearn import relearn, relearn_steps
from mubench.metrics.representation import cka_to_oracle, linear_cka, penultimate_features
from mubench.request import Subset


def outputs_with_accuracy(correct: int, total: int) -> Outputs:
    """Logits that classify exactly `correct` of `total` samples right (class 0 vs 1)."""
    labels = torch.zeros(total, dtype=torch.long)
    logits = torch.zeros(total, 2)
    logits[:correct, 0] = 5.0
    logits[correct:, 1] = 5.0
    return Outputs(logits, labels)


def context(unlearned: dict[str, tuple[int, int]], oracle: dict[str, tuple[int, int]], **extra) -> EvaluationContext:
    make = lambda spec: {part: outputs_with_accuracy(*counts) for part, counts in spec.items()}  # noqa: E731
    return EvaluationContext(unlearned=make(unlearned), oracle=make(oracle), original=make(oracle), **extra)


def test_tug_of_war_is_the_product_of_one_minus_gaps():
    ctx = context({"forget": (8, 10), "retain": (9, 10), "test": (7, 10)},
                  {"forget": (6, 10), "retain": (10, 10), "test": (7, 10)})
    assert tug_of_war(ctx) == pytest.approx((1 - 0.2) * (1 - 0.1) * (1 - 0.0))


def test_tug_of_war_is_one_for_the_oracle():
    parts = {"forget": (3, 10), "retain": (9, 10), "test": (8, 10)}
    assert tug_of_war(context(parts, parts)) == 1.0


def naive_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. 2019 via the centred Gram matrices: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    gram_x, gram_y = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.sum(gram_x * gram_y) / np.sqrt(np.sum(gram_x * gram_x) * np.sum(gram_y * gram_y)))


def test_linear_cka_matches_the_gram_matrix_formula_and_its_invariances():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(40, 3))
    assert linear_cka(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(naive_linear_cka(x, y), abs=1e-10)
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert linear_cka(torch.from_numpy(x), torch.from_numpy(3.0 * x @ rotation + 1.0)) == pytest.approx(1.0, abs=1e-10)


def test_penultimate_features_are_the_input_of_the_last_linear_layer():
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    features = penultimate_features(model, x, batch_size=3)
    torch.testing.assert_close(features, torch.relu(model[0](x)).detach())


def test_params_changed_counts_scalars_that_differ():
    original = nn.Linear(4, 2)  # 8 weights + 2 biases
    unlearned = nn.Linear(4, 2)
    unlearned.load_state_dict(original.state_dict())
    with torch.no_grad():
        unlearned.weight[0, :3] += 1.0
        unlearned.bias[1] -= 1.0
    ctx = context({"forget": (1, 1)}, {"forget": (1, 1)}, models={"unlearned": unlearned, "original": original})
    assert params_changed(ctx) == pytest.approx(4 / 10)


def test_cka_to_oracle_is_one_for_the_oracle_and_computes_the_oracle_features_once_per_split():
    torch.manual_seed(0)
    oracle, other = (nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)) for _ in range(2))
    calls: list[int] = []
    oracle[0].register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    x = torch.randn(30, 4)
    forget = Outputs(torch.zeros(30, 2), torch.zeros(30, dtype=torch.long))  # shared by every run of a split

    def ctx(unlearned: nn.Module) -> EvaluationContext:
        return EvaluationContext({}, {"forget": forget}, {}, models={"unlearned": unlearned, "oracle": oracle},
                                 subsets={"forget": Subset(x, torch.zeros(30, dtype=torch.long))})

    assert cka_to_oracle(ctx(oracle)) == pytest.approx(1.0)
    calls.clear()
    value = cka_to_oracle(ctx(other))
    assert calls == []  # the oracle's features came from the first run
    assert value == pytest.approx(linear_cka(penultimate_features(other, x, 8), penultimate_features(oracle, x, 8)))


def test_relearn_steps_zero_when_already_accurate_and_capped_when_hopeless():
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    y = (x[:, 0] > 0).long()
    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.zero_(), model.bias.zero_()
        model.weight[1, 0], model.weight[0, 0] = 10.0, -10.0  # a perfect classifier
    assert relearn_steps(model, x, y, target_accuracy=1.0, lr=0.1, eval_batch_size=8) == 0
    frozen_wrong = nn.Sequential(nn.Linear(4, 2))
    frozen_wrong[0].weight.requires_grad_(False)
    with torch.no_grad():
        frozen_wrong[0].weight.zero_()
    assert relearn_steps(frozen_wrong, x, y, target_accuracy=1.0, lr=0.0, eval_batch_size=8, max_steps=7) == 7


def test_relearn_steps_counts_the_steps_until_the_target_and_leaves_the_model_alone():
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(2))
    y = (x[:, 0] > 0).long()
    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.zero_(), model.bias.zero_()
        model.weight[0, 0], model.weight[1, 0] = 1.0, -1.0  # exactly wrong
    before = {k: v.clone() for k, v in model.state_dict().items()}
    steps = relearn_steps(model, x, y, target_accuracy=0.95, lr=0.5, eval_batch_size=64)
    assert 0 < steps < 100
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class CountingLinear(nn.Linear):
    """A linear layer that counts, on its class (the metric trains a deep copy), the samples it
    sees in eval mode: the metric's accuracy checks."""

    evaluated = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            type(self).evaluated += len(x)
        return super().forward(x)


def relearn_context(model: nn.Module, x: torch.Tensor, y: torch.Tensor, original_logits: torch.Tensor,
                    lr: float = 0.1) -> EvaluationContext:
    return EvaluationContext(unlearned={}, oracle={}, original={"forget": Outputs(original_logits, y)},
                             models={"unlearned": model}, subsets={"forget": Subset(x, y)}, relearn_lr=lr)


def test_relearn_metric_checks_the_first_samples_against_the_original_on_the_same_samples(monkeypatch):
    """A 64-sample forget set; the unlearned model is right on the first 16 and wrong on the rest,
    the original right everywhere. With CHECK_SAMPLES = 16 nothing is to be relearned (0 steps,
    16 samples evaluated); with 64 the model has to relearn the last 48."""
    monkeypatch.setattr(relearn_module, "CHECK_SAMPLES", 16)
    monkeypatch.setattr(CountingLinear, "evaluated", 0)
    x = torch.zeros(64, 2)
    x[:16, 0], x[16:, 1] = 1.0, 1.0
    y = torch.zeros(64, dtype=torch.long)
    unlearned = CountingLinear(2, 2, bias=False)
    with torch.no_grad():
        unlearned.weight.copy_(torch.eye(2))  # first 16 -> class 0 (right), the rest -> class 1 (wrong)
    ctx = relearn_context(unlearned, x, y, torch.tensor([[5.0, 0.0]]).repeat(64, 1))
    assert relearn(ctx) == 0.0 and CountingLinear.evaluated == 16
    monkeypatch.setattr(relearn_module, "CHECK_SAMPLES", 64)
    assert relearn(ctx) > 0


def test_relearn_metric_evaluates_check_samples_per_step_until_the_cap(monkeypatch):
    monkeypatch.setattr(relearn_module, "CHECK_SAMPLES", 10)
    monkeypatch.setattr(CountingLinear, "evaluated", 0)
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    stuck = CountingLinear(3, 2)
    with torch.no_grad():
        stuck.weight.zero_(), stuck.bias.copy_(torch.tensor([0.0, 1.0]))  # always class 1; lr 0 keeps it so
    perfect = torch.stack([-x[:, 0], x[:, 0]], dim=1)
    assert relearn(relearn_context(stuck, x, y, perfect, lr=0.0)) == relearn_module.MAX_STEPS
    assert CountingLinear.evaluated == 10 * (relearn_module.MAX_STEPS + 1)  # the first check, then one per step


def test_masked_regression_errors_match_scikit_learn_on_the_present_values():
    rng = np.random.default_rng(3)
    target = rng.uniform(20, 70, size=200)
    target[rng.choice(200, size=30, replace=False)] = 0.0  # METR-LA's missing marker
    prediction = target + rng.normal(0, 3, size=200)
    present = target != 0
    t, p = torch.from_numpy(target), torch.from_numpy(prediction)
    assert masked_mae(p, t) == pytest.approx(mean_absolute_error(target[present], prediction[present]))
    assert masked_rmse(p, t) == pytest.approx(math.sqrt(mean_squared_error(target[present], prediction[present])))
    assert masked_mape(p, t) == pytest.approx(mean_absolute_percentage_error(target[present], prediction[present]))


def test_masked_regression_by_hand_and_bad_shapes():
    p, t = torch.tensor([1.0, 5.0, 3.0]), torch.tensor([2.0, 0.0, 4.0])
    assert masked_mae(p, t) == pytest.approx(1.0)
    assert masked_rmse(p, t) == pytest.approx(1.0)
    assert masked_mape(p, t) == pytest.approx((0.5 + 0.25) / 2)
    assert math.isnan(masked_mae(torch.ones(2), torch.zeros(2)))
    with pytest.raises(ValueError, match="shape"):
        masked_mae(torch.ones(3), torch.ones(2))


def test_peak_memory_sees_a_large_allocation_on_the_cpu():
    with PeakMemory(torch.device("cpu"), interval_s=0.001) as peak:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB
        block.add_(1)
        import time

        time.sleep(0.3)  # several sampling intervals even when the machine is loaded
        del block
    assert peak.megabytes is not None and peak.megabytes > 48


def test_peak_memory_sees_reused_memory_too():
    """Freed memory that the allocator hands out again does not grow the resident set; the heap
    counter still sees it, so a method is charged for what it allocates, not for what is new."""
    warm = torch.ones(64 * 2**20 // 4)
    del warm
    with PeakMemory(torch.device("cpu"), interval_s=0.001) as peak:
        block = torch.ones(64 * 2**20 // 4)
        import time

        time.sleep(0.3)
        del block
    assert peak.megabytes is not None and peak.megabytes > 48

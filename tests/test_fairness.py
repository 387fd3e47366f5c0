"""Fairness metrics (mubench/metrics/fairness.py): group differences against fairlearn, worst-group
accuracy against a hand count, FMD's counterfactual bias on a hand-built case, Colored MNIST's
counterfactuals, and the metrics' presence end to end (absent on debug, present on cmnist)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fairlearn import metrics as fl
from torch import nn

from helpers import REAL_MIRROR, needs_real_mnist
from mubench.evaluation import EVALUATED_PARTS, EvaluationContext, Outputs
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.methods import methods
from mubench.metrics import compute_metrics, metrics
from mubench.metrics.fairness import (
    counterfactual_bias,
    demographic_parity_difference,
    equal_opportunity_difference,
    equalized_odds_difference,
    one_vs_rest_differences,
    worst_group_accuracy,
)
from mubench.request import Subset
from mubench.tasks import tasks
from mubench.tasks.colored_mnist import GREY_ERROR, PALETTE, ColoredMNIST, colourise, recolour, recover_grey

FAIR_KEYS = {"fair/dp", "fair/eod", "fair/eopp", "fair/worst_group_acc", "fair/counterfactual_bias"}
GROUP_VALUES = np.array([3, 7, 11, 20])  # not 0..G-1 on purpose


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


def random_case(seed: int, num_classes: int, n: int = 800) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, predictions and groups where each group has its own accuracy and prediction skew."""
    rng = np.random.default_rng(seed)
    groups = rng.choice(GROUP_VALUES, size=n)
    labels = rng.integers(0, num_classes, size=n)
    accuracy = {g: a for g, a in zip(GROUP_VALUES, rng.uniform(0.3, 0.9, size=len(GROUP_VALUES)))}
    skew = {g: rng.dirichlet(np.ones(num_classes)) for g in GROUP_VALUES}
    predictions = np.array([y if rng.random() < accuracy[g] else rng.choice(num_classes, p=skew[g])
                            for y, g in zip(labels, groups)])
    for g in GROUP_VALUES:  # every rate is defined, as fairlearn assumes
        for c in range(num_classes):
            assert 0 < np.sum((groups == g) & (labels == c)) < np.sum(groups == g)
    return labels, predictions, groups


def ours(fn, labels, predictions, groups, num_classes):
    return fn(torch.from_numpy(predictions), torch.from_numpy(labels), torch.from_numpy(groups), num_classes)


def fairlearn_tpr_difference(y_true, y_pred, groups) -> float:
    frame = fl.MetricFrame(metrics=fl.true_positive_rate, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    return float(frame.difference())


# ---- group differences against fairlearn --------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_binary_differences_match_fairlearn(seed):
    labels, predictions, groups = random_case(seed, num_classes=2)
    dp = fl.demographic_parity_difference(labels, predictions, sensitive_features=groups)
    eod = fl.equalized_odds_difference(labels, predictions, sensitive_features=groups)
    eopp = fairlearn_tpr_difference(labels, predictions, groups)
    assert eopp == pytest.approx(fl.equal_opportunity_difference(labels, predictions, sensitive_features=groups))
    assert ours(demographic_parity_difference, labels, predictions, groups, 2) == pytest.approx(dp, abs=1e-12)
    assert ours(equalized_odds_difference, labels, predictions, groups, 2) == pytest.approx(eod, abs=1e-12)
    assert ours(equal_opportunity_difference, labels, predictions, groups, 2) == pytest.approx(eopp, abs=1e-12)
    assert dp > 0.01 and eod > 0.01 and eopp > 0.01  # a case with real disparities, not all zeros


@pytest.mark.parametrize(("seed", "num_classes"), [(0, 3), (1, 4), (2, 10)])
def test_multiclass_is_the_mean_of_one_vs_rest_fairlearn_values(seed, num_classes):
    labels, predictions, groups = random_case(seed, num_classes, n=3000 if num_classes == 10 else 800)
    dp, eod, eopp = [], [], []
    for c in range(num_classes):
        y, p = (labels == c).astype(int), (predictions == c).astype(int)
        dp.append(fl.demographic_parity_difference(y, p, sensitive_features=groups))
        eod.append(fl.equalized_odds_difference(y, p, sensitive_features=groups))
        eopp.append(fairlearn_tpr_difference(y, p, groups))
    args = (labels, predictions, groups, num_classes)
    assert ours(demographic_parity_difference, *args) == pytest.approx(np.mean(dp), abs=1e-12)
    assert ours(equalized_odds_difference, *args) == pytest.approx(np.mean(eod), abs=1e-12)
    assert ours(equal_opportunity_difference, *args) == pytest.approx(np.mean(eopp), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_two_class_mean_equals_binary_for_dp_and_eod_but_not_for_equal_opportunity(seed):
    labels, predictions, groups = random_case(seed, num_classes=2)
    per_class = one_vs_rest_differences(torch.from_numpy(predictions), torch.from_numpy(labels),
                                        torch.from_numpy(groups), [0, 1])
    binary_dp = fl.demographic_parity_difference(labels, predictions, sensitive_features=groups)
    binary_eod = fl.equalized_odds_difference(labels, predictions, sensitive_features=groups)
    binary_eopp = fairlearn_tpr_difference(labels, predictions, groups)
    assert float(per_class["dp"].mean()) == pytest.approx(binary_dp, abs=1e-12)
    assert float(torch.fmax(per_class["tpr"], per_class["fpr"]).mean()) == pytest.approx(binary_eod, abs=1e-12)
    # class 0's TPR is one minus class 1's FPR: the class mean of the TPR differences is the mean of
    # the binary TPR and FPR differences, not the binary equal opportunity; hence class 1 for K = 2
    binary_fpr = float(fl.MetricFrame(metrics=fl.false_positive_rate, y_true=labels, y_pred=predictions,
                                      sensitive_features=groups).difference())
    assert float(per_class["tpr"].mean()) == pytest.approx((binary_eopp + binary_fpr) / 2, abs=1e-12)
    assert abs(float(per_class["tpr"].mean()) - binary_eopp) > 1e-3
    assert ours(equal_opportunity_difference, labels, predictions, groups, 2) == pytest.approx(binary_eopp, abs=1e-12)


def test_an_undefined_rate_leaves_its_group_out_where_fairlearn_counts_zero():
    # group 0: labels 1 1 0 0, predictions 1 0 0 1 -> TPR 1/2, FPR 1/2, selection 1/2
    # group 5: labels 0 0, predictions 1 1 -> TPR undefined (no positives), FPR 1, selection 1
    labels = np.array([1, 1, 0, 0, 0, 0])
    predictions = np.array([1, 0, 0, 1, 1, 1])
    groups = np.array([0, 0, 0, 0, 5, 5])
    assert ours(demographic_parity_difference, labels, predictions, groups, 2) == pytest.approx(0.5)
    assert ours(equal_opportunity_difference, labels, predictions, groups, 2) == pytest.approx(0.0)
    assert ours(equalized_odds_difference, labels, predictions, groups, 2) == pytest.approx(0.5)
    assert fairlearn_tpr_difference(labels, predictions, groups) == pytest.approx(0.5)  # TPR 0 for group 5


def test_one_group_has_no_disparity_and_a_class_absent_everywhere_is_left_out():
    labels, predictions = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 2])
    groups = np.zeros(4, dtype=np.int64)
    for fn in (demographic_parity_difference, equalized_odds_difference, equal_opportunity_difference):
        assert ours(fn, labels, predictions, groups, 3) == 0.0
    # class 2 has no sample: its TPR is undefined in every group and it leaves the TPR mean
    labels, predictions, groups = np.array([0, 1, 0, 1]), np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1])
    tpr = one_vs_rest_differences(torch.from_numpy(predictions), torch.from_numpy(labels),
                                  torch.from_numpy(groups), [0, 1, 2])["tpr"]
    assert tpr[:2].tolist() == [1.0, 0.0] and math.isnan(float(tpr[2]))
    assert ours(equal_opportunity_difference, labels, predictions, groups, 3) == pytest.approx(0.5)


# ---- worst-group accuracy -----------------------------------------------------------------------

def test_worst_group_accuracy_hand_count():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    groups = torch.tensor([0, 0, 1, 0, 0, 1, 1])
    predictions = torch.tensor([0, 1, 0, 1, 1, 2, 0])
    # (label, group): (0,0) 1/2, (0,1) 1/1, (1,0) 2/2, (2,1) 1/2; (1,1) and (2,0) are empty
    assert worst_group_accuracy(predictions, labels, groups) == pytest.approx(0.5)
    predictions[1] = 0
    predictions[6] = 2
    assert worst_group_accuracy(predictions, labels, groups) == 1.0
    predictions[2] = 1
    assert worst_group_accuracy(predictions, labels, groups) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_worst_group_accuracy_matches_a_loop(seed):
    labels, predictions, groups = random_case(seed, num_classes=4)
    cells = [(predictions == labels)[(labels == y) & (groups == g)] for y in range(4) for g in GROUP_VALUES]
    expected = min(cell.mean() for cell in cells if len(cell))
    got = worst_group_accuracy(torch.from_numpy(predictions), torch.from_numpy(labels), torch.from_numpy(groups))
    assert got == pytest.approx(expected, abs=1e-12)


# ---- the registered metrics on hand-built contexts ---------------------------------------------

def outputs_for(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> Outputs:
    logits = torch.nn.functional.one_hot(torch.from_numpy(predictions), num_classes).float() * 3
    return Outputs(logits, torch.from_numpy(labels))


def context(sensitive: tuple[str, ...], attributes: dict[str, torch.Tensor], **extra) -> EvaluationContext:
    labels, predictions, groups = random_case(0, num_classes=3)
    parts = {part: outputs_for(labels, predictions, 3) for part in EVALUATED_PARTS}
    attributes = {"colour": torch.from_numpy(groups), **attributes}
    return EvaluationContext(parts, parts, parts, test_attributes=attributes, sensitive_attributes=sensitive, **extra)


def test_fairness_metrics_are_registered_with_directions():
    assert FAIR_KEYS <= set(metrics.names())
    assert metrics.get("fair/worst_group_acc").direction == "higher"
    assert all(metrics.get(k).direction == "lower" for k in FAIR_KEYS - {"fair/worst_group_acc"})


def test_compute_metrics_uses_the_first_sensitive_attribute():
    labels, predictions, groups = random_case(0, num_classes=3)
    other = torch.zeros(len(labels), dtype=torch.long)  # one group: no disparity
    values = compute_metrics(context(("colour", "other"), {"other": other}))
    assert {k for k in values if k.startswith("fair/")} == FAIR_KEYS - {"fair/counterfactual_bias"}
    assert values["fair/dp"] == pytest.approx(ours(demographic_parity_difference, labels, predictions, groups, 3))
    assert values["fair/eod"] == pytest.approx(ours(equalized_odds_difference, labels, predictions, groups, 3))
    assert values["fair/eopp"] == pytest.approx(ours(equal_opportunity_difference, labels, predictions, groups, 3))
    assert values["fair/worst_group_acc"] == pytest.approx(
        worst_group_accuracy(torch.from_numpy(predictions), torch.from_numpy(labels), torch.from_numpy(groups)))
    swapped = compute_metrics(context(("other", "colour"), {"other": other}))
    assert swapped["fair/dp"] == 0.0 and swapped["fair/eod"] == 0.0


def test_no_sensitive_attribute_means_no_fairness_metric_and_a_missing_one_is_an_error():
    assert not any(k.startswith("fair/") for k in compute_metrics(context((), {})))
    with pytest.raises(KeyError, match="sensitive attribute 'gender'"):
        compute_metrics(context(("gender",), {}))


# ---- counterfactual bias ------------------------------------------------------------------------

def flip_second_feature(x: torch.Tensor, attributes: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    assert all(len(v) == len(x) for v in attributes.values())
    return x * torch.tensor([1.0, -1.0])


def tiny_case(counterfactual, batch: int = 3) -> EvaluationContext:
    """logits = (0, x2): P(y = 1 | x) = sigmoid(x2); the counterfactual negates x2."""
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    ln3 = math.log(3)
    x = torch.tensor([[1.0, ln3], [1.0, 0.0], [2.0, ln3], [0.0, -ln3]])
    y = torch.tensor([1, 0, 0, 1])
    outputs = {part: Outputs(model(x).detach(), y) for part in EVALUATED_PARTS}
    return EvaluationContext(outputs, outputs, outputs, test_attributes={"a": torch.arange(4)},
                             models={"unlearned": model, "oracle": model, "original": model},
                             subsets={"test": Subset(x, y)}, eval_batch_size=batch, counterfactual=counterfactual)


@pytest.mark.parametrize("batch", [1, 3, 1024])
def test_counterfactual_bias_hand_computed(batch):
    # |P(y|x) - P(y|x̄)|: 0.75 vs 0.25, 0.5 vs 0.5, 0.25 vs 0.75, 0.25 vs 0.75 -> (0.5 + 0 + 0.5 + 0.5) / 4
    assert counterfactual_bias(tiny_case(flip_second_feature, batch)) == pytest.approx(0.375, abs=1e-6)  # float32 logits
    assert compute_metrics(tiny_case(flip_second_feature, batch))["fair/counterfactual_bias"] == pytest.approx(0.375)


def test_counterfactual_bias_reads_p_y_x_from_the_test_outputs_and_only_feeds_counterfactuals():
    """With the unlearned model's test outputs in the context, the model sees only the
    counterfactual inputs; the value is the same as computing both (here: without outputs)."""
    seen: list[torch.Tensor] = []
    ctx = tiny_case(flip_second_feature)
    hook = ctx.models["unlearned"].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    assert counterfactual_bias(ctx) == pytest.approx(0.375, abs=1e-6)
    assert torch.equal(torch.cat(seen), ctx.subsets["test"].x * torch.tensor([1.0, -1.0]))
    hook.remove()
    without = EvaluationContext({}, {}, {}, test_attributes=ctx.test_attributes, models=ctx.models,
                                subsets=ctx.subsets, eval_batch_size=3, counterfactual=flip_second_feature)
    assert counterfactual_bias(without) == counterfactual_bias(ctx)


def test_counterfactual_bias_is_reproducible_and_none_without_counterfactuals():
    def noisy(x, attributes, generator):
        return x + torch.randn(x.shape, generator=generator)

    first, second = counterfactual_bias(tiny_case(noisy)), counterfactual_bias(tiny_case(noisy))
    assert first == second and 0 < first < 1
    assert counterfactual_bias(tiny_case(None)) is None
    assert counterfactual_bias(tiny_case(lambda x, a, g: None)) is None
    assert counterfactual_bias(tiny_case(lambda x, a, g: x)) == 0.0
    assert "fair/counterfactual_bias" not in compute_metrics(tiny_case(None))


# ---- Colored MNIST counterfactuals --------------------------------------------------------------

def painted(n_per_colour: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Random grey images (with black and white pixels), each colour n times, as model-ready inputs."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 256, size=(10 * n_per_colour, 28, 28), dtype=np.uint8)
    grey[:, 0, 0], grey[:, 0, 1] = 0, 255
    colours = np.repeat(np.arange(10), n_per_colour)
    return grey, colours, ColoredMNIST().to_inputs(torch.from_numpy(colourise(grey, colours)))


def test_recovered_grey_is_within_the_rounding_bound():
    grey, colours, x = painted(20)
    error = (recover_grey(x, torch.from_numpy(colours)).numpy() - grey).__abs__().max(axis=(1, 2))
    assert np.all(error <= GREY_ERROR[colours] + 1e-4)
    assert np.all(error[PALETTE[colours].max(axis=1) == 255] == 0)  # exact where the colour peaks at 255
    assert GREY_ERROR.max() < 1.0  # less than one grey level for every colour


def test_cmnist_counterfactuals_change_only_the_colour():
    grey, colours, x = painted(100)
    generator = torch.Generator().manual_seed(0)
    flipped = ColoredMNIST().counterfactual(x, {"colour": torch.from_numpy(colours)}, generator)
    assert flipped.shape == x.shape and flipped.dtype == torch.float32
    assert float(flipped.min()) >= 0.0 and float(flipped.max()) <= 1.0
    assert torch.equal(torch.round(flipped * 255) / 255, flipped)  # quantised like to_inputs
    # the new colour: the palette recolouring of the true grey digit closest to the counterfactual
    distance = np.stack([np.abs(colourise(grey, np.full(len(grey), c)) / np.float32(255) - flipped.numpy())
                         .max(axis=(1, 2, 3)) for c in range(10)])  # (10 colours, N)
    new = distance.argmin(axis=0)
    assert np.all(new != colours)
    assert np.array_equal(new, recolour(x, torch.from_numpy(colours), torch.Generator().manual_seed(0))[1].numpy())
    assert np.all(distance[new, np.arange(len(new))] <= 1 / 255 + 1e-6)
    exact = PALETTE[colours].max(axis=1) == 255
    assert np.all(distance[new[exact], np.flatnonzero(exact)] == 0)
    # the digit is unchanged: its grey level, read back from the new colour, is within both bounds
    back = recover_grey(flipped, torch.from_numpy(new)).numpy()
    assert np.all(np.abs(back - grey).max(axis=(1, 2)) <= GREY_ERROR[colours] + GREY_ERROR[new] + 1e-4)
    # uniform over the other nine: each appears for each colour in 100 draws (P(some miss) < 1e-3)
    for c in range(10):
        assert set(new[colours == c]) == set(range(10)) - {c}


def test_cmnist_counterfactuals_are_reproducible_and_report_their_colours():
    _, colours, x = painted(5)
    a = recolour(x, torch.from_numpy(colours), torch.Generator().manual_seed(3))
    b = recolour(x, torch.from_numpy(colours), torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.all(a[1] != torch.from_numpy(colours))


def test_the_task_default_builds_no_counterfactual():
    x = torch.zeros(3, 4)
    assert tasks.get("debug").counterfactual(x, {}, torch.Generator()) is None


# ---- end to end ---------------------------------------------------------------------------------

def run_config(task: str, scenario: str, method: str) -> RunConfig:
    cls = methods.get(method)
    return RunConfig(task=task, task_version=tasks.get(task).spec.version, scenario=scenario, method=method,
                     method_version=cls.version, hparams=dict(cls.resolve({})), seed=0, profile="smoke")


def test_debug_has_no_sensitive_attribute_and_no_fairness_metric():
    harness = Harness()
    record = harness.run(run_config("debug", "random_10", "identity"))
    assert record.status == "ok", record.error
    assert "test/acc" in record.metrics
    assert not any(k.startswith("fair/") for k in record.metrics)
    prepared = harness.prepare("debug", "random_10", 0, "smoke")
    ctx = harness.evaluation_context(prepared, prepared.original.model, 0.0)
    assert ctx.sensitive_attributes == () and ctx.counterfactual is not None  # the task's (it returns None)


@needs_real_mnist
@pytest.mark.slow
def test_cmnist_bias_aligned_reports_fairness_metrics(monkeypatch):
    """identity through the whole harness; retrain as the oracle it reproduces exactly (same seeds,
    same recipe: test_runner checks it), which saves a third training and keeps this test short."""
    monkeypatch.setenv("MUBENCH_MIRROR", str(REAL_MIRROR))
    harness = Harness()
    identity = harness.run(run_config("cmnist", "bias_aligned", "identity"))
    assert identity.status == "ok", identity.error
    prepared = harness.prepare("cmnist", "bias_aligned", 0, "smoke")
    retrain = compute_metrics(harness.evaluation_context(prepared, prepared.oracle.model, 0.0))
    for method, values in (("identity", identity.metrics), ("retrain", retrain)):
        assert FAIR_KEYS <= set(values), (method, sorted(values))
        assert all(0.0 <= values[k] <= 1.0 for k in FAIR_KEYS)
        assert values["fair/worst_group_acc"] <= values["test/acc"]
        assert values["fair/counterfactual_bias"] > 0, method  # colour moves a colour-biased model's outputs

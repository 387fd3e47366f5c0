"""The metric suite: formulas against scipy/sklearn and hand counts, and compute_metrics on
hand-built evaluation contexts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import roc_auc_score

from mubench.evaluation import EVALUATED_PARTS, EvaluationContext, Outputs
from mubench.metrics import (
    compute_metrics,
    is_finite,
    jensen_shannon,
    membership_auc,
    metrics,
    subgroup_accuracy,
)

LN2 = math.log(2)
NUM_CLASSES = 3


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


# ---- helpers ----------------------------------------------------------------------------------

def sklearn_auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    return float(roc_auc_score(labels, -np.r_[members, nonmembers]))


def outputs_with(correct: list[bool], seed: int = 0, confidence: list[float] | None = None) -> Outputs:
    """Outputs whose argmax is right exactly where `correct` says; `confidence` varies the losses."""
    gen = torch.Generator().manual_seed(seed)
    n = len(correct)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
    logits = torch.randn(n, NUM_CLASSES, generator=gen) * 0.1
    for i, ok in enumerate(correct):
        predicted = int(labels[i]) if ok else (int(labels[i]) + 1) % NUM_CLASSES
        logits[i, predicted] = 2.0 + (confidence[i] if confidence else float(i) / n)
    return Outputs(logits, labels)


def random_outputs(n: int, seed: int) -> Outputs:
    gen = torch.Generator().manual_seed(seed)
    return Outputs(torch.randn(n, NUM_CLASSES, generator=gen) * 2, torch.randint(0, NUM_CLASSES, (n,), generator=gen))


def random_model_outputs(seed: int) -> dict[str, Outputs]:
    sizes = {"forget": 12, "retain": 30, "val": 25, "heldout": 15, "test": 20}
    return {part: random_outputs(sizes[part], seed * 10 + i) for i, part in enumerate(EVALUATED_PARTS)}


def clone(outputs: dict[str, Outputs]) -> dict[str, Outputs]:
    return {part: Outputs(o.logits.clone(), o.labels.clone()) for part, o in outputs.items()}


# ---- membership_auc ---------------------------------------------------------------------------

def test_membership_auc_hand_computed_case():
    # pairs (member, non-member) where the member has the lower loss: (0.1,0.3) (0.1,0.15) (0.2,0.3) -> 3/4
    assert membership_auc(torch.tensor([0.1, 0.2]), torch.tensor([0.3, 0.15])) == pytest.approx(0.75, abs=1e-12)


def test_membership_auc_extremes_and_ties():
    low, high = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([1.0, 2.0])
    assert membership_auc(low, high) == pytest.approx(1.0, abs=1e-12)
    assert membership_auc(high, low) == pytest.approx(0.0, abs=1e-12)
    assert membership_auc(torch.full((4,), 0.7), torch.full((3,), 0.7)) == pytest.approx(0.5, abs=1e-12)
    # one tie (0.2 vs 0.2) counts one half: pairs won 1 (0.2<0.5) + 0.5 = 1.5 of 2
    assert membership_auc(torch.tensor([0.2]), torch.tensor([0.2, 0.5])) == pytest.approx(0.75, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("sizes", [(1, 1), (1, 9), (7, 3), (50, 20), (200, 333)])
@pytest.mark.parametrize("decimals", [None, 1, 0])
def test_membership_auc_equals_sklearn_roc_auc(seed, sizes, decimals):
    rng = np.random.default_rng(seed)
    members = rng.exponential(0.8, size=sizes[0])
    nonmembers = rng.exponential(1.2, size=sizes[1])
    if decimals is not None:  # rounded losses: many ties
        members, nonmembers = members.round(decimals), nonmembers.round(decimals)
    got = membership_auc(torch.from_numpy(members), torch.from_numpy(nonmembers))
    assert got == pytest.approx(sklearn_auc(members, nonmembers), abs=1e-12)


def test_membership_auc_float32_losses_match_sklearn():
    rng = np.random.default_rng(7)
    members = rng.random(40).astype(np.float32)
    nonmembers = rng.random(25).astype(np.float32)
    got = membership_auc(torch.from_numpy(members), torch.from_numpy(nonmembers))
    assert got == pytest.approx(sklearn_auc(members.astype(np.float64), nonmembers.astype(np.float64)), abs=1e-12)


_losses = st.lists(st.floats(min_value=0.0, max_value=20.0, allow_nan=False, allow_infinity=False), min_size=1, max_size=40)
_tied_losses = st.lists(st.integers(min_value=0, max_value=4).map(lambda k: k / 4), min_size=1, max_size=40)


@settings(max_examples=50, deadline=None, database=None)
@given(members=_losses, nonmembers=_losses)
def test_membership_auc_property_matches_sklearn(members, nonmembers):
    m, n = np.array(members, dtype=np.float64), np.array(nonmembers, dtype=np.float64)
    got = membership_auc(torch.from_numpy(m), torch.from_numpy(n))
    assert got == pytest.approx(sklearn_auc(m, n), abs=1e-12)
    assert 0.0 <= got <= 1.0
    # swapping the roles mirrors the AUC
    assert membership_auc(torch.from_numpy(n), torch.from_numpy(m)) == pytest.approx(1.0 - got, abs=1e-12)


@settings(max_examples=50, deadline=None, database=None)
@given(members=_tied_losses, nonmembers=_tied_losses)
def test_membership_auc_property_with_heavy_ties(members, nonmembers):
    m, n = np.array(members, dtype=np.float64), np.array(nonmembers, dtype=np.float64)
    assert membership_auc(torch.from_numpy(m), torch.from_numpy(n)) == pytest.approx(sklearn_auc(m, n), abs=1e-12)


# ---- jensen_shannon ---------------------------------------------------------------------------

def random_probs(rng: np.random.Generator, rows: int, cols: int, zero_fraction: float) -> np.ndarray:
    p = rng.dirichlet(np.ones(cols), size=rows)
    p[rng.random((rows, cols)) < zero_fraction] = 0.0
    p[np.arange(rows), rng.integers(0, cols, rows)] += 0.05  # no all-zero row
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("zero_fraction", [0.0, 0.3, 0.7])
def test_jensen_shannon_matches_scipy_row_by_row(seed, zero_fraction):
    rng = np.random.default_rng(seed)
    p, q = random_probs(rng, 25, 6, zero_fraction), random_probs(rng, 25, 6, zero_fraction)
    got = jensen_shannon(torch.from_numpy(p), torch.from_numpy(q))
    assert got.shape == (25,)
    assert torch.isfinite(got).all()
    expected = np.array([jensenshannon(p[i], q[i]) ** 2 for i in range(len(p))])
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_jensen_shannon_hand_values():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    q = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    got = jensen_shannon(p, q)
    # disjoint supports: ln 2; [.5,.5] vs [1,0]: m=[.75,.25] -> (.5 ln(.5/.75) + .5 ln(.5/.25) + ln(1/.75)) / 2
    second = (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25) + math.log(1 / 0.75)) / 2
    assert got.tolist() == pytest.approx([LN2, second], abs=1e-12)


def test_jensen_shannon_zero_for_equal_rows_symmetric_and_bounded():
    rng = np.random.default_rng(11)
    p = torch.from_numpy(random_probs(rng, 40, 5, 0.4))
    q = torch.from_numpy(random_probs(rng, 40, 5, 0.4))
    assert torch.equal(jensen_shannon(p, p), torch.zeros(40, dtype=torch.float64))
    assert torch.equal(jensen_shannon(p.float(), p.float()), torch.zeros(40, dtype=torch.float64))
    assert torch.equal(jensen_shannon(p, q), jensen_shannon(q, p))
    js = jensen_shannon(p, q)
    assert bool((js >= -1e-15).all()) and bool((js <= LN2 + 1e-12).all())
    assert bool((js > 0).any())


@settings(max_examples=50, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=3, max_size=3).filter(
    lambda pairs: sum(a for a, _ in pairs) > 0 and sum(b for _, b in pairs) > 0))
def test_jensen_shannon_property_matches_scipy(pairs):
    a = np.array([x for x, _ in pairs], dtype=np.float64)
    b = np.array([y for _, y in pairs], dtype=np.float64)
    p, q = a / a.sum(), b / b.sum()
    got = float(jensen_shannon(torch.from_numpy(p[None]), torch.from_numpy(q[None]))[0])
    assert got == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-9, abs=1e-12)
    assert -1e-15 <= got <= LN2 + 1e-12


# ---- subgroup_accuracy and Outputs ------------------------------------------------------------

def test_subgroup_accuracy_hand_counts():
    out = outputs_with([True, False, True, True, False, False])
    assert subgroup_accuracy(out, torch.tensor([True, True, True, False, False, False])) == pytest.approx(2 / 3)
    assert subgroup_accuracy(out, torch.tensor([False, False, False, True, True, True])) == pytest.approx(1 / 3)
    assert subgroup_accuracy(out, torch.tensor([False, True, False, False, True, False])) == 0.0
    assert subgroup_accuracy(out, torch.ones(6, dtype=torch.bool)) == pytest.approx(0.5)
    assert subgroup_accuracy(out, torch.zeros(6, dtype=torch.bool)) is None


def test_outputs_accuracy_losses_and_probs():
    out = outputs_with([True, True, False, True])
    assert out.accuracy == pytest.approx(0.75)
    manual = -torch.log_softmax(out.logits, dim=1)[torch.arange(4), out.labels]
    torch.testing.assert_close(out.losses, manual)
    torch.testing.assert_close(out.probs.sum(dim=1), torch.ones(4))
    assert math.isnan(Outputs(torch.empty(0, 3), torch.empty(0, dtype=torch.long)).accuracy)


# ---- compute_metrics --------------------------------------------------------------------------

BASE_KEYS = {"forget/acc", "retain/acc", "test/acc", "gap/forget_acc", "gap/retain_acc", "gap/test_acc",
             "mia/loss_auc", "gap/mia_loss_auc", "js/oracle", "cost/seconds", "signal/forget_acc", "signal/mia_loss_auc"}
BIAS_KEYS = {"bias/aligned_acc", "bias/conflicting_acc", "bias/gap"}


def test_unlearned_equal_to_oracle_gives_zero_gaps_and_js():
    oracle = random_model_outputs(1)
    ctx = EvaluationContext(unlearned=clone(oracle), oracle=oracle, original=random_model_outputs(2),
                            method_seconds=1.5, oracle_seconds=6.0)
    values = compute_metrics(ctx)
    assert BASE_KEYS | {"cost/rte"} <= set(values)
    gaps = [key for key in values if key.startswith("gap/")]
    assert set(gaps) >= {"gap/forget_acc", "gap/retain_acc", "gap/test_acc", "gap/mia_loss_auc"}
    for key in gaps:
        assert values[key] == 0.0, key
    assert values["js/oracle"] == 0.0
    assert all(type(v) is float for v in values.values())
    assert is_finite(values)


def test_accuracies_gaps_and_signal_match_hand_counts():
    unlearned = {"forget": outputs_with([True, False, False, False]),            # 1/4
                 "retain": outputs_with([True, True, True, False, True]),         # 4/5
                 "heldout": outputs_with([True, False, True]),
                 "test": outputs_with([True, True, False, False, True, True])}    # 4/6
    oracle = {"forget": outputs_with([True, True, True, False], seed=1),          # 3/4
              "retain": outputs_with([True, True, True, True, True], seed=1),     # 5/5
              "heldout": outputs_with([False, False, True], seed=1),
              "test": outputs_with([True, False, False, False, False, True], seed=1)}  # 2/6
    original = {"forget": outputs_with([True, True, True, True], seed=2),         # 4/4
                "retain": outputs_with([True, True, True, True, True], seed=2),
                "heldout": outputs_with([True, True, True], seed=2),
                "test": outputs_with([True, True, True, True, True, False], seed=2)}
    values = compute_metrics(EvaluationContext(unlearned, oracle, original))
    assert values["forget/acc"] == pytest.approx(0.25)
    assert values["retain/acc"] == pytest.approx(0.8)
    assert values["test/acc"] == pytest.approx(4 / 6)
    assert values["gap/forget_acc"] == pytest.approx(0.5)
    assert values["gap/retain_acc"] == pytest.approx(0.2)
    assert values["gap/test_acc"] == pytest.approx(2 / 6)
    assert values["signal/forget_acc"] == pytest.approx(0.25)  # |4/4 - 3/4|


def test_mia_metrics_match_sklearn():
    unlearned, oracle, original = random_model_outputs(3), random_model_outputs(4), random_model_outputs(5)
    values = compute_metrics(EvaluationContext(unlearned, oracle, original))

    def auc(outputs):
        return sklearn_auc(outputs["forget"].losses.double().numpy(), outputs["heldout"].losses.double().numpy())

    assert values["mia/loss_auc"] == pytest.approx(auc(unlearned), abs=1e-9)
    assert values["gap/mia_loss_auc"] == pytest.approx(abs(auc(unlearned) - auc(oracle)), abs=1e-9)
    assert values["signal/mia_loss_auc"] == pytest.approx(auc(original) - auc(oracle), abs=1e-9)
    js = np.mean([jensenshannon(p, q) ** 2 for p, q in
                  zip(unlearned["forget"].probs.double().numpy(), oracle["forget"].probs.double().numpy())])
    assert values["js/oracle"] == pytest.approx(js, rel=1e-6, abs=1e-12)
    assert values["js/oracle"] > 0


def test_bias_metrics_only_with_bias_aligned_attribute():
    model = random_model_outputs(6)
    plain = compute_metrics(EvaluationContext(model, model, model))
    assert not BIAS_KEYS & set(plain)
    other = compute_metrics(EvaluationContext(model, model, model, test_attributes={"color": torch.zeros(20)}))
    assert not BIAS_KEYS & set(other)


@pytest.mark.parametrize("as_bool", [True, False])
def test_bias_metrics_hand_counts(as_bool):
    test = outputs_with([True, True, False, True, False, False, True])
    aligned = torch.tensor([1, 1, 1, 1, 0, 0, 0])
    # aligned: T T F T -> 3/4; conflicting: F F T -> 1/3
    model = random_model_outputs(7)
    unlearned = dict(model, test=test)
    attrs = {"bias_aligned": aligned.bool() if as_bool else aligned}
    values = compute_metrics(EvaluationContext(unlearned, model, model, test_attributes=attrs))
    assert values["bias/aligned_acc"] == pytest.approx(0.75)
    assert values["bias/conflicting_acc"] == pytest.approx(1 / 3)
    assert values["bias/gap"] == pytest.approx(0.75 - 1 / 3)


def test_bias_gap_absent_when_a_group_is_empty():
    test = outputs_with([True, False, True])
    model = random_model_outputs(8)
    values = compute_metrics(EvaluationContext(dict(model, test=test), model, model,
                                               test_attributes={"bias_aligned": torch.ones(3, dtype=torch.bool)}))
    assert values["bias/aligned_acc"] == pytest.approx(2 / 3)
    assert "bias/conflicting_acc" not in values and "bias/gap" not in values


def test_cost_metrics():
    model = random_model_outputs(9)
    values = compute_metrics(EvaluationContext(model, model, model, method_seconds=3.0, oracle_seconds=12.0))
    assert values["cost/seconds"] == 3.0
    assert values["cost/rte"] == pytest.approx(0.25)
    no_oracle_time = compute_metrics(EvaluationContext(model, model, model, method_seconds=3.0, oracle_seconds=0.0))
    assert "cost/rte" not in no_oracle_time
    assert no_oracle_time["cost/seconds"] == 3.0


def test_every_registered_metric_has_direction_and_description():
    names = metrics.names()
    assert BASE_KEYS | BIAS_KEYS | {"cost/rte"} <= set(names)
    for key, metric in metrics.items():
        assert metric.key == key
        assert metric.direction in {"higher", "lower", "oracle", "info"}, key
        assert isinstance(metric.description, str) and metric.description.strip(), key
        assert callable(metric.compute)
    assert metrics.get("forget/acc").direction == "oracle"
    assert metrics.get("mia/loss_auc").direction == "oracle"
    assert metrics.get("test/acc").direction == "higher"
    assert all(metrics.get(k).direction == "lower" for k in names if k.startswith("gap/"))


def test_is_finite():
    assert is_finite({"a": 1.0, "b": 0.0})
    assert not is_finite({"a": 1.0, "b": float("nan")})
    assert not is_finite({"a": float("inf")})

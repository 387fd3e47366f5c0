"""Membership-inference spec v3: the SVC confidence attack (Unlearn-Sparse / SalUn), the logistic-
regression loss attack (NeurIPS 2023 challenge kit), the U-LiRA-style likelihood-ratio attack and
the logistic-regression entropy attack (Bad Teacher / SSD / LoTUS), against hand computations and
direct scikit-learn / scipy calls, then end to end on `debug`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm
from scipy.stats import entropy as scipy_entropy
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.svm import SVC
from typer.testing import CliRunner

from helpers import null_auc_tolerance
from mubench.cli.app import app
from mubench.evaluation import EvaluationContext, Outputs
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.methods import methods
from mubench.metrics import MIA_SPEC_VERSION, is_finite, metrics
from mubench.metrics.intervals import Estimate
from mubench.metrics.membership import (
    balanced,
    entropy_lr,
    entropy_lr_member_rate,
    likelihood_ratio,
    logit_confidence,
    loss_auc,
    lr_auc,
    lr_cv_auc,
    lr_cv_auc_by_slope_sign,
    prediction_entropy,
    svc_efficacy,
    svc_forget_efficacy,
    true_class_confidence,
    ulira_auc,
)
from mubench.tasks import tasks

NEW_KEYS = {"mia/svc", "gap/mia_svc", "mia/lr_auc", "gap/mia_lr_auc", "mia/ulira", "gap/mia_ulira",
            "mia/entropy_lr", "gap/mia_entropy_lr"}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


def outputs_with_confidence(confidence: np.ndarray, num_classes: int = 3) -> Outputs:
    """Outputs whose true-class probability is exactly `confidence` (the rest split evenly)."""
    n = len(confidence)
    labels = torch.arange(n) % num_classes
    probs = torch.full((n, num_classes), 0.0, dtype=torch.float64)
    probs += torch.from_numpy((1 - confidence) / (num_classes - 1)).view(-1, 1)
    probs[torch.arange(n), labels] = torch.from_numpy(confidence)
    return Outputs(probs.log().float(), labels)


def compute(keys: set[str], ctx: EvaluationContext) -> dict[str, float | None]:
    """The given metrics only (the whole suite needs every part, these hand-built contexts do not);
    an attack's Estimate as its value."""
    values = {key: metrics.get(key).compute(ctx) for key in keys}
    return {key: value.value if isinstance(value, Estimate) else value for key, value in values.items()}


# ---- balancing ---------------------------------------------------------------------------------

def test_balancing_subsamples_the_larger_group_deterministically():
    large, small = np.arange(100.0), np.arange(1000.0, 1030.0)
    first = balanced(large, small)
    second = balanced(large, small)
    np.testing.assert_array_equal(first[0], second[0])
    assert len(first[0]) == 30 and len(set(first[0])) == 30 and set(first[0]) <= set(large)
    np.testing.assert_array_equal(first[1], small)  # the smaller group is kept whole, in order
    swapped = balanced(small, large)  # which side is larger does not matter
    np.testing.assert_array_equal(swapped[0], small)
    np.testing.assert_array_equal(swapped[1], first[0])
    same = balanced(small, small + 1)
    np.testing.assert_array_equal(same[0], small)
    assert not np.array_equal(balanced(large, small, seed=1)[0], first[0])


# ---- mia/svc -----------------------------------------------------------------------------------

def test_svc_attack_on_perfectly_separable_members():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.uniform(0.9, 1.0, 400), rng.uniform(0.0, 0.5, 150)
    assert svc_forget_efficacy(members, nonmembers, rng.uniform(0.9, 1.0, 200)) <= 0.02
    assert svc_forget_efficacy(members, nonmembers, rng.uniform(0.0, 0.5, 200)) >= 0.98


def test_svc_attack_equals_a_direct_sklearn_svc_with_the_unlearn_sparse_settings():
    rng = np.random.default_rng(1)
    members, nonmembers, targets = rng.beta(5, 1, 120), rng.beta(2, 2, 80), rng.beta(3, 1, 50)
    kept, _ = balanced(members, nonmembers)
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(np.r_[kept, nonmembers].reshape(-1, 1), np.r_[np.ones(80), np.zeros(80)])
    expected = 1 - clf.predict(targets.reshape(-1, 1)).mean()
    assert svc_forget_efficacy(members, nonmembers, targets) == pytest.approx(expected, abs=1e-12)


def test_mia_svc_metric_reads_the_true_class_confidence_of_retain_val_and_forget():
    rng = np.random.default_rng(2)
    member_like = {"retain": outputs_with_confidence(rng.uniform(0.9, 0.999, 300)),
                   "val": outputs_with_confidence(rng.uniform(0.05, 0.5, 100)),
                   "forget": outputs_with_confidence(rng.uniform(0.9, 0.999, 60))}
    forgotten = dict(member_like, forget=outputs_with_confidence(rng.uniform(0.05, 0.5, 60)))
    np.testing.assert_allclose(true_class_confidence(member_like["val"]), member_like["val"].probs.double()
                               .gather(1, member_like["val"].labels.view(-1, 1)).squeeze(1).numpy(), atol=1e-6)
    values = compute(NEW_KEYS, EvaluationContext(unlearned=forgotten, oracle=member_like, original=member_like))
    assert values["mia/svc"] >= 0.98
    assert values["gap/mia_svc"] >= 0.95  # the oracle's forget set looked like members here
    same = compute(NEW_KEYS, EvaluationContext(unlearned=member_like, oracle=member_like, original=member_like))
    assert same["mia/svc"] <= 0.02 and same["gap/mia_svc"] == 0.0


def test_svc_and_lr_metrics_absent_without_their_parts():
    model = {"forget": outputs_with_confidence(np.full(4, 0.9)), "heldout": outputs_with_confidence(np.full(3, 0.5))}
    values = compute(NEW_KEYS, EvaluationContext(model, model, model))
    assert set(values) == NEW_KEYS and all(v is None for v in values.values())  # no retain/val; < 10; no shadows
    lr_only = compute({"mia/lr_auc"}, EvaluationContext({"forget": outputs_with_confidence(np.full(12, 0.9)),
                                                          "heldout": outputs_with_confidence(np.full(12, 0.5))}, {}, {}))
    assert lr_only["mia/lr_auc"] == 1.0


# ---- mia/lr_auc --------------------------------------------------------------------------------

def test_lr_auc_equals_a_direct_cross_val_score():
    rng = np.random.default_rng(3)
    members, nonmembers = rng.exponential(0.5, 300), rng.exponential(1.0, 300)
    x = np.r_[nonmembers, members].reshape(-1, 1)
    y = np.r_[np.zeros(300), np.ones(300)]
    direct = cross_val_score(LogisticRegression(), x, y, scoring="roc_auc",
                             cv=StratifiedShuffleSplit(n_splits=10, random_state=0)).mean()
    assert lr_cv_auc(members, nonmembers) == pytest.approx(direct, abs=1e-12)
    # unequal groups: the same as the direct computation on the balanced subsample
    more = rng.exponential(0.5, 450)
    assert lr_cv_auc(more, nonmembers) == pytest.approx(lr_cv_auc(balanced(more, nonmembers)[0], nonmembers), abs=1e-12)


def test_lr_auc_is_chance_for_identical_distributions_and_one_for_separated_losses():
    rng = np.random.default_rng(4)
    n = 2000
    # Each fold's model is fit on the other 90 %, so on its 10 % test fold (200 vs 200) the AUC has
    # the null distribution; the mean of ten such AUCs varies at most as much as one, so three
    # Mann-Whitney standard errors of a 200-vs-200 AUC bound it (99.7 %).
    tolerance = null_auc_tolerance(n // 10, n // 10)
    assert abs(lr_cv_auc(rng.exponential(1.0, n), rng.exponential(1.0, n)) - 0.5) <= tolerance
    assert lr_cv_auc(rng.uniform(0.0, 0.1, 200), rng.uniform(1.0, 2.0, 200)) >= 0.99


def test_lr_auc_needs_ten_per_group():
    assert lr_cv_auc(np.arange(9.0), np.arange(50.0)) is None
    assert lr_cv_auc(np.arange(10.0), np.arange(50.0, 60.0)) is not None


# ---- mia/entropy_lr ----------------------------------------------------------------------------

def test_prediction_entropy_equals_scipy_entropy_of_the_softmax():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [40.0, -40.0, -40.0]])
    expected = [scipy_entropy(row) for row in logits.double().softmax(dim=1).numpy()]
    np.testing.assert_allclose(prediction_entropy(Outputs(logits, torch.tensor([0, 1, 2]))), expected, atol=1e-12)
    assert prediction_entropy(Outputs(logits, torch.tensor([0, 1, 2])))[1] == pytest.approx(math.log(3))


def test_entropy_attack_equals_a_direct_balanced_logistic_regression():
    rng = np.random.default_rng(3)
    members, nonmembers = rng.gamma(1.0, 0.05, 900), rng.gamma(2.0, 0.4, 60)  # imbalanced on purpose
    targets = np.concatenate([rng.gamma(1.0, 0.05, 50), rng.gamma(2.0, 0.4, 50)])
    features = np.concatenate([members, nonmembers]).reshape(-1, 1)
    labels = np.concatenate([np.ones(900), np.zeros(60)])
    direct = LogisticRegression(class_weight="balanced").fit(features, labels).predict(targets.reshape(-1, 1)).mean()
    assert entropy_lr_member_rate(members, nonmembers, targets) == pytest.approx(direct)
    # the class weights matter here: an unweighted fit calls (almost) everything a member
    unweighted = LogisticRegression().fit(features, labels).predict(targets.reshape(-1, 1)).mean()
    assert unweighted > direct
    assert entropy_lr_member_rate(np.full(50, 0.01), np.full(50, 1.0), np.full(7, 0.02)) == 1.0
    assert entropy_lr_member_rate(np.full(50, 0.01), np.full(50, 1.0), np.full(7, 0.9)) == 0.0


def test_mia_entropy_lr_metric_reads_retain_val_and_forget():
    confident, unsure = outputs_with_confidence(np.full(40, 0.99)), outputs_with_confidence(np.full(40, 0.4))
    seen = {"retain": confident, "val": unsure, "forget": outputs_with_confidence(np.full(10, 0.98))}
    unseen = {"retain": confident, "val": unsure, "forget": outputs_with_confidence(np.full(10, 0.45))}
    values = compute({"mia/entropy_lr", "gap/mia_entropy_lr"}, EvaluationContext(seen, unseen, seen))
    assert values == {"mia/entropy_lr": 1.0, "gap/mia_entropy_lr": 1.0}
    assert metrics.get("mia/entropy_lr").compute(EvaluationContext({"forget": confident}, unseen, seen)) is None


# ---- mia/ulira ---------------------------------------------------------------------------------

def hand_llr(phi: float, ins: list[float], outs: list[float], var_in: float, var_out: float) -> float:
    mu_in, mu_out = sum(ins) / len(ins), sum(outs) / len(outs)
    log_in = -0.5 * math.log(2 * math.pi * var_in) - (phi - mu_in) ** 2 / (2 * var_in)
    log_out = -0.5 * math.log(2 * math.pi * var_out) - (phi - mu_out) ** 2 / (2 * var_out)
    return log_in - log_out


def test_logit_confidence_is_log_odds_of_the_true_class():
    conf = np.array([0.9, 0.5, 0.2, 0.999999])
    expected = np.log(conf / (1 - conf))
    np.testing.assert_allclose(logit_confidence(outputs_with_confidence(conf)), expected, atol=1e-5)
    huge = Outputs(torch.tensor([[60.0, 0.0, 0.0]]), torch.tensor([0]))  # p_y rounds to 1 in float64
    assert logit_confidence(huge)[0] == pytest.approx(60.0 - math.log(2), abs=1e-9)


def test_ulira_likelihood_ratio_against_a_hand_computation():
    """Three forget examples; two "in" and two "out" models, given by their true-class confidences."""
    p_in = [[0.95, 0.80, 0.99], [0.90, 0.70, 0.97]]    # models x examples
    p_out = [[0.60, 0.30, 0.90], [0.40, 0.50, 0.80]]
    p_target = [0.92, 0.45, 0.85]
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    phi_in = [[logit(p) for p in row] for row in p_in]
    phi_out = [[logit(p) for p in row] for row in p_out]
    phi = [logit(p) for p in p_target]

    def var(a: float, b: float) -> float:  # maximum-likelihood variance of two values
        return ((a - b) / 2) ** 2

    var_in = [var(phi_in[0][i], phi_in[1][i]) for i in range(3)]
    var_out = [var(phi_out[0][i], phi_out[1][i]) for i in range(3)]
    per_example = [hand_llr(phi[i], [phi_in[0][i], phi_in[1][i]], [phi_out[0][i], phi_out[1][i]], var_in[i], var_out[i])
                   for i in range(3)]
    pooled = [hand_llr(phi[i], [phi_in[0][i], phi_in[1][i]], [phi_out[0][i], phi_out[1][i]], sum(var_in) / 3, sum(var_out) / 3)
              for i in range(3)]

    as_outputs = lambda rows: [outputs_with_confidence(np.array(r)) for r in rows]  # noqa: E731
    in_phi = np.stack([logit_confidence(o) for o in as_outputs(p_in)])
    out_phi = np.stack([logit_confidence(o) for o in as_outputs(p_out)])
    target = logit_confidence(outputs_with_confidence(np.array(p_target)))
    np.testing.assert_allclose(likelihood_ratio(target, in_phi, out_phi, pooled_variance=False), per_example, rtol=1e-4)
    np.testing.assert_allclose(likelihood_ratio(target, in_phi, out_phi, pooled_variance=True), pooled, rtol=1e-4)
    np.testing.assert_allclose(likelihood_ratio(target, in_phi, out_phi), pooled, rtol=1e-4)  # 2 models: pooled
    # the same with scipy's normal log density
    scipy_llr = (norm.logpdf(target, in_phi.mean(0), np.sqrt(in_phi.var(0))) -
                 norm.logpdf(target, out_phi.mean(0), np.sqrt(out_phi.var(0))))
    np.testing.assert_allclose(likelihood_ratio(target, in_phi, out_phi, pooled_variance=False), scipy_llr, rtol=1e-9)


def test_ulira_auc_counts_pairs_of_unlearned_over_oracle_scores():
    p_in, p_out = [[0.95, 0.90, 0.85], [0.93, 0.88, 0.80]], [[0.30, 0.40, 0.35], [0.20, 0.45, 0.25]]
    shadow_in = [outputs_with_confidence(np.array(r)) for r in p_in]
    shadow_out = [outputs_with_confidence(np.array(r)) for r in p_out]
    like_in, like_out = outputs_with_confidence(np.array([0.94, 0.89, 0.83])), outputs_with_confidence(np.array([0.25, 0.42, 0.30]))
    assert ulira_auc(like_in, like_out, shadow_in, shadow_out) == 1.0   # every unlearned score above every oracle's
    assert ulira_auc(like_out, like_in, shadow_in, shadow_out) == 0.0
    assert ulira_auc(like_out, like_out, shadow_in, shadow_out) == 0.5  # the oracle itself: all ties
    ctx = EvaluationContext({"forget": like_in}, {"forget": like_out}, {"forget": like_in},
                            shadow_outputs={"in": [{"forget": o} for o in shadow_in],
                                            "out": [{"forget": o} for o in shadow_out]})
    assert metrics.get("mia/ulira").compute(ctx) == 1.0
    assert metrics.get("mia/ulira").compute(EvaluationContext({"forget": like_in}, {"forget": like_out}, {})) is None


def test_spec_version_and_directions():
    assert MIA_SPEC_VERSION == "3"
    for key in ("mia/svc", "mia/lr_auc", "mia/ulira", "mia/entropy_lr"):
        assert metrics.get(key).direction == "oracle"
    for key in ("gap/mia_svc", "gap/mia_lr_auc", "gap/mia_entropy_lr"):
        assert metrics.get(key).direction == "lower"


# ---- end to end on debug -----------------------------------------------------------------------

def config(method: str) -> RunConfig:
    cls = methods.get(method)
    return RunConfig(task="debug", task_version=tasks.get("debug").spec.version, scenario="random_10", method=method,
                     method_version=cls.version, hparams=dict(cls.resolve()), seed=0, profile="smoke")


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    """One MUBENCH_HOME for the end-to-end tests: the CLI test loads the models the harness test
    trained (or trains them when run alone)."""
    return tmp_path_factory.mktemp("membership_home")


def test_new_attacks_end_to_end_on_debug_with_shadow_models(trained_home, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(trained_home))
    harness = Harness(shadow_models=2)
    identity, retrain = harness.run(config("identity")), harness.run(config("retrain"))
    assert identity.status == retrain.status == "ok", (identity.error, retrain.error)
    for record in (identity, retrain):
        assert NEW_KEYS <= set(record.metrics) and is_finite(record.metrics)
        assert record.mia_spec_version == "3"
    assert retrain.metrics["gap/mia_svc"] == 0.0 and retrain.metrics["gap/mia_lr_auc"] == 0.0
    assert retrain.metrics["gap/mia_entropy_lr"] == 0.0
    assert retrain.metrics["mia/ulira"] == 0.5 and retrain.metrics["gap/mia_ulira"] == 0.0
    assert identity.metrics["mia/ulira"] > retrain.metrics["mia/ulira"]
    assert identity.metrics["gap/mia_ulira"] == pytest.approx(identity.metrics["mia/ulira"] - 0.5)
    assert identity.metrics["mia/svc"] < retrain.metrics["mia/svc"]  # the original's forget set looks seen
    assert identity.metrics["mia/entropy_lr"] > retrain.metrics["mia/entropy_lr"]  # more of it called member
    prepared = harness.prepare("debug", "random_10", 0, "smoke")
    n_forget = len(prepared.split.forget)
    assert [len(o["forget"].labels) for side in ("in", "out") for o in prepared.shadow_outputs[side]] == [n_forget] * 4
    # shadow models are other models than the run's: not the original's nor the oracle's forget outputs
    assert not torch.equal(prepared.shadow_outputs["in"][0]["forget"].logits, prepared.original_outputs["forget"].logits)
    assert not torch.equal(prepared.shadow_outputs["out"][0]["forget"].logits, prepared.oracle_outputs["forget"].logits)
    # cached: a second harness loads them instead of training (same outputs); without K, no mia/ulira
    again = Harness(shadow_models=2).prepare("debug", "random_10", 0, "smoke")
    assert torch.equal(again.shadow_outputs["in"][1]["forget"].logits, prepared.shadow_outputs["in"][1]["forget"].logits)
    plain = Harness().run(config("identity"))
    shadow_keys = ("mia/ulira", "gap/mia_ulira", "mia/rmia", "gap/mia_rmia")
    assert not set(shadow_keys) & set(plain.metrics) and set(shadow_keys) <= set(identity.metrics)
    assert {k: v for k, v in plain.metrics.items() if not k.startswith(("cost/", "objective/cost"))} == \
           {k: v for k, v in identity.metrics.items() if k not in shadow_keys and not k.startswith(("cost/", "objective/cost"))}
    attacks = {"mia/loss_auc", "mia/svc", "mia/lr_auc", "mia/entropy_lr"}
    assert set(identity.intervals) == attacks | {"mia/rmia"} and set(plain.intervals) == attacks
    assert plain.intervals["mia/loss_auc"].sizes == {"forget": n_forget, "heldout": len(prepared.split.heldout)}


def test_harness_rejects_a_negative_number_of_shadow_models():
    with pytest.raises(ValueError, match="shadow_models"):
        Harness(shadow_models=-1)


def test_cli_shadow_models_option_adds_mia_ulira(trained_home, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(trained_home))
    args = ["run", "--task", "debug", "--scenario", "random_10", "--method", "identity", "--shadow-models", "2", "--json",
            "--store", str(trained_home / "cli.sqlite")]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 1 and "mia/ulira" in records[0]["metrics"]


# ---- intervals on the unlearned model's attack values ------------------------------------------

def test_every_attack_value_carries_an_interval_and_its_sample_sizes():
    rng = np.random.default_rng(5)
    model = {"retain": outputs_with_confidence(rng.uniform(0.6, 0.999, 400)),
             "val": outputs_with_confidence(rng.uniform(0.3, 0.95, 200)),
             "forget": outputs_with_confidence(rng.uniform(0.5, 0.99, 150)),
             "heldout": outputs_with_confidence(rng.uniform(0.3, 0.95, 90))}
    ctx = EvaluationContext(model, model, model)
    keys = {"mia/loss_auc", "mia/svc", "mia/lr_auc", "mia/entropy_lr"}
    values = {k: metrics.get(k).compute(ctx) for k in keys}
    for key, estimate in values.items():
        assert isinstance(estimate, Estimate) and estimate.low <= estimate.value <= estimate.high, key
    plain = {"mia/loss_auc": loss_auc(model), "mia/lr_auc": lr_auc(model), "mia/svc": svc_efficacy(model),
             "mia/entropy_lr": entropy_lr(model)}
    assert {k: v.value for k, v in values.items()} == plain  # the values themselves are unchanged
    assert values["mia/loss_auc"].sizes == {"forget": 150, "heldout": 90}
    assert values["mia/lr_auc"].sizes == {"forget": 150, "heldout": 90, "per_side": 90}
    assert values["mia/svc"].sizes == {"forget": 150, "retain": 200, "val": 200}
    assert values["mia/entropy_lr"].sizes == {"forget": 150, "retain": 400, "val": 200}
    # a proportion's bootstrap is binomial: the interval is binom.ppf(0.025 / 0.975, n, p) / n
    p = values["mia/svc"].value
    assert values["mia/svc"].low == pytest.approx(binom.ppf(0.025, 150, p) / 150)
    assert values["mia/svc"].high == pytest.approx(binom.ppf(0.975, 150, p) / 150)


def test_lr_auc_by_slope_sign_is_the_kits_attack():
    rng = np.random.default_rng(0)
    for _ in range(20):  # a clear slope: the sign of the mean difference is the fitted slope's sign
        members, nonmembers = rng.exponential(0.5, rng.integers(30, 300)), rng.exponential(1.0, rng.integers(30, 300))
        assert lr_cv_auc_by_slope_sign(members, nonmembers) == pytest.approx(lr_cv_auc(members, nonmembers), abs=1e-12)
    for _ in range(20):  # no signal: slopes near 0 may differ in sign from the solver's, the value barely
        members, nonmembers = rng.exponential(1.0, 200), rng.exponential(1.0, 150)
        assert lr_cv_auc_by_slope_sign(members, nonmembers) == pytest.approx(lr_cv_auc(members, nonmembers), abs=0.03)
    assert lr_cv_auc_by_slope_sign(np.ones(5), np.ones(5)) is None

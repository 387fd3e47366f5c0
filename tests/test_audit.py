"""The population attacks (U-LiRA, KLOM, RMIA) against hand-built populations whose answer is
known, their intervals, and the harness's population: members, data access, records."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.stats import norm
from typer.testing import CliRunner

from mubench.access import Access
from mubench.cli.app import app
from mubench.errors import MubenchError
from mubench.evaluation import EvaluationContext, Outputs, PopulationOutputs
from mubench.harness.record import Interval, Record
from mubench.harness.runner import Harness
from mubench.methods import Method, methods
from mubench.metrics import compute_metrics, metrics
from mubench.metrics.audit import (
    KLOM_BINS,
    KLOM_EPS,
    klom_per_example,
    klom_summary,
    population_rmia_scores,
    rmia_scores,
    rmia_summary,
    ulira_accuracy,
    ulira_auc,
    ulira_scores,
)
from mubench.metrics.intervals import Estimate, auc_estimate, auc_rows
from mubench.metrics.membership import auc
from mubench.orchestration.sweep import GridSpec, expand_grid

AUDIT_KEYS = {"audit/population", "audit/ulira_acc", "audit/ulira_auc", "audit/rmia_auc", "audit/rmia_auc_oracle",
              "gap/audit_rmia_auc"} | {f"audit/klom_{p}{s}" for p in ("forget", "retain", "val") for s in ("", "_mean")}


# ---- intervals --------------------------------------------------------------------------------

def test_auc_rows_is_the_mann_whitney_auc_with_ties():
    rng = np.random.default_rng(1)
    pos, neg = rng.integers(0, 5, size=(3, 40)).astype(float), rng.integers(0, 5, size=(3, 30)).astype(float)
    expected = [auc(p, n) for p, n in zip(pos, neg)]
    assert np.allclose(auc_rows(pos, neg), expected)


def test_auc_estimate_interval_covers_the_value_and_shrinks_with_samples():
    rng = np.random.default_rng(0)
    small = auc_estimate(rng.normal(0.5, 1, 50), rng.normal(0, 1, 50))
    large = auc_estimate(rng.normal(0.5, 1, 2000), rng.normal(0, 1, 2000))
    truth = norm.cdf(0.5 / math.sqrt(2))
    assert small.low <= small.value <= small.high and large.low <= truth <= large.high
    assert large.high - large.low < (small.high - small.low) / 3
    assert large.sizes == {"positives": 2000, "negatives": 2000}


def test_estimate_and_interval_refuse_nonsense():
    with pytest.raises(ValueError, match="above high"):
        Estimate(0.5, 0.6, 0.4, "x")
    with pytest.raises(ValueError, match="finite"):
        Estimate(float("nan"), 0.0, 1.0, "x")
    with pytest.raises(ValueError, match="low <= high"):
        Interval(low=1.0, high=0.0, method="x")


# ---- KLOM -------------------------------------------------------------------------------------

def reference_klom(p_samples: np.ndarray, q_samples: np.ndarray) -> float:
    """Georgiev et al.'s binned KL as their code computes it, one example at a time: np.digitize
    over 20 equal bins of the common range, eps for empty q bins where p > 0, scipy's entropy."""
    p_arr, q_arr = np.clip(p_samples, -100, 100), np.clip(q_samples, -100, 100)
    start, end = min(p_arr.min(), q_arr.min()), max(p_arr.max(), q_arr.max())
    if start >= end:
        end = start + 1
    bins = np.linspace(start, end, KLOM_BINS + 1)
    p_counts = np.array([np.sum(np.digitize(p_arr, bins) == i) for i in range(1, KLOM_BINS + 1)])
    q_counts = np.array([np.sum(np.digitize(q_arr, bins) == i) for i in range(1, KLOM_BINS + 1)])
    p_probs = p_counts / p_counts.sum()
    q_probs = q_counts / q_counts.sum() if q_counts.sum() else np.zeros(KLOM_BINS)
    return float(stats.entropy(pk=p_probs, qk=np.where(p_probs > 0, np.maximum(q_probs, KLOM_EPS), q_probs)))


def test_klom_matches_the_reference_algorithm_example_by_example():
    rng = np.random.default_rng(3)
    # shifted, equal, clipped (beyond +-100) and tied margins
    unlearned = np.concatenate([rng.normal(1, 1, (16, 30)), rng.normal(0, 2, (16, 30)), rng.normal(120, 30, (16, 3)),
                                rng.integers(0, 3, (16, 5)).astype(float)], axis=1)
    oracle = np.concatenate([rng.normal(0, 1, (16, 30)), rng.normal(0, 2, (16, 30)), rng.normal(-120, 30, (16, 3)),
                             rng.integers(0, 3, (16, 5)).astype(float)], axis=1)
    expected = [reference_klom(unlearned[:, e], oracle[:, e]) for e in range(unlearned.shape[1])]
    assert np.allclose(klom_per_example(unlearned, oracle), expected, atol=1e-12)


def test_klom_is_zero_for_identical_populations_and_large_for_separated_ones():
    rng = np.random.default_rng(0)
    same = rng.normal(size=(32, 50))
    assert np.allclose(klom_per_example(same, same), 0.0, atol=1e-12)
    # unlearned all in the first bin, oracles in the last (their maximum falls outside, as in the reference):
    # KL = log(p / q_safe) with q_safe = eps / (1 + eps) in the first bin
    unlearned, oracle = np.zeros((4, 1)), np.array([[1.0], [0.96], [0.97], [0.98]])
    assert klom_per_example(unlearned, oracle)[0] == pytest.approx(math.log((1 + KLOM_EPS) / KLOM_EPS))
    summary = klom_summary(same, same)
    assert summary.percentile.value == summary.percentile.low == summary.percentile.high == pytest.approx(0.0)
    apart = klom_summary(rng.normal(0, 1, (32, 200)), rng.normal(3, 1, (32, 200)))
    assert apart.percentile.low > 1.0 and apart.mean.low <= apart.mean.value <= apart.mean.high


def test_klom_keeps_unlearned_margins_that_all_sit_at_the_maximum():
    unlearned, oracle = np.full((8, 1), 200.0), np.linspace(-5, 5, 8).reshape(8, 1)
    value = klom_per_example(unlearned, oracle)[0]
    assert math.isfinite(value) and value > 5  # the reference's entropy is NaN here


# ---- U-LiRA -----------------------------------------------------------------------------------

def test_ulira_is_chance_exactly_when_unlearned_equals_retrained():
    phi = np.random.default_rng(0).normal(size=(8, 40))
    positive, negative = ulira_scores(phi, phi)
    accuracy, area = ulira_accuracy(positive, negative), ulira_auc(positive, negative)
    assert (accuracy.value, accuracy.low, accuracy.high) == (0.5, 0.5, 0.5)
    assert (area.value, area.low, area.high) == (0.5, 0.5, 0.5)


def test_ulira_recovers_the_bayes_accuracy_of_two_gaussians():
    # per example, unlearned phi ~ N(mu + 2, 1) and retrained phi ~ N(mu, 1): the optimal test's
    # accuracy is Phi(1) and its AUC Phi(2 / sqrt(2))
    rng = np.random.default_rng(0)
    mu = rng.normal(0, 3, 300)
    unlearned, oracle = mu + 2 + rng.normal(size=(64, 300)), mu + rng.normal(size=(64, 300))
    positive, negative = ulira_scores(unlearned, oracle)
    accuracy, area = ulira_accuracy(positive, negative), ulira_auc(positive, negative)
    assert accuracy.value == pytest.approx(norm.cdf(1), abs=0.02)
    assert area.value == pytest.approx(norm.cdf(2 / math.sqrt(2)), abs=0.02)
    assert accuracy.low < accuracy.value < accuracy.high and accuracy.low > 0.75
    assert accuracy.sizes == {"models": 64, "forget": 300}


def test_ulira_scores_hold_each_target_out_of_its_own_gaussians():
    # target 0 against members 1 and 2: unlearned N(2, 1), retrained N(0, 1) (ddof 0 of [1, 3] and
    # [-1, 1]); log LR of phi = 2 is 2 and of phi = 0 is -2. Fitted on all three members the
    # variances would be 2/3 and the first score 3.
    unlearned, oracle = np.array([[2.0], [1.0], [3.0]]), np.array([[0.0], [-1.0], [1.0]])
    positive, negative = ulira_scores(unlearned, oracle)
    assert positive[0, 0] == pytest.approx(2.0) and negative[0, 0] == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="N >= 3"):
        ulira_scores(unlearned[:2], oracle[:2])


# ---- RMIA -------------------------------------------------------------------------------------

def test_rmia_scores_against_a_hand_computation():
    # Pr(x) = ((1 + 0.3) * 0.5 + 0.7) / 2 = 0.675 for every sample; ratios x: 0.9/0.675, 0.5/0.675;
    # z: 0.6/0.675, 0.25/0.675. x1 beats both z, x2 only the second.
    refs = np.array([[0.5, 0.5]])
    scores = rmia_scores(np.array([0.9, 0.5]), refs, np.array([0.6, 0.25]), refs, a=0.3, gamma=1.0)
    assert scores.tolist() == [1.0, 0.5]
    # gamma = 2: x1's ratio 1.333 must beat 2 x z's; 2 x 0.370 = 0.741 <= 1.333 < 2 x 0.889
    assert rmia_scores(np.array([0.9]), refs[:, :1], np.array([0.6, 0.25]), refs, gamma=2.0).tolist() == [0.5]


def outputs_with_p(p_true: np.ndarray) -> Outputs:
    """Two-class outputs whose true-class probability is `p_true` (label 0)."""
    logit = np.log(p_true / (1 - p_true))
    return Outputs(torch.tensor(np.stack([logit, np.zeros_like(logit)], axis=1), dtype=torch.float32),
                   torch.zeros(len(p_true), dtype=torch.long))


def member(forget: np.ndarray, heldout: np.ndarray, unseen: np.ndarray) -> dict[str, Outputs]:
    return {"forget": outputs_with_p(forget), "heldout": outputs_with_p(heldout), "unseen": outputs_with_p(unseen)}


def test_population_rmia_separates_members_and_is_equal_for_identical_targets():
    rng = np.random.default_rng(0)
    def draw(forget_shift: float) -> dict[str, Outputs]:
        base = lambda n: np.clip(rng.uniform(0.3, 0.7, n), 0.01, 0.99)  # noqa: E731
        return member(np.clip(base(40) + forget_shift, 0.01, 0.99), base(40), base(60))
    oracles = [draw(0.0) for _ in range(6)]
    remembering = [draw(0.3) for _ in range(6)]
    summary = rmia_summary(population_rmia_scores(remembering, oracles), population_rmia_scores(oracles, oracles))
    assert summary.unlearned.value > 0.9 and summary.unlearned.low > summary.oracle.high
    assert 0.3 < summary.oracle.value < 0.7 and summary.gap.value == pytest.approx(summary.unlearned.value
                                                                                 - summary.oracle.value)
    same = rmia_summary(population_rmia_scores(oracles, oracles), population_rmia_scores(oracles, oracles))
    assert same.unlearned == same.oracle and same.gap.value == 0.0 == same.gap.high


# ---- registration: Estimates reach the record's intervals --------------------------------------

def test_audit_metrics_are_absent_without_a_population_and_carry_intervals_with_one(monkeypatch):
    monkeypatch.setattr(metrics, "_items", {k: v for k, v in metrics._items.items() if k in AUDIT_KEYS})
    rng = np.random.default_rng(0)
    parts = lambda: {p: outputs_with_p(rng.uniform(0.2, 0.9, 30)) for p in ("forget", "heldout", "unseen", "retain", "val")}  # noqa: E731
    members = [parts() for _ in range(4)]
    ctx = EvaluationContext(members[0], members[0], members[0])
    assert not AUDIT_KEYS & set(compute_metrics(ctx, phase="host"))
    population = PopulationOutputs(members, members)
    intervals: dict[str, Estimate] = {}
    values = compute_metrics(EvaluationContext(members[0], members[0], members[0], population=population),
                             phase="host", intervals=intervals)
    assert AUDIT_KEYS <= set(values) and set(intervals) == AUDIT_KEYS - {"audit/population"}
    assert values["audit/ulira_acc"] == 0.5 and values["audit/klom_forget"] == 0.0 and values["gap/audit_rmia_auc"] == 0
    assert metrics.get("audit/ulira_acc").direction == "lower"
    with pytest.raises(ValueError, match="pairs each unlearned member"):
        PopulationOutputs(members, members[:2])


# ---- the harness's population -----------------------------------------------------------------

class ForgetSpy(Method):
    """Records what each call received: the data names and the model's first weight."""

    name = "audit_forget_spy"
    access = Access.FORGET
    calls: list[tuple[frozenset[str], float, int]] = []

    def unlearn(self, model, request, hp):  # noqa: ANN001, ANN201
        held = frozenset(name for name in ("forget", "retain", "val", "unseen", "heldout", "test")
                         if name in request._subsets)
        ForgetSpy.calls.append((held, float(next(model.parameters()).detach().flatten()[0]), request.seed))
        with pytest.raises(Exception, match="does not include 'retain'"):
            request.subset("retain")
        return model


@pytest.fixture(scope="module")
def population_records(tmp_path_factory):
    """identity, retrain and the spy on debug/random_10 with a population of 4 (one shared home)."""
    home = tmp_path_factory.mktemp("audit_home")
    patch = pytest.MonkeyPatch()
    patch.setenv("MUBENCH_HOME", str(home))
    methods.names()  # every method registered (entry points loaded) before the copy the spy joins
    patch.setattr(methods, "_items", dict(methods._items))  # the spy's registration is undone below
    methods.add(ForgetSpy.name, ForgetSpy)
    try:
        harness = Harness()
        records = {}
        for name in ("identity", "retrain", ForgetSpy.name):
            config = expand_grid(GridSpec(tasks=["debug"], scenarios=["random_10"], methods=[name], seeds=[0],
                                          profile="smoke", population=4))[0]
            records[name] = harness.run(config)
        records["plain"] = harness.run(records["identity"].config.model_copy(update={"population": 0}))
        yield records, harness, home
    finally:
        patch.undo()


def test_population_separates_identity_from_retrain(population_records):
    records, _, _ = population_records
    identity, retrain = records["identity"], records["retrain"]
    assert identity.status == retrain.status == "ok", (identity.error, retrain.error)
    assert AUDIT_KEYS <= set(identity.metrics) and identity.metrics["audit/population"] == 4
    assert retrain.metrics["audit/ulira_acc"] == 0.5 and retrain.metrics["audit/klom_forget"] == 0.0
    assert retrain.metrics["gap/audit_rmia_auc"] == 0.0
    for key in ("audit/ulira_acc", "audit/ulira_auc", "audit/klom_forget"):
        assert identity.intervals[key].low > retrain.intervals[key].high, key
    assert identity.intervals["audit/ulira_acc"].sizes == {"models": 4, "forget": 100}
    assert identity.config.label.endswith("/population4")


def test_population_members_get_only_the_declared_data_and_their_own_original(population_records):
    records, harness, _ = population_records
    assert records[ForgetSpy.name].status == "ok", records[ForgetSpy.name].error
    calls = ForgetSpy.calls[-5:]  # the run's own model, then four members
    assert [held for held, _, _ in calls] == [frozenset({"forget"})] * 5
    assert len({weight for _, weight, _ in calls}) == 5 and len({seed for _, _, seed in calls}) == 5
    prepared = harness.prepare("debug", "random_10", 0, "smoke")
    assert [float(next(m.model.parameters()).detach().flatten()[0]) for m in prepared.members.originals] == \
           [weight for _, weight, _ in calls[1:]]


def test_population_records_round_trip_with_intervals_and_keep_old_ids(population_records, tmp_path):
    from mubench.orchestration.store import Store

    records, _, _ = population_records
    record = records["identity"]
    store = Store(tmp_path / "r.sqlite")
    store.put(record)
    again = store.get(record.id)
    assert again.intervals == record.intervals and isinstance(again, Record)
    plain = record.config.model_copy(update={"population": 0})
    assert plain.id != record.config.id and "population" not in plain.model_dump(mode="json", exclude={"population"})
    with pytest.raises(ValueError, match="intervals of metrics"):
        Record.model_validate({**record.model_dump(), "intervals": {"nope/x": {"low": 0, "high": 1, "method": "m"}}})


def test_population_cli_refuses_jails_and_tiny_populations_before_running(tmp_path):
    base = ["run", "--task", "debug", "--method", "identity", "--store", str(tmp_path / "s.sqlite")]
    for args, message in (([*base, "--population", "4", "--isolate"], "--isolate"),
                          ([*base, "--population", "2"], "at least 3 members"),
                          (["run", "--suite", "board", "--population", "2", "--store", str(tmp_path / "b.sqlite")],
                           "at least 3 members")):
        with pytest.raises(MubenchError, match=message):
            CliRunner().invoke(app, args, catch_exceptions=False)


def test_results_audit_view_shows_each_population_run_with_its_intervals(population_records, tmp_path):
    from mubench.orchestration.store import Store

    records, _, _ = population_records
    path = tmp_path / "r.sqlite"
    store = Store(path)
    for record in records.values():
        store.put(record)
    result = CliRunner().invoke(app, ["results", "--view", "audit", "--format", "csv", "--store", str(path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    identity = {r["metric"]: r for r in rows if r["method"] == "identity"}
    expected = records["identity"].intervals["audit/ulira_acc"]
    assert float(identity["audit/ulira_acc"]["low"]) == pytest.approx(expected.low)
    assert json.loads(identity["audit/ulira_acc"]["sizes"]) == {"forget": 100, "models": 4}
    assert {r["population"] for r in rows} == {"4"}
    table = CliRunner().invoke(app, ["results", "--view", "audit", "--format", "markdown", "--store", str(path)],
                               catch_exceptions=False)
    retrain_row = next(line for line in table.stdout.splitlines() if "| retrain" in line)
    assert "0.500 [0.500, 0.500]" in retrain_row  # retrain's U-LiRA accuracy, exactly chance
    # the ordinary table leaves population runs out: their own model's metrics are the plain run's
    plain = CliRunner().invoke(app, ["results", "--format", "csv", "--store", str(path)], catch_exceptions=False)
    assert {row["method"] for row in csv.DictReader(io.StringIO(plain.stdout))} == {"identity"}
    assert {row["n"] for row in csv.DictReader(io.StringIO(plain.stdout))} == {"1"}  # one record, not two
    # --view attacks: the plain run's membership attacks with their intervals and sizes
    attacks = CliRunner().invoke(app, ["results", "--view", "attacks", "--format", "csv", "--store", str(path)],
                                 catch_exceptions=False)
    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(attacks.stdout))}
    assert set(rows) == {"mia/loss_auc", "mia/lr_auc", "mia/svc", "mia/entropy_lr"}
    stated = records["plain"].intervals["mia/loss_auc"]
    assert float(rows["mia/loss_auc"]["high"]) == pytest.approx(stated.high)
    assert json.loads(rows["mia/loss_auc"]["sizes"]) == {"forget": 100, "heldout": 100}


def test_the_audit_suite_runs_every_method_with_a_population_at_the_audit_profile():
    from mubench.orchestration.sweep import AUDIT_POPULATION

    configs = expand_grid(GridSpec.from_suite("audit"))
    assert {c.population for c in configs} == {AUDIT_POPULATION} and {c.profile for c in configs} == {"audit"}
    assert {(c.task, c.scenario, c.seed) for c in configs} == {("cmnist", "random_10", 0)}
    assert {"identity", "retrain", "finetune"} <= {c.method for c in configs}


def test_members_are_the_splits_shadow_models():
    from mubench.harness.population import member_seeds
    from mubench.harness.runner import derived_seed

    # the shadow models' seeds from before populations existed: their cached models are reused
    assert member_seeds("debug", 0, 3) == [derived_seed("debug", 0, "shadow", k) for k in range(3)]
    assert member_seeds("debug", 0, 2) == member_seeds("debug", 0, 5)[:2] != member_seeds("debug", 1, 2)


def test_a_tuned_suites_audit_takes_its_privacy_cells_first_seed_at_the_chosen_settings():
    from mubench.harness.record import RunConfig
    from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION
    from mubench.orchestration.tuning import audit_configs

    def reported(scenario: str, seed: int, hparams: dict) -> Record:
        config = RunConfig(task="debug", task_version="1", scenario=scenario, method="finetune", method_version="1",
                           hparams=hparams, seed=seed, profile="smoke")
        return Record(id=config.id, config=config, status="ok", metrics={"score": 0.5}, split_id="x",
                      metrics_version=METRICS_VERSION, mia_spec_version=MIA_SPEC_VERSION, mubench_version="0",
                      git_commit="", hardware="test", device="cpu", seconds=1.0, peak_rss_mb=1.0)

    chosen = {"lr": 0.1}
    records = [reported("random_10", seed, chosen) for seed in (2, 0, 1)] + [reported("class_0", 0, chosen)]
    configs = audit_configs(records, 16)  # debug's random_10 is its privacy cell, class_0 adaptability
    assert [(c.scenario, c.seed, c.population, c.hparams) for c in configs] == [("random_10", 0, 16, chosen)]


def test_the_committed_audit_tables_read_and_hold_retrain_at_chance():
    from pathlib import Path

    from mubench.results.audit import AUDIT_KEYS, cells_by_first_key, read_interval_table

    folder = Path(__file__).resolve().parents[1] / "leaderboard" / "audit"
    files = sorted(folder.glob("*.csv"))
    assert files
    for path in files:
        frame = read_interval_table(path)
        retrain = frame[(frame["method"] == "retrain") & (frame["metric"] == "audit/ulira_acc")]
        assert not retrain.empty and (retrain[["value", "low", "high"]] == 0.5).all().all(), path.name
        for _, table in cells_by_first_key(frame, AUDIT_KEYS):
            assert table["method"].iloc[0] == "retrain"  # closest to retraining first


def test_an_interval_table_that_is_not_one_is_refused_by_name(tmp_path):
    from mubench.results.audit import read_interval_table

    (tmp_path / "t.csv").write_text("task,scenario\nx,y\n")
    with pytest.raises(MubenchError, match=r"t\.csv: not a table of attack intervals"):
        read_interval_table(tmp_path / "t.csv")
    (tmp_path / "b.bin").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MubenchError, match=r"b\.bin: not a readable CSV"):
        read_interval_table(tmp_path / "b.bin")

"""Selection protocols, sweep hypervolumes and ranks (mubench.results.aggregate, mubench.results.ranking): golden
files, values worked out by hand from tests/golden/regenerate.py's RUNS, and `mubench results
--view/--select` on hand-built stores (nothing trains here)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mubench.cli.app import app
from mubench.errors import MubenchError
from mubench.harness.record import Record, RunConfig
from mubench.hashing import canonical_json
from mubench.methods import methods
from mubench.orchestration.store import Store
from mubench.results.aggregate import SELECTIONS, records_frame, select_settings, summarise
from mubench.results.ranking import hypervolume_per_seed, hypervolume_table, mean_ranks, rank_table, ranking_key
from tests.golden import regenerate as golden

GOLDEN_FILES = ["summary.csv", "summary_default.csv", "summary_val.csv", "hypervolume.csv", "ranks.csv",
                "mean_ranks.csv"]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return golden.load_records()


def one(frame: pd.DataFrame, **where: object) -> pd.Series:
    mask = np.ones(len(frame), dtype=bool)
    for column, value in where.items():
        mask &= (frame[column] == value).to_numpy()
    assert mask.sum() == 1, frame[mask]
    return frame[mask].iloc[0]


# ---- golden files -----------------------------------------------------------------------------

def test_the_golden_records_are_the_documented_runs(records):
    assert [r.model_dump() for r in records] == [r.model_dump() for r in golden.build_records()]
    assert len(records) == len(golden.RUNS) + len(golden.FAILED)


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_aggregation_reproduces_the_golden_file(records, name):
    """If this fails after a deliberate change of an aggregation rule, review the difference and
    run `python -m tests.golden.regenerate` (see its docstring); otherwise it is a regression."""
    actual = golden.compute_outputs(records)[name]
    expected = pd.read_csv(golden.HERE / name)
    roundtrip = pd.read_csv(io.StringIO(actual.to_csv(index=False)))  # same dtypes as the file's
    pd.testing.assert_frame_equal(roundtrip, expected, check_exact=False, rtol=1e-9, atol=1e-12)


# ---- hypervolume values by hand ---------------------------------------------------------------

def test_hypervolumes_of_the_golden_sweeps_by_hand(records):
    table = hypervolume_table(records)
    assert list(table.columns) == ["task", "scenario", "method", "profile", "hv_mean", "hv_ci95", "n", "points", "front"]
    # over (utility, forgetting); the records' objective/cost plays no part.
    # keep: one point per seed, the box .96 x .40
    assert one(table, scenario="s1", method="keep")["hv_mean"] == pytest.approx(0.384, abs=1e-12)
    assert one(table, scenario="s1", method="keep")["n"] == 3
    # ascent, s1: a staircase of three points per seed, by utility descending
    seed0 = .95 * .5 + .9 * (.7 - .5) + .6 * (.85 - .7)
    seed1 = .94 * .52 + .91 * (.72 - .52) + .55 * (.8 - .72)
    row = one(table, scenario="s1", method="ascent")
    assert (seed0, seed1) == (pytest.approx(0.745), pytest.approx(0.7148))
    assert row["hv_mean"] == pytest.approx((seed0 + seed1) / 2, abs=1e-12)
    assert row["hv_ci95"] == pytest.approx(12.7062047361747 * abs(seed0 - seed1) / 2, rel=1e-9)  # t_.975,1 * s / sqrt 2
    assert (row["n"], row["points"], row["front"]) == (2, 3, 3.0)
    # ascent, s2: seed 1's lr=0.1 run has no objectives, so that seed has two points
    s2_seed0 = .875 * .5 + .75 * (.625 - .5) + .4 * (.9 - .625)
    s2_seed1 = .8 * .45 + .75 * (.5 - .45)
    assert one(table, scenario="s2", method="ascent")["hv_mean"] == pytest.approx((s2_seed0 + s2_seed1) / 2, abs=1e-12)
    # tune, s2: (1, .5) dominates (.5, .5): .5 on both seeds; keep's (.5, .5): .25
    tune = one(table, scenario="s2", method="tune")
    assert (tune["hv_mean"], tune["hv_ci95"], tune["points"], tune["front"]) == (0.5, 0.0, 2, 1.0)
    assert one(table, scenario="s2", method="keep")["hv_mean"] == 0.25


def test_hypervolume_per_seed_counts_points_and_front(records):
    per_seed = hypervolume_per_seed(records)
    row = one(per_seed, scenario="s2", method="ascent", seed=1)
    assert (row["points"], row["front"]) == (2, 2)
    row = one(per_seed, scenario="s1", method="tune", seed=1)
    assert (row["points"], row["front"]) == (3, 1)  # (.99, .78) dominates the other two
    assert len(per_seed) == 3 + 2 + 2 + 2 + 2 + 2  # the failed run adds no seed


def test_hypervolume_of_records_without_objectives_is_an_empty_table():
    bare = [r for r in golden.build_records() if "objective/forgetting" not in r.metrics]
    assert hypervolume_table(bare).empty
    assert list(hypervolume_table([]).columns) == ["task", "scenario", "method", "profile", "hv_mean", "hv_ci95", "n",
                                                   "points", "front"]


# ---- selection protocols ----------------------------------------------------------------------

def test_select_default_keeps_the_default_settings_and_names_what_it_left_out(records):
    kept, omitted = select_settings(records_frame(records), "default", golden.DEFAULTS)
    settings = kept[["scenario", "method", "hparams"]].drop_duplicates()
    assert sorted(map(tuple, settings.to_numpy())) == [
        ("s1", "ascent", '{"lr":0.01}'), ("s1", "keep", "{}"), ("s1", "tune", '{"epochs":2,"lr":0.1}'),
        ("s2", "ascent", '{"lr":0.01}'), ("s2", "keep", "{}")]
    assert omitted.to_dict(orient="records") == [
        {"task": "golden", "scenario": "s2", "method": "tune", "profile": "smoke", "reason": "no record at its defaults"}]


def test_select_val_picks_the_best_validation_setting_per_seed(records):
    kept, omitted = select_settings(records_frame(records), "val", golden.DEFAULTS)
    assert omitted.empty
    summary = summarise(kept)
    labels = summary.groupby(["scenario", "method"])["hparams"].unique().map(list).to_dict()
    assert labels == {
        ("s1", "ascent"): ['[{"lr":0.1},{"lr":0.01}]'],        # seed 0: .77 at lr .1; seed 1: .80 at lr .01
        ("s1", "keep"): ["{}"],
        ("s1", "tune"): ['{"epochs":5,"lr":0.1}'],           # best on both seeds
        ("s2", "ascent"): ['[{"lr":0.01},{"lr":0.1}]'],
        ("s2", "keep"): ["{}"],
        ("s2", "tune"): ['[{"epochs":2,"lr":0.3},{"epochs":5,"lr":0.1}]'],  # seed 0: a tie, first in JSON order
    }
    assert one(summary, scenario="s1", method="ascent", metric="gap/forget_acc")["mean"] == pytest.approx((.02 + .14) / 2)
    assert one(summary, scenario="s1", method="ascent", metric="val/acc")["n"] == 2
    # the chosen run of seed 1 in s2 has no objectives: one seed left for them
    assert one(summary, scenario="s2", method="ascent", metric="objective/utility")["n"] == 1


def test_select_val_never_looks_at_test_or_forget_metrics(records):
    frame = records_frame(records)
    shuffled = frame.copy()
    other = ~shuffled["metric"].isin(["val/acc"])
    shuffled.loc[other, "value"] = np.random.default_rng(0).random(int(other.sum()))
    chosen = select_settings(frame, "val", golden.DEFAULTS)[0][["scenario", "method", "seed", "hparams"]].drop_duplicates()
    again = select_settings(shuffled, "val", golden.DEFAULTS)[0][["scenario", "method", "seed", "hparams"]].drop_duplicates()
    pd.testing.assert_frame_equal(chosen.reset_index(drop=True), again.reset_index(drop=True))


def make(method: str, hparams: dict, seed: int, metrics: dict[str, float], scenario: str = "s",
         profile: str = "smoke") -> Record:
    config = RunConfig(task="t", task_version="1", scenario=scenario, method=method, method_version="1",
                       hparams=hparams, seed=seed, profile=profile)
    return Record(id=config.id, config=config, status="ok", metrics=metrics, split_id="x", metrics_version="2",
                  mia_spec_version="1", mubench_version="0", git_commit="none", hardware="test", device="cpu",
                  seconds=0.0, peak_rss_mb=0.0)


def test_select_val_ties_prefer_the_default_and_without_scores_only_a_lone_setting_is_kept():
    defaults = {"m": {"lr": 0.1}, "lone": {}, "blind": {"lr": 0.1}}
    frame = records_frame([
        make("m", {"lr": 0.05}, 0, {"val/acc": 0.5, "test/acc": 0.9}),
        make("m", {"lr": 0.1}, 0, {"val/acc": 0.5, "test/acc": 0.1}),   # tie: the default wins
        make("lone", {}, 0, {"test/acc": 0.3}),                          # no val/acc, but nothing to choose
        make("blind", {"lr": 0.1}, 0, {"test/acc": 0.3}),                # several settings, no val/acc
        make("blind", {"lr": 0.2}, 0, {"test/acc": 0.4}),
    ])
    kept, omitted = select_settings(frame, "val", defaults)
    assert sorted(set(zip(kept["method"], kept["hparams"]))) == [("lone", "{}"), ("m", '{"lr":0.1}')]
    assert list(omitted["method"]) == ["blind"]
    assert "no val/acc" in omitted["reason"].iloc[0]


def test_select_default_uses_the_registry_and_knows_unregistered_methods(records):
    frame = records_frame([make("identity", {}, 0, {"forget/acc": 0.5}),
                           make("finetune", dict(methods.get("finetune").resolve()), 0, {"forget/acc": 0.4}),
                           make("finetune", {**methods.get("finetune").resolve(), "lr": 0.5}, 0, {"forget/acc": 0.1}),
                           make("not_installed", {}, 0, {"forget/acc": 0.2})])
    kept, omitted = select_settings(frame, "default")
    assert sorted(set(kept["method"])) == ["finetune", "identity"]
    assert set(kept[kept["method"] == "finetune"]["hparams"]) == {canonical_json(dict(methods.get("finetune").resolve()))}
    assert omitted[["method", "reason"]].to_dict(orient="records") == [
        {"method": "not_installed", "reason": "defaults unknown (method not registered)"}]


def test_select_default_reads_the_defaults_of_each_records_profile():
    finetune = methods.get("finetune")
    smoke, standard = dict(finetune.resolve(profile="smoke")), dict(finetune.resolve(profile="standard"))
    assert smoke != standard  # fine-tuning's paper setting (10 epochs) is standard's default
    frame = records_frame([make("finetune", smoke, 0, {"forget/acc": 0.5}, profile="smoke"),
                           make("finetune", standard, 0, {"forget/acc": 0.4}, profile="smoke"),
                           make("finetune", smoke, 0, {"forget/acc": 0.3}, profile="standard"),
                           make("finetune", standard, 0, {"forget/acc": 0.2}, profile="standard")])
    kept, omitted = select_settings(frame, "default")
    assert sorted(zip(kept["profile"], kept["value"])) == [("smoke", 0.5), ("standard", 0.2)] and omitted.empty
    # explicit defaults (a submission's own) hold in every profile
    kept, _ = select_settings(frame, "default", {"finetune": smoke})
    assert sorted(zip(kept["profile"], kept["value"])) == [("smoke", 0.5), ("standard", 0.3)]


def test_select_all_and_unknown_protocols(records):
    frame = records_frame(records)
    kept, omitted = select_settings(frame, "all")
    assert kept.equals(frame) and omitted.empty
    with pytest.raises(ValueError, match="unknown selection protocol"):
        select_settings(frame, "test")
    assert set(SELECTIONS) == {"default", "val", "all"}


# ---- ranks ------------------------------------------------------------------------------------

def test_ranking_key_follows_the_metric_direction():
    assert ranking_key("test/acc") == ("test/acc", False)
    assert ranking_key("js/oracle") == ("js/oracle", True)
    assert ranking_key("forget/acc") == ("gap/forget_acc", True)
    assert ranking_key("mia/loss_auc") == ("gap/mia_loss_auc", True)
    with pytest.raises(MubenchError, match="context"):
        ranking_key("signal/forget_acc")
    with pytest.raises(MubenchError, match="no such metric"):
        ranking_key("nope/acc")


def test_ranks_of_the_golden_store(records):
    ranks, omitted = rank_table(records, "forget/acc", "default", golden.DEFAULTS)
    assert set(ranks["metric"]) == {"gap/forget_acc"}
    got = {(r.scenario, r.method): (r.hv_rank, r.metric_rank) for r in ranks.itertuples()}
    assert got[("s1", "ascent")] == (2.0, 1.0)
    assert got[("s1", "tune")] == (1.0, 2.0)            # hypervolume .757 against ascent's .730
    assert got[("s1", "keep")] == (3.0, 3.0)
    assert got[("s2", "ascent")] == (1.0, 1.5)          # gap .25 = mean(.125, .375): tied with keep
    assert got[("s2", "keep")] == (3.0, 1.5)
    assert got[("s2", "tune")][0] == 2.0 and math.isnan(got[("s2", "tune")][1])  # no default run in s2
    assert list(omitted["method"]) == ["tune"]
    mean = mean_ranks(ranks)
    assert list(mean["method"]) == ["ascent", "tune", "keep"]  # equal hypervolume ranks: the metric's decides
    assert one(mean, method="tune")[["hv_rank", "metric_rank", "hv_cells", "metric_cells"]].tolist() == [1.5, 2.0, 2, 1]
    assert one(mean, method="keep")["metric_rank"] == pytest.approx((3 + 1.5) / 2)


def test_ranks_by_a_higher_is_better_metric_and_with_val_selection(records):
    ranks, _ = rank_table(records, "test/acc", "val", golden.DEFAULTS)
    s1 = ranks[ranks["scenario"] == "s1"].set_index("method")
    # val-selected test/acc means in s1: ascent (.50 + .73) / 2, keep .78, tune (.81 + .82) / 2
    assert s1.loc["ascent", "metric_mean"] == pytest.approx(0.615)
    assert s1["metric_rank"].to_dict() == {"ascent": 3.0, "keep": 2.0, "tune": 1.0}
    with pytest.raises(ValueError, match="one setting per method"):
        rank_table(records, "test/acc", "all", golden.DEFAULTS)


# ---- the command line -------------------------------------------------------------------------

def invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


OBJ = ("objective/utility", "objective/forgetting")


@pytest.fixture
def store(tmp_path):
    """Real method names (their defaults come from the registry): identity at its defaults,
    grad_ascent at its defaults and one other lr, finetune only off its defaults; two seeds."""
    ga = dict(methods.get("grad_ascent").resolve())
    ft = {**methods.get("finetune").resolve(), "lr": 0.5}
    rows = [("identity", {}, (.5, .5), .70, .30), ("grad_ascent", ga, (.8, .6), .60, .20),
            ("grad_ascent", {**ga, "lr": 0.01}, (.4, .9), .80, .05), ("finetune", ft, (.9, .9), .75, .10)]
    path = tmp_path / "store.sqlite"
    db = Store(path)
    for seed in (0, 1):
        for method, hparams, objectives, val, gap in rows:
            values = {**dict(zip(OBJ, objectives)), "val/acc": val + seed / 100, "gap/forget_acc": gap,
                      "forget/acc": 0.5 + gap, "test/acc": 0.7}
            db.put(make(method, hparams, seed, values, scenario="random_10"))
    db.close()
    return path


def test_results_table_names_the_protocol_and_the_methods_it_left_out(store):
    default = invoke("results", "--store", store)
    assert default.exit_code == 0
    text = " ".join(default.stdout.split())
    assert SELECTIONS["default"] in text
    assert "left out by --select default: finetune in t/random_10: no record at its defaults" in text
    assert "grad_ascent" in text and "identity" in text
    val = invoke("results", "--store", store, "--select", "val")
    text = " ".join(val.stdout.split())
    assert SELECTIONS["val"] in text and "finetune" in text and "left out" not in text
    csv = pd.read_csv(io.StringIO(invoke("results", "--store", store, "--select", "val", "--format", "csv").stdout))
    assert set(csv[csv["method"] == "grad_ascent"]["hparams"]) == {'{"batch_size":128,"epochs":5,"lr":0.01,"weight_decay":0.0005}'}  # best val


def test_results_csv_with_a_protocol_keeps_its_columns_and_notes_on_stderr(store):
    result = invoke("results", "--store", store, "--format", "csv", "--select", "val")
    table = pd.read_csv(io.StringIO(result.stdout))
    assert list(table.columns) == ["task", "scenario", "method", "hparams", "profile", "metric", "mean", "ci95", "n"]
    assert set(table["method"]) == {"identity", "grad_ascent", "finetune"}
    assert (table["n"] == 2).all()
    assert SELECTIONS["val"] in result.stderr


def test_results_hypervolume_view(store):
    result = invoke("results", "--store", store, "--view", "hypervolume", "--format", "csv")
    table = pd.read_csv(io.StringIO(result.stdout)).set_index("method")
    # grad_ascent: boxes .8x.6 and .4x.9, overlap .4x.6
    assert table.loc["grad_ascent", "hv_mean"] == pytest.approx(.48 + .36 - .24)
    assert table.loc["identity", "hv_mean"] == pytest.approx(0.25)
    assert table.loc["finetune", "hv_mean"] == pytest.approx(0.81)  # every setting counts, default or not
    assert table.loc["grad_ascent", "points"] == 2 and table.loc["grad_ascent", "n"] == 2
    rich = invoke("results", "--store", store, "--view", "hypervolume")
    assert "reference point (0, 0)" in " ".join(rich.stdout.split())
    markdown = invoke("results", "--store", store, "--view", "hypervolume", "--format", "markdown")
    assert markdown.stdout.splitlines()[0].startswith("| scenario | method | hypervolume")


def test_results_ranks_view(store):
    result = invoke("results", "--store", store, "--view", "ranks", "--format", "json")
    payload = json.loads(result.stdout)
    ranks = {row["method"]: row for row in payload["ranks"]}
    assert payload["select"] == "default"
    assert (ranks["grad_ascent"]["hv_rank"], ranks["finetune"]["hv_rank"], ranks["identity"]["hv_rank"]) == (2.0, 1.0, 3.0)
    assert ranks["grad_ascent"]["metric"] == "gap/forget_acc" and ranks["grad_ascent"]["metric_rank"] == 1.0
    assert ranks["finetune"]["metric_rank"] is None  # no default run
    assert "left out by --select default: finetune" in result.stderr
    val = json.loads(invoke("results", "--store", store, "--view", "ranks", "--select", "val", "--format", "json").stdout)
    assert {r["method"]: r["metric_rank"] for r in val["ranks"]} == {"grad_ascent": 1.0, "finetune": 2.0, "identity": 3.0}
    table = invoke("results", "--store", store, "--view", "ranks", "--metric", "test/acc")
    text = " ".join(table.stdout.split())
    assert "mean rank" in text and "test/acc" in text and SELECTIONS["default"] in text
    bad = CliRunner().invoke(app, ["results", "--store", str(store), "--view", "ranks", "--metric", "signal/forget_acc"])
    assert bad.exit_code != 0

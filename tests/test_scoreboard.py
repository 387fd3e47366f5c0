"""The board's ranking rule (mubench.results.scoreboard) and tuning protocol (mubench.orchestration.tuning)
on hand-built records whose answers are known."""

from __future__ import annotations

import json
import math

import pytest

from mubench.errors import MubenchError
from mubench.harness.record import Record, RunConfig
from mubench.hashing import canonical_json
from mubench.methods import methods
from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION
from mubench.orchestration.sweep import SUITES, GridSpec, Tuning, sweep_points
from mubench.orchestration.tuning import report_configs, search_configs, tuning_points
from mubench.results.scoreboard import (
    choose_settings,
    mean_rank_table,
    rank_bands,
    score_table,
    signal_table,
    summary_table,
)

T975_2 = 4.302652729911275  # Student's t, 0.975 quantile, 2 degrees of freedom


def record(method: str, seed: int, score: float, *, scenario: str = "s", forgetting: float | None = None,
           signal: float = 0.5, hparams: dict | None = None, extra: dict[str, float] | None = None,
           task: str = "t") -> Record:
    config = RunConfig(task=task, task_version="1", scenario=scenario, method=method, method_version="1",
                       hparams=hparams or {}, seed=seed, profile="smoke")
    values = {"score": score, "objective/forgetting": score if forgetting is None else forgetting,
              "objective/utility": 1.0, "signal/forget_acc": signal, "signal/mia_loss_auc": 0.0, **(extra or {})}
    return Record(id=config.id, config=config, status="ok", metrics=values, split_id="x",
                  metrics_version=METRICS_VERSION, mia_spec_version=MIA_SPEC_VERSION, mubench_version="0",
                  git_commit="", hardware="test", device="cpu", seconds=1.0, peak_rss_mb=1.0)


def cell(scores: dict[str, list[float]], **kwargs) -> list[Record]:
    return [record(method, seed, value, **kwargs) for method, values in scores.items() for seed, value in enumerate(values)]


def test_signal_is_significant_only_when_its_interval_excludes_zero():
    strong = [record("identity", s, 0.0, signal=v) for s, v in enumerate([0.50, 0.52, 0.48])]
    noisy = [record("identity", s, 0.0, scenario="n", signal=v) for s, v in enumerate([0.03, -0.02, 0.02])]
    table = signal_table(strong + noisy).set_index(["scenario", "signal"])
    row = table.loc[("s", "signal/forget_acc")]
    assert row["mean"] == pytest.approx(0.5) and row["n"] == 3
    assert row["ci95"] == pytest.approx(T975_2 * 0.02 / math.sqrt(3))
    assert bool(row["significant"])
    assert not bool(table.loc[("n", "signal/forget_acc")]["significant"])
    assert not bool(table.loc[("s", "signal/mia_loss_auc")]["significant"])  # 0 on every seed


def test_a_single_seed_is_never_significant():
    assert not signal_table([record("identity", 0, 0.0, signal=0.9)])["significant"].any()


def test_rank_bands_share_a_rank_where_intervals_overlap():
    import pandas as pd

    means, widths = pd.Series([0.80, 0.79, 0.30, 0.55]), pd.Series([0.02, 0.02, 0.01, 0.30])
    # 0.80 and 0.79 overlap; 0.30's interval lies below both and below nothing else's lower bound
    # (0.55 +- 0.30 reaches 0.25-0.85, overlapping everyone)
    assert rank_bands(means, widths).tolist() == [1.0, 1.0, 3.0, 1.0]


def test_score_table_ranks_competitors_only_and_flags_what_did_nothing():
    records = cell({"a": [0.80, 0.82, 0.78], "b": [0.79, 0.80, 0.81], "c": [0.30, 0.31, 0.29],
                    "idle": [0.0, 0.0, 0.005], "retrain": [1.0, 1.0, 1.0], "identity": [0.0, 0.0, 0.0]})
    table = score_table(records).set_index("method")
    assert table.loc["a", "score"] == pytest.approx(0.80)
    assert table.loc["a", "score_ci95"] == pytest.approx(T975_2 * 0.02 / math.sqrt(3))
    assert table.loc["a", "rank"] == 1 and table.loc["b", "rank"] == 1  # overlapping intervals: one band
    assert table.loc["c", "rank"] == 3 and table.loc["idle", "rank"] == 4
    assert math.isnan(table.loc["retrain", "rank"]) and math.isnan(table.loc["identity", "rank"])  # references
    assert bool(table.loc["retrain", "reference"]) and table.loc["retrain", "score"] == 1.0
    assert table.loc["idle", "flags"] == "no effect"
    assert table.loc["c", "flags"] == "" and table.loc["identity", "flags"] == ""


def test_a_scenario_without_significant_signal_is_shown_but_not_ranked():
    records = cell({"a": [0.9, 0.9, 0.9], "b": [0.1, 0.1, 0.1]}, signal=0.001)
    table = score_table(records)
    assert table["rank"].isna().all() and not table["ranked"].any()
    assert set(table["flags"]) == {"no signal"}
    assert mean_rank_table(table).empty


def test_one_seed_is_flagged_and_ranked_by_its_value():
    table = score_table(cell({"a": [0.9], "b": [0.5]}, signal=0.5)).set_index("method")
    assert not table["ranked"].any()  # one seed: the signal has no interval, nothing is ranked
    assert table.loc["a", "flags"] == "no signal, one seed"


def failed(method: str, seed: int, error: str) -> Record:
    config = RunConfig(task="t", task_version="1", scenario="s", method=method, method_version="1", hparams={},
                       seed=seed, profile="smoke")
    return Record(id=config.id, config=config, status="failed", error=error, metrics={}, split_id="x",
                  metrics_version=METRICS_VERSION, mia_spec_version=MIA_SPEC_VERSION, mubench_version="0",
                  git_commit="", hardware="test", device="cpu", seconds=1.0, peak_rss_mb=1.0)


def test_an_unusable_model_scores_zero_on_its_seed_and_is_flagged():
    records = cell({"a": [0.9, 0.9], "b": [0.6, 0.6, 0.6]})
    records.append(failed("a", 2, "MethodOutputError: unlearn returned non-finite weights in '1.weight'"))
    table = score_table(records).set_index("method")
    assert table.loc["a", "score"] == pytest.approx(0.6)  # (0.9 + 0.9 + 0) / 3, not 0.9 over its lucky seeds
    assert table.loc["a", "n"] == 3 and "1 unusable" in table.loc["a", "flags"]
    assert "unusable" not in table.loc["b", "flags"]
    summary = summary_table(records).set_index("method")
    assert summary.loc["a", "score"] == pytest.approx(0.6) and summary.loc["a", "n"] == 3


def test_an_infrastructure_failure_is_no_verdict_on_the_method():
    records = cell({"a": [0.9, 0.9], "b": [0.6, 0.6, 0.6]})
    records.append(failed("a", 2, "WorkerDied: the worker died on each of 2 attempts"))
    table = score_table(records).set_index("method")
    assert table.loc["a", "score"] == pytest.approx(0.9) and table.loc["a", "n"] == 2
    assert "unusable" not in table.loc["a", "flags"]


def test_summary_averages_scenarios_per_seed_and_mean_ranks_count_cells():
    records = (cell({"a": [0.8, 0.6, 0.7], "b": [0.2, 0.3, 0.1]}, scenario="s1")
               + cell({"a": [0.4, 0.4, 0.4], "b": [0.9, 0.8, 1.0]}, scenario="s2")
               + cell({"a": [0.5, 0.5, 0.5]}, scenario="s3"))  # b does not cover s3
    summary = summary_table(records).set_index("method")
    # a: per seed (0.8 + 0.4 + 0.5) / 3, (0.6 + 0.4 + 0.5) / 3, (0.7 + 0.4 + 0.5) / 3
    per_seed = [(0.8 + 0.4 + 0.5) / 3, (0.6 + 0.4 + 0.5) / 3, (0.7 + 0.4 + 0.5) / 3]
    assert summary.loc["a", "score"] == pytest.approx(sum(per_seed) / 3)
    assert summary.loc["a", "cells"] == 3 and summary.loc["a", "n"] == 3
    assert "b" not in summary.index  # a task average over fewer scenarios would not compare
    ranks = mean_rank_table(score_table(records)).set_index("method")
    assert ranks.loc["a", "cells"] == 3 and ranks.loc["b", "cells"] == 2
    assert ranks.loc["a", "mean_rank"] == pytest.approx((1 + 2 + 1) / 3)
    assert ranks.loc["b", "mean_rank"] == pytest.approx((2 + 1) / 2)


# ---- the tuning protocol ------------------------------------------------------------------------

def dev_runs(seed: int = 100) -> list[Record]:
    return [record("a", seed, 0.0, hparams={"lr": lr}, extra={"score/val": val, "test/acc": test})
            for lr, val, test in ((0.1, 0.5, 0.9), (0.01, 0.7, 0.1), (0.001, 0.7, 0.2))]


def test_choose_settings_reads_only_the_development_seeds_validation_score():
    choice = choose_settings(dev_runs(), dev_seed=100, defaults={"a": {"lr": 0.001}})
    # 0.01 and 0.001 tie on score/val: the default wins the tie
    assert json.loads(choice.loc[0, "hparams"]) == {"lr": 0.001}
    assert choice.loc[0, "searched"] == 3 and choice.loc[0, "value"] == 0.7


def test_poisoning_test_data_and_the_reported_seeds_never_changes_the_choice():
    clean = choose_settings(dev_runs(), 100, defaults={"a": {"lr": 0.1}})
    poisoned_dev = [r.model_copy(update={"metrics": {**r.metrics, "test/acc": 1.0 - r.metrics["test/acc"],
                                                     "score": 1.0 if r.config.hparams["lr"] == 0.1 else 0.0}})
                    for r in dev_runs()]
    reported = [record("a", seed, 1.0, hparams={"lr": 0.1}, extra={"score/val": 1.0}) for seed in (0, 1, 2)]
    poisoned = choose_settings(poisoned_dev + reported, 100, defaults={"a": {"lr": 0.1}})
    assert poisoned.equals(clean)
    assert json.loads(clean.loc[0, "hparams"]) == {"lr": 0.001}  # a tie the default is not in: first in canonical JSON


def test_a_method_with_no_validation_score_keeps_its_defaults():
    runs = [record("a", 100, 0.0, hparams={"lr": 0.5})]
    choice = choose_settings(runs, 100, defaults={"a": {"lr": 0.1}})
    assert json.loads(choice.loc[0, "hparams"]) == {"lr": 0.1} and "defaults" in choice.loc[0, "reason"]


def test_tuning_points_are_the_defaults_then_seeded_draws_within_the_budget():
    ssd = methods.get("ssd")
    grid = sweep_points(ssd, "grid")
    points = tuning_points(ssd, 4)
    assert len(points) == 4 and points[0] == dict(ssd.resolve({}))
    assert all(p in grid for p in points[1:]) and len({canonical_json(p) for p in points}) == 4
    assert tuning_points(ssd, 4) == points  # the same draws every time
    assert len(tuning_points(ssd, 10_000)) == len({canonical_json(p) for p in [dict(ssd.resolve({})), *grid]})
    assert tuning_points(methods.get("identity"), 6) == [{}]


def test_the_tuning_draws_only_settings_the_method_accepts():
    for name, profile in (("scrub", "smoke"), ("scrub", "standard"), ("l1_sparse", "smoke"), ("l1_sparse", "standard")):
        cls = methods.get(name)
        refused = [p for p in sweep_points(cls, "grid", profile) if _refuses(cls, p, profile)]
        assert refused, f"{name}'s grid has settings it refuses: the case this guards"
        points = tuning_points(cls, 6, profile)
        assert len(points) == 6 and not any(_refuses(cls, p, profile) for p in points)


def _refuses(cls, point, profile) -> bool:
    try:
        cls.check(cls.resolve(point, profile))
    except MubenchError:
        return True
    return False


def test_the_development_seed_is_never_a_reported_seed():
    grid = GridSpec(["debug"], ["random_10"], ["finetune"], [0, 1], "smoke")
    with pytest.raises(MubenchError, match="development seed 1"):
        search_configs(grid, Tuning(dev_seed=1, budget=2))
    with pytest.raises(ValueError, match="budget"):
        Tuning(dev_seed=5, budget=0)


def test_search_then_report_configs():
    grid = GridSpec(["debug"], ["random_10"], ["finetune", "identity"], [0, 1], "smoke")
    search = search_configs(grid, Tuning(dev_seed=7, budget=3))
    assert {c.seed for c in search} == {7}
    assert sum(c.method == "finetune" for c in search) == 3 and sum(c.method == "identity" for c in search) == 1
    chosen = {"lr": 0.5, "epochs": 1}
    finetune = methods.get("finetune")
    setting = canonical_json(dict(finetune.resolve(chosen, "smoke")))
    import pandas as pd

    choices = pd.DataFrame([{"task": "debug", "scenario": "random_10", "profile": "smoke", "method": "finetune",
                             "hparams": setting}])
    report = report_configs(grid, choices)
    assert [(c.method, c.seed) for c in report] == [("finetune", 0), ("finetune", 1)]  # identity was not searched
    assert all(canonical_json(c.hparams) == setting for c in report)


def test_the_board_suite_tunes_on_a_seed_it_does_not_report():
    board = SUITES["board"]
    assert board.tuning is not None and board.tuning.dev_seed not in board.all_seeds() and len(board.seeds) >= 3
    assert {g.profile for g in board.grids()} <= {"smoke", "standard"}
    seeds = {task: tuple(g.seeds) for g in board.grids() for task in g.tasks}
    assert set(seeds) == set(board.tasks) and all(len(s) >= 3 for s in seeds.values())
    assert seeds["adult"] == seeds["cmnist"] == (0, 1, 2, 3, 4) and seeds["cifar10"] == (0, 1, 2)  # more where cheap
    assert board.all_seeds() == (0, 1, 2, 3, 4)
    grids = {(g.profile, tuple(g.seeds)) for g in board.grids()}
    assert len(grids) == len(board.grids())  # one grid per (profile, seeds)


def test_the_gpu_tier_runs_the_board_protocol_at_paper_scale_on_every_built_in_task_in_its_own_folder():
    from mubench.orchestration.sweep import GridSpec, expand_grid
    from mubench.tasks import tasks

    board, gpu = SUITES["board"], SUITES["board_gpu"]
    assert gpu.tuning == board.tuning and gpu.seeds == board.seeds and gpu.folder == "leaderboard/gpu"
    assert board.folder is None  # the board's own entries stay where the README reads them
    built_in = {n for n in tasks.names() if type(tasks.get(n)).__module__.startswith("mubench.tasks.")}
    assert set(gpu.tasks) == built_in - {"debug"}  # the image tasks the CPU board leaves off included
    for grid in gpu.grids():
        assert grid.profile == "standard"
        configs = expand_grid(GridSpec(grid.tasks, grid.scenarios, None, grid.seeds, grid.profile))  # never run
        for task, scenarios in board.scenarios.items():  # every CPU board cell has its paper-scale twin
            assert set(scenarios) <= {c.scenario for c in configs if c.task == task}

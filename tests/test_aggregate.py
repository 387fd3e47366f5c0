"""Aggregation over seeds (mubench.results.aggregate) on hand-built records: means, t-intervals, groups,
low-signal scenarios and the wide table the reports are made from."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from scipy import stats

from mubench.harness.record import Record, RunConfig
from mubench.hashing import canonical_json
from mubench.results.aggregate import GROUP, low_signal_scenarios, records_frame, summarise, wide
from mubench.results.report import render


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


def record(metrics: dict[str, float], *, method: str = "m", scenario: str = "s1", seed: int = 0,
           hparams: dict | None = None, status: str = "ok", task: str = "t", profile: str = "smoke") -> Record:
    config = RunConfig(task=task, task_version="1.0", scenario=scenario, method=method, method_version="1",
                       hparams=hparams or {}, seed=seed, profile=profile)
    return Record(id=config.id, config=config, status=status, error="boom" if status == "failed" else None,
                  metrics=metrics, split_id="split", metrics_version="1", mia_spec_version="1", mubench_version="0", git_commit="none",
                  hardware="test", device="cpu", seconds=0.0, peak_rss_mb=0.0)


def one_row(summary: pd.DataFrame, **where: object) -> pd.Series:
    mask = np.ones(len(summary), dtype=bool)
    for column, value in where.items():
        mask &= (summary[column] == value).to_numpy()
    rows = summary[mask]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_records_frame_is_tidy_one_row_per_record_and_metric():
    frame = records_frame([record({"forget/acc": 0.5, "test/acc": 0.9}, seed=s) for s in range(3)])
    assert list(frame.columns) == [*GROUP, "seed", "metric", "value"]
    assert len(frame) == 6
    assert sorted(frame["seed"].unique()) == [0, 1, 2]
    assert set(frame["hparams"]) == {canonical_json({})}


def test_mean_ci_and_n_over_three_seeds():
    values = [0.5, 0.6, 0.9]
    summary = summarise(records_frame([record({"forget/acc": v}, seed=s) for s, v in enumerate(values)]))
    row = one_row(summary, metric="forget/acc")
    low, high = stats.t.interval(0.95, df=len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert row["mean"] == pytest.approx(np.mean(values), rel=1e-12)
    assert row["ci95"] == pytest.approx((high - low) / 2, rel=1e-9)
    assert row["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3), rel=1e-9)
    assert row["n"] == 3
    assert list(summary.columns) == [*GROUP, "metric", "mean", "ci95", "n"]


def test_a_single_seed_has_no_interval():
    summary = summarise(records_frame([record({"forget/acc": 0.7})]))
    row = one_row(summary, metric="forget/acc")
    assert row["mean"] == 0.7
    assert row["n"] == 1
    assert math.isnan(row["ci95"])


def test_failed_records_are_left_out():
    records = [record({"forget/acc": 0.4}, seed=0), record({"forget/acc": 0.6}, seed=1),
               record({"forget/acc": 100.0}, seed=2, status="failed")]
    frame = records_frame(records)
    assert 100.0 not in set(frame["value"])
    row = one_row(summarise(frame), metric="forget/acc")
    assert row["n"] == 2
    assert row["mean"] == pytest.approx(0.5)


def test_only_failed_records_give_an_empty_summary_with_the_usual_columns():
    summary = summarise(records_frame([record({"forget/acc": 0.4}, status="failed")]))
    assert summary.empty
    assert list(summary.columns) == [*GROUP, "metric", "mean", "ci95", "n"]


def test_different_hyper_parameters_are_different_groups():
    records = [record({"forget/acc": v}, seed=s, hparams={"lr": lr})
               for lr, vals in ((0.1, (0.2, 0.4)), (0.2, (0.8, 1.0))) for s, v in enumerate(vals)]
    summary = summarise(records_frame(records))
    assert len(summary) == 2
    low = one_row(summary, hparams=canonical_json({"lr": 0.1}))
    high = one_row(summary, hparams=canonical_json({"lr": 0.2}))
    assert (low["n"], high["n"]) == (2, 2)
    assert low["mean"] == pytest.approx(0.3)
    assert high["mean"] == pytest.approx(0.9)


def test_scenarios_methods_and_metrics_are_kept_apart():
    records = [record({"forget/acc": 0.1, "test/acc": 0.9}, method="a", scenario="s1"),
               record({"forget/acc": 0.3, "test/acc": 0.7}, method="a", scenario="s2"),
               record({"forget/acc": 0.5, "test/acc": 0.5}, method="b", scenario="s1")]
    summary = summarise(records_frame(records))
    assert len(summary) == 6
    assert one_row(summary, method="a", scenario="s2", metric="test/acc")["mean"] == pytest.approx(0.7)
    assert one_row(summary, method="b", scenario="s1", metric="forget/acc")["mean"] == pytest.approx(0.5)


def signal_records(scenario: str, forget_signal: float, mia_signal: float) -> list[Record]:
    return [record({"signal/forget_acc": forget_signal, "signal/mia_loss_auc": mia_signal, "forget/acc": 0.5},
                   method=method, scenario=scenario, seed=seed)
            for method in ("identity", "finetune") for seed in (0, 1)]


def test_low_signal_flags_only_scenarios_with_little_to_forget():
    summary = summarise(records_frame(
        signal_records("quiet", 0.002, 0.005)          # nothing to forget: flagged
        + signal_records("loud", 0.30, 0.20)           # plenty: not flagged
        + signal_records("member_only", 0.001, -0.10)  # accuracy equal but a membership signal: not flagged
        + signal_records("accuracy_only", 0.05, 0.0)))  # a forget-accuracy signal only: not flagged
    low = low_signal_scenarios(summary)
    assert list(low["scenario"]) == ["quiet"]
    assert low.iloc[0]["signal/forget"] == pytest.approx(0.002)

    buffer = io.StringIO()  # the terminal report warns about it, once
    render(summary, "table", Console(file=buffer, width=300))
    assert buffer.getvalue().count("low signal") == 1
    assert "t/quiet (smoke)" in buffer.getvalue()


def test_low_signal_covers_regression_tasks_by_their_relative_forget_mae():
    quiet = [record({"signal/forget_mae": 0.007, "signal/mia_loss_auc": 0.004, "forget/mae": 4.0},
                    method="identity", scenario="sensor", seed=seed) for seed in (0, 1)]
    loud = [record({"signal/forget_mae": 0.2, "signal/mia_loss_auc": 0.0, "forget/mae": 4.0},
                   method="identity", scenario="poisoned", seed=seed) for seed in (0, 1)]
    low = low_signal_scenarios(summarise(records_frame(quiet + loud)))
    assert list(low["scenario"]) == ["sensor"] and low.iloc[0]["signal/forget"] == pytest.approx(0.007)


def test_low_signal_without_signal_metrics_is_empty():
    summary = summarise(records_frame([record({"forget/acc": 0.5})]))
    assert low_signal_scenarios(summary).empty


def test_low_signal_with_only_one_signal_metric_flags_nothing():
    # e.g. records written before signal/mia_loss_auc existed: no crash, and no evidence of low signal
    summary = summarise(records_frame([record({"signal/forget_acc": 0.001, "forget/acc": 0.5})]))
    low = low_signal_scenarios(summary)
    assert low.empty
    assert list(low.columns)[:3] == ["task", "scenario", "profile"]


def test_wide_has_one_row_per_group_and_no_phantom_combinations():
    # method a only ran on s1 and method b only on s2: the wide table must not invent a/s2 or b/s1.
    records = ([record({"forget/acc": 0.1 + s / 10, "test/acc": 0.8}, method="a", scenario="s1", seed=s) for s in (0, 1)]
               + [record({"forget/acc": 0.6, "test/acc": 0.5}, method="b", scenario="s2", seed=0)])
    summary = summarise(records_frame(records))
    table = wide(summary, ["forget/acc", "test/acc", "mia/loss_auc"])
    assert len(table) == 2
    assert sorted(zip(table["scenario"], table["method"])) == [("s1", "a"), ("s2", "b")]
    assert "mia/loss_auc" not in table.columns  # asked for, but in no record
    a = table[table["method"] == "a"].iloc[0]
    b = table[table["method"] == "b"].iloc[0]
    assert a["forget/acc"] == pytest.approx(0.15)
    assert a["forget/acc±"] == pytest.approx(stats.t.ppf(0.975, 1) * np.std([0.1, 0.2], ddof=1) / math.sqrt(2))
    assert (a["n"], b["n"]) == (2, 1)
    assert math.isnan(b["forget/acc±"])

    # the reports built on it show the same two rows
    buffer = io.StringIO()
    render(summary, "markdown", Console(file=buffer, width=200))
    lines = buffer.getvalue().strip().splitlines()
    assert len(lines) == 2 + 2  # header, rule, two rows
    assert "forget/acc" in lines[0]
    assert any("| s1 | a |" in line for line in lines) and any("| s2 | b |" in line for line in lines)


def test_wide_of_a_summary_without_the_chosen_metrics_is_empty():
    summary = summarise(records_frame([record({"forget/acc": 0.5})]))
    assert wide(summary, ["test/acc"]).empty

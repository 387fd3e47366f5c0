"""Aggregation over seeds: pure functions from records to pandas tables (no I/O).

Each (task, scenario, method, hyper-parameters, profile) group gets, per metric, the mean, the
half-width of a 95 % confidence interval from Student's t over seeds, and n (Lakens-style
reporting as in lm-evaluation-harness: every number with its uncertainty).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from mubench.hashing import canonical_json
from mubench.metrics import metrics
from mubench.record import Record

GROUP = ["task", "scenario", "method", "hparams", "profile"]
SIGNAL_ACC_MIN, SIGNAL_MIA_MIN = 0.01, 0.02


def records_frame(records: Sequence[Record]) -> pd.DataFrame:
    """One row per (successful record, metric): the tidy form every summary starts from."""
    rows = [
        {"task": r.config.task, "scenario": r.config.scenario, "method": r.config.method,
         "hparams": canonical_json(r.config.hparams), "profile": r.config.profile, "seed": r.config.seed,
         "metric": key, "value": value}
        for r in records if r.status == "ok" for key, value in r.metrics.items()
    ]
    return pd.DataFrame(rows, columns=[*GROUP, "seed", "metric", "value"])


def ci95_half_width(values: pd.Series) -> float:
    """t_{0.975, n-1} * s / sqrt(n); NaN for a single seed (no spread to estimate)."""
    n = values.count()
    if n < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, 95 % CI half-width and n per group and metric."""
    if frame.empty:
        return pd.DataFrame(columns=[*GROUP, "metric", "mean", "ci95", "n"])
    grouped = frame.groupby([*GROUP, "metric"], sort=True)["value"]
    summary = grouped.agg(mean="mean", ci95=ci95_half_width, n="count").reset_index()
    summary["n"] = summary["n"].astype(int)
    return summary


def wide(summary: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per group, columns `<metric>` (mean) and `<metric>±` (CI) for the chosen metrics."""
    chosen = summary[summary["metric"].isin(keys)]
    if chosen.empty:
        return pd.DataFrame(columns=GROUP)
    table = chosen.set_index([*GROUP, "metric"])[["mean", "ci95"]].unstack("metric")  # observed groups only
    out = pd.DataFrame(index=table.index)
    for key in keys:
        if ("mean", key) in table.columns:
            out[key] = table[("mean", key)]
            out[f"{key}±"] = table[("ci95", key)]
    out["n"] = chosen.groupby(GROUP)["n"].max()
    return out.reset_index()


def low_signal_scenarios(summary: pd.DataFrame) -> pd.DataFrame:
    """Scenarios where the original barely differs from the oracle: nothing to forget, so rankings
    there say little (forget-accuracy difference < 0.01 and membership AUC difference < 0.02)."""
    signal = summary[summary["metric"].isin(["signal/forget_acc", "signal/mia_loss_auc"])]
    if signal.empty:
        return pd.DataFrame(columns=["task", "scenario", "profile", "signal/forget_acc", "signal/mia_loss_auc"])
    per = signal.pivot_table(index=["task", "scenario", "profile"], columns="metric", values="mean", aggfunc="mean")
    per = per.reindex(columns=["signal/forget_acc", "signal/mia_loss_auc"])  # one of them absent: not flagged
    low = (per["signal/forget_acc"].abs() < SIGNAL_ACC_MIN) & (per["signal/mia_loss_auc"].abs() < SIGNAL_MIA_MIN)
    return per[low].reset_index()


def direction_of(key: str) -> str:
    return metrics.get(key).direction if key in metrics else "info"

"""Aggregation over seeds: pure functions from records to pandas tables (no I/O).

Each (task, scenario, method, hyper-parameters, profile) group gets, per metric, the mean, the
half-width of a 95 % confidence interval from Student's t over seeds, and n (Lakens-style
reporting as in lm-evaluation-harness: every number with its uncertainty).

When a store holds several hyper-parameter settings of a method (a sweep), `select_settings`
applies a selection protocol before the ordinary tables are made: `default` keeps the records at
the method's default hyper-parameters, `val` keeps, per (task, scenario, method, profile, seed),
the setting with the best validation accuracy (never a test or forget metric), and `all` keeps
every setting as its own row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mubench.harness.record import Record
from mubench.hashing import canonical_json
from mubench.metrics import metrics

GROUP = ["task", "scenario", "method", "hparams", "profile"]
SIGNAL_ACC_MIN, SIGNAL_MIA_MIN = 0.01, 0.02
SELECTIONS = {  # protocol: how a table made with it says so
    "default": "each method's default hyper-parameters",
    "val": "the best val/acc per seed",
    "all": "every hyper-parameter setting as its own row",
}
SELECT_BY = "val/acc"
CELL = ["task", "scenario", "method", "profile"]  # a method's runs in one scenario, over settings and seeds


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
    there say little (forget-accuracy difference < 0.01, or on a regression task forget MAE within
    1 % of the oracle's, and membership AUC difference < 0.02)."""
    columns = ["signal/forget_acc", "signal/forget_mae", "signal/mia_loss_auc"]
    signal = summary[summary["metric"].isin(columns)]
    if signal.empty:
        return pd.DataFrame(columns=["task", "scenario", "profile", "signal/forget", "signal/mia_loss_auc"])
    per = signal.pivot_table(index=["task", "scenario", "profile"], columns="metric", values="mean", aggfunc="mean")
    per = per.reindex(columns=columns)
    # a scenario has one forgetting signal: accuracy (classification) or relative MAE (regression)
    per["signal/forget"] = per["signal/forget_acc"].fillna(per["signal/forget_mae"])
    low = (per["signal/forget"].abs() < SIGNAL_ACC_MIN) & (per["signal/mia_loss_auc"].abs() < SIGNAL_MIA_MIN)
    return per[low][["signal/forget", "signal/mia_loss_auc"]].reset_index()


def direction_of(key: str) -> str:
    if key in metrics:
        return metrics.get(key).direction
    from mubench.continual.metrics import DIRECTIONS  # stream metrics are computed per stream, not registered

    return {"chance": "oracle", "zero": "oracle"}.get(DIRECTIONS.get(key, "info"), DIRECTIONS.get(key, "info"))


def registry_defaults(profile: str | None = None) -> dict[str, dict[str, Any]]:
    """Every registered method's default hyper-parameters in `profile` (unlearning methods, whose
    defaults may differ by profile, and continual-stream methods), cast as a run's config stores them."""
    from mubench.continual.methods import continual_methods
    from mubench.methods import methods

    defaults = {name: dict(cls.resolve()) for name, cls in continual_methods.items()}
    defaults.update({name: dict(cls.resolve(profile=profile)) for name, cls in methods.items()})
    return defaults


def select_settings(frame: pd.DataFrame, protocol: str,
                    defaults: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of a tidy `records_frame` that a selection protocol keeps, and the cells it drops.

    `default`: the rows whose hyper-parameters equal the method's defaults (`defaults`, by method
    name, for every profile; default: the method registry's defaults of each row's profile).
    `val`: per (task, scenario, method, profile, seed), the setting with the highest `val/acc` (ties: the default setting, then the first in canonical JSON
    order; a lone setting is kept without one); the `hparams` column then holds the chosen setting,
    or, where seeds chose differently, the JSON list of their settings in seed order, so that each
    cell aggregates into one row. `all`: everything, unchanged.

    Returns (kept rows, omitted cells as a frame of task, scenario, method, profile, reason).
    """
    if protocol not in SELECTIONS:
        raise ValueError(f"unknown selection protocol {protocol!r}; valid: {', '.join(SELECTIONS)}")
    omitted_columns = [*CELL, "reason"]
    if frame.empty or protocol == "all":
        return frame, pd.DataFrame(columns=omitted_columns)
    default_json = {(name, profile): canonical_json(dict(values))
                    for profile in frame["profile"].unique()
                    for name, values in (registry_defaults(profile) if defaults is None else defaults).items()}
    is_default = frame["hparams"] == pd.Series([default_json.get(key) for key in zip(frame["method"], frame["profile"])],
                                               index=frame.index, dtype=object)
    cells = frame[CELL].drop_duplicates()
    if protocol == "default":
        kept = frame[is_default]
    else:
        kept = _best_on_validation(frame, is_default)
    dropped = cells.merge(kept[CELL].drop_duplicates(), how="left", indicator=True)
    dropped = dropped[dropped["_merge"] == "left_only"].drop(columns="_merge")
    if protocol == "default":
        known = dropped["method"].isin({name for name, _ in default_json})
        dropped["reason"] = np.where(known, "no record at its defaults", "defaults unknown (method not registered)")
    else:
        dropped["reason"] = f"several settings and no {SELECT_BY} to choose by"
    omitted = dropped.sort_values(CELL).reset_index(drop=True)
    return kept.reset_index(drop=True), omitted[omitted_columns]


def _best_on_validation(frame: pd.DataFrame, is_default: pd.Series) -> pd.DataFrame:
    runs = frame[[*CELL, "seed", "hparams"]].assign(is_default=is_default).drop_duplicates([*CELL, "seed", "hparams"])
    scores = frame[frame["metric"] == SELECT_BY][[*CELL, "seed", "hparams", "value"]]
    runs = runs.merge(scores, how="left", on=[*CELL, "seed", "hparams"])
    settings = runs.groupby([*CELL, "seed"])["hparams"].transform("size")
    runs = runs[runs["value"].notna() | (settings == 1)]  # cannot choose without the score, unless alone
    runs = runs.sort_values([*CELL, "seed", "value", "is_default", "hparams"],
                            ascending=[True] * 5 + [False, False, True], na_position="last")
    chosen = runs.drop_duplicates([*CELL, "seed"], keep="first")[[*CELL, "seed", "hparams"]]
    kept = frame.merge(chosen, on=[*CELL, "seed", "hparams"], how="inner")
    labels = chosen.sort_values("seed").groupby(CELL)["hparams"].agg(_selected_label).rename("label").reset_index()
    kept = kept.merge(labels, on=CELL, how="left")
    kept["hparams"] = kept.pop("label")
    return kept[frame.columns]


def _selected_label(settings: pd.Series) -> str:
    """The chosen setting's JSON if every seed chose it, else the JSON list of the seeds' choices."""
    values = list(settings)
    if len(set(values)) == 1:
        return values[0]
    return canonical_json([json.loads(v) for v in values])

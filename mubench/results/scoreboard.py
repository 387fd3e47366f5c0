"""The board's ranking rule: pure functions from records to tables (no I/O).

- **Signal.** A scenario is ranked only where there is something to forget, measurably: one of
  its forgetting components (the original's minus the oracle's forget accuracy, or relative
  forget MAE on regression tasks; and loss-attack AUC) has a mean over the reported seeds whose
  95 % t-interval excludes 0 and whose size reaches the component's floor
  (mubench.metrics.objectives.SIGNAL_FLOORS). Other scenarios are shown, not ranked.
- **Score.** Each method's `score` (forgetting x utility, mubench.metrics.objectives) per cell:
  mean over seeds, 95 % t-interval half-width, n.
- **Rank bands.** A method's rank is 1 + the number of methods whose interval lies wholly above
  its own (the rule of Chatbot Arena's leaderboard, Chiang et al. 2024), so methods whose
  intervals overlap share a rank, and a rank says which differences are more than seed noise.
  The oracle (`retrain`) and `identity` are reference rows: shown, never ranked.
- **Unusable runs.** A reported run whose method returned an unusable model (non-finite weights
  or outputs, another architecture: the harness's MethodOutputError) scores 0 on its seed, with
  utility 0, as a model destroyed; it is not dropped, which would rank a method by its lucky
  seeds. The cell's flags say how many seeds were unusable.
- **Flags.** `no effect`: the method's forgetting interval reaches 0, doing nothing's value, in a
  ranked scenario; `one seed`: no interval can be given; `no signal`: the scenario is not ranked; `k unusable`:
  k seeds' runs returned an unusable model.
- **Summary.** Per method and task: the mean of its scores over the task's ranked scenarios,
  averaged per seed first so that the interval is over seeds; the mean rank over the cells the
  method covers, with how many.
- **Tuning.** `choose_settings` picks each method's setting per cell on the development seed's
  records by `score/val` (never a test metric, never a reported seed).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mubench.harness.record import Record
from mubench.hashing import canonical_json
from mubench.metrics.objectives import SIGNAL_FLOORS
from mubench.results.aggregate import ci95_half_width, records_frame, registry_defaults

SCENARIO = ["task", "scenario", "profile"]
SCORE, SELECT_BY = "score", "score/val"
REFERENCE_METHODS = ("retrain", "identity")
SIGNALS = {"signal/forget_acc": SIGNAL_FLOORS["acc"], "signal/forget_mae": SIGNAL_FLOORS["mae"],
           "signal/mia_loss_auc": SIGNAL_FLOORS["auc"]}
SIGNAL_COLUMNS = [*SCENARIO, "signal", "mean", "ci95", "n", "significant"]
SCORE_COLUMNS = [*SCENARIO, "method", "hparams", "score", "score_ci95", "n", "forgetting", "forgetting_ci95",
                 "utility", "reference", "ranked", "rank", "flags"]
SUMMARY_COLUMNS = ["profile", "method", "task", "score", "score_ci95", "n", "cells"]
CHOICE_COLUMNS = [*SCENARIO, "method", "hparams", "value", "searched", "reason"]


UNUSABLE_ERROR = "MethodOutputError"


def unusable(record: Record) -> bool:
    """Whether `record` failed because the method returned an unusable model (not because of
    infrastructure: a dead worker or missing data is no verdict on the method)."""
    return record.status != "ok" and (record.error or "").startswith(UNUSABLE_ERROR)


def scored_frame(records: Sequence[Record]) -> pd.DataFrame:
    """records_frame of the successful records, plus `score` 0 and `objective/utility` 0 for each
    unusable run (see the module's docstring)."""
    frame = records_frame(records)
    rows = [{"task": r.config.task, "scenario": r.config.scenario, "method": r.config.method,
             "hparams": canonical_json(r.config.hparams), "profile": r.config.profile, "seed": r.config.seed,
             "metric": key, "value": 0.0}
            for r in records if unusable(r) for key in (SCORE, "objective/utility")]
    return pd.concat([frame, pd.DataFrame(rows, columns=frame.columns)], ignore_index=True) if rows else frame


def signal_table(records: Sequence[Record]) -> pd.DataFrame:
    """Per scenario and signal metric: mean, 95 % half-width and n over seeds, and whether it is
    significant (see the module's docstring). Every record of a seed carries the same signal (the
    same original and oracle), so each seed counts once."""
    frame = records_frame(records)
    frame = frame[frame["metric"].isin(SIGNALS)]
    if frame.empty:
        return pd.DataFrame(columns=SIGNAL_COLUMNS)
    per_seed = frame.groupby([*SCENARIO, "metric", "seed"], sort=True)["value"].first().reset_index()
    table = per_seed.groupby([*SCENARIO, "metric"], sort=True)["value"].agg(
        mean="mean", ci95=ci95_half_width, n="count").reset_index().rename(columns={"metric": "signal"})
    return with_significance(table)


def with_significance(table: pd.DataFrame) -> pd.DataFrame:
    """`table` (scenario, signal, mean, ci95, n) with its `significant` column: n >= 2, |mean| at
    least the signal's floor and above the 95 % half-width."""
    table = table.copy()
    floors = table["signal"].map(SIGNALS)
    size = table["mean"].abs()
    table["significant"] = (table["n"] >= 2) & (size >= floors) & (size > table["ci95"].fillna(np.inf))
    table["n"] = table["n"].astype(int)
    return table[SIGNAL_COLUMNS]


def scenarios_with_signal(signals: pd.DataFrame) -> set[tuple[str, str, str]]:
    """(task, scenario, profile) of the scenarios with at least one significant signal."""
    chosen = signals[signals["significant"].astype(bool)]
    return {tuple(row) for row in chosen[SCENARIO].itertuples(index=False)}


def score_table(records: Sequence[Record]) -> pd.DataFrame:
    """One row per scenario and method: its setting, score mean, 95 % half-width and n over seeds,
    mean forgetting and utility, whether it is a reference row, whether the scenario is ranked,
    the rank band and the flags. `records` are the reported runs, one setting per method and seed."""
    frame = scored_frame(records)
    wanted = frame[frame["metric"].isin([SCORE, "objective/forgetting", "objective/utility"])]
    if wanted.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    keys = [*SCENARIO, "method"]
    stats = wanted.pivot_table(index=[*keys, "seed"], columns="metric", values="value", aggfunc="mean")
    stats = stats.reindex(columns=[SCORE, "objective/forgetting", "objective/utility"]).reset_index()
    grouped = stats.groupby(keys, sort=True)
    table = grouped.agg(score=(SCORE, "mean"), score_ci95=(SCORE, ci95_half_width), n=("seed", "nunique"),
                        forgetting=("objective/forgetting", "mean"),
                        forgetting_ci95=("objective/forgetting", ci95_half_width),
                        utility=("objective/utility", "mean")).reset_index()
    settings = frame.sort_values("seed").drop_duplicates([*keys, "seed"]).groupby(keys)["hparams"].agg(_setting_label)
    table = table.merge(settings.rename("hparams").reset_index(), on=keys, how="left")
    failed = Counter((r.config.task, r.config.scenario, r.config.profile, r.config.method)
                     for r in records if unusable(r))
    table["unusable"] = [failed.get(tuple(key), 0) for key in table[keys].itertuples(index=False)]
    return rank_cells(table, scenarios_with_signal(signal_table(records)))


def rank_cells(table: pd.DataFrame, with_signal: set[tuple[str, str, str]]) -> pd.DataFrame:
    """The ranking rule over per-cell summaries (scenario, method, hparams, score, score_ci95, n,
    forgetting, forgetting_ci95, utility), whether they come from records or from entries:
    reference rows, ranked scenarios, rank bands, flags; sorted by scenario, then rank."""
    table = table.copy()
    table["n"] = table["n"].astype(int)
    if "reference" not in table.columns:  # a caller may say which rows are references (entries of a board)
        table["reference"] = table["method"].isin(REFERENCE_METHODS)
    table["ranked"] = [tuple(key) in with_signal for key in table[SCENARIO].itertuples(index=False)]
    table["rank"] = np.nan
    for _, cell in table[table["ranked"] & ~table["reference"] & table["score"].notna()].groupby(SCENARIO):
        table.loc[cell.index, "rank"] = rank_bands(cell["score"], cell["score_ci95"])
    if "unusable" not in table.columns:
        table["unusable"] = 0
    table["flags"] = [_flags(row) for row in table.itertuples(index=False)]
    order = [*SCENARIO, "rank", "score", "method"]
    return (table[SCORE_COLUMNS].sort_values(order, ascending=[True] * 4 + [False, True], na_position="last")
            .reset_index(drop=True))


def rank_bands(means: pd.Series, half_widths: pd.Series) -> pd.Series:
    """1 + how many others' intervals lie wholly above each one's (a missing half-width, one
    seed: the mean itself)."""
    width = half_widths.fillna(0.0).to_numpy(dtype=float)
    value = means.to_numpy(dtype=float)
    low, high = value - width, value + width
    ranks = [1 + int(np.sum(low > high[i])) for i in range(len(value))]
    return pd.Series(ranks, index=means.index, dtype=float)


def _flags(row: Any) -> str:
    flags = []
    if not row.ranked:
        flags.append("no signal")
    elif not row.reference and _no_effect(row.forgetting, row.forgetting_ci95, row.n):
        flags.append("no effect")
    if row.n == 1:
        flags.append("one seed")
    if row.unusable:
        flags.append(f"{int(row.unusable)} unusable")
    return ", ".join(flags)


def _no_effect(forgetting: float, half_width: float | None, n: int) -> bool:
    """Whether forgetting is indistinguishable from doing nothing's 0 over the seeds."""
    if forgetting != forgetting:  # undefined on every seed
        return True
    if n < 2 or half_width is None or half_width != half_width:
        return forgetting < SIGNAL_FLOORS["acc"]
    return forgetting - half_width <= SIGNAL_FLOORS["acc"]


def _setting_label(settings: pd.Series) -> str:
    values = list(settings)
    return values[0] if len(set(values)) == 1 else canonical_json([json.loads(v) for v in values])


def summary_table(records: Sequence[Record]) -> pd.DataFrame:
    """Per profile, method and task: the mean score over the task's ranked scenarios (per seed,
    then mean and 95 % half-width over seeds), n seeds and the number of scenarios; reference
    rows included. Methods missing from a ranked scenario of the task get no task score (a
    partial average would not compare)."""
    scores = score_table(records)
    ranked = scores[scores["ranked"]]
    if ranked.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    frame = scored_frame(records)
    frame = frame[frame["metric"] == SCORE]
    cells = ranked[SCENARIO].drop_duplicates()
    frame = frame.merge(cells, on=SCENARIO)
    needed = cells.groupby(["task", "profile"]).size().rename("needed").reset_index()
    per_seed = frame.groupby(["profile", "method", "task", "seed"]).agg(
        value=("value", "mean"), cells=("scenario", "nunique")).reset_index()
    per_seed = per_seed.merge(needed, on=["task", "profile"])
    per_seed = per_seed[per_seed["cells"] == per_seed["needed"]]
    table = per_seed.groupby(["profile", "method", "task"]).agg(
        score=("value", "mean"), score_ci95=("value", ci95_half_width), n=("value", "count"),
        cells=("cells", "first")).reset_index()
    table["n"] = table["n"].astype(int)
    table["cells"] = table["cells"].astype(int)
    return table[SUMMARY_COLUMNS]


def mean_rank_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Per profile and method (reference rows excluded): the mean of its rank bands over the
    ranked cells it covers, and how many it covers; best first."""
    ranked = scores[scores["rank"].notna()]
    if ranked.empty:
        return pd.DataFrame(columns=["profile", "method", "mean_rank", "cells"])
    table = ranked.groupby(["profile", "method"]).agg(mean_rank=("rank", "mean"), cells=("rank", "count")).reset_index()
    return table.sort_values(["profile", "mean_rank", "method"]).reset_index(drop=True)


def choose_settings(records: Sequence[Record], dev_seed: int,
                    defaults: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """The tuning protocol's choice: per scenario and method, the setting with the highest
    `score/val` on the development seed's records (ties: the method's defaults, then the first in
    canonical JSON order). Only records of `dev_seed` are read, and of them only `score/val`, so
    no test metric and no reported seed can change a choice. A method none of whose settings
    has a `score/val` keeps its defaults (reason given)."""
    frame = records_frame([r for r in records if r.config.seed == dev_seed])
    if frame.empty:
        return pd.DataFrame(columns=CHOICE_COLUMNS)
    keys = [*SCENARIO, "method"]
    runs = frame[keys + ["hparams"]].drop_duplicates()
    searched = runs.groupby(keys).size().rename("searched").reset_index()
    values = frame[frame["metric"] == SELECT_BY][[*keys, "hparams", "value"]]
    runs = runs.merge(values, on=[*keys, "hparams"], how="left")
    default_json = {(name, profile): canonical_json(dict(values))
                    for profile in runs["profile"].unique()
                    for name, values in (registry_defaults(profile) if defaults is None else defaults).items()}
    runs["is_default"] = [default_json.get((m, p)) == h for m, p, h in zip(runs["method"], runs["profile"], runs["hparams"])]
    runs = runs.sort_values([*keys, "value", "is_default", "hparams"], ascending=[True] * 4 + [False, False, True],
                            na_position="last")
    chosen = runs.drop_duplicates(keys, keep="first").merge(searched, on=keys)
    chosen["reason"] = np.where(chosen["value"].notna(), f"best {SELECT_BY} on seed {dev_seed}",
                                f"no setting has a {SELECT_BY} on seed {dev_seed}: defaults")
    missing = chosen["value"].isna()
    chosen.loc[missing, "hparams"] = [default_json.get((m, p), h) for m, p, h in
                                      zip(chosen.loc[missing, "method"], chosen.loc[missing, "profile"],
                                          chosen.loc[missing, "hparams"])]
    chosen["searched"] = chosen["searched"].astype(int)
    return chosen[CHOICE_COLUMNS].reset_index(drop=True)


__all__ = ["choose_settings", "mean_rank_table", "rank_bands", "rank_cells", "scenarios_with_signal", "score_table",
           "scored_frame", "signal_table", "summary_table", "unusable", "with_significance"]

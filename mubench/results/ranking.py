"""Hypervolumes of hyper-parameter sweeps, and method rankings: pure functions from records to tables.

Hypervolume: per (task, scenario, method, profile, seed), each successful record of the sweep is a
point of the two objectives (mubench.metrics.objectives, each in [0, 1], higher is better); the
hypervolume of their Pareto front above the fixed reference point (mubench.results.tradeoff) is one number
per seed, aggregated over seeds as everything else is (mean, 95 % t-interval, n).

Ranks: per (task, scenario, profile), methods are ranked by mean hypervolume (1 = best) and by a
headline metric in its own direction, on the settings a selection protocol picks
(mubench.results.aggregate.select_settings); ties share the mean of their ranks (pandas
`rank(method="average")`). A metric whose target is the oracle's value is ranked by its gap to the
oracle (forget/acc by gap/forget_acc). The mean rank of a method is the plain mean over the
(task, scenario) cells in which it has a rank.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from mubench.errors import MubenchError
from mubench.harness.record import Record
from mubench.metrics import metrics
from mubench.metrics.objectives import OBJECTIVES
from mubench.results.aggregate import CELL, ci95_half_width, records_frame, select_settings
from mubench.results.tradeoff import hypervolume, pareto_front

HV_PER_SEED = [*CELL, "seed", "hv", "points", "front"]
HV_TABLE = [*CELL, "hv_mean", "hv_ci95", "n", "points", "front"]
RANKS = ["task", "scenario", "profile", "method", "hv_mean", "hv_rank", "metric", "metric_mean", "metric_rank"]
MEAN_RANKS = ["profile", "method", "hv_rank", "metric_rank", "hv_cells", "metric_cells"]
RANKED_SELECTIONS = ("default", "val")


def objective_points(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run (cell, seed, hparams) with the two objectives as columns; runs missing any
    of them (records older than the objectives) are left out."""
    chosen = frame[frame["metric"].isin(OBJECTIVES)]
    if chosen.empty:
        return pd.DataFrame(columns=[*CELL, "seed", "hparams", *OBJECTIVES])
    wide = chosen.pivot_table(index=[*CELL, "seed", "hparams"], columns="metric", values="value", aggfunc="mean")
    wide = wide.reindex(columns=list(OBJECTIVES)).dropna()
    wide.columns.name = None
    return wide.reset_index()


def hypervolume_per_seed(records: Sequence[Record]) -> pd.DataFrame:
    """Per (task, scenario, method, profile, seed): hypervolume of the sweep's points, the number
    of points (settings run) and of Pareto-optimal ones."""
    return _per_seed(objective_points(records_frame(records)))


def _per_seed(points: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for key, group in points.groupby([*CELL, "seed"], sort=True):
        values = group[list(OBJECTIVES)].to_numpy(dtype=float)
        front = pareto_front(values)
        rows.append({**dict(zip([*CELL, "seed"], key)), "hv": hypervolume(values[front]),
                     "points": len(values), "front": len(front)})
    table = pd.DataFrame(rows, columns=HV_PER_SEED)
    return table.astype({"seed": int, "points": int, "front": int}) if rows else table


def hypervolume_table(records: Sequence[Record]) -> pd.DataFrame:
    """Per (task, scenario, method, profile): hypervolume mean over seeds, 95 % CI half-width, n
    seeds, points (distinct settings over all seeds) and front (mean Pareto-front size per seed)."""
    points = objective_points(records_frame(records))
    per_seed = _per_seed(points)
    if per_seed.empty:
        return pd.DataFrame(columns=HV_TABLE)
    grouped = per_seed.groupby(CELL, sort=True)
    table = grouped.agg(hv_mean=("hv", "mean"), hv_ci95=("hv", ci95_half_width), n=("hv", "count"),
                        front=("front", "mean")).reset_index()
    settings = points.groupby(CELL)["hparams"].nunique().rename("points")
    table = table.merge(settings.reset_index(), on=CELL, how="left")
    table["n"] = table["n"].astype(int)
    table["points"] = table["points"].astype(int)
    return table[HV_TABLE]


def ranking_key(metric: str) -> tuple[str, bool]:
    """(the metric actually ranked, ascending) for a headline metric: higher-is-better metrics rank
    descending, lower-is-better ascending, oracle-targeted ones by their gap metric ascending."""
    if metric not in metrics:
        raise MubenchError(f"cannot rank by {metric!r}: no such metric")
    direction = metrics.get(metric).direction
    if direction == "higher":
        return metric, False
    if direction == "lower":
        return metric, True
    if direction == "oracle":
        gap = "gap/" + metric.replace("/", "_")
        if gap not in metrics:
            raise MubenchError(f"cannot rank by {metric!r}: its best value is the oracle's, and there is no {gap} to rank by")
        return gap, True
    raise MubenchError(f"cannot rank by {metric!r}: it is context ({direction}), not a score")


def rank_table(records: Sequence[Record], metric: str = "forget/acc", select: str = "default",
               defaults: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (task, scenario, profile) and method: mean hypervolume and its rank over every setting,
    and the (ranked form of the) headline metric's mean over seeds and its rank on the settings
    `select` picks. Returns (ranks, the cells `select` omitted, as select_settings reports them)."""
    if select not in RANKED_SELECTIONS:
        raise ValueError(f"ranks need one setting per method: select one of {', '.join(RANKED_SELECTIONS)}, not {select!r}")
    key, ascending = ranking_key(metric)
    cell = ["task", "scenario", "profile"]
    hv = hypervolume_table(records)[[*CELL, "hv_mean"]]
    hv["hv_rank"] = hv.groupby(cell)["hv_mean"].rank(ascending=False, method="average")
    selected, omitted = select_settings(records_frame(records), select, defaults)
    scores = selected[selected["metric"] == key].groupby(CELL)["value"].mean().rename("metric_mean").reset_index()
    scores["metric_rank"] = scores.groupby(cell)["metric_mean"].rank(ascending=ascending, method="average")
    ranks = hv.merge(scores, on=CELL, how="outer")
    ranks["metric"] = key
    ranks = ranks[RANKS].sort_values([*cell, "method"]).reset_index(drop=True)
    return ranks.astype({c: float for c in ("hv_mean", "hv_rank", "metric_mean", "metric_rank")}), omitted


def mean_ranks(ranks: pd.DataFrame) -> pd.DataFrame:
    """Per profile and method: the mean of its ranks over (task, scenario) cells and how many cells
    each mean is over; best hypervolume rank first."""
    if ranks.empty:
        return pd.DataFrame(columns=MEAN_RANKS)
    grouped = ranks.groupby(["profile", "method"], sort=True)
    table = grouped.agg(hv_rank=("hv_rank", "mean"), metric_rank=("metric_rank", "mean"),
                        hv_cells=("hv_rank", "count"), metric_cells=("metric_rank", "count")).reset_index()
    table = table.sort_values(["profile", "hv_rank", "metric_rank", "method"], na_position="last")
    return table[MEAN_RANKS].reset_index(drop=True)


__all__ = ["hypervolume_per_seed", "hypervolume_table", "mean_ranks", "objective_points", "rank_table", "ranking_key"]

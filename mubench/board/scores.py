"""The board's ranking rule over committed entries: what the README, the docs page, the exports
and the app show.

The rule is mubench.results.scoreboard's, applied to the per-cell summaries the entries hold
(score mean, 95 % half-width, n and per-seed values) instead of to records, so the board reads
the same from a clone with no store: rank bands per task x scenario x profile, `retrain` and
`identity` as reference rows, scenarios ranked only where a forgetting signal is significant over
the seeds (every entry of a cell carries the same signal: the same originals and oracles), and
flags. Summaries group cells by task or by intervention domain (privacy, resilience, fairness,
adaptability), each a mean over the group's ranked cells, taken per seed and then over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mubench.board.tables import Board, Entry, _entry_fields
from mubench.results.aggregate import ci95_half_width
from mubench.results.scoreboard import (
    REFERENCE_METHODS,
    SCORE,
    SIGNALS,
    rank_cells,
    scenarios_with_signal,
    with_significance,
)

CELL = ["task", "scenario", "profile"]
CELL_COLUMNS = ["entry", "method", "status", "access", "access_level", *CELL, "domain", "hparams", "score",
                "score_ci95", "n", "forgetting", "forgetting_ci95", "utility", "work", "rte", "hypervolume",
                "reference", "ranked", "rank", "flags", "unusable"]
GROUPINGS = ("task", "domain")


def domain_of(task: str, scenario: str) -> str:
    """The scenario's intervention domain, from the registry ('' for a task or scenario not registered)."""
    from mubench.tasks.base import tasks

    try:
        return tasks.get(task).spec.scenario(scenario).domain
    except Exception:  # noqa: BLE001 - an unknown task or scenario has no domain; the entry was checked elsewhere
        return ""


def _summary(result: Any, key: str) -> tuple[float, float, int, list[float]]:
    metric = result.metrics.get(key)
    if metric is None:
        return float("nan"), float("nan"), 0, []
    return metric.mean, float("nan") if metric.ci95 is None else metric.ci95, metric.n, list(metric.values)


def entry_cells(entries: Sequence[Entry]) -> pd.DataFrame:
    """One row per entry and cell with a score: its summaries, before ranking."""
    rows = []
    for entry in entries:
        fields = _entry_fields(entry)
        for result in entry.submission.results:
            score, score_ci, n, _ = _summary(result, SCORE)
            if n == 0:
                continue  # an entry made before the score, or a cell with no signal on any seed
            forgetting, forgetting_ci, _, _ = _summary(result, "objective/forgetting")
            rows.append({**{k: fields[k] for k in ("entry", "method", "status", "access", "access_level")},
                         "task": result.task, "scenario": result.scenario, "profile": result.profile,
                         "domain": domain_of(result.task, result.scenario), "hparams": result.hparams,
                         "score": score, "score_ci95": score_ci, "n": len(result.splits),
                         "forgetting": forgetting, "forgetting_ci95": forgetting_ci,
                         "utility": _summary(result, "objective/utility")[0],
                         "work": _summary(result, "cost/work")[0], "rte": _summary(result, "cost/rte")[0],
                         "hypervolume": result.hypervolume.mean if result.hypervolume is not None else float("nan"),
                         "unusable": result.unusable})
    return pd.DataFrame(rows, columns=[c for c in CELL_COLUMNS if c not in ("reference", "ranked", "rank", "flags")])


def signal_frame(entries: Sequence[Entry]) -> pd.DataFrame:
    """Per cell and signal metric, from the entry with the most seeds: mean, ci95, n, significant."""
    rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for entry in entries:
        for result in entry.submission.results:
            for key in SIGNALS:
                metric = result.metrics.get(key)
                if metric is None:
                    continue
                cell = (result.task, result.scenario, result.profile, key)
                if cell not in rows or metric.n > rows[cell]["n"]:
                    rows[cell] = {"task": cell[0], "scenario": cell[1], "profile": cell[2], "signal": key,
                                  "mean": metric.mean, "ci95": np.nan if metric.ci95 is None else metric.ci95,
                                  "n": metric.n}
    table = pd.DataFrame(list(rows.values()), columns=[*CELL, "signal", "mean", "ci95", "n"])
    return with_significance(table) if not table.empty else table.assign(significant=pd.Series(dtype=bool))


def ranked_cells(board: Board, entries: Sequence[Entry] | None = None) -> pd.DataFrame:
    """Every entry's cells ranked by the board's rule (`entries`: a filtered subset of the board;
    the signal is always read from every entry)."""
    chosen = list(board.entries if entries is None else entries)
    cells = entry_cells(chosen)
    if cells.empty:
        return pd.DataFrame(columns=CELL_COLUMNS)
    signal = scenarios_with_signal(signal_frame(board.entries))
    # ranked by entry label (a method may be both a submission and local runs), references by method
    by_entry = cells.assign(reference=cells["method"].isin(REFERENCE_METHODS), method=cells["entry"])
    ranked = rank_cells(by_entry.drop(columns=["entry"]), signal).rename(columns={"method": "entry"})
    extra = cells[[*CELL, "entry", "method", "status", "access", "access_level", "domain", "work", "rte", "hypervolume",
                   "unusable"]]
    return ranked.merge(extra, on=[*CELL, "entry"], how="left")[CELL_COLUMNS]


def _per_seed(entry: Entry, cells: set[tuple[str, str, str]]) -> dict[int, list[float]]:
    """The entry's per-seed scores in `cells`: {seed: [score of each cell]}."""
    values: dict[int, list[float]] = {}
    for result in entry.submission.results:
        if (result.task, result.scenario, result.profile) not in cells or SCORE not in result.metrics:
            continue
        metric = result.metrics[SCORE]
        seeds = [s.seed for s in result.splits]
        for seed, value in zip(seeds, metric.values):
            values.setdefault(seed, []).append(value)
    return values


def summary_table(board: Board, ranked: pd.DataFrame, by: str = "task") -> pd.DataFrame:
    """Methods as rows, groups (tasks or domains) as columns: the mean score over the group's ranked
    cells (a method missing one of them gets none there), as 'mean ± ci' with n seeds; then the mean
    rank over the cells the method covers, their number, access and status. Reference rows last."""
    if by not in GROUPINGS:
        raise ValueError(f"group by one of {', '.join(GROUPINGS)}, not {by!r}")
    if ranked.empty:
        return pd.DataFrame(columns=["entry", "access", "status", "mean rank", "cells"])
    ranked_only = ranked[ranked["ranked"]]
    groups = sorted(ranked_only[by].unique())
    rows = []
    for label in ranked["entry"].unique():
        entry = board.entry(label)
        mine = ranked[ranked["entry"] == label].iloc[0]
        row: dict[str, Any] = {"entry": label, "access": mine["access"], "status": mine["status"],
                               "reference": bool(mine["reference"])}
        for group in groups:
            needed = {tuple(c) for c in ranked_only[ranked_only[by] == group][CELL].drop_duplicates().itertuples(index=False)}
            covered = {tuple(c) for c in ranked_only[(ranked_only[by] == group) & (ranked_only["entry"] == label)][CELL]
                       .itertuples(index=False)}
            per_seed = _per_seed(entry, needed) if covered == needed else {}
            means = [float(np.mean(v)) for v in per_seed.values() if len(v) == len(needed)]
            row[group] = (float(np.mean(means)), ci95_half_width(pd.Series(means)), len(means)) if means else None
        ranks = ranked[(ranked["entry"] == label) & ranked["rank"].notna()]["rank"]
        row["mean rank"] = float(ranks.mean()) if len(ranks) else float("nan")
        row["cells"] = int(len(ranks))
        rows.append(row)
    table = pd.DataFrame(rows)
    table = table.sort_values(["reference", "mean rank", "entry"], na_position="last").reset_index(drop=True)
    return table[["entry", "access", "status", *groups, "mean rank", "cells", "reference"]]


def format_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The summary with 'mean ± ci' cells, 'ref' for reference rows' ranks, '–' where absent."""
    shown = table.copy()
    fixed = {"entry", "access", "status", "mean rank", "cells", "reference"}
    for column in [c for c in shown.columns if c not in fixed]:
        shown[column] = [_score_text(v) for v in shown[column]]
    shown["mean rank"] = ["ref" if ref else ("–" if r != r else f"{r:.2f}")
                          for r, ref in zip(shown["mean rank"], shown["reference"])]
    shown["cells"] = ["" if ref else str(c) for c, ref in zip(shown["cells"], shown["reference"])]
    return shown.drop(columns=["reference"])


def _score_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    mean, ci, n = value
    return f"{mean:.3f}" if ci != ci else f"{mean:.3f} ± {ci:.3f}"


def format_cells(ranked: pd.DataFrame, audit: pd.DataFrame | None = None) -> pd.DataFrame:
    """One cell's (or several cells') ranking, formatted: rank ('ref', '–'), entry, access, status,
    score ± CI, forgetting, utility, n, hypervolume of the search, work, flags; and, where `audit`
    (mubench.results.audit.board_audit) holds a row for one of these cells, a column `U-LiRA`:
    the population audit's accuracy with its 95 % interval per method ('–' for a method not
    audited there)."""
    def number(value: float, digits: int = 3) -> str:
        return "–" if value != value else f"{value:.{digits}f}"

    table = pd.DataFrame({
        "rank": ["ref" if ref else ("–" if r != r else f"{r:.0f}") for r, ref in zip(ranked["rank"], ranked["reference"])],
        "method": ranked["entry"].to_numpy(), "access": ranked["access"].to_numpy(),
        "status": ranked["status"].to_numpy(),
        "score": [number(m) if c != c else f"{m:.3f} ± {c:.3f}" for m, c in zip(ranked["score"], ranked["score_ci95"])],
        "forgetting": [number(v) for v in ranked["forgetting"]], "utility": [number(v) for v in ranked["utility"]],
        "n": ranked["n"].to_numpy(), "hypervolume": [number(v) for v in ranked["hypervolume"]],
        "work": [number(v, 2) for v in ranked["work"]], "flags": ranked["flags"].to_numpy()})
    audited = audit_cells(ranked, audit)
    if audited:
        table.insert(table.columns.get_loc("n"), "U-LiRA",
                     [audited.get((t, s, p, m), "–") for t, s, p, m in
                      zip(ranked["task"], ranked["scenario"], ranked["profile"], ranked["method"])])
    return table


def _audit_rows(ranked: pd.DataFrame, audit: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of `audit` (mubench.results.audit.board_audit) for the cells of `ranked`."""
    if audit is None or audit.empty or ranked.empty:
        return pd.DataFrame(columns=[*CELL, "method", "population", "seed", "value", "low", "high"])
    return audit.merge(ranked[CELL].drop_duplicates(), on=CELL)


def audit_cells(ranked: pd.DataFrame, audit: pd.DataFrame | None) -> dict[tuple[str, str, str, str], str]:
    """(task, scenario, profile, method) -> 'value [low, high]' of the audit rows of `ranked`'s cells."""
    here = _audit_rows(ranked, audit)
    return {(r.task, r.scenario, r.profile, r.method): f"{r.value:.3f} [{r.low:.3f}, {r.high:.3f}]"
            for r in here.itertuples(index=False)}


def audit_note(rows: pd.DataFrame, audit: pd.DataFrame | None) -> str:
    """What a cell's U-LiRA column is, for its title ('' where the cell has no audit)."""
    here = _audit_rows(rows, audit)
    if here.empty:
        return ""
    sizes = ", ".join(str(n) for n in sorted(set(here["population"].astype(int))))
    seeds = ", ".join(str(s) for s in sorted(set(here["seed"].astype(int))))
    return (f"; U-LiRA: the privacy audit (not in the score), accuracy of telling each method's unlearned models from "
            f"retrained ones over a population of {sizes} (seed {seeds}; 0.5 = indistinguishable, doing nothing: "
            "the identity row), 95 % interval")


def varying_metrics(tidy: pd.DataFrame, cell: tuple[str, str, str], entries: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """One cell's metric means, entries as rows, without the metrics that are the same for every
    entry there (e.g. a worst-group accuracy of 0 for every method: a column that says nothing
    about the methods); returns (the table, the hidden metrics). One entry alone hides nothing."""
    rows = tidy[(tidy["task"] == cell[0]) & (tidy["scenario"] == cell[1]) & (tidy["profile"] == cell[2])
                & tidy["entry"].isin(entries)]
    if rows.empty:
        return pd.DataFrame(columns=["method"]), []
    wide = rows.pivot_table(index="entry", columns="metric", values="mean", aggfunc="mean")
    hidden = sorted(c for c in wide.columns if len(wide) > 1 and wide[c].nunique(dropna=False) <= 1) if len(wide) > 1 else []
    table = wide.drop(columns=hidden).reset_index().rename(columns={"entry": "method"})
    table.columns.name = None
    return table, hidden


__all__ = ["audit_cells", "audit_note", "domain_of", "entry_cells", "format_cells", "format_summary", "ranked_cells", "signal_frame",
           "summary_table", "varying_metrics"]

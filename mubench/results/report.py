"""Rendering aggregated results: a rich table for the terminal, CSV, JSON and Markdown.

Four views: the ordinary table (one row per method and setting, after a selection protocol),
the hypervolume of each method's sweep, method ranks (mubench.results.ranking), and the board's
score with rank bands (mubench.results.scoreboard).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pandas as pd
from rich.console import Console
from rich.table import Table

from mubench.harness.record import Record
from mubench.results.aggregate import SELECTIONS, direction_of, low_signal_scenarios, wide
from mubench.results.tradeoff import REFERENCE_POINT

HEADLINE = ["forget/acc", "retain/acc", "test/acc", "gap/forget_acc", "gap/test_acc",
            "forget/mae", "test/mae", "gap/forget_mae", "gap/test_mae",  # regression tasks
            "stream/retained_acc", "stream/unlearned_acc", "stream/relapse", "stream/gap_retained",  # streams
            "mia/loss_auc", "js/oracle", "bias/gap", "cost/seconds", "cost/rte"]
_ARROWS = {"higher": "↑", "lower": "↓", "oracle": "≈oracle", "info": ""}


def format_cell(mean: float, ci: float, key: str) -> str:
    if mean != mean:  # NaN: metric absent for this group
        return "–"
    digits = 2 if key.startswith("cost/") else 3
    text = f"{mean:.{digits}f}"
    return text if math.isnan(ci) else f"{text} ± {ci:.{digits}f}"


def headline_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The wide table with formatted 'mean ± ci' cells; hyper-parameters shown only where a method
    appears with more than one setting."""
    keys = [k for k in HEADLINE if k in set(summary["metric"])]
    table = wide(summary, keys)
    if table.empty:
        return table
    settings = table.groupby(["task", "method"])["hparams"].transform("nunique")
    table["method"] = [m if s == 1 else f"{m} {h}" for m, s, h in zip(table["method"], settings, table["hparams"])]
    cells = {key: [format_cell(m, c, key) for m, c in zip(table[key], table[f"{key}±"])] for key in keys}
    labels = [c for c in ("task", "profile") if table[c].nunique() > 1] + ["scenario", "method"]
    return pd.concat([table[labels], pd.DataFrame(cells), table[["n"]]], axis=1)


def render(summary: pd.DataFrame, fmt: str, console: Console, select: str | None = None,
           omitted: pd.DataFrame | None = None) -> None:
    """The ordinary table. `select` names the selection protocol the rows went through (its title
    says so); `omitted` lists the cells it dropped (noted under the terminal table; the command
    line prints the note on stderr for the other formats)."""
    if fmt == "csv":
        console.file.write(summary.to_csv(index=False))
    elif fmt == "json":
        console.file.write(json.dumps(_json_rows(summary), indent=1) + "\n")
    elif fmt == "markdown":
        console.file.write(_markdown(headline_table(summary)) + "\n")
    else:
        _rich(summary, console, select)
        note = selection_note(select, omitted)
        if note:
            console.print(note, highlight=False)


def selection_note(select: str | None, omitted: pd.DataFrame | None) -> str | None:
    """One line naming the methods a selection protocol left out, where, and why."""
    if select is None or omitted is None or omitted.empty:
        return None
    parts = []
    for (method, reason), rows in omitted.groupby(["method", "reason"], sort=True):
        cells = ", ".join(f"{r.task}/{r.scenario}" + (f" ({r.profile})" if omitted["profile"].nunique() > 1 else "")
                          for r in rows.itertuples(index=False))
        parts.append(f"{method} in {cells}: {reason}")
    return f"left out by --select {select}: " + "; ".join(parts)


def _scope(frame: pd.DataFrame) -> str:
    return ", ".join(f"{c} {frame[c].iloc[0]}" for c in ("task", "profile") if frame[c].nunique() == 1)


def _rich(summary: pd.DataFrame, console: Console, select: str | None = None) -> None:
    table_frame = headline_table(summary)
    if table_frame.empty:
        console.print("no successful records match")
        return
    settings = f"settings: {SELECTIONS[select]}; " if select else ""
    table = Table(title=f"mubench results: {_scope(summary)} ({settings}mean ± 95 % CI over seeds; ↑ higher, ↓ lower is better)")
    for column in table_frame.columns:
        arrow = _ARROWS.get(direction_of(column), "") if "/" in column else ""
        table.add_column(f"{column} {arrow}".strip(), justify="right" if "/" in column or column == "n" else "left")
    rows = list(table_frame.itertuples(index=False))
    for row, following in zip(rows, [*rows[1:], None]):
        last_of_scenario = following is None or following.scenario != row.scenario
        table.add_row(*[str(v) for v in row], end_section=last_of_scenario)
    console.print(table)
    low = low_signal_scenarios(summary)
    regression = set(summary[summary["metric"] == "signal/forget_mae"]["task"])
    for row in low.itertuples(index=False):
        what = "relative forget MAE" if row.task in regression else "forget accuracy"
        console.print(f"[yellow]low signal[/yellow]: {row.task}/{row.scenario} ({row.profile}): the original and the "
                      f"oracle differ by {row[3]:+.3f} in {what} and {row[4]:+.3f} in membership AUC; "
                      "rankings there say little")


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_no successful records_"
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" if c in ("task", "scenario", "method", "profile") else "---:" for c in frame.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _json_rows(summary: pd.DataFrame) -> list[dict[str, object]]:
    rows = summary.to_dict(orient="records")
    for row in rows:
        row["hparams"] = json.loads(row["hparams"])
        row["ci95"] = None if row["ci95"] != row["ci95"] else row["ci95"]
    return rows


# ---- hypervolume and ranks ----------------------------------------------------------------------

def hypervolume_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The hypervolume table with formatted 'mean ± ci' cells."""
    labels = [c for c in ("task", "profile") if table[c].nunique() > 1] + ["scenario", "method"]
    cells = [format_cell(m, c, "hv") for m, c in zip(table["hv_mean"], table["hv_ci95"])]
    return pd.concat([table[labels].reset_index(drop=True), pd.DataFrame({"hypervolume ↑": cells}),
                      table[["n", "points", "front"]].reset_index(drop=True).assign(front=table["front"].map("{:.1f}".format))],
                     axis=1)


def render_intervals(records: Sequence[Record], console: Console, fmt: str = "table", population: bool = True) -> None:
    """Attack values with their recorded intervals (mubench.results.audit): the population attacks
    of population runs (`population`), else the membership attacks of plain runs. Tidy rows for
    csv and json; one row per run with 'value [low, high]' cells for the table and markdown."""
    from mubench.results.audit import ATTACK_KEYS, AUDIT_KEYS, attacks_frame, audit_frame, intervals_wide

    frame, keys = (audit_frame(records), AUDIT_KEYS) if population else (attacks_frame(records), ATTACK_KEYS)
    if fmt == "csv":
        console.file.write(frame.to_csv(index=False))
    elif fmt == "json":
        console.file.write(json.dumps(_plain_rows(frame), indent=1) + "\n")
    elif frame.empty:
        console.print("no successful population runs match (run with --population N)" if population else
                      "no successful runs with membership attacks match", highlight=False)
    elif fmt == "markdown":
        console.file.write(_markdown(intervals_wide(frame, keys)) + "\n")
    elif population:
        _print_frame(intervals_wide(frame, keys), "mubench privacy audit: population attacks, value [95 % interval] "
                     "per run (U-LiRA 0.5 and KLOM 0 = indistinguishable from retraining)", console)
    else:
        _print_frame(intervals_wide(frame, keys), "mubench membership attacks on each run's unlearned model, value "
                     "[95 % interval of its own samples]", console)


def render_hypervolume(table: pd.DataFrame, fmt: str, console: Console) -> None:
    if fmt == "csv":
        console.file.write(table.to_csv(index=False))
    elif fmt == "json":
        console.file.write(json.dumps(_plain_rows(table), indent=1) + "\n")
    elif table.empty:
        console.print("no successful records with the trade-off objectives match", highlight=False)
    elif fmt == "markdown":
        console.file.write(_markdown(hypervolume_frame(table)) + "\n")
    else:
        reference = ", ".join(f"{v:g}" for v in REFERENCE_POINT)
        title = (f"mubench hypervolume: {_scope(table)} (every setting of each method's sweep; objectives forgetting "
                 f"and utility; reference point ({reference}); mean ± 95 % CI over seeds; points: settings, "
                 "front: mean Pareto-optimal points per seed)")
        _print_frame(hypervolume_frame(table), title, console)


def board_frame(scores: pd.DataFrame) -> pd.DataFrame:
    """The board's per-scenario table (mubench.results.scoreboard.score_table) with formatted
    cells: rank band ('ref' for the reference rows, '–' where the scenario is not ranked)."""
    labels = [c for c in ("task", "profile") if scores[c].nunique() > 1] + ["scenario", "method"]
    rank = ["ref" if ref else ("–" if r != r else f"{r:.0f}") for r, ref in zip(scores["rank"], scores["reference"])]
    return pd.concat([
        pd.DataFrame({"rank": rank}), scores[labels].reset_index(drop=True),
        pd.DataFrame({"score ↑": [format_cell(m, c, "score") for m, c in zip(scores["score"], scores["score_ci95"])],
                      "forgetting": [_number(v) for v in scores["forgetting"]],
                      "utility": [_number(v) for v in scores["utility"]],
                      "n": scores["n"].to_numpy(), "flags": scores["flags"].to_numpy()})], axis=1)


def render_board(records: Sequence[Record], console: Console, fmt: str = "table") -> None:
    """The board's ranking of `records` (one setting per method and seed): score mean ± 95 % CI
    over seeds, rank bands, reference rows and flags (mubench.results.scoreboard)."""
    from mubench.results.scoreboard import score_table

    scores = score_table(records)
    if fmt == "csv":
        console.file.write(scores.to_csv(index=False))
    elif fmt == "json":
        console.file.write(json.dumps(_plain_rows(scores), indent=1) + "\n")
    elif scores.empty:
        console.print("no successful records with a score match", highlight=False)
    elif fmt == "markdown":
        console.file.write(_markdown(board_frame(scores)) + "\n")
    else:
        title = (f"mubench board: {_scope(scores)} (score = forgetting x utility, mean ± 95 % CI over seeds; rank: "
                 "1 + methods whose interval lies wholly above; ref: retrain and identity, not ranked)")
        _print_frame(board_frame(scores), title, console)


def rank_frames(ranks: pd.DataFrame, mean: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-scenario ranks and mean ranks with formatted numbers ('–' where a method has none)."""
    metric = ranks["metric"].iloc[0] if not ranks.empty else "metric"
    labels = [c for c in ("task", "profile") if ranks[c].nunique() > 1] + ["scenario", "method"]
    per_cell = ranks[labels].reset_index(drop=True).assign(**{
        "hypervolume": ranks["hv_mean"].map(_number).to_numpy(), "hv rank": ranks["hv_rank"].map(_rank).to_numpy(),
        metric: ranks["metric_mean"].map(_number).to_numpy(), f"{metric} rank": ranks["metric_rank"].map(_rank).to_numpy()})
    mean_labels = ["profile", "method"] if mean["profile"].nunique() > 1 else ["method"]
    means = mean[mean_labels].reset_index(drop=True).assign(**{
        "mean hv rank": mean["hv_rank"].map(_rank).to_numpy(), "scenarios (hv)": mean["hv_cells"].to_numpy(),
        f"mean {metric} rank": mean["metric_rank"].map(_rank).to_numpy(), f"scenarios ({metric})": mean["metric_cells"].to_numpy()})
    return per_cell, means


def render_ranks(ranks: pd.DataFrame, mean: pd.DataFrame, fmt: str, console: Console, select: str,
                 headline: str | None = None) -> None:
    """CSV: the per-scenario ranks; JSON: {"ranks": ..., "mean_ranks": ...}; Markdown and the
    terminal: both tables, the per-scenario one first."""
    if fmt == "csv":
        console.file.write(ranks.to_csv(index=False))
        return
    if fmt == "json":
        console.file.write(json.dumps({"select": select, "ranks": _plain_rows(ranks), "mean_ranks": _plain_rows(mean)},
                                      indent=1) + "\n")
        return
    if ranks.empty:
        console.print("no successful records match", highlight=False)
        return
    per_cell, means = rank_frames(ranks, mean)
    metric = ranks["metric"].iloc[0]
    ranked = f"{headline} ranked by {metric}" if headline and headline != metric else metric
    rule = (f"1 = best, ties share their mean rank; hypervolume over every setting, {ranked} "
            f"({_ARROWS.get(direction_of(metric), '')}) with settings: {SELECTIONS[select]}")
    if fmt == "markdown":
        console.file.write(_markdown(per_cell) + "\n\n" + _markdown(means) + "\n")
        return
    _print_frame(per_cell, f"mubench ranks per scenario: {_scope(ranks)} ({rule})", console)
    _print_frame(means, f"mean rank over scenarios ({rule})", console, sections=False)


def _print_frame(frame: pd.DataFrame, title: str, console: Console, sections: bool = True) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(column, justify="left" if column in ("task", "profile", "scenario", "method") else "right")
    scenarios = list(frame["scenario"]) if sections and "scenario" in frame.columns else [None] * len(frame)
    for row, scenario, following in zip(frame.itertuples(index=False), scenarios, [*scenarios[1:], object()]):
        table.add_row(*[str(v) for v in row], end_section=sections and following != scenario)
    console.print(table)


def _number(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"


def _rank(value: float) -> str:
    return "–" if value != value else f"{value:.2f}".rstrip("0").rstrip(".")


def _plain_rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    """JSON-ready rows: numpy scalars as Python numbers, NaN as null."""
    def plain(value: object) -> object:
        value = value.item() if hasattr(value, "item") else value
        return None if isinstance(value, float) and value != value else value

    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]

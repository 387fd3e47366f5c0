"""Rendering aggregated results: a rich table for the terminal, CSV, JSON and Markdown."""

from __future__ import annotations

import json
import math

import pandas as pd
from rich.console import Console
from rich.table import Table

from mubench.aggregate import direction_of, low_signal_scenarios, wide

HEADLINE = ["forget/acc", "retain/acc", "test/acc", "gap/forget_acc", "gap/test_acc", "mia/loss_auc",
            "js/oracle", "bias/gap", "cost/seconds", "cost/rte"]
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


def render(summary: pd.DataFrame, fmt: str, console: Console) -> None:
    if fmt == "csv":
        console.file.write(summary.to_csv(index=False))
    elif fmt == "json":
        console.file.write(json.dumps(_json_rows(summary), indent=1) + "\n")
    elif fmt == "markdown":
        console.file.write(_markdown(headline_table(summary)) + "\n")
    else:
        _rich(summary, console)


def _rich(summary: pd.DataFrame, console: Console) -> None:
    table_frame = headline_table(summary)
    if table_frame.empty:
        console.print("no successful records match")
        return
    title = "mubench results: " + ", ".join(f"{c} {summary[c].iloc[0]}" for c in ("task", "profile") if summary[c].nunique() == 1)
    table = Table(title=f"{title} (mean ± 95 % CI over seeds; ↑ higher, ↓ lower is better)")
    for column in table_frame.columns:
        arrow = _ARROWS.get(direction_of(column), "") if "/" in column else ""
        table.add_column(f"{column} {arrow}".strip(), justify="right" if "/" in column or column == "n" else "left")
    rows = list(table_frame.itertuples(index=False))
    for row, following in zip(rows, [*rows[1:], None]):
        last_of_scenario = following is None or following.scenario != row.scenario
        table.add_row(*[str(v) for v in row], end_section=last_of_scenario)
    console.print(table)
    low = low_signal_scenarios(summary)
    for row in low.itertuples(index=False):
        console.print(f"[yellow]low signal[/yellow]: {row.task}/{row.scenario} ({row.profile}): the original and the "
                      f"oracle differ by {row[3]:.3f} in forget accuracy and {row[4]:+.3f} in membership AUC; "
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

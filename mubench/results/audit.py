"""Attack values with their recorded 95 % intervals, one row per run.

Population runs (RunConfig.population = N) carry the audit/* attacks of mubench.metrics.audit;
every run carries the membership attacks of mubench.metrics.membership on its unlearned model.
Each value's interval was computed with it and is in the record (`Record.intervals`). Intervals
are the uncertainty of one run (its samples, and for a population its members); they are shown
as recorded, per run (one row per seed), not averaged over seeds: `mubench results --view audit`
for the population attacks, `--view attacks` for the single-model ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mubench.errors import MubenchError
from mubench.harness.record import Record

COLUMNS = ["task", "scenario", "method", "profile", "population", "seed", "metric", "value", "low", "high", "sizes"]
# the population attacks a reader compares first: distinguishability (U-LiRA), divergence (KLOM), RMIA
AUDIT_KEYS = ("audit/ulira_acc", "audit/ulira_auc", "audit/klom_forget", "audit/klom_forget_mean", "audit/klom_retain",
              "audit/klom_val", "audit/rmia_auc", "audit/rmia_auc_oracle", "gap/audit_rmia_auc")
ATTACK_KEYS = ("mia/loss_auc", "mia/lr_auc", "mia/svc", "mia/entropy_lr", "mia/rmia")
BOARD_AUDIT_KEY = "audit/ulira_acc"  # the audit value the board shows beside a privacy cell's score


def interval_frame(records: Sequence[Record], keys: Sequence[str], population: bool) -> pd.DataFrame:
    """One row per successful record and key: value, interval and sample sizes. `population`:
    population runs only (their audit keys), else plain runs only (their own model's attacks)."""
    rows = [{"task": r.config.task, "scenario": r.config.scenario, "method": r.config.method,
             "profile": r.config.profile, "population": r.config.population, "seed": r.config.seed,
             "metric": key, "value": r.metrics[key],
             "low": r.intervals[key].low if key in r.intervals else float("nan"),
             "high": r.intervals[key].high if key in r.intervals else float("nan"),
             "sizes": json.dumps(r.intervals[key].sizes, sort_keys=True) if key in r.intervals else ""}
            for r in records if r.status == "ok" and bool(r.config.population) == population
            for key in keys if key in r.metrics]
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(
        ["task", "scenario", "profile", "population", "metric", "value", "method", "seed"]).reset_index(drop=True)


def audit_frame(records: Sequence[Record]) -> pd.DataFrame:
    return interval_frame(records, AUDIT_KEYS, population=True)


def attacks_frame(records: Sequence[Record]) -> pd.DataFrame:
    return interval_frame(records, ATTACK_KEYS, population=False)


def intervals_wide(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per run, one column per key: 'value [low, high]' (the value alone where the record
    holds no interval: a run stored before intervals were)."""
    if frame.empty:
        return frame
    cells = frame.assign(cell=[f"{v:.3f}" if lo != lo else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
                               for v, lo, hi in zip(frame["value"], frame["low"], frame["high"])])
    index = ["task", "scenario", "profile", "population", "method", "seed"]
    wide = cells.pivot_table(index=index, columns="metric", values="cell", aggfunc="first").reset_index()
    wide.columns.name = None
    ordered = [k for k in keys if k in wide.columns]
    if not frame["population"].any():
        index.remove("population")
    return wide[[*index, *ordered]]


def read_interval_table(path: Path) -> pd.DataFrame:
    """A table written by `mubench results --view audit --format csv` (or `--view attacks`), as the
    app shows committed audits; a MubenchError naming the file and what is wrong otherwise."""
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # pandas' ParserError is a ValueError
        raise MubenchError(f"{path}: not a readable CSV table ({type(exc).__name__}: {exc})") from None
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise MubenchError(f"{path}: not a table of attack intervals: column(s) {', '.join(missing)} missing")
    numeric = ["population", "seed", "value", "low", "high"]
    bad = [c for c in numeric if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise MubenchError(f"{path}: column(s) {', '.join(bad)} hold values that are not numbers")
    frame["sizes"] = frame["sizes"].fillna("").astype(str)
    return frame


def cells_by_first_key(frame: pd.DataFrame, keys: Sequence[str]) -> list[tuple[tuple[str, str, str, int], pd.DataFrame]]:
    """Per (task, scenario, profile, population): the wide table (`intervals_wide`), its runs ordered
    by the first of `keys` they hold (U-LiRA accuracy first: closest to retraining at the top)."""
    cells = []
    for (task, scenario, profile, population), cell in frame.groupby(["task", "scenario", "profile", "population"],
                                                                     sort=True):
        wide = intervals_wide(cell, keys)
        first = next((k for k in keys if k in set(cell["metric"])), None)
        if first is not None:
            order = cell[cell["metric"] == first].set_index(["method", "seed"])["value"]
            wide = wide.assign(_order=[order.get((m, s), float("inf")) for m, s in zip(wide["method"], wide["seed"])])
            wide = wide.sort_values(["_order", "method"]).drop(columns="_order")
        cells.append(((str(task), str(scenario), str(profile), int(population)), wide.reset_index(drop=True)))
    return cells


def read_audit_files(folder: Path) -> tuple[list[tuple[Path, pd.DataFrame]], list[tuple[Path, str]]]:
    """Every interval table (`*.csv`) of `folder` in name order, and the files refused with why:
    one bad file never hides the others. No folder: nothing, no problem."""
    tables, problems = [], []
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        try:
            tables.append((path, read_interval_table(path)))
        except MubenchError as exc:
            problems.append((path, str(exc)))
    return tables, problems


def read_audit_folder(folder: Path) -> tuple[pd.DataFrame, list[tuple[Path, str]]]:
    """`read_audit_files`, the tables concatenated."""
    tables, problems = read_audit_files(folder)
    frame = pd.concat([t for _, t in tables], ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)
    return frame, problems


def board_audit(frame: pd.DataFrame, key: str = BOARD_AUDIT_KEY) -> pd.DataFrame:
    """Per task, scenario, profile and method: `key`'s value and interval from the audit with the
    most members (then the lowest seed), as the board shows it beside the cell's ranking. Columns:
    task, scenario, profile, method, population, seed, value, low, high."""
    rows = frame[frame["metric"] == key].sort_values(["population", "seed"], ascending=[False, True])
    best = rows.drop_duplicates(["task", "scenario", "profile", "method"], keep="first")
    return best[["task", "scenario", "profile", "method", "population", "seed", "value", "low", "high"]].reset_index(drop=True)

"""The privacy audit's table: population runs' attack values with their 95 % intervals.

A population run (RunConfig.population = N) carries the audit/* attacks of mubench.metrics.audit,
each with a bootstrap interval in the record. Intervals over members and examples are the
uncertainty of one population; they are shown as recorded, per run (one row per seed), not
averaged over seeds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd

from mubench.harness.record import Record

AUDIT_COLUMNS = ["task", "scenario", "method", "profile", "population", "seed", "metric", "value", "low", "high",
                 "sizes"]
# the keys a reader compares first: distinguishability (U-LiRA), divergence (KLOM), attack gap (RMIA)
HEADLINE = ("audit/ulira_acc", "audit/ulira_auc", "audit/klom_forget", "audit/klom_forget_mean", "audit/klom_retain",
            "audit/klom_val",
            "audit/rmia_auc", "audit/rmia_auc_oracle", "gap/audit_rmia_auc")


def audit_frame(records: Sequence[Record], keys: Sequence[str] = HEADLINE) -> pd.DataFrame:
    """One row per successful population record and audited key: value, interval and sample sizes."""
    rows = [{"task": r.config.task, "scenario": r.config.scenario, "method": r.config.method,
             "profile": r.config.profile, "population": r.config.population, "seed": r.config.seed,
             "metric": key, "value": r.metrics[key],
             "low": r.intervals[key].low if key in r.intervals else float("nan"),
             "high": r.intervals[key].high if key in r.intervals else float("nan"),
             "sizes": json.dumps(r.intervals[key].sizes, sort_keys=True) if key in r.intervals else ""}
            for r in records if r.status == "ok" and r.config.population for key in keys if key in r.metrics]
    return pd.DataFrame(rows, columns=AUDIT_COLUMNS).sort_values(
        ["task", "scenario", "profile", "population", "metric", "value", "method", "seed"]).reset_index(drop=True)


def audit_wide(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run, one column per key: 'value [low, high]'."""
    if frame.empty:
        return frame
    cells = frame.assign(cell=[f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in
                               zip(frame["value"], frame["low"], frame["high"])])
    index = ["task", "scenario", "profile", "population", "method", "seed"]
    wide = cells.pivot_table(index=index, columns="metric", values="cell", aggfunc="first").reset_index()
    wide.columns.name = None
    ordered = [k for k in HEADLINE if k in wide.columns]
    return wide[[*index, *ordered]]

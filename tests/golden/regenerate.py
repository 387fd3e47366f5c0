"""Regenerate the golden aggregation outputs: `python -m tests.golden.regenerate` (repository root).

`records.jsonl` is a small hand-made store (task `golden`, scenarios s1 and s2, methods keep,
ascent and tune, seeds 0-2, a few sweep settings, one failed run, one run without objectives)
whose metric values are the literals in RUNS below. From it, tests/test_ranking.py recomputes
    summary.csv          summarise(records_frame(records)): every setting, mean, ci95, n
    summary_default.csv  the same after select_settings(..., "default")
    summary_val.csv      the same after select_settings(..., "val")
    hypervolume.csv      ranking.hypervolume_table(records)
    ranks.csv            ranking.rank_table(records, "forget/acc", "default")[0]
    mean_ranks.csv       ranking.mean_ranks(ranks)
and compares them with these files.

Regenerating is legitimate only when an aggregation rule changes on purpose (a new column, a
different interval, a changed tie rule, a new selection protocol) and the change is reviewed in
the diff of these CSV files; never to make a failing test pass without knowing why it failed.
`--records` also rewrites records.jsonl from RUNS (only after changing RUNS, or the Record format).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from mubench.harness.record import Record, RunConfig
from mubench.results.aggregate import records_frame, select_settings, summarise
from mubench.results.ranking import hypervolume_table, mean_ranks, rank_table

HERE = Path(__file__).resolve().parent
RECORDS = HERE / "records.jsonl"
METRIC = "forget/acc"  # headline metric of ranks.csv (ranked by gap/forget_acc)
DEFAULTS = {"keep": {}, "ascent": {"lr": 0.01}, "tune": {"epochs": 2, "lr": 0.1}}

KEYS = ("objective/utility", "objective/forgetting", "objective/cost", "val/acc", "test/acc", "forget/acc",
        "gap/forget_acc")
T2 = {"epochs": 2, "lr": 0.1}  # tune's defaults
T5 = {"epochs": 5, "lr": 0.1}
T3 = {"epochs": 2, "lr": 0.3}
# scenario, method, hparams, seed, then the KEYS in order (None: metric absent); s2 uses dyadic
# values so that the ties it is built for (keep/ascent on gap/forget_acc, keep/tune on hypervolume)
# are exact in binary floating point.
RUNS = [
    ("s1", "keep", {}, 0, .96, .40, 1.0, .80, .78, .95, .35),
    ("s1", "keep", {}, 1, .96, .40, 1.0, .82, .78, .95, .33),
    ("s1", "keep", {}, 2, .96, .40, 1.0, .81, .78, .95, .37),
    ("s1", "ascent", {"lr": 0.001}, 0, .95, .50, .98, .74, .77, .90, .30),
    ("s1", "ascent", {"lr": 0.001}, 1, .94, .52, .98, .78, .76, .88, .28),
    ("s1", "ascent", {"lr": 0.01}, 0, .90, .70, .97, .75, .72, .75, .15),
    ("s1", "ascent", {"lr": 0.01}, 1, .91, .72, .97, .80, .73, .74, .14),
    ("s1", "ascent", {"lr": 0.1}, 0, .60, .85, .97, .77, .50, .62, .02),
    ("s1", "ascent", {"lr": 0.1}, 1, .55, .80, .96, .70, .45, .58, .02),
    ("s1", "tune", T2, 0, .97, .60, .80, .83, .79, .80, .20),
    ("s1", "tune", T2, 1, .98, .62, .82, .84, .80, .79, .19),
    ("s1", "tune", T5, 0, .99, .75, .50, .85, .81, .70, .10),
    ("s1", "tune", T5, 1, .99, .78, .52, .86, .82, .69, .09),
    ("s1", "tune", T3, 0, .90, .65, .80, .78, .74, .76, .16),
    ("s1", "tune", T3, 1, .85, .55, .81, .76, .70, .81, .21),  # dominated by T2's seed-1 point
    ("s2", "keep", {}, 0, .5, .5, 1.0, .5, .5, .75, .25),
    ("s2", "keep", {}, 1, .5, .5, 1.0, .5, .5, .75, .25),
    ("s2", "ascent", {"lr": 0.01}, 0, .75, .625, .875, .625, .75, .625, .125),
    ("s2", "ascent", {"lr": 0.01}, 1, .75, .5, .875, .5, .75, .875, .375),
    ("s2", "ascent", {"lr": 0.001}, 0, .875, .5, .875, .6, .8, .8, .3),
    ("s2", "ascent", {"lr": 0.001}, 1, .8, .45, .9, .55, .78, .82, .32),
    ("s2", "ascent", {"lr": 0.1}, 0, .4, .9, .85, .45, .4, .55, .05),
    ("s2", "ascent", {"lr": 0.1}, 1, None, None, None, .7, .42, .52, .04),  # written before the objectives
    ("s2", "tune", T5, 0, 1.0, .5, .5, .75, .85, .6, .1),  # tune has no run at its defaults in s2
    ("s2", "tune", T5, 1, 1.0, .5, .5, .75, .85, .55, .15),
    ("s2", "tune", T3, 0, .5, .5, .5, .75, .6, .7, .2),  # val tie with T5 on seed 0
    ("s2", "tune", T3, 1, .5, .5, .5, .7, .6, .8, .25),
]
FAILED = [("s1", "ascent", {"lr": 0.01}, 2)]


def _record(scenario: str, method: str, hparams: dict, seed: int, values: dict[str, float] | None) -> Record:
    config = RunConfig(task="golden", task_version="1.0", scenario=scenario, method=method, method_version="1",
                       hparams=hparams, seed=seed, profile="smoke")
    return Record(id=config.id, config=config, status="ok" if values is not None else "failed",
                  error=None if values is not None else "deliberate failure", metrics=values or {},
                  split_id="golden-split", metrics_version="2", mia_spec_version="1", mubench_version="0.1.0",
                  git_commit="none", hardware="hand-made", device="cpu", seconds=0.0, peak_rss_mb=0.0,
                  created_at="2025-01-01T00:00:00+00:00")


def build_records() -> list[Record]:
    records = [_record(s, m, h, seed, {k: v for k, v in zip(KEYS, values) if v is not None})
               for s, m, h, seed, *values in RUNS]
    return records + [_record(s, m, h, seed, None) for s, m, h, seed in FAILED]


def load_records(path: Path = RECORDS) -> list[Record]:
    return [Record.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def compute_outputs(records: list[Record]) -> dict[str, pd.DataFrame]:
    """Every golden table, keyed by its file name."""
    frame = records_frame(records)
    ranks, _ = rank_table(records, METRIC, "default", DEFAULTS)
    return {
        "summary.csv": summarise(frame),
        "summary_default.csv": summarise(select_settings(frame, "default", DEFAULTS)[0]),
        "summary_val.csv": summarise(select_settings(frame, "val", DEFAULTS)[0]),
        "hypervolume.csv": hypervolume_table(records),
        "ranks.csv": ranks,
        "mean_ranks.csv": mean_ranks(ranks),
    }


def main(argv: list[str]) -> None:
    if "--records" in argv:
        RECORDS.write_text("".join(r.model_dump_json() + "\n" for r in build_records()))
        print(f"wrote {RECORDS}")
    for name, table in compute_outputs(load_records()).items():
        table.to_csv(HERE / name, index=False)
        print(f"wrote {HERE / name} ({len(table)} rows)")


if __name__ == "__main__":
    main(sys.argv[1:])

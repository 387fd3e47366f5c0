"""The leaderboard's data layer: submission files (and a local store's records) as pandas tables.

No Streamlit here: leaderboard/app.py draws these tables and `mubench export` writes them
(mubench/cli/board.py), so the page and the exports can never disagree.

Entries. Every `*.json` in the submissions folder goes through `check_submission` (schema,
registry, split ids, ranges, duplicates). A file with any problem is not shown; it is listed as
refused with its problems (RobustBench-style: what is on the board passed the checks).

Status, decided read-only. `check_submission` would open the store with `mubench.orchestration.store.Store`,
which creates tables and switches the journal mode: a write. The board instead reads the store
through SQLite's read-only mode and repeats the same test: a file that claims `verified: true` is
`verified` when every record it cites is in the store and rebuilding the results from them
reproduces the file; `unchecked` when it claims so but the records are not here (a fresh clone:
the harness made it, nobody here re-ran it); `self-reported` when it does not claim so.

Local entries. With a store, its records that no submission cites become one entry per method,
labelled "<method> (local)" with status `local`: made by this machine's harness but never
submitted, so never ranked as verified. They are built with `build_submission` like a submit
would: each method's lone setting, or the best `val/acc` per seed when the store holds several
(then with hypervolume). A method not registered in this process gets access `counterfactual`
(the widest level), so an "access at most" filter never lets an unknown method through.

Ranks. Per (task, scenario, profile) cell, entries are ranked by a headline metric in its
direction (`ranking.ranking_key`: oracle-targeted metrics by their gap to the oracle); ties share
the mean of their ranks (pandas `rank(method="average")`). Without a chosen metric a cell uses
the first of DEFAULT_METRICS that any entry there has. An entry's mean rank is the plain mean over
the cells where it has one, with the count beside it (as `mubench results --view ranks`).
"""

from __future__ import annotations

import inspect
import json
import os
import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from mubench.board.safe_json import read_json
from mubench.board.submission import (
    MethodInfo,
    Submission,
    SubmissionError,
    build_submission,
    check_submission,
    code_problems,
    rebuild_entry,
    submissions_folder,
)
from mubench.errors import MubenchError, StoreError
from mubench.harness.record import Record
from mubench.hashing import canonical_json, sha256_file, sha256_text
from mubench.methods import Access
from mubench.results.audit import COLUMNS as AUDIT_COLUMNS
from mubench.results.audit import board_audit, read_audit_folder
from mubench.results.ranking import ranking_key

VERIFIED, UNCHECKED, SELF_REPORTED, LOCAL = "verified", "unchecked", "self-reported", "local"
DEFAULT_METRICS = ("forget/acc", "forget/mae")  # classification tasks, then regression tasks
CELL = ["task", "scenario", "profile"]
ENTRY_COLUMNS = ["entry", "method", "origin", "status", "verified", "access", "access_level", "suite"]
TIDY = [*ENTRY_COLUMNS, *CELL, "hparams", "metric", "mean", "ci95", "n"]
RANKS = [*CELL, "rank", *ENTRY_COLUMNS, "hparams", "headline", "ranked_by", "direction", "mean", "ci95", "n",
         "hv_mean", "hv_ci95", "hv_n", "hv_points"]
MEAN_RANKS = ["profile", "entry", "mean_rank", "cells"]
_NO_STORE = Path(os.devnull) / "no-store.sqlite"  # never exists: check_submission then verifies nothing


@dataclass(frozen=True)
class Entry:
    """One row source of the board: a checked submission file or a local store's method."""

    submission: Submission
    origin: str  # "submission" or "local"
    status: str  # VERIFIED, UNCHECKED, SELF_REPORTED or LOCAL
    source: str  # the file, or the store
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The method name, or "<method> (local)": names match ^[a-z][a-z0-9_]*$, so labels never clash."""
        return self.submission.method + (" (local)" if self.origin == LOCAL else "")


@dataclass(frozen=True)
class Refused:
    source: str
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Board:
    entries: tuple[Entry, ...]
    refused: tuple[Refused, ...]
    # the privacy audits committed beside the submissions (`<folder>/../audit/*.csv`), as
    # mubench.results.audit.board_audit reads them: U-LiRA per cell and method
    audit: pd.DataFrame = field(default_factory=lambda: board_audit(pd.DataFrame(columns=AUDIT_COLUMNS)), compare=False)

    def entry(self, label: str) -> Entry:
        for entry in self.entries:
            if entry.label == label:
                return entry
        raise MubenchError(f"no entry {label!r} on the board")


# ---- loading ----------------------------------------------------------------------------------------

def load_board(folder: Path | None = None, store: Path | None = None) -> Board:
    """Every submission in `folder` (default: $MUBENCH_SUBMISSIONS or leaderboard/submissions),
    checked; with `store`, statuses checked against it and its uncited records as local entries."""
    folder = submissions_folder(folder)
    records = read_store(store) if store is not None else {}
    outcomes = [_load_or_refuse(path, folder, records) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    entries = [o for o in outcomes if isinstance(o, Entry)]
    refused = [o for o in outcomes if isinstance(o, Refused)]
    cited = {rid for entry in entries for rid in entry.submission.record_ids}
    local, failed = local_entries([r for rid, r in sorted(records.items()) if rid not in cited], str(store))
    audits, problems = read_audit_folder(audit_folder(folder))
    unreadable = [Refused(str(path), (problem,)) for path, problem in problems]
    return Board(tuple(entries + local), tuple(refused + failed + unreadable), board_audit(audits))


def audit_folder(submissions: Path) -> Path:
    """Where a board's privacy audits are committed: `audit/` beside its submissions folder
    (leaderboard/audit for leaderboard/submissions, leaderboard/gpu/audit for the GPU tier),
    unless `MUBENCH_AUDIT` names another folder."""
    override = os.environ.get("MUBENCH_AUDIT")
    return Path(override) if override else submissions.parent / "audit"


def _load_or_refuse(path: Path, folder: Path, records: Mapping[str, Record]) -> Entry | Refused:
    """`load_submission`, with any failure of one file its own refusal: one bad file never stops
    the others from being read or the app from rendering."""
    try:
        return load_submission(path, folder, records)
    except (MubenchError, OSError, ValueError, RecursionError, MemoryError) as exc:
        return Refused(str(path), (f"could not be read: {type(exc).__name__}: {exc}"[:500],))


def load_submission(path: Path, folder: Path, records: Mapping[str, Record]) -> Entry | Refused:
    """A checked entry and its status: verified when its committed records file (or else the
    store's records) rebuilds it with the code it names (mubench.board.submission.verify_entry)."""
    result = check_submission(path, folder, _NO_STORE)  # the records file, when the entry has one
    if result.problems or result.submission is None:
        return Refused(str(path), tuple(result.problems))
    claimed = read_json(path).get("verified") is True  # read (bounded) and checked just above
    if result.submission.verified:
        status = VERIFIED
    else:
        status = (VERIFIED if reproduces(result.submission, records) else UNCHECKED) if claimed else SELF_REPORTED
    notes = tuple(note for note in result.notes if "self-reported" not in note)
    submission = result.submission.model_copy(update={"verified": status == VERIFIED})
    return Entry(submission, "submission", status, str(path), notes)


def reproduces(submission: Submission, records: Mapping[str, Record]) -> bool:
    """Every record the file cites is here, and rebuilding from them gives its results exactly."""
    found = [records.get(record_id) for record_id in submission.record_ids]
    if not found or any(record is None for record in found):
        return False
    runs = [r for r in found if r is not None]
    if code_problems(submission, runs):  # records of other code never verify an entry
        return False
    try:
        rebuilt = rebuild_entry(submission, runs)
    except (SubmissionError, ValidationError):
        return False
    return rebuilt.results == submission.results


def read_store(path: Path) -> dict[str, Record]:
    """Every record of a result store by id, read through SQLite's read-only mode: the database is
    never written (SQLite may create the -wal/-shm side files a WAL database reads through). Where
    even those cannot be made (a read-only folder), the file is read as immutable."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"no result store at {path}")
    try:
        rows = _select_records(f"{path.resolve().as_uri()}?mode=ro")
    except sqlite3.OperationalError:
        try:
            rows = _select_records(f"{path.resolve().as_uri()}?immutable=1")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the result store {path}: {exc}") from None
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the result store {path}: {exc}") from None
    records = {}
    for record_id, body, digest in rows:
        if digest is not None and sha256_text(body) != digest:
            raise StoreError(f"{path}: record {record_id[:12]} was changed outside mubench (its body no longer "
                             "matches its digest)")
        try:
            records[record_id] = Record.model_validate_json(body)
        except ValidationError as exc:
            raise StoreError(f"{path}: record {record_id[:12]} is invalid: {exc.errors()[0]['msg']}") from None
    return records


def _select_records(uri: str) -> list[tuple[str, str, str | None]]:
    """(id, body, digest) of every row; the digest is None in a store of schema 1, not yet
    migrated (this reader never writes)."""
    db = sqlite3.connect(uri, uri=True)
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(records)")}
        digest = "digest" if "digest" in columns else "NULL"
        return db.execute(f"SELECT id, body, {digest} FROM records").fetchall()
    finally:
        db.close()


def local_entries(records: Sequence[Record], source: str) -> tuple[list[Entry], list[Refused]]:
    """One `local` entry per method of `records`; a method whose records cannot be aggregated is refused."""
    by_method: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_method[record.config.method].append(record)
    entries, refused = [], []
    for method, runs in sorted(by_method.items()):
        try:
            entries.append(Entry(local_submission(method, runs), LOCAL, LOCAL, source))
        except (SubmissionError, ValidationError, MubenchError, ValueError) as exc:
            refused.append(Refused(f"{source}: method {method}", (str(exc),)))
    return entries, refused


def local_submission(method: str, runs: Sequence[Record]) -> Submission:
    from mubench.methods import methods

    settings = sorted({canonical_json(r.config.hparams) for r in runs if r.status == "ok"})
    cls = methods.get(method) if method in methods else None
    sweep = "axes" if len(settings) > 1 else None
    hparams = json.loads(settings[0]) if len(settings) == 1 else dict(cls.resolve(profile=runs[0].config.profile)) if cls else {}
    source = inspect.getsourcefile(cls) if cls else None
    info = MethodInfo(
        method=method, version=runs[0].config.method_version, authors=[_plain(a) for a in getattr(cls, "authors", ())],
        paper=_plain(getattr(cls, "paper", "")), description=_plain(inspect.cleandoc(cls.__doc__ or "") if cls else
                                                                    "not registered in this process: access unknown"),
        source_file=Path(source).name if source else "(local store)", class_name=cls.__name__ if cls else "Unknown",
        source_sha256=sha256_file(Path(source)) if source else "0" * 64,
        access=cls.access if cls else Access.COUNTERFACTUAL, hparams=hparams, intensity=getattr(cls, "intensity", None))
    created = max(r.created_at for r in runs)
    seeds = sorted({r.config.seed for r in runs})
    return build_submission(runs, info, suite="local store", seeds=seeds, sweep=sweep, verified=False,
                            created_at=created)


def _plain(text: str) -> str:
    """Submission texts refuse '<' and '>': a local docstring's are swapped for look-alikes."""
    return str(text).replace("<", "‹").replace(">", "›")


# ---- tidy tables --------------------------------------------------------------------------------------

def _entry_fields(entry: Entry) -> dict[str, Any]:
    s = entry.submission
    return {"entry": entry.label, "method": s.method, "origin": entry.origin, "status": entry.status,
            "verified": entry.status == VERIFIED, "access": s.access.value, "access_level": s.access.level,
            "suite": s.suite}


def metrics_frame(board: Board) -> pd.DataFrame:
    """One row per (entry, task, scenario, profile, metric): mean, ci95 (NaN for one seed), n."""
    rows = [{**_entry_fields(entry), "task": r.task, "scenario": r.scenario, "profile": r.profile,
             "hparams": r.hparams, "metric": key, "mean": m.mean, "ci95": m.ci95 if m.ci95 is not None else float("nan"),
             "n": m.n}
            for entry in board.entries for r in entry.submission.results for key, m in r.metrics.items()]
    return pd.DataFrame(rows, columns=TIDY)


def hypervolume_frame(board: Board) -> pd.DataFrame:
    """One row per (entry, cell) with a hypervolume: the one its file states, over the records it
    cites only: a sweep's seeds (hv_n) and settings (points), or a tuned entry's development-seed
    search (hv_n 1). `mubench results --view hypervolume` pools every record of a store instead,
    and says so where that differs (mubench.cli.app.hypervolume_notes)."""
    rows = [{**_entry_fields(entry), "task": r.task, "scenario": r.scenario, "profile": r.profile,
             "hv_mean": r.hypervolume.mean, "hv_ci95": r.hypervolume.ci95 if r.hypervolume.ci95 is not None else float("nan"),
             "hv_n": r.hypervolume.n, "points": r.hypervolume.points}
            for entry in board.entries for r in entry.submission.results if r.hypervolume is not None]
    return pd.DataFrame(rows, columns=[*ENTRY_COLUMNS, *CELL, "hv_mean", "hv_ci95", "hv_n", "points"])


def tradeoff_frame(board: Board) -> pd.DataFrame:
    """One row per (entry, cell, setting): the objectives' means, as mubench.results.plots.tradeoff draws them."""
    rows = [{**_entry_fields(entry), "task": r.task, "scenario": r.scenario, "profile": r.profile,
             "hparams": p.hparams, "n": p.n, "objective/utility": p.utility, "objective/forgetting": p.forgetting,
             "cost/work": p.work if p.work is not None else float("nan"),
             "cost/rte": p.rte if p.rte is not None else float("nan")}
            for entry in board.entries for r in entry.submission.results for p in r.tradeoff]
    return pd.DataFrame(rows, columns=[*ENTRY_COLUMNS, *CELL, "hparams", "n", "objective/utility",
                                       "objective/forgetting", "cost/work", "cost/rte"])


def filter_rows(frame: pd.DataFrame, max_access: str | Access | None = None, verified_only: bool = False,
                profile: str | None = None) -> pd.DataFrame:
    """Rows of a board table (any with the entry columns) within an access level, verified, one profile."""
    keep = pd.Series(True, index=frame.index)
    if max_access is not None:
        keep &= frame["access_level"] <= Access(max_access).level
    if verified_only:
        keep &= frame["verified"].astype(bool)
    if profile is not None:
        keep &= frame["profile"] == profile
    return frame[keep]


# ---- ranks ------------------------------------------------------------------------------------------

def rank_cells(frame: pd.DataFrame, metric: str | None = None, volumes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per cell, each entry's rank by `metric` (or the cell's default headline metric); see the module docstring."""
    parts = []
    for _, cell in frame.groupby(CELL, sort=True):
        headline = metric or next((m for m in DEFAULT_METRICS if m in set(cell["metric"])), None)
        if headline is None:
            continue
        key, ascending = ranking_key(headline)
        scored = cell[cell["metric"] == key].copy()
        if scored.empty:
            continue
        scored["rank"] = scored["mean"].rank(ascending=ascending, method="average")
        scored["headline"], scored["ranked_by"] = headline, key
        scored["direction"] = "lower is better" if ascending else "higher is better"
        parts.append(scored)
    if not parts:
        return pd.DataFrame(columns=RANKS)
    ranks = pd.concat(parts, ignore_index=True)
    hv_columns = ["hv_mean", "hv_ci95", "hv_n", "points"]
    hv = volumes if volumes is not None else pd.DataFrame(columns=["entry", *CELL, *hv_columns])
    hv = hv.reindex(columns=["entry", *CELL, *hv_columns]).rename(columns={"points": "hv_points"})
    ranks = ranks.merge(hv, on=["entry", *CELL], how="left")
    ranks = ranks.sort_values([*CELL, "rank", "entry"]).reset_index(drop=True)
    return ranks[RANKS].astype({"rank": float, "hv_mean": float, "hv_ci95": float, "hv_n": float, "hv_points": float})


def mean_ranks(ranks: pd.DataFrame) -> pd.DataFrame:
    """Per profile and entry: the mean of its ranks over the cells where it has one, and how many."""
    if ranks.empty:
        return pd.DataFrame(columns=MEAN_RANKS)
    table = ranks.groupby(["profile", "entry"], sort=True).agg(mean_rank=("rank", "mean"), cells=("rank", "count"))
    table = table.reset_index().sort_values(["profile", "mean_rank", "entry"])
    return table[MEAN_RANKS].reset_index(drop=True)


def cells(ranks: pd.DataFrame) -> list[tuple[str, str, str]]:
    return [tuple(row) for row in ranks[CELL].drop_duplicates().itertuples(index=False)]  # type: ignore[misc]


def cell_rows(table: pd.DataFrame, cell: tuple[str, str, str]) -> pd.DataFrame:
    task, scenario, profile = cell
    return table[(table["task"] == task) & (table["scenario"] == scenario) & (table["profile"] == profile)]


def ranking_display(rows: pd.DataFrame) -> pd.DataFrame:
    """One cell's ranks for people (numbers stay numbers, so a table sorts right): rank, method,
    access, status, suite, the chosen setting, the ranked metric's mean, CI and n, hypervolume and
    what it is over: its seeds and settings (a tuned entry's: the development seed's search)."""
    key = str(rows["ranked_by"].iloc[0]) if not rows.empty else "metric"
    columns = {"rank": rows["rank"], "method": rows["entry"], "access": rows["access"], "status": rows["status"],
               "suite": rows["suite"], "setting": rows["hparams"], key: rows["mean"], "± 95 % CI": rows["ci95"],
               "n": rows["n"], "hypervolume": rows["hv_mean"], "hv ± 95 % CI": rows["hv_ci95"],
               "hv seeds": rows["hv_n"], "hv settings": rows["hv_points"]}
    return pd.DataFrame({name: list(values) for name, values in columns.items()})


def not_applicable_frame(board: Board) -> pd.DataFrame:
    """(task, method, reason) where a registered method does not apply (listing.not_applicable)."""
    from mubench.board.listing import not_applicable

    task_names = sorted({r.task for e in board.entries for r in e.submission.results})
    method_names = sorted({e.submission.method for e in board.entries})
    rows = not_applicable(task_names, method_names) if method_names else []
    return pd.DataFrame(rows, columns=["task", "method", "reason"])


# ---- one method ------------------------------------------------------------------------------------

def method_details(entry: Entry) -> dict[str, pd.DataFrame]:
    """The method page's tables: about, defaults, chosen settings per cell, per-seed values, failures."""
    s = entry.submission
    about = {"method": s.method, "entry": entry.label, "status": entry.status, "source": entry.source,
             "version": s.version, "authors": ", ".join(s.authors), "paper": s.paper, "access": s.access.value,
             "suite": s.suite, "seeds": ", ".join(map(str, s.seeds)), "sweep": s.sweep or "none",
             "selection": s.selection, "intensity": s.intensity or "none", "source file": s.source_file,
             "class": s.class_name, "source sha256": s.source_sha256, "hardware": s.hardware,
             "compute seconds": f"{s.compute_seconds:.1f}", "mubench version": s.mubench_version,
             "git commit": s.git_commit, "created at": s.created_at, "records": str(len(s.record_ids)),
             "failed runs": str(len(s.failures))}
    chosen = [{"task": r.task, "scenario": r.scenario, "profile": r.profile, "task version": r.task_version,
               "hparams": r.hparams, "seeds": len(r.splits)} for r in s.results]
    per_seed = [{"task": r.task, "scenario": r.scenario, "profile": r.profile, "metric": key,
                 "seed": seed, "value": value}
                for r in s.results for key, m in r.metrics.items()
                for seed, value in zip(_seeds_for(r, m.values), m.values)]
    return {
        "about": pd.DataFrame({"field": list(about), "value": list(about.values())}),
        "defaults": pd.DataFrame({"hyper-parameter": list(s.hparams), "default": [str(v) for v in s.hparams.values()]}),
        "chosen": pd.DataFrame(chosen, columns=["task", "scenario", "profile", "task version", "hparams", "seeds"]),
        "per_seed": pd.DataFrame(per_seed, columns=["task", "scenario", "profile", "metric", "seed", "value"]),
        "failures": pd.DataFrame({"failed run": list(s.failures)}),
    }


def _seeds_for(result: Any, values: Sequence[float]) -> list[int | None]:
    """The seed of each value: the splits' seeds when every seed has the metric, else unknown."""
    seeds = [split.seed for split in result.splits]
    return list(seeds) if len(seeds) == len(values) else [None] * len(values)

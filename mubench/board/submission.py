"""Leaderboard submissions: one JSON file per method, built by the harness from stored records.

A submission file (`leaderboard/submissions/<method>.json`) holds who made the method, what it may
touch, how its hyper-parameters were chosen, and per task x scenario the aggregated metrics (mean,
95 % CI, n seeds; mubench.results.aggregate), the sweep's hypervolume (mubench.results.ranking) and the split id
of every seed. Every number comes from records; nothing is typed by hand.

Rules (RobustBench-style comparability flags, made checkable):

- Names: a method name matches ^[a-z][a-z0-9_]{0,63}$, so it is safe as a file name and as text.
  Free texts (authors, paper, description, hardware, ...) are plain text: any '<' or '>' is
  REFUSED (not escaped), so a file never carries HTML; markdown characters are allowed and the
  leaderboard must show every text as text.
- Verified: the `verified` flag a file carries is never trusted by itself. `check_submission`
  keeps it true only when every record the file cites (`record_ids`) is a successful record of
  the local store and rebuilding the results from those records reproduces the file exactly;
  otherwise the file is accepted as self-reported (verified false) with a note. `mubench submit`
  writes verified files, since it stores the records it aggregates.
- Registry: task versions and split ids must equal what the registry draws now (splits recomputed
  with mubench.harness.splits, never read from the cache); tasks whose data is absent are skipped with a
  note. Metric values must lie in their ranges (`METRIC_RANGES`). The metric and MIA spec versions
  the file states must be this mubench's (numbers of other definitions are not comparable).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mubench.board.safe_json import UnsafeJsonError, read_json
from mubench.errors import MubenchError
from mubench.harness.record import Record
from mubench.methods import METHOD_NAME, Access, HParamValue

SCHEMA_VERSION = 1
DEFAULT_FOLDER = Path("leaderboard") / "submissions"
PLAIN_TEXT = r"^[^<>]*$"
SHA256 = r"^[0-9a-f]{64}$"

MethodName = Annotated[str, Field(pattern=METHOD_NAME)]
PlainText = Annotated[str, Field(pattern=PLAIN_TEXT, max_length=4000)]

# (regex over the metric key, low, high): the first match applies; unmatched keys are unbounded.
METRIC_RANGES: tuple[tuple[str, float, float], ...] = (
    (r"^(signal|gap)/.*(acc|auc|svc|ulira)$", -1.0, 1.0),   # differences of two values in [0, 1]
    (r"(^|/|_)(acc|auc)(_|$)|/.*acc$|/.*auc$|^mia/", 0.0, 1.0),  # accuracies and AUCs
    (r"^objective/", 0.0, 1.0),
    (r"seconds$|^cost/(rte|peak_mem_mb|params_changed)$", 0.0, math.inf),
)


class SubmissionError(MubenchError):
    """A submission file that cannot be accepted; the message lists every problem."""


class SeedSplit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(ge=0)
    split_id: str = Field(pattern=SHA256)


class MetricSummary(BaseModel):
    """Mean over seeds, half-width of the 95 % t-interval (null for one seed), number of seeds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: float
    ci95: float | None = Field(ge=0)
    n: int = Field(ge=1)
    values: list[float] = Field(default_factory=list, description="the value of each seed that has the metric, "
                                "in seed order (the order of `splits`); empty in files older than this field")


class TradeoffPoint(BaseModel):
    """One setting of the method's runs in a task x scenario: the means over seeds of the two
    objectives the trade-off plot and the hypervolume use (mubench.results.ranking.objective_points),
    of `cost/work` and of `cost/rte` (the plot's marker size, mubench.results.plots.tradeoff)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hparams: PlainText = Field(description="the setting, as canonical JSON")
    n: int = Field(ge=1, description="seeds the means are over")
    utility: float = Field(ge=0, le=1)
    forgetting: float = Field(ge=0, le=1)
    work: float | None = Field(default=None, ge=0, description="mean cost/work: sample passes relative to retraining's")
    rte: float | None = Field(default=None, ge=0, description="mean seconds relative to retraining timed on the same machine")


class Hypervolume(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: float = Field(ge=0, le=1)
    ci95: float | None = Field(ge=0)
    n: int = Field(ge=1)
    points: int = Field(ge=1, description="distinct hyper-parameter settings of the sweep")


class SearchResult(BaseModel):
    """How the tuning protocol chose the cell's setting (mubench.orchestration.tuning)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    searched: int = Field(ge=1, description="settings run on the development seed")
    value: float | None = Field(description="the chosen setting's selection score on the development seed")
    reason: PlainText


class TaskResult(BaseModel):
    """One task x scenario: what was run and the harness's aggregated numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_/.-]*$")
    scenario: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_/.-]*$")
    profile: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    task_version: str = Field(pattern=r"^[0-9A-Za-z.]+$")
    hparams: PlainText = Field(description="the setting the selection protocol chose, as canonical JSON")
    splits: list[SeedSplit] = Field(min_length=1)
    metrics: dict[str, MetricSummary]
    hypervolume: Hypervolume | None = None
    tradeoff: list[TradeoffPoint] = Field(default_factory=list, description="every setting run (the sweep's "
                                          "points; one without a sweep), for trade-off plots")
    search: SearchResult | None = Field(default=None, description="tuned entries: how the setting was chosen; the "
                                        "hypervolume and trade-off points are then the development seed's search")
    unusable: int = Field(default=0, ge=0, description="tuned entries: reported seeds whose run returned an unusable "
                          "model (scored 0, mubench.results.scoreboard)")


class TuningProtocol(BaseModel):
    """A tuned entry's protocol: `budget` settings per method chosen by `select_by` on `dev_seed`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dev_seed: int = Field(ge=0)
    budget: int = Field(ge=1)
    select_by: PlainText


class Submission(BaseModel):
    """A leaderboard entry (`leaderboard/submissions/<method>.json`); see the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    method: MethodName
    version: PlainText
    authors: list[PlainText]
    paper: PlainText = ""
    description: PlainText = ""
    source_file: PlainText = Field(description="file name of the method's source")
    class_name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    source_sha256: str = Field(pattern=SHA256)
    access: Access
    hparams: dict[str, HParamValue] = Field(description="the method's default hyper-parameters")
    intensity: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    suite: PlainText
    seeds: list[int] = Field(min_length=1)
    sweep: Literal["axes", "grid"] | None = None
    selection: Literal["default", "val", "tuned"] = Field(description="hyper-parameter selection protocol "
                                                          "(mubench.results.aggregate; tuned: mubench.orchestration.tuning)")
    tuning: TuningProtocol | None = None
    hardware: PlainText
    compute_seconds: float = Field(ge=0, description="sum of the runs' seconds")
    mubench_version: PlainText
    metrics_version: PlainText = Field(default="", description="the metric definitions' version of every record "
                                                                 "(empty: made before entries recorded it)")
    mia_spec_version: PlainText = Field(default="", description="the membership attacks' spec version of every record")
    git_commit: PlainText
    created_at: PlainText
    results: list[TaskResult] = Field(min_length=1)
    failures: list[PlainText] = Field(default_factory=list, description="runs that failed, with the reason")
    record_ids: list[str] = Field(min_length=1, description="the records every number comes from")
    records_sha256: str | None = Field(default=None, pattern=SHA256, description="sha256 of the committed records "
                                       "file (leaderboard/records/<method>.jsonl.gz), when the records travel with "
                                       "the entry")
    verified: bool = False


@dataclass(frozen=True)
class MethodInfo:
    """What a submission says about the method itself (read from its class and source file)."""

    method: str
    version: str
    authors: Sequence[str]
    paper: str
    description: str
    source_file: str
    class_name: str
    source_sha256: str
    access: Access
    hparams: Mapping[str, HParamValue]
    intensity: str | None


def build_submission(records: Sequence[Record], info: MethodInfo, *, suite: str, seeds: Sequence[int],
                     sweep: str | None, verified: bool, created_at: str) -> Submission:
    """The submission of `info`'s method from its records: settings chosen with the `default`
    protocol without a sweep and `val` (best val/acc per seed) with one; hypervolume with a sweep."""
    from mubench.results.aggregate import records_frame, select_settings, summarise
    from mubench.results.ranking import hypervolume_table

    mine = sorted((r for r in records if r.config.method == info.method), key=lambda r: r.id)  # order-free sums
    ok = [r for r in mine if r.status == "ok"]
    if not ok:
        raise SubmissionError(f"method {info.method}: no successful run to submit" + _failures_text(mine))
    selection = "val" if sweep else "default"
    kept, _ = select_settings(records_frame(ok), selection, {info.method: dict(info.hparams)})
    summary = summarise(kept)
    volumes = hypervolume_table(ok) if sweep else None
    points = _tradeoff_means(ok)
    results = [_task_result(summary, volumes, ok, cell, kept, points) for cell in
               summary[["task", "scenario", "profile"]].drop_duplicates().itertuples(index=False)]
    return Submission(
        method=info.method, version=info.version, authors=list(info.authors), paper=info.paper,
        description=info.description, source_file=info.source_file, class_name=info.class_name,
        source_sha256=info.source_sha256, access=info.access, hparams=dict(info.hparams), intensity=info.intensity,
        suite=suite, seeds=sorted(set(seeds)), sweep=sweep, selection=selection,
        hardware="; ".join(sorted({r.hardware for r in ok})),
        compute_seconds=float(sum(r.seconds for r in mine)),
        mubench_version=", ".join(sorted({r.mubench_version for r in ok})),
        metrics_version=", ".join(sorted({r.metrics_version for r in ok})),
        mia_spec_version=", ".join(sorted({r.mia_spec_version for r in ok})),
        git_commit=", ".join(sorted({r.git_commit for r in ok})), created_at=created_at, results=results,
        failures=[f"{r.config.label}: {r.error}".replace("<", "(").replace(">", ")") for r in mine if r.status != "ok"],
        record_ids=sorted(r.id for r in mine), verified=verified)


def build_tuned_entry(search: Sequence[Record], reported: Sequence[Record], info: MethodInfo, *, suite: str,
                      seeds: Sequence[int], tuning: TuningProtocol, created_at: str,
                      records_sha256: str | None = None) -> Submission:
    """A tuned entry (the board suite's): its numbers are the reported seeds' records at the chosen
    settings; its hypervolume and trade-off points are the development seed's search, and each
    cell says how its setting was chosen (mubench.results.scoreboard.choose_settings)."""
    from mubench.results.aggregate import summarise
    from mubench.results.ranking import hypervolume_table
    from mubench.results.scoreboard import choose_settings, scored_frame, unusable

    # sorted by id, so that every sum (means, intervals) is taken in the same order as on a rebuild
    search = sorted((r for r in search if r.config.method == info.method), key=lambda r: r.id)
    reported = sorted((r for r in reported if r.config.method == info.method), key=lambda r: r.id)
    ok = [r for r in reported if r.status == "ok"]
    if not ok:
        raise SubmissionError(f"method {info.method}: no successful reported run" + _failures_text(reported))
    searched_ok = [r for r in search if r.status == "ok"]
    scored = [r for r in reported if r.status == "ok" or unusable(r)]  # an unusable model scores 0, not nothing
    kept = scored_frame(scored)
    summary = summarise(kept)
    volumes = hypervolume_table(searched_ok)
    points = _tradeoff_means(searched_ok)
    choices = choose_settings(search, tuning.dev_seed)  # tie-breaks by the registry's defaults per profile, as the run did
    results = []
    for cell in summary[["task", "scenario", "profile"]].drop_duplicates().itertuples(index=False):
        chosen = choices[(choices["task"] == cell.task) & (choices["scenario"] == cell.scenario)
                         & (choices["profile"] == cell.profile)]
        search_result = None if chosen.empty else SearchResult(
            searched=int(chosen["searched"].iloc[0]), value=_finite(chosen["value"].iloc[0]),
            reason=str(chosen["reason"].iloc[0]))
        result = _task_result(summary, volumes, scored, cell, kept, points)
        lost = sum(1 for r in scored if unusable(r) and (r.config.task, r.config.scenario, r.config.profile) == cell)
        results.append(result.model_copy(update={"search": search_result, "unusable": lost}))
    everything = [*search, *reported]
    return Submission(
        method=info.method, version=info.version, authors=list(info.authors), paper=info.paper,
        description=info.description, source_file=info.source_file, class_name=info.class_name,
        source_sha256=info.source_sha256, access=info.access, hparams=dict(info.hparams), intensity=info.intensity,
        suite=suite, seeds=sorted(set(seeds)), sweep=None, selection="tuned", tuning=tuning,
        hardware="; ".join(sorted({r.hardware for r in everything if r.status == "ok"})),
        compute_seconds=float(sum(r.seconds for r in everything)),
        mubench_version=", ".join(sorted({r.mubench_version for r in ok})),
        metrics_version=", ".join(sorted({r.metrics_version for r in ok})),
        mia_spec_version=", ".join(sorted({r.mia_spec_version for r in ok})),
        git_commit=", ".join(sorted({r.git_commit for r in ok})), created_at=created_at, results=results,
        failures=[f"{r.config.label}: {r.error}".replace("<", "(").replace(">", ")")
                  for r in everything if r.status != "ok"],
        record_ids=sorted({r.id for r in everything}), records_sha256=records_sha256, verified=True)


def _task_result(summary: Any, volumes: Any, records: Sequence[Record], cell: Any, kept: Any,
                 points: Any) -> TaskResult:
    rows = summary[(summary["task"] == cell.task) & (summary["scenario"] == cell.scenario)
                   & (summary["profile"] == cell.profile)]
    runs = [r for r in records if (r.config.task, r.config.scenario, r.config.profile) == tuple(cell)]
    splits = {r.config.seed: r.split_id for r in runs}
    hv = None
    if volumes is not None:
        match = volumes[(volumes["task"] == cell.task) & (volumes["scenario"] == cell.scenario)
                        & (volumes["profile"] == cell.profile)]
        if not match.empty:
            row = match.iloc[0]
            hv = Hypervolume(mean=float(row["hv_mean"]), ci95=_finite(row["hv_ci95"]), n=int(row["n"]),
                             points=int(row["points"]))
    values = _seed_values(kept, cell)
    return TaskResult(
        task=cell.task, scenario=cell.scenario, profile=cell.profile, task_version=runs[0].config.task_version,
        hparams=str(rows["hparams"].iloc[0]),
        splits=[SeedSplit(seed=seed, split_id=splits[seed]) for seed in sorted(splits)],
        metrics={row.metric: MetricSummary(mean=float(row.mean), ci95=_finite(row.ci95), n=int(row.n),
                                           values=values.get(row.metric, []))
                 for row in rows.itertuples(index=False)},
        hypervolume=hv, tradeoff=_cell_points(points, cell))


def _in_cell(frame: Any, cell: Any) -> Any:
    return frame[(frame["task"] == cell.task) & (frame["scenario"] == cell.scenario) & (frame["profile"] == cell.profile)]


def _seed_values(kept: Any, cell: Any) -> dict[str, list[float]]:
    """Per metric, the selected setting's value per seed, in seed order (MetricSummary.values)."""
    rows = _in_cell(kept, cell).sort_values(["metric", "seed"], kind="stable")
    return {metric: [float(v) for v in group["value"]] for metric, group in rows.groupby("metric", sort=False)}


def _tradeoff_means(records: Sequence[Record]) -> Any:
    """Per (task, scenario, profile, hparams): the objectives' and cost/rte's means over seeds, and n."""
    from mubench.results.aggregate import records_frame
    from mubench.results.ranking import objective_points

    frame = records_frame(records)
    points = objective_points(frame)
    keys = ["task", "scenario", "profile", "hparams"]
    means = points.groupby(keys, sort=True).agg(
        utility=("objective/utility", "mean"), forgetting=("objective/forgetting", "mean"),
        n=("seed", "count")).reset_index()
    for key, column in (("cost/work", "work"), ("cost/rte", "rte")):
        values = frame[frame["metric"] == key].groupby(keys)["value"].mean().rename(column).reset_index()
        means = means.merge(values, on=keys, how="left")
    return means


def _cell_points(points: Any, cell: Any) -> list[TradeoffPoint]:
    return [TradeoffPoint(hparams=str(p.hparams), n=int(p.n), utility=float(p.utility), forgetting=float(p.forgetting),
                          work=None if p.work != p.work else float(p.work),
                          rte=None if p.rte != p.rte else float(p.rte))
            for p in _in_cell(points, cell).itertuples(index=False)]


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _failures_text(records: Sequence[Record]) -> str:
    failed = [f"{r.config.label}: {r.error}" for r in records if r.status != "ok"]
    return (":\n" + "\n".join(failed)) if failed else ""


def submissions_folder(folder: Path | None = None) -> Path:
    """`folder`, else $MUBENCH_SUBMISSIONS, else leaderboard/submissions (relative to the cwd)."""
    return Path(folder or os.environ.get("MUBENCH_SUBMISSIONS") or DEFAULT_FOLDER)


def write_submission(submission: Submission, folder: Path | None = None) -> Path:
    """Write `<folder>/<method>.json`; an existing file is never overwritten (SubmissionError)."""
    folder = submissions_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{submission.method}.json"
    try:
        with open(path, "x", encoding="utf-8") as handle:  # "x": fails if the file exists, atomically
            handle.write(submission.model_dump_json(indent=1) + "\n")
    except FileExistsError:
        raise SubmissionError(f"{path} already exists; nothing was overwritten. Remove it (or submit under "
                              f"another method name) to replace the entry") from None
    return path


@dataclass
class Validation:
    """The outcome of checking one file: the submission (None if unreadable), problems, notes."""

    path: Path
    submission: Submission | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def validate_submission(path: Path, folder: Path | None = None, store: Path | None = None) -> Submission:
    """The submission in `path`, checked (see `check_submission`); every problem in one SubmissionError."""
    result = check_submission(path, folder, store)
    if result.problems or result.submission is None:
        raise SubmissionError(f"{path}: {len(result.problems)} problem(s):\n" + "\n".join(f"- {p}" for p in result.problems))
    return result.submission


def check_submission(path: Path, folder: Path | None = None, store: Path | None = None) -> Validation:
    """Check a file against the schema, the registry, metric ranges and the submissions folder
    (duplicates); decide whether its `verified` flag stands (module docstring)."""
    path = Path(path)
    result = Validation(path)
    try:
        data = read_json(path)
    except OSError as exc:
        result.problems.append(f"cannot read the file: {exc.strerror or exc}")
        return result
    except UnsafeJsonError as exc:
        result.problems.append(str(exc))
        return result
    try:
        submission = Submission.model_validate(data)
    except ValidationError as exc:
        result.problems += schema_problems(exc)
        return result
    result.problems += _duplicate_problems(path, submission, submissions_folder(folder))
    result.problems += range_problems(submission)
    result.problems += version_problems(submission)
    registry_problems, notes = _registry_problems(submission)
    result.problems += registry_problems
    result.notes += notes
    verified, why = _verified(submission, store, path.parent)
    if submission.verified and not verified:
        result.notes.append(f"accepted as self-reported (verified: false): {why}")
    result.submission = submission.model_copy(update={"verified": verified})
    return result


def schema_problems(exc: ValidationError) -> list[str]:
    """Pydantic's errors as 'field.path: message', with plain words for the name and text rules."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        pattern = (error.get("ctx") or {}).get("pattern")
        if pattern == PLAIN_TEXT:
            message = "contains '<' or '>': texts are plain text, HTML is refused"
        elif pattern == METHOD_NAME:
            message = f"{error['input']!r} is not a method name ({METHOD_NAME}: lower-case letters, digits, '_'; no HTML or markdown)"
        else:
            message = error["msg"]
        problems.append(f"{where}: {message}")
    return problems


def range_problems(submission: Submission) -> list[str]:
    """Metric means outside their ranges or not finite, and a task x scenario x profile listed twice."""
    problems = []
    cells = [(r.task, r.scenario, r.profile) for r in submission.results]
    for cell in sorted({c for c in cells if cells.count(c) > 1}):
        problems.append(f"results: {'/'.join(cell)} is listed {cells.count(cell)} times (one entry per task x "
                        f"scenario x profile)")
    for result in submission.results:
        for key, summary in result.metrics.items():
            bounds = next(((low, high) for pattern, low, high in METRIC_RANGES if re.search(pattern, key)), None)
            if bounds and not bounds[0] <= summary.mean <= bounds[1]:
                problems.append(f"results {result.task}/{result.scenario}: {key} mean {summary.mean} is outside "
                                f"[{bounds[0]}, {bounds[1]}]")
            if not math.isfinite(summary.mean):
                problems.append(f"results {result.task}/{result.scenario}: {key} mean is not finite")
    return problems


def _duplicate_problems(path: Path, submission: Submission, folder: Path) -> list[str]:
    """A file in the folder must be named after its method; a method may have one file there."""
    problems = []
    resolved = path.resolve()
    if resolved.parent == folder.resolve() and path.name != f"{submission.method}.json":
        problems.append(f"method: the file is named {path.name}, not {submission.method}.json")
    for other in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if other.resolve() == resolved:
            continue
        if other.name == f"{submission.method}.json" or _method_in(other) == submission.method:
            problems.append(f"method: duplicate name {submission.method!r}: {other} already holds an entry for it")
    return problems


def _method_in(path: Path) -> str | None:
    try:
        return read_json(path).get("method")
    except (OSError, UnsafeJsonError, AttributeError):
        return None


def version_problems(submission: Submission) -> list[str]:
    """Numbers computed under other metric definitions than this mubench's cannot be ranked beside
    its own (as results of another task version cannot): the file must be rebuilt from a rerun."""
    from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION

    problems = []
    for name, current in (("metrics_version", METRICS_VERSION), ("mia_spec_version", MIA_SPEC_VERSION)):
        stated = getattr(submission, name)
        if stated != current:
            problems.append(f"{name}: the results were computed under {stated or 'an unrecorded version'}, this "
                            f"mubench's is {current}; rerun them (`mubench submit`, or `mubench leaderboard-data` "
                            "for the baselines) to rank them here")
    return problems


def _registry_problems(submission: Submission) -> tuple[list[str], list[str]]:
    """Task versions and split ids against what the registry draws now."""
    from mubench.errors import UnknownNameError
    from mubench.tasks.base import tasks

    problems: list[str] = []
    notes: list[str] = []
    data: dict[str, Any] = {}
    for result in submission.results:
        where = f"results {result.task}/{result.scenario}"
        try:
            task = tasks.get(result.task)
            task.spec.scenario(result.scenario)
            task.spec.profile(result.profile)
        except (UnknownNameError, MubenchError, ValueError, KeyError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        if result.task_version != task.spec.version:
            problems.append(f"{where}: task version {result.task_version}, the registry's is {task.spec.version}")
            continue
        if not task.data_status().complete:
            notes.append(f"{where}: split ids not checked, the task's data is not here (see `mubench data status`)")
            continue
        if result.task not in data:
            data[result.task] = task.load()
        for entry in result.splits:
            drawn = current_split_id(task, data[result.task], result.scenario, entry.seed, result.profile)
            if drawn != entry.split_id:
                problems.append(f"{where}: seed {entry.seed}: split id {entry.split_id[:12]} does not match the "
                                f"one drawn now ({drawn[:12]})")
    return problems, notes


_DRAWN: dict[tuple[str, str, str, str, int, str], str] = {}


def current_split_id(task: Any, data: Any, scenario: str, seed: int, profile: str) -> str:
    """The split id the harness would record now (indices and poison), drawn without touching the
    cache on disk. Remembered for the process: a board's entries share their cells, and a poisoned
    scenario's draw fits a surrogate model (seconds), so each cell and seed is drawn once."""
    from mubench.harness.splits import make_poison, make_split

    labels = data.train.y.detach().cpu().contiguous().numpy().tobytes()
    key = (task.spec.name, task.spec.version, hashlib.sha256(labels).hexdigest(), scenario, seed, profile)
    if key not in _DRAWN:
        split = make_split(task, data, scenario, seed, profile)
        poison = make_poison(task, data, split, scenario, seed, profile)
        _DRAWN[key] = (replace(split, poison=poison.sha256) if poison is not None else split).id
    return _DRAWN[key]


def _verified(submission: Submission, store_path: Path | None, folder: Path | None = None) -> tuple[bool, str]:
    """Whether the file's claim to be verified stands (`verify_entry`'s checks, without reruns)."""
    if not submission.verified:
        return False, "the file says so"
    problems = verify_entry(submission, folder, store_path)
    return (not problems, "; ".join(problems))


def entry_records(submission: Submission, folder: Path | None = None,
                  store_path: Path | None = None) -> tuple[list[Record] | None, str]:
    """The records an entry cites, and where they were read: the committed records file beside the
    submissions folder when the entry names one (`records_sha256`), else the local store.
    (None, why) when they cannot all be had; a tampered records file raises RecordsFileError."""
    from mubench import paths
    from mubench.board.records_file import read_records, records_path
    from mubench.orchestration.store import Store

    if submission.records_sha256 is not None:
        path = records_path(folder or submissions_folder(), submission.method)
        if not path.exists():
            return None, f"its records file {path} is missing"
        by_id = {r.id: r for r in read_records(path, submission.records_sha256)}
        where = str(path)
    else:
        store = Path(store_path or paths.default_store())
        if not store.exists():
            return None, f"no local store at {store} holds its records (and no records file travels with it)"
        db = Store(store)
        try:
            by_id = {i: r for i in submission.record_ids if (r := db.get(i)) is not None}
        finally:
            db.close()
        where = f"the local store {store}"
    missing = [i for i in submission.record_ids if i not in by_id]
    if missing:
        return None, f"{len(missing)} of its {len(submission.record_ids)} records are not in {where} (e.g. {missing[0][:12]})"
    return [by_id[i] for i in submission.record_ids], where


def verify_entry(submission: Submission, folder: Path | None = None, store_path: Path | None = None) -> list[str]:
    """Why an entry is not verified (empty: it is). Its records must all be found (the committed
    records file, else the local store), each run with the code the entry names (the records'
    `method_digest` is the entry's `source_sha256`, and, for a method installed here, its source
    now), and rebuilding the entry from them must give the same results, field by field."""
    from mubench.board.records_file import RecordsFileError

    try:
        records, where = entry_records(submission, folder, store_path)
    except RecordsFileError as exc:
        return [str(exc)]
    if records is None:
        return [where]
    problems = code_problems(submission, records)
    if problems:
        return problems
    rebuilt = rebuild_entry(submission, records)
    difference = first_difference(submission.model_dump(mode="json")["results"],
                                  rebuilt.model_dump(mode="json")["results"], "results")
    if difference:
        return [f"{difference} (rebuilt from the records in {where})"]
    return []


def code_problems(submission: Submission, records: Sequence[Record]) -> list[str]:
    """Numbers tied to code: every record ran the source the entry names, and that source is the
    installed method's now (where the method is installed here)."""
    from mubench.methods import methods

    stale = sorted({r.config.method_digest for r in records if r.config.method_digest != submission.source_sha256})
    if stale:
        shown = ", ".join(d[:12] or "none" for d in stale[:3])
        return [f"source_sha256: the entry names source {submission.source_sha256[:12]}, but records ran source "
                f"{shown}: rerun them with the entry's code"]
    if submission.method in methods.names():
        now = methods.get(submission.method).source_digest()
        if now and now != submission.source_sha256:
            return [f"source_sha256: the installed {submission.method} is source {now[:12]}, the entry's records ran "
                    f"{submission.source_sha256[:12]}: the code changed since, rerun (`make board`)"]
    return []


def rebuild_entry(submission: Submission, records: Sequence[Record]) -> Submission:
    """The entry the harness builds from `records` with the entry's own description and protocol."""
    info = MethodInfo(**{name: getattr(submission, name) for name in MethodInfo.__dataclass_fields__})
    if submission.selection == "tuned" and submission.tuning is not None:
        dev = submission.tuning.dev_seed
        return build_tuned_entry([r for r in records if r.config.seed == dev],
                                 [r for r in records if r.config.seed != dev], info, suite=submission.suite,
                                 seeds=submission.seeds, tuning=submission.tuning, created_at=submission.created_at,
                                 records_sha256=submission.records_sha256)
    return build_submission(records, info, suite=submission.suite, seeds=submission.seeds, sweep=submission.sweep,
                            verified=True, created_at=submission.created_at)


def first_difference(stated: Any, rebuilt: Any, where: str) -> str | None:
    """The first field where two JSON values differ, as 'path: the entry says X, the records give Y'."""
    if isinstance(stated, dict) and isinstance(rebuilt, dict):
        for key in sorted(set(stated) | set(rebuilt)):
            if key not in stated or key not in rebuilt:
                return f"{where}.{key}: {'absent from the entry' if key not in stated else 'not given by the records'}"
            found = first_difference(stated[key], rebuilt[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(stated, list) and isinstance(rebuilt, list):
        if len(stated) != len(rebuilt):
            return f"{where}: the entry lists {len(stated)}, the records give {len(rebuilt)}"
        for index, (a, b) in enumerate(zip(stated, rebuilt)):
            label = "/".join(str(a.get(k)) for k in ("task", "scenario", "profile")) if isinstance(a, dict) and "task" in a else ""
            found = first_difference(a, b, f"{where}[{label or index}]")
            if found:
                return found
        return None
    if stated != rebuilt:
        return f"{where}: the entry says {stated!r}, the records give {rebuilt!r}"
    return None


def schema_json() -> str:
    """The published JSON schema of a submission file (leaderboard/submission.schema.json)."""
    return json.dumps(Submission.model_json_schema(), indent=2, sort_keys=True) + "\n"

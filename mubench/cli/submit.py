"""`mubench submit`, `mubench validate` and `mubench schema`: leaderboard submissions (mubench.board.submission).

`submit path/to/file.py:ClassName` reads the class from the file in the sandbox's jail (the
driver never imports it: mubench.orchestration.jailed_method), checks it (interface, name,
hyper-parameter space, declared access, a smoke run on the debug task) and reports every problem
at once; then runs the suite through the harness, stores the records and writes a verified
submission file. `submit --entry-point NAME` does the same for a method an installed package
publishes under the entry-point group `mubench.methods`.

`leaderboard-data` writes the baselines' own entries the same way (missing runs of the suite
first, then one verified file per baseline; `--replace` rewrites them atomically) and regenerates
the README's leaderboard block; `make leaderboard-data` runs it on the quick suite.
Registered on the main app by `register(app)` (mubench/cli/app.py).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from mubench import paths
from mubench.board.entries import (
    BASELINE_PACKAGE,
    baseline_info,
    baseline_methods,
    method_info,
    method_problems,
    smoke_problems,
    write_replacing,
)
from mubench.board.submission import (
    SubmissionError,
    build_submission,
    check_submission,
    schema_json,
    submissions_folder,
    write_submission,
)
from mubench.cli.common import (
    StoreOption,
    check_data,
    check_device,
    describe_runs,
    err,
    out,
    run_tuned_grids,
    run_with_progress,
    tasks_with_data,
)
from mubench.errors import MubenchError
from mubench.orchestration.loading import load_entry_point_method, load_method_class

if TYPE_CHECKING:
    pass

SCHEMA_PATH = Path("leaderboard") / "submission.schema.json"
OutOption = Annotated[Optional[Path], typer.Option("--out", help="submissions folder (default: $MUBENCH_SUBMISSIONS or leaderboard/submissions)")]


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise MubenchError(f"--seeds {text!r}: expected integers separated by commas, e.g. 0,1,2") from None


def submit(
    target: Annotated[Optional[str], typer.Argument(help="path/to/file.py:ClassName", metavar="FILE.py:CLASS")] = None,
    entry_point: Annotated[Optional[str], typer.Option("--entry-point", help="instead of a file: the name of a method an installed package publishes under the entry-point group mubench.methods")] = None,
    suite: Annotated[str, typer.Option("--suite", help="the preset grid to run (e.g. quick)")] = "quick",
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="seeds, e.g. 0,1,2 (default: the suite's)")] = None,
    sweep: Annotated[bool, typer.Option("--sweep", help="sweep the hyper-parameters (axes) and report hypervolumes")] = False,
    task: Annotated[Optional[list[str]], typer.Option("--task", help="restrict the suite to these tasks (repeatable)")] = None,
    author: Annotated[Optional[list[str]], typer.Option("--author", help="author (repeatable; default: the class's `authors`)")] = None,
    folder: OutOption = None,
    store: StoreOption = None,
    isolate: Annotated[bool, typer.Option("--isolate/--no-isolate", help="run the method in the sandbox's jail under the limits below, never importing its file here (default: isolated; needs bubblewrap)")] = True,
    time_limit: Annotated[float, typer.Option("--time-limit", min=0.001, help="seconds each run's method and evaluation may take")] = 3600.0,
    memory_limit: Annotated[Optional[int], typer.Option("--memory-limit", min=1, help="MB of address space the method may add")] = 16384,
) -> None:
    """Check a method, run the suite on it through the harness, and write its verified submission file."""
    from mubench.harness.runner import Harness
    from mubench.orchestration.sandbox import Limits
    from mubench.orchestration.store import Store
    from mubench.orchestration.sweep import GridSpec, expand_grid

    limits = Limits(time_limit_s=time_limit, memory_limit_mb=memory_limit) if isolate else None
    if (target is None) == (entry_point is None):
        raise SubmissionError("name the method either as FILE.py:CLASS or with --entry-point NAME (one of the two)")
    if entry_point:  # an installed package: trusted code, like the baselines (docs/security.md)
        cls, path, problems = load_entry_point_method(entry_point)
    elif limits is not None:  # the file is imported only in the jail; the driver gets a description
        from mubench.orchestration.sandbox import describe_in_jail

        cls, path, problems = describe_in_jail(target or "", limits)
    else:  # --no-isolate: the user's own trusted code, imported here
        cls, path, problems = load_method_class(target or "")
    target = target or f"entry point method {entry_point!r}"
    if not problems:
        problems = method_problems(cls)
    if not problems:
        err.print(f"checking {escape(cls.name)}: a smoke run on the debug task", highlight=False, soft_wrap=True)
        problems = smoke_problems(cls, limits)  # type: ignore[arg-type]
    if problems:
        raise SubmissionError(f"{target}: {len(problems)} problem(s):\n" + "\n".join(f"- {p}" for p in problems))
    assert cls is not None and path is not None
    destination = submissions_folder(folder) / f"{cls.name}.json"
    if destination.exists():
        raise SubmissionError(f"{destination} already exists; nothing was run or overwritten. Remove it to resubmit")
    grid = GridSpec.from_suite(suite)
    grid.methods, grid.sweep = [cls.name], "axes" if sweep else None
    grid.seeds = _parse_seeds(seeds) or grid.seeds
    grid.tasks = task or tasks_with_data(grid.tasks)
    if task and isinstance(grid.scenarios, dict):  # a task outside the suite runs all its scenarios
        grid.scenarios = {name: grid.scenarios[name] for name in task if name in grid.scenarios} or None
    configs = expand_grid(grid)
    check_data(list(grid.tasks))
    result_store = Store(store or paths.default_store())
    err.print(f"submit {escape(cls.name)} on suite {escape(suite)}: {escape(describe_runs(configs, result_store))}",
              highlight=False, soft_wrap=True)
    records = run_with_progress(configs, result_store, Harness(device="cpu"), False, "local", limits)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    submission = build_submission(records, method_info(cls, path, list(author or []), grid.profile), suite=suite,
                                  seeds=grid.seeds, sweep=grid.sweep, verified=True, created_at=created)
    written = write_submission(submission, folder)
    out.print(f"wrote {escape(str(written))} (verified; {len(submission.results)} task x scenario results, "
              f"{len(submission.failures)} failed runs)", highlight=False, soft_wrap=True)


def validate(
    file: Annotated[Path, typer.Argument(help="a submission file", metavar="FILE.json")],
    folder: OutOption = None,
    store: StoreOption = None,
) -> None:
    """Check a submission file: schema, registry (task versions, split ids), metric ranges, duplicates."""
    result = check_submission(file, folder, store)
    for note in result.notes:
        err.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    if result.problems:
        err.print(f"{escape(str(file))}: {len(result.problems)} problem(s)", highlight=False, soft_wrap=True)
        for problem in result.problems:
            err.print(f"- {escape(problem)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    assert result.submission is not None
    state = "verified" if result.submission.verified else "self-reported"
    out.print(f"OK {escape(str(file))} ({result.submission.method}, {state})", highlight=False, soft_wrap=True)


def schema(
    check: Annotated[bool, typer.Option("--check", help="exit 1 if the committed schema differs from the model's")] = False,
    target: Annotated[Path, typer.Option("--path", help="where the schema lives")] = SCHEMA_PATH,
) -> None:
    """Write the submission file's JSON schema (generated from mubench.board.submission.Submission)."""
    text = schema_json()
    if check:
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            err.print(f"stale: {escape(str(target))}; regenerate with `mubench schema`", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        out.print(f"{escape(str(target))} is up to date", highlight=False)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    out.print(f"wrote {escape(str(target))}", highlight=False)


def leaderboard_data(
    suite: Annotated[str, typer.Option("--suite", help="the preset grid to run: board (the tuned leaderboard, CPU), board_gpu (its paper-scale tier, written to leaderboard/gpu/), quick, standard")] = "quick",
    folder: OutOption = None,
    store: StoreOption = None,
    replace_: Annotated[bool, typer.Option("--replace", help="replace the baselines' existing entries (each atomically)")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, or auto")] = "cpu",
    readme: Annotated[Optional[Path], typer.Option("--readme", help="README whose leaderboard block is regenerated afterwards")] = Path("README.md"),
    page: Annotated[Path, typer.Option("--page", help="board page whose full leaderboard block is regenerated afterwards")] = Path("docs/board.md"),
    no_readme: Annotated[bool, typer.Option("--no-readme", help="leave the README and the board page alone")] = False,
) -> None:
    """Run a suite for every baseline (missing runs only) and write each one's verified entry."""
    from mubench.board.tables import load_board
    from mubench.cli.board import page_block, readme_block, write_block
    from mubench.harness.runner import Harness
    from mubench.orchestration.store import Store
    from mubench.orchestration.sweep import SUITES, GridSpec, expand_grid

    baselines = {cls.name: cls for cls in baseline_methods()}
    if not baselines:
        raise MubenchError(f"no method of the {BASELINE_PACKAGE!r} package is registered: is it installed (pip install -e .)?")
    if suite in SUITES and SUITES[suite].tuning is not None:
        _tuned_leaderboard_data(suite, baselines, folder, store, replace_, device,
                                None if no_readme else readme, page)
        return
    grid = GridSpec.from_suite(suite)
    names = [name for name in (grid.methods or baselines) if name in baselines]
    if not names:
        raise MubenchError(f"suite {suite!r} runs no baseline method")
    grid.methods = names
    target = submissions_folder(folder)
    existing = [target / f"{name}.json" for name in names if (target / f"{name}.json").exists()]
    if existing and not replace_:
        raise SubmissionError(f"{len(existing)} entr{'y' if len(existing) == 1 else 'ies'} already exist "
                              f"({', '.join(str(p) for p in existing)}); nothing was run or overwritten. "
                              f"Pass --replace to regenerate them")
    for document in ((readme, page) if readme is not None and not no_readme else ()):
        if not document.is_file():
            raise MubenchError(f"{document}: no such file, so its leaderboard block cannot be regenerated; run from "
                               f"the checkout, or pass --readme PATH and --page PATH, or --no-readme")
    check_device(device)
    grid.tasks = tasks_with_data(grid.tasks)
    configs = expand_grid(grid)
    check_data(list(grid.tasks))
    result_store = Store(store or paths.default_store())
    records = run_with_progress(configs, result_store, Harness(device=device), False)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    built, refused = [], []
    for name in names:
        try:
            built.append(build_submission(records, baseline_info(baselines[name], grid.profile), suite=suite,
                                          seeds=grid.seeds, sweep=None, verified=True, created_at=created))
        except SubmissionError as exc:
            refused.append(str(exc))
    for submission in built:  # every entry is built before the first one is written
        path = write_replacing(submission, target) if replace_ else write_submission(submission, target)
        out.print(f"wrote {escape(str(path))} ({len(submission.results)} task x scenario results, "
                  f"{len(submission.failures)} failed runs)", highlight=False, soft_wrap=True)
    for message in refused:
        err.print(f"[red]not written[/red] {escape(message)}", highlight=False, soft_wrap=True)
    if readme is not None and not no_readme:
        board = load_board(target)
        for document, block in ((readme, readme_block), (page, page_block)):
            write_block(document, block(board=board))
            out.print(f"updated the leaderboard block of {escape(str(document))}", highlight=False, soft_wrap=True)
    err.print(f"{len(built)} baseline entries written to {target}, {len(refused)} not written; "
              f"{len(records)} runs, store: {result_store.path}", highlight=False, soft_wrap=True)
    if refused:
        raise typer.Exit(1)


def _tuned_leaderboard_data(suite: str, baselines: dict, folder: Path | None, store: Path | None,  # type: ignore[type-arg]
                            replace_: bool, device: str, readme: Path | None, page: Path) -> None:
    """`leaderboard-data` for a tuned suite (the board): the tuning protocol's missing runs, then per
    baseline its records file (leaderboard/records/<method>.jsonl.gz) and its tuned entry, which
    names the file's sha256, so that any clone verifies it without a store."""
    from mubench.board.records_file import records_path, write_records
    from mubench.board.submission import TuningProtocol, build_tuned_entry
    from mubench.board.tables import load_board
    from mubench.cli.board import page_block, readme_block, write_block
    from mubench.harness.runner import Harness
    from mubench.orchestration.store import Store
    from mubench.orchestration.sweep import SUITES, expand_grid
    from mubench.results.scoreboard import SELECT_BY

    chosen = SUITES[suite]
    assert chosen.tuning is not None
    names = [name for name in (chosen.methods or baselines) if name in baselines]
    if folder is None and chosen.folder is not None:  # a tier of its own: its folder, never the README's board
        folder, readme = Path(chosen.folder) / "submissions", None
    target = submissions_folder(folder)
    existing = [target / f"{name}.json" for name in names if (target / f"{name}.json").exists()]
    if existing and not replace_:
        raise SubmissionError(f"{len(existing)} entr{'y' if len(existing) == 1 else 'ies'} already exist; nothing was "
                              "run or overwritten. Pass --replace to regenerate them")
    check_device(device)
    tasks = tasks_with_data(list(chosen.tasks))
    grids = chosen.grids(tasks)
    for grid in grids:
        grid.methods = names
        expand_grid(grid)
    check_data(tasks)
    result_store = Store(store or paths.default_store())
    search, reported = run_tuned_grids(grids, chosen.tuning, result_store, Harness(device=device), False)
    tuning = TuningProtocol(dev_seed=chosen.tuning.dev_seed, budget=chosen.tuning.budget, select_by=SELECT_BY)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    written, refused = [], []
    for name in names:
        mine = [r for r in [*search, *reported] if r.config.method == name]
        try:
            entry = build_tuned_entry(search, reported, baseline_info(baselines[name]), suite=suite,
                                      seeds=chosen.all_seeds(), tuning=tuning, created_at=created)
        except SubmissionError as exc:
            refused.append(str(exc))
            continue
        digest = write_records(records_path(target, name), mine)
        entry = entry.model_copy(update={"records_sha256": digest})
        path = write_replacing(entry, target) if replace_ else write_submission(entry, target)
        written.append(path)
        out.print(f"wrote {escape(str(path))} and its {len(mine)} records ({len(entry.results)} task x scenario "
                  f"results, {len(entry.failures)} failed runs)", highlight=False, soft_wrap=True)
    for message in refused:
        err.print(f"[red]not written[/red] {escape(message)}", highlight=False, soft_wrap=True)
    if readme is not None:
        board = load_board(target)
        for document, block in ((readme, readme_block), (page, page_block)):
            write_block(document, block(board=board))
    err.print(f"{len(written)} baseline entries written to {target}, {len(refused)} not written; "
              f"{len(search)} search and {len(reported)} reported runs, store: {result_store.path}",
              highlight=False, soft_wrap=True)
    if refused:
        raise typer.Exit(1)


def verify(
    file: Annotated[Path, typer.Argument(help="a leaderboard entry", metavar="ENTRY.json")],
    rerun: Annotated[int, typer.Option("--rerun", min=0, help="re-execute this many of its reported runs from their "
                                       "configs and compare every metric")] = 0,
    store: StoreOption = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, or auto (for --rerun)")] = "cpu",
    isolate: Annotated[bool, typer.Option("--isolate", help="--rerun: run each method in the sandbox's jail, as "
                                          "mubench submit does (needs bubblewrap)")] = False,
) -> None:
    """Check an entry against its records (the committed records file, else the local store) and the
    installed code; with --rerun K, re-execute K of its runs and compare their metrics and weights."""
    from mubench.board.rerun import rerun_records
    from mubench.board.submission import entry_records, validate_submission, verify_entry
    from mubench.orchestration.sandbox import Limits

    submission = validate_submission(file, file.parent, store)  # schema, registry, ranges: every problem at once
    problems = verify_entry(submission, file.parent, store)
    if problems:
        for problem in problems:
            err.print(f"- {escape(problem)}", highlight=False, soft_wrap=True)
        err.print(f"{escape(str(file))}: not verified", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    records, where = entry_records(submission, file.parent, store)
    assert records is not None
    out.print(f"OK {escape(str(file))}: {len(records)} records ({escape(where)}) rebuild every number, run with "
              f"source {submission.source_sha256[:12]}", highlight=False, soft_wrap=True)
    if rerun:
        check_device(device)
        report = rerun_records(records, rerun, device, Limits() if isolate else None)
        for line in report.lines:
            out.print(escape(line), highlight=False, soft_wrap=True)
        if report.problems:
            for problem in report.problems:
                err.print(f"- {escape(problem)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `submit`, `validate`, `schema` and `leaderboard-data` to the main app (mubench/cli/app.py calls this)."""
    for command in (submit, validate, verify, schema):
        app.command()(command)
    app.command("leaderboard-data")(leaderboard_data)

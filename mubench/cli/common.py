"""What the command modules share: the consoles, the `--store` option, and the checks and progress
display a run needs (data present, device usable, sandbox limits). The command modules import
this one and never each other, so the command line has no import circle."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from mubench.errors import MubenchError

err = Console(stderr=True)
# Piped output gets a wide console: a results table squeezed to 80 columns is unreadable in a log.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)

StoreOption = Annotated[Optional[Path], typer.Option("--store", help="SQLite store (default: $MUBENCH_HOME/results.sqlite)")]


def tasks_with_data(task_names: Sequence[str]) -> list[str]:
    from mubench.tasks.base import tasks

    present = [name for name in task_names if name not in tasks or tasks.get(name).data_status().complete]
    skipped = [name for name in task_names if name not in present]
    if skipped:
        err.print(f"skipping {', '.join(skipped)}: data not found (see `mubench data status`)", highlight=False)
    return present


def check_device(device: str) -> None:
    import torch

    from mubench.harness.runner import resolve_device

    try:
        resolved = torch.device(resolve_device(device))
    except RuntimeError:
        raise MubenchError(f"--device {device!r} is not a device; use cpu, cuda, cuda:N or auto") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise MubenchError(f"--device {device}: CUDA is not available here; use --device cpu (or auto)")


def check_data(task_names: list[str]) -> None:
    from mubench.data.files import missing_message
    from mubench.tasks.base import tasks

    for name in task_names:
        task = tasks.get(name)
        missing = [f for f in task.data_files() if f.name in task.data_status().missing]
        if missing:
            raise MubenchError(f"task {name}: " + "\n".join(missing_message(f) for f in missing))


def limits(isolate: bool, time_limit: float, memory_limit: int | None):  # type: ignore[no-untyped-def]
    """The sandbox limits of --isolate, or None (the runs stay in this process)."""
    from mubench.orchestration.sandbox import Limits

    return Limits(time_limit_s=time_limit, memory_limit_mb=memory_limit) if isolate else None


def run_name(config) -> str:  # type: ignore[no-untyped-def]
    """A run as people name it: task/scenario/method/seed/profile and its setting (canonical JSON)."""
    from mubench.hashing import canonical_json

    return f"{config.label} {canonical_json(config.hparams)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def describe_runs(configs, store) -> str:  # type: ignore[no-untyped-def]
    """'N runs = cells x seeds x settings; K already in the store': what a grid is about to do,
    said before any of it starts (a suite on a CPU takes minutes to hours)."""
    from mubench.hashing import canonical_json
    from mubench.orchestration.sweep import is_current

    unique = list({c.id: c for c in configs}.values())
    tasks = {c.task for c in unique}
    cells = {(c.task, c.scenario, c.profile) for c in unique}
    seeds = {c.seed for c in unique}
    settings = {(c.method, canonical_json(c.hparams)) for c in unique}
    factors = (f"{_plural(len(cells), 'task x scenario cell')} of {_plural(len(tasks), 'task')} x "
               f"{_plural(len(seeds), 'seed')} x {_plural(len(settings), 'setting')}")
    shape = " = " if len(cells) * len(seeds) * len(settings) == len(unique) else " over "
    done = store.completed_ids()
    stored = sum(1 for c in unique if c.id in done and (record := store.get(c.id)) is not None and is_current(record))
    return (f"{_plural(len(unique), 'run')}{shape}{factors}; {stored} already in the store {store.path}, "
            f"{len(unique) - stored} to run")


def run_with_progress(configs, store, harness, as_json: bool, executor="local", isolate=None):  # type: ignore[no-untyped-def]
    """`run_grid` with a progress bar on stderr that names the run in progress, and one line per
    finished run ([i/N] name: state), so a log shows progress too."""
    from mubench.orchestration.sweep import run_grid

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    position = 0  # configs[position] is the next run to finish: records arrive in the order of `configs`
    with Progress(*columns, console=err, transient=False) as progress:
        bar = progress.add_task(run_name(configs[0]) if configs else "nothing to run", total=len(configs))

        def on_record(record, skipped):  # type: ignore[no-untyped-def]
            nonlocal position
            state = "stored before" if skipped else record.status
            if as_json:
                out.file.write(record.model_dump_json() + "\n")
                out.file.flush()
            while position < len(configs) and configs[position].id != record.id:
                position += 1  # a config listed twice finishes once
            position += 1
            progress.console.print(f"[{min(position, len(configs))}/{len(configs)}] {run_name(record.config)}: {state}",
                                   highlight=False, markup=False, soft_wrap=True)
            following = run_name(configs[position]) if position < len(configs) else "done"
            progress.update(bar, completed=min(position, len(configs)), description=following)

        records = run_grid(configs, store, harness, on_record, executor, isolate)
        progress.update(bar, completed=len(configs), description="done")
        return records


def run_tuned_grids(grids, tuning, store, harness, as_json: bool):  # type: ignore[no-untyped-def]
    """The tuning protocol over each grid (mubench.orchestration.tuning): the search on the
    development seed, the choice from its records, the reported seeds at the chosen settings;
    every stage resumes from the store. Returns (search records, reported records)."""
    from mubench.orchestration.tuning import report_configs, search_configs
    from mubench.results.scoreboard import choose_settings

    search, reported = [], []
    for grid in grids:
        found = run_with_progress(search_configs(grid, tuning), store, harness, as_json)
        search += found
        reported += run_with_progress(report_configs(grid, choose_settings(found, tuning.dev_seed)), store, harness,
                                      as_json)
    return search, reported

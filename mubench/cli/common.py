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


def run_with_progress(configs, store, harness, as_json: bool, executor="local", isolate=None):  # type: ignore[no-untyped-def]
    from mubench.orchestration.sweep import run_grid

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        bar = progress.add_task("starting", total=len(configs))

        def on_record(record, skipped):  # type: ignore[no-untyped-def]
            state = "stored before" if skipped else record.status
            if as_json:
                out.file.write(record.model_dump_json() + "\n")
                out.file.flush()
            progress.console.print(f"{record.config.label}: {state}", highlight=False)
            progress.update(bar, advance=1, description=record.config.scenario)

        return run_grid(configs, store, harness, on_record, executor, isolate)


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

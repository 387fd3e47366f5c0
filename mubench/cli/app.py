"""The `mubench` command line: list, run, results, data status."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from typer.core import TyperCommand

from mubench import paths
from mubench.cli.board import register as register_board_commands
from mubench.cli.common import (
    StoreOption,
    check_data,
    check_device,
    err,
    limits,
    out,
    run_tuned_grids,
    run_with_progress,
    tasks_with_data,
)
from mubench.cli.stream import stream_app
from mubench.cli.submit import register as register_submission_commands
from mubench.errors import MubenchError

app = typer.Typer(help="mubench: a benchmark and leaderboard for machine unlearning.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Where each task's data is, and what is missing.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(stream_app, name="stream")


class Listable(str, Enum):
    tasks = "tasks"
    scenarios = "scenarios"
    methods = "methods"


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


class SweepKind(str, Enum):
    axes = "axes"
    grid = "grid"


class Select(str, Enum):
    default = "default"
    val = "val"


class ExecutorKind(str, Enum):
    local = "local"
    processes = "processes"
    ray = "ray"


class View(str, Enum):
    table = "table"
    hypervolume = "hypervolume"
    ranks = "ranks"
    board = "board"
    audit = "audit"
    attacks = "attacks"


class _OptionalSweepValue(TyperCommand):
    """`--sweep` with no value means `--sweep axes` (typer has no options with an optional value)."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        args = list(args)
        end = args.index("--") if "--" in args else len(args)
        for i in range(end):
            if args[i] == "--sweep" and (i + 1 == end or args[i + 1].startswith("-")):
                args[i] = "--sweep=axes"
        return super().parse_args(ctx, args)




def main() -> None:
    try:
        app()
    except MubenchError as exc:
        # escaped: a message may quote user input with [brackets]; soft_wrap: no line breaks
        # inserted into names, paths or "Did you mean" hints
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


@app.command("list")
def list_(what: Listable, as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """List registered tasks, scenarios (per task) or methods."""
    from mubench.board import listing
    rows = {"tasks": listing.task_rows, "scenarios": listing.scenario_rows, "methods": listing.method_rows}[what.value]()
    if as_json:
        out.file.write(json.dumps(rows, indent=1) + "\n")
    else:
        listing.print_rows(rows, title=what.value, console=out)


@app.command(cls=_OptionalSweepValue)
def run(
    task: Annotated[Optional[list[str]], typer.Option("--task", help="task name (repeatable)")] = None,
    scenario: Annotated[Optional[list[str]], typer.Option("--scenario", help="scenario (repeatable; default: all of the task's)")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", help="method (repeatable; default: all)")] = None,
    seed: Annotated[Optional[list[int]], typer.Option("--seed", help="seed (repeatable; default 0)")] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", help="smoke or standard (default smoke)")] = None,
    suite: Annotated[Optional[str], typer.Option("--suite", help="a preset grid, e.g. 'quick'")] = None,
    hparam: Annotated[Optional[list[str]], typer.Option("--hparam", help="override, METHOD.NAME=VALUE (repeatable)")] = None,
    sweep: Annotated[Optional[SweepKind], typer.Option("--sweep", metavar="[axes|grid]", help="sweep each method's hyper-parameters: axes (the default kind: one at a time around the defaults) or grid (the cross product)")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, or auto")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON record per run on stdout, nothing else")] = False,
    shadow_models: Annotated[int, typer.Option("--shadow-models", min=0, help="K shadow originals + K shadow oracles per split for mia/ulira and mia/rmia (default 0: off)")] = 0,
    population: Annotated[Optional[int], typer.Option("--population", min=0, help="N: every run also unlearns N originals with its method beside N oracles, for the population attacks audit/* (U-LiRA, KLOM, RMIA; docs/metrics.md); 16 to 64 on the CPU tasks (default: the suite's, else 0: off)")] = None,
    store: StoreOption = None,
    executor: Annotated[ExecutorKind, typer.Option("--executor", help="local (in this process), processes (--workers worker processes of this machine) or ray (one Ray task per run)")] = ExecutorKind.local,
    address: Annotated[Optional[str], typer.Option("--address", help="ray: the cluster to join (default: start a local instance)")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="processes: worker processes; ray: CPUs of the local instance (default: all cores)")] = None,
    gpus_per_run: Annotated[Optional[float], typer.Option("--gpus-per-run", min=0, help="ray: GPU share of each run (default 0.25 on CUDA, 0 on the CPU)")] = None,
    overlap: Annotated[bool, typer.Option("--overlap", help="local: compute each run's outputs-only metrics (the attacks' CPU fits) in a thread beside the next run's method: more runs per hour on a GPU, method seconds that include the contention")] = False,
    isolate: Annotated[bool, typer.Option("--isolate", help="run each method in the sandbox's jail (bubblewrap: only its declared data, no network, no store) under --time-limit and --memory-limit (docs/security.md)")] = False,
    time_limit: Annotated[float, typer.Option("--time-limit", min=0.001, help="--isolate: seconds each run's method and evaluation may take")] = 3600.0,
    memory_limit: Annotated[Optional[int], typer.Option("--memory-limit", min=1, help="--isolate: MB of address space the method may add (default: no limit)")] = None,
) -> None:
    """Run the cross product of the given options (or a suite); finished runs are skipped."""
    from mubench.harness.runner import Harness
    from mubench.methods import parse_hparam_overrides
    from mubench.orchestration.store import Store
    from mubench.orchestration.sweep import GridSpec, expand_grid

    if suite:
        from mubench.orchestration.sweep import SUITES

        if suite in SUITES and SUITES[suite].tuning is not None:
            if hparam or sweep or profile:
                raise MubenchError(f"suite {suite!r} chooses each method's setting by its tuning protocol and runs each "
                                   "task at its own profile: --hparam, --sweep and --profile do not apply")
            run_tuned_suite(suite, task, scenario, method, seed, device, store, as_json, shadow_models,
                            population or 0)
            return
    grid = GridSpec.from_suite(suite) if suite else GridSpec(tasks=[], scenarios=None, methods=None, seeds=[0], profile="smoke")
    grid.tasks = task or grid.tasks
    grid.scenarios, grid.methods = scenario or grid.scenarios, method or grid.methods
    grid.seeds, grid.profile = seed or grid.seeds, profile or grid.profile
    grid.hparams = parse_hparam_overrides(hparam or [])
    grid.sweep = sweep.value if sweep else None
    grid.population = grid.population if population is None else population
    if not grid.tasks:
        raise MubenchError("name at least one --task, or a --suite (e.g. --suite quick)")
    if suite and not task:  # a suite covers the tasks whose data is here, and names the others
        grid.tasks = tasks_with_data(grid.tasks)
    configs = expand_grid(grid)
    check_data(grid.tasks)
    check_device(device)
    if executor is not ExecutorKind.ray and (address or gpus_per_run is not None):
        raise MubenchError("--address and --gpus-per-run apply to --executor ray")
    if executor is ExecutorKind.local and workers:
        raise MubenchError("--workers applies to --executor processes and ray")
    if overlap and (executor is not ExecutorKind.local or isolate):
        raise MubenchError("--overlap applies to --executor local without --isolate")
    if isolate and grid.population:
        raise MubenchError("--population applies the method to every member in this process; it does not run in "
                           "the sandbox's jail (--isolate) yet")
    if isolate and executor is not ExecutorKind.local:
        raise MubenchError("--isolate runs each run's method in a jail on this machine: use it with --executor local")
    result_store = Store(store or paths.default_store())  # a read-only or full location fails here, before any work
    harness = Harness(device=device, shadow_models=shadow_models)
    from mubench.orchestration.executors import make_executor

    options = {"ray": {"address": address, "workers": workers, "gpus_per_run": gpus_per_run},
               "processes": {"workers": workers}, "local": {"overlap": overlap}}.get(executor.value, {})
    with make_executor(executor.value, harness, **options) as runner:
        records = run_with_progress(configs, result_store, harness, as_json, runner, limits(isolate, time_limit, memory_limit))
    if not as_json:
        from mubench.results.aggregate import records_frame, summarise
        from mubench.results.report import render

        if grid.sweep:
            from mubench.results.ranking import hypervolume_table
            from mubench.results.report import render_hypervolume

            render_hypervolume(hypervolume_table(records), "table", out)
        else:
            render(summarise(records_frame(records)), "table", out, select="all")
        failed = [r for r in records if r.status == "failed"]
        for record in failed:
            err.print(f"[red]failed[/red] {record.config.label}: {record.error}", highlight=False, soft_wrap=True)
        err.print(f"{len(records)} runs ({len(failed)} failed); store: {result_store.path}")


def board_records(records: list) -> list:  # type: ignore[type-arg]
    """The records the board suite reports: per profile grid, those at the settings its tuning
    protocol chooses from the stored search (mubench.orchestration.tuning.tuned_records)."""
    from mubench.orchestration.sweep import SUITES
    from mubench.orchestration.tuning import tuned_records

    suite = SUITES["board"]
    assert suite.tuning is not None
    reported = []
    for grid in suite.grids(sorted({r.config.task for r in records} & set(suite.tasks))):
        reported += tuned_records(grid, suite.tuning, records)[2]
    return reported


def run_tuned_suite(name: str, task: list[str] | None, scenario: list[str] | None, method: list[str] | None,
                    seed: list[int] | None, device: str, store: Path | None, as_json: bool, shadow_models: int,
                    population: int = 0) -> None:
    """`mubench run --suite board`: per profile of the suite, the tuning protocol's search on the
    development seed, the choice, and the reported seeds at the chosen settings
    (mubench.orchestration.tuning); every stage resumes from the store. With `population` N, then
    the privacy audit of the suite's privacy cells (`audit_configs`): each method at its chosen
    setting on the first reported seed, with a population of N."""
    from mubench.orchestration.sweep import check_population
    from mubench.orchestration.tuning import audit_configs

    if population:
        check_population(population)
    from mubench.harness.runner import Harness
    from mubench.orchestration.store import Store
    from mubench.orchestration.sweep import SUITES, expand_grid
    from mubench.results.report import render_board

    chosen_suite = SUITES[name]
    tuning = chosen_suite.tuning
    assert tuning is not None
    names = task or tasks_with_data(list(chosen_suite.tasks))
    grids = chosen_suite.grids(names)
    for grid in grids:
        grid.scenarios = scenario or grid.scenarios
        grid.methods = method or grid.methods
        grid.seeds = seed or grid.seeds
        expand_grid(grid)  # every name checked before anything runs
    check_data(names)
    check_device(device)
    result_store = Store(store or paths.default_store())
    harness = Harness(device=device, shadow_models=shadow_models)
    _, reported = run_tuned_grids(grids, tuning, result_store, harness, as_json)
    if population:
        audited = run_with_progress(audit_configs(reported, population), result_store, harness, as_json)
        if not as_json:
            err.print(f"{len(audited)} population runs of the privacy cells ({sum(r.status == 'failed' for r in audited)}"
                      " failed): `mubench results --view audit`", highlight=False)
    if not as_json:
        render_board(reported, out)
        failed = [r for r in reported if r.status == "failed"]
        for record in failed:
            err.print(f"[red]failed[/red] {record.config.label}: {record.error}", highlight=False, soft_wrap=True)
        err.print(f"{len(reported)} reported runs ({len(failed)} failed), settings chosen on seed {tuning.dev_seed}; "
                  f"store: {result_store.path}")


@app.command()
def results(
    task: Annotated[Optional[list[str]], typer.Option("--task")] = None,
    scenario: Annotated[Optional[list[str]], typer.Option("--scenario")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method")] = None,
    seed: Annotated[Optional[list[int]], typer.Option("--seed", help="only these seeds (repeatable; default: every seed in the store)")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv, json or markdown")] = Format.table,
    view: Annotated[View, typer.Option("--view", help="table (one setting per method, see --select), hypervolume (of each method's sweep), ranks, board (the board suite's tuned runs: score ± CI, rank bands, flags), audit (population runs: U-LiRA, KLOM and RMIA with their 95 % intervals), or attacks (each plain run's membership attacks with their 95 % intervals)")] = View.table,
    select: Annotated[Select, typer.Option("--select", help="the setting per method: default (its default hyper-parameters) or val (per seed, the best val/acc)")] = Select.default,
    metric: Annotated[str, typer.Option("--metric", help="headline metric of --view ranks (one whose best is the oracle's ranks by its gap)")] = "forget/acc",
    store: StoreOption = None,
) -> None:
    """Aggregate stored records over seeds: mean, 95 % CI and n per metric; or sweep hypervolumes, or ranks."""
    from mubench.board import listing
    from mubench.orchestration.store import Store
    from mubench.results.aggregate import (
        SELECTIONS,
        records_frame,
        select_settings,
        summarise,
    )
    from mubench.results.ranking import hypervolume_table, mean_ranks, rank_table
    from mubench.results.report import (
        render,
        render_hypervolume,
        render_ranks,
        selection_note,
    )

    path = store or paths.default_store()
    if not path.exists():
        raise MubenchError(f"no result store at {path}; run `mubench run` first or pass --store")
    records = Store(path).records(task=task, scenario=scenario, method=method)
    if seed:
        records = [r for r in records if r.config.seed in set(seed)]
    if view in (View.audit, View.attacks):  # each attack value with its recorded interval, per run
        from mubench.results.report import render_intervals

        render_intervals(records, out, fmt.value, population=view is View.audit)
        return
    records = [r for r in records if not r.config.population]  # their own model's metrics are the plain run's
    if view is View.board:  # the board suite's reported runs: each method at its chosen setting
        from mubench.results.report import render_board

        render_board(board_records(records), out, fmt.value)
        return
    if view in (View.hypervolume, View.ranks):
        for note in hypervolume_notes(records):
            err.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    if view is View.hypervolume:  # every setting: the sweep is the point
        render_hypervolume(hypervolume_table(records), fmt.value, out)
        return
    if view is View.ranks:
        ranks, omitted = rank_table(records, metric, select.value)
        render_ranks(ranks, mean_ranks(ranks), fmt.value, out, select.value, headline=metric)
    else:
        kept, omitted = select_settings(records_frame(records), select.value)
        render(summarise(kept), fmt.value, out, select=select.value, omitted=omitted)
    if fmt is not Format.table:  # the terminal table's title names the protocol; here, stderr does
        err.print(f"settings: {SELECTIONS[select.value]} (--select {select.value})", highlight=False, soft_wrap=True)
    note = selection_note(select.value, omitted)
    if note and (fmt is not Format.table or view is View.ranks):
        err.print(note, highlight=False, soft_wrap=True)
    for row in listing.not_applicable(sorted({r.config.task for r in records}), method):
        err.print(f"not applicable: {row['method']} on {row['task']} ({row['reason']})", highlight=False, soft_wrap=True)


def hypervolume_notes(records: list) -> list[str]:  # type: ignore[type-arg]
    """What a hypervolume of the store pools that a leaderboard entry's never does, per (task,
    scenario, method, profile): seeds that ran different settings (a tuned suite's reported seeds
    ran only the chosen one: each adds a one-point "front" to the mean) and records of several
    method versions or source digests (one front over different code). An entry's hypervolume
    covers only the records it cites: its sweep's seeds and settings, or a tuned entry's
    development-seed search (mubench.board.submission); `--seed` selects those seeds here."""
    from mubench.results.aggregate import CELL, records_frame
    from mubench.results.ranking import objective_points

    points = objective_points(records_frame(records))
    code: dict[tuple[str, ...], set[tuple[str, str]]] = {}
    for r in records:
        if r.status == "ok":
            key = (r.config.task, r.config.scenario, r.config.method, r.config.profile)
            code.setdefault(key, set()).add((r.config.method_version, r.config.method_digest[:12]))
    notes = []
    for key, group in points.groupby(CELL, sort=True):
        where = "/".join(map(str, key))
        settings = group.groupby("seed")["hparams"].agg(frozenset)
        if settings.nunique() > 1:
            counts: dict[int, list[str]] = {}
            for seed_value, ran in settings.items():
                counts.setdefault(len(ran), []).append(str(seed_value))
            spread = "; ".join(f"seed{'s' if len(s) > 1 else ''} {', '.join(s)}: {n} setting{'s' if n != 1 else ''}"
                               for n, s in sorted(counts.items(), reverse=True))
            notes.append(f"{where}: its seeds ran different settings ({spread}), so its hypervolume averages "
                         f"fronts of different sweeps; a leaderboard entry's covers only the seeds of its sweep (a "
                         f"tuned entry: its development seed's search): select those with --seed")
        versions = code.get(tuple(key), set())
        if len(versions) > 1:
            named = ", ".join(f"{v} ({d or 'no digest'})" for v, d in sorted(versions))
            notes.append(f"{where}: its front pools records of {len(versions)} method versions / source digests "
                         f"({named}); a leaderboard entry's covers only the code it was run with")
    return notes


class PlotKind(str, Enum):
    tradeoff = "tradeoff"
    hypervolume = "hypervolume"
    ranks = "ranks"
    families = "families"


@app.command()
def plot(
    kind: Annotated[PlotKind, typer.Argument(help="tradeoff, hypervolume, ranks or families")],
    task: Annotated[Optional[str], typer.Option("--task", help="task (default: every task in the store)")] = None,
    scenario: Annotated[Optional[str], typer.Option("--scenario", help="scenario (default: all)")] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="output file; .png, .svg or .pdf")] = None,
    store: StoreOption = None,
) -> None:
    """Draw a figure from the stored records (matplotlib)."""
    from mubench.orchestration.store import Store
    from mubench.results.plots import plot as draw

    path = store or paths.default_store()
    if not path.exists():
        raise MubenchError(f"no result store at {path}; run `mubench run` first or pass --store")
    target = out_file or Path(f"{kind.value}-{task or 'all'}-{scenario or 'all'}.png")
    records = Store(path).records(task=[task] if task else None, scenario=[scenario] if scenario else None)
    err.print(f"wrote {draw(kind.value, records, task, scenario, target)}", highlight=False, soft_wrap=True)


@data_app.command("status")
def data_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """For each task: whether its data was found, where, and which files are missing."""
    from mubench.board.listing import data_status_rows, print_rows

    rows = data_status_rows()
    if as_json:
        out.file.write(json.dumps(rows, indent=1) + "\n")
    else:
        print_rows(rows, title=f"data (mirrors: {', '.join(map(str, paths.mirrors())) or 'none'}; home: {paths.home()})", console=out)


@data_app.command("fetch")
def data_fetch(
    task: Annotated[Optional[list[str]], typer.Argument(help="task names", metavar="TASK...", show_default=False)] = None,
    all_tasks: Annotated[bool, typer.Option("--all", help="every registered task")] = False,
) -> None:
    """Download each official file that is not found yet into $MUBENCH_HOME/raw (resumed, sha256-checked)."""
    from mubench.board.listing import any_task, every_task
    from mubench.data.files import fetch

    if bool(task) == all_tasks:
        raise MubenchError("name the tasks to fetch, or pass --all (not both)")
    if paths.offline():
        raise MubenchError("downloads are disabled (MUBENCH_OFFLINE=1); unset MUBENCH_OFFLINE to fetch")
    chosen = [(name, any_task(name)) for name in (task or list(every_task()))]  # unknown names fail first
    failures = []
    for name, task_obj in chosen:
        if not task_obj.data_files():
            out.print(f"{name}: generated data, nothing to fetch", highlight=False)
        for result in fetch(task_obj.data_files()):
            where = escape(str(result.path)) if result.path else ""
            if result.state == "failed":
                failures.append(f"{name}: {result.message}")
                err.print(f"[red]failed[/red] {name}: {escape(result.data_file.name)}", highlight=False, soft_wrap=True)
            else:
                out.print(f"{name}: {escape(result.data_file.name)} {result.state} ({where})", highlight=False, soft_wrap=True)
    if failures:
        raise MubenchError(f"{len(failures)} file(s) could not be fetched:\n" + "\n".join(failures))


@data_app.command("card")
def data_card(
    task: Annotated[Optional[list[str]], typer.Argument(help="task names (default: every registered task)", metavar="[TASK...]", show_default=False)] = None,
    check: Annotated[bool, typer.Option("--check", help="compare the cards with a fresh rendering; exit 1 naming the stale ones")] = False,
    directory: Annotated[Path, typer.Option("--dir", help="folder of the cards")] = Path("data_cards"),
) -> None:
    """Write each task's data card (spec + statistics of its data) to DIR/<task>.md, or --check them."""
    from mubench.board.datacard import stale_parts, write_card
    from mubench.board.listing import any_task, every_task

    chosen = [(name, any_task(name)) for name in (task or list(every_task()))]
    if check:
        stale = {name: parts for name, task_obj in chosen if (parts := stale_parts(task_obj, directory))}
        for name, parts in stale.items():
            err.print(f"stale: {escape(str(directory / name))}.md ({', '.join(parts)})", highlight=False, soft_wrap=True)
        if stale:
            err.print(f"regenerate with: mubench data card {' '.join(stale)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        out.print(f"{len(chosen)} card(s) up to date in {directory}", highlight=False)
        return
    for name, task_obj in chosen:
        path, note = write_card(task_obj, directory)
        out.print(f"wrote {escape(str(path))}" + (f" ({note})" if note else ""), highlight=False, soft_wrap=True)


register_submission_commands(app)  # submit, validate, schema, leaderboard-data
register_board_commands(app)  # leaderboard, export

if __name__ == "__main__":
    main()

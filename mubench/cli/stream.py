"""`mubench stream ...`: list the continual streams, run them, aggregate their records.

Mounted on the main command line (mubench.cli.app) as the `stream` sub-app. Heavy modules (torch,
the harness) are imported inside the commands, so `mubench --help` stays fast.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from mubench import paths
from mubench.cli.common import StoreOption, err, out
from mubench.errors import MubenchError

stream_app = typer.Typer(help="Continual learn/unlearn streams: split-MNIST (and split-CIFAR-10).",
                         no_args_is_help=True)
FINAL_KEYS = ["stream/retained_acc", "stream/unlearned_acc", "stream/relapse", "stream/unlearned_stability",
              "stream/unlearned_chance_gap", "stream/gap_retained", "stream/gap_unlearned", "cost/seconds", "cost/rte"]


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def stream_rows() -> list[dict[str, object]]:
    from mubench.continual.task import continual_tasks

    return [{"task": name, "version": task.spec.version, "stream": stream.name, "requests": stream.codes,
             "description": stream.description, "source": stream.source}
            for name, task in continual_tasks.items() for stream in task.spec.streams]


@stream_app.command("list")
def list_streams(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """Every continual task's streams with their requests (L3 = learn task 3, U3 = unlearn it)."""
    from mubench.board.listing import print_rows

    rows = stream_rows()
    if as_json:
        out.file.write(json.dumps(rows, indent=1) + "\n")
    else:
        print_rows(rows, title="streams (L<t>: learn task t, U<t>: unlearn task t)", console=out)


@stream_app.command("run")
def run(
    task: Annotated[str, typer.Option("--task", help="continual task, e.g. split_mnist")],
    stream: Annotated[Optional[list[str]], typer.Option("--stream", help="stream (repeatable; default: all of the task's)")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method", help="continual method (repeatable; default: all)")] = None,
    seed: Annotated[Optional[list[int]], typer.Option("--seed", help="seed (repeatable; default 0)")] = None,
    profile: Annotated[str, typer.Option("--profile", help="smoke or standard")] = "smoke",
    hparam: Annotated[Optional[list[str]], typer.Option("--hparam", help="override, METHOD.NAME=VALUE (repeatable)")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, or auto")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON record per run on stdout, nothing else")] = False,
    store: StoreOption = None,
) -> None:
    """Run streams (cross product of the options); a run already stored is read back, not re-run."""
    from mubench.continual.methods import continual_methods
    from mubench.continual.runner import StreamHarness, make_config
    from mubench.continual.task import continual_tasks
    from mubench.orchestration.store import Store

    spec = continual_tasks.get(task).spec
    from mubench.methods import parse_hparam_overrides

    overrides = parse_hparam_overrides(hparam or [])
    configs = [make_config(task, s, m, sd, profile, overrides.get(m)) for s in (stream or [x.name for x in spec.streams])
               for sd in (seed or [0]) for m in (method or continual_methods.names())]  # one preparation per stream and seed
    result_store, harness = Store(store or paths.default_store()), StreamHarness(device=device)
    for config in configs:
        stored = result_store.get(config.id)
        record = stored if stored is not None and stored.status == "ok" else harness.run(config)
        if record is not stored:
            result_store.put(record)
        if as_json:
            out.file.write(record.model_dump_json() + "\n")
            continue
        err.print(f"{config.label}: {'stored before' if record is stored else record.status}", highlight=False)
        if record.status != "ok":
            err.print(f"[red]failed[/red]: {record.error}", highlight=False, soft_wrap=True)
            continue
        print_run(record, harness.prepare(task, config.scenario, config.seed, config.profile), out)
    if not as_json:
        err.print(f"{len(configs)} runs; store: {result_store.path}", highlight=False)


def print_run(record, prepared, console: Console) -> None:  # type: ignore[no-untyped-def]
    """The per-request table of one run: the method's and the oracle's retained / unlearned accuracy."""
    metrics = record.metrics
    oracle_retained, oracle_unlearned = prepared.oracle_summary()
    table = Table(title=f"{record.config.label} (stream id {record.split_id[:12]}; chance "
                        f"{', '.join(sorted({f'{c:g}' for c in prepared.chance}))})")
    for column in ("request", "retained ↑", "unlearned ≈chance", "oracle retained", "oracle unlearned", "seconds"):
        table.add_column(column, justify="left" if column == "request" else "right")
    for state, o_ret, o_unl in zip(prepared.states, oracle_retained, oracle_unlearned):
        r = state.request
        table.add_row(f"{r}: {state.step}", _cell(metrics.get(f"stream/retained_acc@{r}")),
                      _cell(metrics.get(f"stream/unlearned_acc@{r}")), _cell(o_ret), _cell(o_unl),
                      _cell(metrics.get(f"cost/seconds@{r}"), 2))
    console.print(table)
    finals = ", ".join(f"{key.split('/')[1]} {_cell(metrics.get(key), 2 if key.startswith('cost/') else 3)}"
                       for key in FINAL_KEYS if key in metrics)
    console.print(f"final: {finals}", highlight=False, soft_wrap=True)


@stream_app.command("results")
def results(
    task: Annotated[Optional[list[str]], typer.Option("--task")] = None,
    stream: Annotated[Optional[list[str]], typer.Option("--stream")] = None,
    method: Annotated[Optional[list[str]], typer.Option("--method")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json")] = Format.table,
    store: StoreOption = None,
) -> None:
    """Final stream metrics over seeds (mean, 95 % CI, n) per task, stream, method and setting."""
    from mubench.continual.task import continual_tasks
    from mubench.orchestration.store import Store
    from mubench.results.aggregate import records_frame, summarise

    path = store or paths.default_store()
    if not path.exists():
        raise MubenchError(f"no result store at {path}; run `mubench stream run` first or pass --store")
    records = Store(path).records(task=task or continual_tasks.names(), scenario=stream, method=method)
    summary = summarise(records_frame(records))
    summary = summary[summary["metric"].isin(FINAL_KEYS)]
    if fmt is Format.csv:
        out.file.write(summary.to_csv(index=False))
    elif fmt is Format.json:
        out.file.write(summary.to_json(orient="records", indent=1) + "\n")
    else:
        _print_summary(summary, out)


def _print_summary(summary, console: Console) -> None:  # type: ignore[no-untyped-def]
    if summary.empty:
        console.print("no successful stream records match", highlight=False)
        return
    from mubench.continual.metrics import DIRECTIONS

    arrows = {"higher": "↑", "lower": "↓", "chance": "≈chance", "zero": "≈0", "info": ""}
    keys = [k for k in FINAL_KEYS if k in set(summary["metric"])]
    table = Table(title="stream results (final values; mean ± 95 % CI over seeds)")
    for column in ["task", "profile", "stream", "method", *[f"{k.split('/')[1]} {arrows[DIRECTIONS[k]]}" for k in keys], "n"]:
        table.add_column(column.strip(), justify="left" if column in ("task", "profile", "stream", "method") else "right")
    settings = summary.groupby("method")["hparams"].nunique()
    for (task, profile, stream, method, hparams), rows in summary.groupby(
            ["task", "profile", "scenario", "method", "hparams"], sort=True):
        by_key = rows.set_index("metric")
        cells = [_cell(by_key.at[k, "mean"], 2 if k.startswith("cost/") else 3, by_key.at[k, "ci95"])
                 if k in by_key.index else "–" for k in keys]
        label = method if settings[method] == 1 else f"{method} {hparams}"
        table.add_row(task, profile, stream, label, *cells, str(int(rows["n"].max())))
    console.print(table)


def _cell(value: float | None, digits: int = 3, ci: float | None = None) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:.{digits}f}" + ("" if ci is None or ci != ci else f" ± {ci:.{digits}f}")



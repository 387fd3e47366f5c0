"""`make bench`, per task: how fast a profile trains, how good the model is, and what a full
leaderboard of that profile would cost (not a test; numbers, not pass/fail).

For each task with data (or `--tasks`), under `--profile` (default: `standard` on a GPU, `smoke`
on a CPU), it trains the original model of seed 0 with the harness's engine and prints:
- seconds to train it and samples/s (epochs x training samples / seconds);
- its test accuracy (MAE for regression); for Colored MNIST also on the bias-conflicting test
  samples, and the same model and recipe on uncoloured MNIST digits (`mnist` row);
- with `--methods`, the mean seconds of one method run (unlearning plus every metric), over every
  applicable registered method on the task's first scenario, and where they go: the method, the
  unlearned model's outputs, and the costliest metrics (mean seconds per run);
- the projected wall time of the profile's full leaderboard: every scenario, every applicable
  method, 3 seeds, default hyper-parameters, run one after the other on this device. A split's
  train part is shared by its scenarios, so the originals are one per seed (plus one per poisoning
  scenario); an oracle per scenario and seed; every run, `retrain` included (it reuses the
  cached oracle and is charged its training seconds: `Harness._from_scratch`), costs the measured
  mean run seconds (without `--methods`: not projected). With `--concurrent K` the runs are
  also timed K at a time through the Ray executor (K workers, 1/K of the GPU each) where Ray is
  installed, else through the `processes` executor (K worker processes sharing the GPU); trainings
  are still counted one after another. `--concurrent 4,8,12` times each level. `--overlap` (the
  default on a GPU) also times the runs one after another with each run's outputs-only metrics
  (the attacks' CPU fits) in a thread beside the next run's method (`LocalExecutor(overlap=True)`).
  The projection uses the fastest way timed (`projected_with`). Methods run under the task's
  engine (bf16 autocast where the recipe trains in bf16: `Engine.hosting`); `--methods-fp32`
  times them in float32 instead, to compare. `--sync-audit` (CUDA) counts each method's
  synchronising calls and names the lines making most of them: a wait on the GPU every step is
  what bounds small models on a large GPU.
On a GPU the method runs are timed by default (`--no-methods` skips them), one after another, with
overlap, and `GPU_CONCURRENCY` (4) at a time. `--set key=value` overrides recipe fields (e.g.
`--set epochs=20`) to explore a recipe; figures taken with overrides are labelled so. Each figure
comes from one run (training is minutes on a CPU); hardware and torch version are printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import mubench.tasks  # noqa: F401  (registers every task)
from mubench.errors import MubenchError, UnknownNameError
from mubench.evaluation import compute_outputs
from mubench.harness import provenance
from mubench.harness.artifacts import ModelCache
from mubench.harness.models import build_model
from mubench.harness.record import Record, RunConfig
from mubench.harness.runner import Harness, derived_seed, supports
from mubench.harness.splits import make_split
from mubench.harness.training import METHOD_PRECISION_ENV, Engine, train_model
from mubench.methods import methods
from mubench.orchestration.sweep import GridSpec, expand_grid
from mubench.request import Subset
from mubench.tasks.base import Task, TaskData, tasks
from mubench.tasks.scenarios import scenario_kinds
from mubench.transfer import recording_synchronisations, synchronize

SEEDS = 3  # the full leaderboard's seeds
GPU_CONCURRENCY = 4  # runs at a time on one GPU by default (the Ray executor's default share is 1/4)


@dataclass
class TaskFigures:
    task: str
    profile: str
    model: str
    train_samples: int
    epochs: int
    train_seconds: float
    samples_per_second: float
    test_metric: str
    test_value: float
    extra: dict[str, float]
    run_seconds: float | None  # mean seconds of one method run (method + metrics), None if not measured
    methods_measured: int
    projected_hours: float | None
    overrides: str
    run_breakdown: dict[str, float] = field(default_factory=dict)  # mean seconds per run: method, outputs, metrics
    concurrent_run_seconds: float | None = None  # effective seconds per run with `workers` at a time (--concurrent)
    workers: int = 1  # the fastest of the --concurrent levels timed (1: none)
    concurrency: dict[str, float] = field(default_factory=dict)  # runs at a time -> effective seconds per run
    synchronisations: dict[str, int] = field(default_factory=dict)  # method -> synchronising calls (--sync-audit)
    overlapped_run_seconds: float | None = None  # effective seconds per run, one at a time with overlap (--overlap)
    # mean cost/seconds of those runs, and of the same runs one after another (the contention's share)
    overlapped_method_seconds: float | None = None
    method_seconds: float | None = None
    projected_with: str | None = None  # the fastest way timed, behind the projection: "1", "1+overlap" or K


def recipe_with(task: Task, profile: str, overrides: dict[str, Any]):  # noqa: ANN201 - a Recipe
    return task.spec.profile(profile).recipe.model_copy(update=overrides)


def _levels(text: str) -> tuple[int, ...]:
    """`--concurrent 4,8,12`: the numbers of runs at a time to time."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values parsed as JSON where they can be (numbers, true/false), else text."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise MubenchError(f"--set {pair!r}: expected key=value")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def train_original(harness: Harness, task: Task, data: TaskData, profile: str, overrides: dict[str, Any],
                   compile: bool | None) -> tuple[torch.nn.Module, float, int, Any]:
    """Seed 0's original on the first scenario's train part, as the harness trains it (stored
    samples on the device, the task's inputs made batch by batch): (model, seconds, samples, split)."""
    scenario = task.spec.scenarios[0].name
    split = make_split(task, data, scenario, 0, profile)
    index = torch.from_numpy(split.train)
    x, y = data.train.x[index].to(harness.device), data.train.y[index].to(harness.device)
    recipe = recipe_with(task, profile, overrides)
    model = build_model(task.spec, profile, derived_seed(task.spec.name, 0, "init")).to(harness.device)
    generator = torch.Generator().manual_seed(derived_seed(task.spec.name, 0, "train"))
    warm_up(harness.device, task, profile, recipe, x, y, compile)
    stats = train_model(model, x, y, recipe, generator, task.spec.target_spec, transform=task.to_inputs,
                        engine=Engine.for_device(harness.device, recipe, compile))
    return model, stats.seconds, len(y), split


def warm_up(device: torch.device, task: Task, profile: str, recipe: Any, x: torch.Tensor, y: torch.Tensor,
            compile: bool | None) -> None:
    """A few steps on a throwaway model first, so that the timed training does not include the
    device's one-off costs (CUDA context, cuDNN algorithm search, kernel loading). Compilation is
    not warmed up: a compiled model is compiled once per training, and its seconds include that."""
    n = min(len(y), 4 * recipe.batch_size)
    throwaway = build_model(task.spec, profile, 0).to(device)
    train_model(throwaway, x[:n], y[:n], recipe.model_copy(update={"epochs": 1}), torch.Generator().manual_seed(0),
                task.spec.target_spec, transform=task.to_inputs, engine=Engine.for_device(device, recipe, False))
    synchronize(device)


def test_figures(task: Task, data: TaskData, split: Any, model: torch.nn.Module, profile: str,
                 device: torch.device) -> tuple[str, float, dict[str, float]]:
    index = torch.from_numpy(split.test)
    subset = Subset(task.to_inputs(data.test.x[index].to(device)), data.test.y[index].to(device))
    outputs = compute_outputs(model, subset, task.spec.profile(profile).eval_batch_size, task.spec.target_spec)
    if task.spec.target_spec.regression:
        keep = task.spec.target_spec.present(outputs.labels)
        return "test MAE", float((outputs.logits - outputs.labels.nan_to_num()).abs()[keep].mean()), {}
    correct = (outputs.logits.argmax(dim=1) == outputs.labels).float()
    extra = {}
    aligned = data.test.attributes.get("bias_aligned")
    if aligned is not None:
        conflicting = aligned[index] == 0
        extra["test acc, bias-conflicting"] = float(correct[conflicting].mean())
    patched = data.test.attributes.get("patched")
    if patched is not None:  # CIFAR-10's patch bias: the published accuracies are on clean images
        extra["test acc, unpatched"] = float(correct[patched[index] == 0].mean())
    return "test acc", float(correct.mean()), extra


def uncoloured_mnist(harness: Harness, profile: str, overrides: dict[str, Any],
                     compile: bool | None) -> tuple[float, float, float]:
    """Colored MNIST's model and recipe on the plain MNIST digits (grey replicated to 3 channels,
    the official 60,000/10,000 split): the figure that published MNIST accuracies compare with.
    Returns (seconds, samples/s, test accuracy)."""
    from mubench.data.mnist import load_mnist

    task = tasks.get("cmnist")
    arrays = load_mnist()
    grey = {part: torch.from_numpy(arrays[f"{part}_images"]).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
            for part in ("train", "test")}
    labels = {part: torch.from_numpy(arrays[f"{part}_labels"].astype("int64")) for part in ("train", "test")}
    recipe = recipe_with(task, profile, overrides)
    model = build_model(task.spec, profile, derived_seed("mnist", 0, "init")).to(harness.device)
    x, y = grey["train"].to(harness.device), labels["train"].to(harness.device)
    warm_up(harness.device, task, profile, recipe, x, y, compile)
    stats = train_model(model, x, y, recipe, torch.Generator().manual_seed(derived_seed("mnist", 0, "train")),
                        transform=task.to_inputs, engine=Engine.for_device(harness.device, recipe, compile))
    subset = Subset(task.to_inputs(grey["test"].to(harness.device)), labels["test"].to(harness.device))
    outputs = compute_outputs(model, subset, 4096)
    accuracy = float((outputs.logits.argmax(dim=1) == outputs.labels).float().mean())
    return stats.seconds, recipe.epochs * len(y) / stats.seconds, accuracy


def method_configs(task: Task, profile: str, method_names: list[str] | None) -> list[RunConfig]:
    """One run per applicable method (default hyper-parameters, seed 0) on the task's first
    scenario, as the sweep expands them."""
    names = list(method_names or methods.names())
    return expand_grid(GridSpec(tasks=[task.spec.name], scenarios=[task.spec.scenarios[0].name], methods=names,
                                seeds=[0], profile=profile))


def mean_run_seconds(harness: Harness, configs: list[RunConfig]) -> tuple[float, dict[str, float], float | None]:
    """Mean seconds of one run (method plus every metric), one after another, their mean
    breakdown (Harness.run_seconds) and the runs' mean `cost/seconds`; the split's original and
    oracle are prepared first and not counted."""
    if not configs:
        return 0.0, {}, None
    harness.prepare(configs[0].task, configs[0].scenario, configs[0].seed, configs[0].profile)
    seconds, records = [], []
    harness.run_seconds = {}
    for config in configs:
        start = time.perf_counter()
        record = harness.run(config)
        synchronize(harness.device)
        seconds.append(time.perf_counter() - start)
        records.append(record)
        status = "ok" if record.status == "ok" else f"failed: {record.error}"
        print(f"  {config.task} {config.method}: {seconds[-1]:.2f} s ({status})", flush=True)
    breakdown = {key: value / len(seconds) for key, value in harness.run_seconds.items()}
    harness.run_seconds = None
    return sum(seconds) / len(seconds), breakdown, mean_method_seconds(records)


def mean_method_seconds(records: list[Record]) -> float | None:
    """The mean `cost/seconds` of the records that have it (None if none does)."""
    method = [r.metrics["cost/seconds"] for r in records if "cost/seconds" in r.metrics]
    return sum(method) / len(method) if method else None


def method_synchronisations(harness: Harness, configs: list[RunConfig], top: int = 3) -> dict[str, int]:
    """Per method, the synchronising CUDA calls of one unlearning on the prepared split
    (`Harness.unlearn`, recorded by mubench.transfer.recording_synchronisations), printed with the
    `top` lines that made most of them. A handful per run is the harness's own (the memory meter,
    the clock, the finite-weights check); hundreds mean a wait on the GPU every step, which on a
    small model can cost as much as the step."""
    if not configs:
        return {}
    prepared = harness.prepare(configs[0].task, configs[0].scenario, configs[0].seed, configs[0].profile)
    counts: dict[str, int] = {}
    for config in configs:
        try:
            with recording_synchronisations() as sites:
                harness.unlearn(config, prepared)
        except Exception as exc:  # noqa: BLE001 - a failing method is reported in the timings; go on
            print(f"  {config.task} {config.method}: not audited ({type(exc).__name__}: {exc})", flush=True)
            continue
        counts[config.method] = len(sites)
        most = Counter(_short(site) for site in sites).most_common(top)
        print(f"  {config.task} {config.method}: {len(sites)} synchronising calls"
              + (": " + ", ".join(f"{site} x{n}" for site, n in most) if most else ""), flush=True)
    return counts


def _short(site: str) -> str:
    """file:line relative to the package's parent folder where it lies there."""
    root = str(Path(__file__).resolve().parents[2]) + os.sep
    return site[len(root):] if site.startswith(root) else site


def concurrent_run_seconds(harness: Harness, configs: list[RunConfig], workers: int) -> float:
    """Effective seconds per run when `workers` runs share the device: the wall time of all
    `configs` through `workers` worker processes over their number. The Ray executor where Ray is
    installed (on CUDA each run holds 1/workers of the GPU), else the `processes` executor (the
    workers share the GPU with no accounting). Each worker prepares the split once (data, cached
    models, their outputs), as it would in a sweep; while one run waits on the CPU (the attacks'
    scikit-learn fits) another computes on the GPU. The clock starts once the executor and its
    workers are up: starting them is paid once per sweep, not per run."""
    from mubench.orchestration.executors import make_executor

    if not configs:
        return 0.0
    name, options = _concurrent_executor(harness, workers)
    with make_executor(name, harness, **options) as executor:
        executor.start()
        start = time.perf_counter()
        failed = [r for r in executor.map(configs) if r.status != "ok"]
        wall = time.perf_counter() - start
    print(f"  {configs[0].task}: {len(configs)} runs, {workers} at a time ({name}): {wall:.2f} s "
          f"({len(failed)} failed)", flush=True)
    return wall / len(configs)


def overlapped_run_seconds(harness: Harness, configs: list[RunConfig]) -> tuple[float, float | None]:
    """Effective seconds per run, one after another in this process, each run's host phase (its
    outputs-only metrics) in a thread beside the next run's device phase: the wall time of all
    `configs` over their number (the split is already prepared, as for `mean_run_seconds`); and
    the mean of the runs' `cost/seconds`, to compare with the method's seconds one after another
    (what the contention adds to a leaderboard's cost column)."""
    from mubench.orchestration.executors import LocalExecutor

    if not configs:
        return 0.0, None
    start = time.perf_counter()
    records = list(LocalExecutor(harness, overlap=True).map(configs))
    synchronize(harness.device)
    wall = time.perf_counter() - start
    method = mean_method_seconds(records)
    failed = sum(r.status != "ok" for r in records)
    print(f"  {configs[0].task}: {len(configs)} runs one after another, host phases overlapped: {wall:.2f} s "
          f"({failed} failed)" + (f"; mean method seconds {method:.3f}" if method is not None else ""), flush=True)
    return wall / len(configs), method


def _concurrent_executor(harness: Harness, workers: int) -> tuple[str, dict[str, Any]]:
    """Ray where it is installed (an optional extra), else the standard library's processes."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "processes", {"workers": workers}
    gpus = 1.0 / workers if harness.device.type == "cuda" else 0.0
    return "ray", {"workers": workers, "gpus_per_run": gpus}


@dataclass(frozen=True)
class LeaderboardSize:
    """How much work one task's full leaderboard is: `trainings` from scratch (an original per seed,
    plus one per poisoning scenario, and an oracle per scenario and seed) and method `runs` (every
    scenario x applicable method x seed, `retrain` included: it reuses the cached oracle)."""

    task: str
    scenarios: int
    methods: int
    trainings: int
    runs: int


def leaderboard_size(task: Task) -> LeaderboardSize:
    """The full leaderboard of `task` under the registries as they stand (`SEEDS` seeds)."""
    scenarios = task.spec.scenarios
    poisoning = sum(1 for s in scenarios if scenario_kinds.get(s.kind).poison is not None)
    applicable = [n for n in methods.names() if supports(methods.get(n), task)]
    return LeaderboardSize(task.spec.name, len(scenarios), len(applicable),
                           trainings=SEEDS * (1 + poisoning + len(scenarios)),
                           runs=SEEDS * len(scenarios) * len(applicable))


def projected_hours(task: Task, train_seconds: float, run_seconds: float | None) -> float | None:
    """The full leaderboard of one task on this device, in hours (see the module docstring)."""
    if run_seconds is None:
        return None
    size = leaderboard_size(task)
    return (size.trainings * train_seconds + size.runs * run_seconds) / 3600


def print_plan(names: list[str], budget_hours: float) -> list[LeaderboardSize]:
    """`--plan`: the size of the full leaderboard per task, measured nothing, and what a budget of
    `budget_hours` leaves each job (a training or a run) if every job cost the same: the figure a
    method run's seconds, trainings included, must beat for the leaderboard to fit the budget."""
    from rich.console import Console
    from rich.table import Table

    sizes = [leaderboard_size(tasks.get(n)) for n in names]
    table = Table(title=f"the full leaderboard: {SEEDS} seeds, every scenario and applicable method")
    for column in ("task", "scenarios", "methods", "trainings", "runs", "share of runs"):
        table.add_column(column, justify="left" if column == "task" else "right")
    runs = sum(s.runs for s in sizes)
    trainings = sum(s.trainings for s in sizes)
    for s in sizes:
        table.add_row(s.task, str(s.scenarios), str(s.methods), str(s.trainings), f"{s.runs:,}",
                      f"{s.runs / runs:.1%}" if runs else "-")
    table.add_row("total", str(sum(s.scenarios for s in sizes)), "", str(trainings), f"{runs:,}", "")
    Console(width=160).print(table)
    jobs = runs + trainings
    if jobs:
        print(f"a budget of {budget_hours:g} h over {jobs:,} jobs ({trainings:,} trainings, {runs:,} runs) "
              f"leaves {budget_hours * 3600 / jobs:.3f} s per job", flush=True)
    return sizes


def bench_task(harness: Harness, name: str, profile: str, overrides: dict[str, Any], compile: bool | None,
               with_methods: bool, method_names: list[str] | None, levels: tuple[int, ...] = (1,),
               label: str = "", sync_audit: bool = False, overlap: bool = False) -> list[TaskFigures]:
    """The figures of one task (and, for cmnist, uncoloured MNIST). `levels`: the numbers of runs
    at a time to time the method runs at besides one after another (1 is the sequential timing);
    the projection takes the fastest. `label` names settings beyond the recipe overrides.
    `sync_audit`: also count each method's synchronising CUDA calls (`method_synchronisations`).
    `overlap`: also time the runs one after another with host phases overlapped (a level of its own,
    named "1+overlap" in `concurrency`). The projection takes the fastest way timed."""
    task = tasks.get(name)
    data = harness.task_data(task)
    model, seconds, samples, split = train_original(harness, task, data, profile, overrides, compile)
    recipe = recipe_with(task, profile, overrides)
    metric, value, extra = test_figures(task, data, split, model, profile, harness.device)
    run_seconds, breakdown, configs, timed, syncs = None, {}, [], {}, {}
    overlapped = overlapped_method = plain_method = None
    if with_methods:
        configs = method_configs(task, profile, method_names)
        run_seconds, breakdown, plain_method = mean_run_seconds(harness, configs)
        if sync_audit:
            syncs = method_synchronisations(harness, configs)
        if overlap:
            overlapped, overlapped_method = overlapped_run_seconds(harness, configs)
        for workers in (k for k in levels if k > 1):
            try:
                timed[workers] = concurrent_run_seconds(harness, configs, workers)
            except (OSError, RuntimeError) as exc:  # no worker could start: the other figures stand
                print(f"  {name}: runs not timed {workers} at a time ({type(exc).__name__}: {exc})", flush=True)
    label = ", ".join([f"{k}={v}" for k, v in overrides.items()] + ([label] if label else []))
    best = min(timed, key=timed.__getitem__) if timed else None
    levels_timed = {str(k): v for k, v in timed.items()} | ({"1+overlap": overlapped} if overlapped is not None else {})
    every = ({"1": run_seconds} if run_seconds is not None else {}) | levels_timed
    fastest = min(every, key=every.__getitem__) if every else None
    rows = [TaskFigures(name, profile, task.spec.profile(profile).model, samples, recipe.epochs, seconds,
                        recipe.epochs * samples / seconds, metric, value, extra, run_seconds, len(configs),
                        projected_hours(task, seconds, every.get(fastest)), label, breakdown,
                        None if best is None else timed[best], best or 1, levels_timed, syncs,
                        overlapped_run_seconds=overlapped, projected_with=fastest,
                        overlapped_method_seconds=overlapped_method, method_seconds=plain_method)]
    if name == "cmnist":
        mnist_seconds, rate, accuracy = uncoloured_mnist(harness, profile, overrides, compile)
        rows.append(TaskFigures("mnist (cmnist's model and recipe, uncoloured)", profile, rows[0].model, 60_000,
                                recipe.epochs, mnist_seconds, rate, "test acc", accuracy, {}, None, 0, None, label))
    return rows


def print_figures(rows: list[TaskFigures], device: torch.device) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mubench bench_training; {provenance.hardware(str(device))}; torch {torch.__version__}")
    for column in ("task", "profile", "model", "train samples", "epochs", "train s", "samples/s", "test",
                   "run s (mean)", "run s (overlap)", "run s (concurrent)", "leaderboard h", "overrides"):
        table.add_column(column)
    for r in rows:
        test = f"{r.test_metric} {r.test_value:.4f}" + "".join(f"; {k} {v:.4f}" for k, v in r.extra.items())
        table.add_row(r.task, r.profile, r.model, f"{r.train_samples:,}", str(r.epochs), f"{r.train_seconds:.2f}",
                      f"{r.samples_per_second:,.0f}", test,
                      "-" if r.run_seconds is None else f"{r.run_seconds:.2f} ({r.methods_measured})",
                      "-" if r.overlapped_run_seconds is None else f"{r.overlapped_run_seconds:.2f}",
                      "-" if r.concurrent_run_seconds is None else f"{r.concurrent_run_seconds:.2f} ({r.workers} at a time)",
                      "-" if r.projected_hours is None else f"{r.projected_hours:.3f}", r.overrides or "-")
    total = [r.projected_hours for r in rows if r.projected_hours is not None]
    Console(width=220).print(table)
    for r in rows:
        if r.run_breakdown:
            print(f"{r.task}: where a run's {r.run_seconds:.2f} s go (mean per run): {format_breakdown(r.run_breakdown)}")
    if total:
        print(f"projected full leaderboard over the tasks with method timings: {sum(total):.3f} h "
              f"({len(total)} tasks, {SEEDS} seeds, every scenario and applicable method)")


def format_breakdown(breakdown: dict[str, float], top: int = 8) -> str:
    """The method, the outputs, and the `top` costliest metrics, in seconds, largest first."""
    fixed = [key for key in ("method", "outputs") if key in breakdown]
    metric_keys = sorted((k for k in breakdown if k not in fixed), key=lambda k: -breakdown[k])
    shown = fixed + metric_keys[:top]
    rest = sum(breakdown[k] for k in metric_keys[top:])
    return ", ".join(f"{k} {breakdown[k]:.3f}" for k in shown) + (f", other metrics {rest:.3f}" if rest else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=None, help="comma-separated (default: every task with data)")
    parser.add_argument("--profile", default=None, help="default: standard on a GPU, smoke on a CPU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override key=value")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model while training")
    parser.add_argument("--methods", nargs="?", const="all", default=None,
                        help="also time one run of every applicable method (or a comma-separated list); "
                             "the default on a GPU, where the projection is the point")
    parser.add_argument("--no-methods", action="store_true", help="do not time method runs (nor project)")
    parser.add_argument("--concurrent", type=_levels, default=None, metavar="K[,K...]",
                        help="with --methods: also time the runs K at a time (Ray, 1/K of a GPU each; without Ray, K "
                             "worker processes sharing it), for each K listed; the projection then uses the "
                             "fastest effective seconds per run (default: 4 on a GPU, 1 on a CPU)")
    parser.add_argument("--methods-fp32", action="store_true",
                        help=f"run the methods' own loops in float32 even where the recipe trains in bf16 "
                             f"({METHOD_PRECISION_ENV}=fp32), to compare with the default bf16 hosting")
    parser.add_argument("--sync-audit", action="store_true",
                        help="with --methods on CUDA: count each method's synchronising CUDA calls and print the "
                             "lines that make most of them (torch.cuda.set_sync_debug_mode)")
    parser.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=None,
                        help="with --methods: also time the runs one after another with each run's outputs-only "
                             "metrics in a thread beside the next run's method (default: on a GPU)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    parser.add_argument("--plan", action="store_true",
                        help="train and time nothing: print the full leaderboard's size per task (trainings, runs) "
                             "and the seconds per job that --budget-hours allows")
    parser.add_argument("--budget-hours", type=float, default=1.0, help="with --plan (default: 1, the one-hour target of docs/scale.md)")
    args = parser.parse_args(argv)
    if args.budget_hours <= 0:
        parser.error(f"--budget-hours must be positive, got {args.budget_hours:g}")
    names = args.tasks.split(",") if args.tasks else [
        n for n in tasks.names() if n != "debug" and tasks.get(n).data_status().complete]
    if args.plan:
        try:
            sizes = print_plan(names, args.budget_hours)
        except UnknownNameError as exc:  # the registry's message names the task and the registered ones
            parser.error(f"--tasks: {exc}")
        if args.json:
            args.json.write_text(json.dumps([asdict(s) for s in sizes], indent=1))
        return
    if args.concurrent is not None and min(args.concurrent) < 1:
        parser.error(f"--concurrent must be at least 1, got {min(args.concurrent)}")
    overrides = parse_overrides(args.overrides)
    if args.methods_fp32:
        os.environ[METHOD_PRECISION_ENV] = "fp32"  # worker processes inherit MUBENCH_* variables
    with tempfile.TemporaryDirectory(prefix="mubench-bench-") as cache_root:
        harness = Harness(args.device, cache=ModelCache(Path(cache_root)), compile=args.compile or None)
        on_gpu = harness.device.type == "cuda"
        if args.sync_audit and not on_gpu:
            parser.error("--sync-audit needs a CUDA device (nothing synchronises on a CPU)")
        profile = args.profile or ("standard" if on_gpu else "smoke")
        if args.no_methods:
            args.methods = None
        elif args.methods is None and on_gpu:
            args.methods = "all"
        levels = args.concurrent or ((GPU_CONCURRENCY,) if on_gpu else (1,))
        method_names = None if args.methods in (None, "all") else args.methods.split(",")
        rows: list[TaskFigures] = []
        for name in names:
            try:
                rows.extend(bench_task(harness, name, profile, overrides, args.compile or None,
                                       args.methods is not None, method_names, levels,
                                       "methods fp32" if args.methods_fp32 else "", args.sync_audit,
                                       on_gpu if args.overlap is None else args.overlap))
            except MubenchError as exc:
                print(f"{name}: skipped ({exc})", flush=True)
            for row in rows[-2:]:
                if row.task.startswith(name):
                    print(f"{row.task}: {row.train_seconds:.2f} s to train, {row.test_metric} {row.test_value:.4f}",
                          flush=True)
        print_figures(rows, harness.device)
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))


if __name__ == "__main__":
    main()

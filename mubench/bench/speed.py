"""`make bench`: speed figures of the smoke profile (not a test; numbers, not pass/fail).

Prints, for Colored MNIST under `smoke`:
- seconds to train the original model with the harness's training loop;
- that loop's samples/s and its ratio to a bare hand-written PyTorch loop on the same model,
  data, batches and optimiser (target: at least 0.95, i.e. the harness adds under 5 % overhead);
- evaluation seconds (outputs on every split part plus every metric) as a fraction of the
  method's seconds, for the default `finetune`.
Each timing is the median of `--trials` runs; hardware and trial count are printed with them.

`--executors` instead times one grid of about 40 small runs (the task's first two scenarios, four
cheap methods, five seeds, `smoke`) with the local executor, with the `processes` executor of
`--workers` worker processes, and (where Ray is installed) with the Ray executor on a local instance
of `--workers` CPUs, each from an empty model cache, and prints the speed-ups (for Ray also without
the seconds it takes to start; the processes' start, spawning each worker, is counted in theirs).
All use one torch thread per run (the local pass sets it, each worker has it), so the figures
measure running runs side by side, not thread counts.

`--sandbox` instead times what the sandbox's jail adds to a run (mubench.orchestration.sandbox):
the same configs (`identity` and `finetune` on the task's scenario) in this process and jailed,
each run's whole wall time, median of `--trials`; the difference is the jail's cost per run.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table
from torch.nn import functional as F

from mubench.harness import provenance
from mubench.harness.runner import Harness, derived_seed
from mubench.harness.training import train_model
from mubench.methods import methods
from mubench.metrics import compute_metrics
from mubench.request import Request


def _median_seconds(fn: Callable[[], object], trials: int) -> float:
    times = []
    for _ in range(trials):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int,
              lr: float, generator: torch.Generator) -> None:
    """The reference: the shortest correct PyTorch training loop over in-memory tensors."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        permutation = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch_size):
            index = permutation[start:start + batch_size]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


EXECUTOR_BENCH_METHODS = ("identity", "finetune", "grad_ascent", "random_label")


def executor_speedup(console: Console, task_name: str, workers: int, seeds: int = 5) -> None:
    """Local vs processes vs Ray wall seconds for the same grid, each into a fresh model cache and
    store (the splits, drawn by the local pass, are shared: drawing one costs milliseconds)."""
    import importlib.util
    import shutil
    import tempfile
    from pathlib import Path

    from mubench.harness.artifacts import ModelCache
    from mubench.orchestration.executors import make_executor
    from mubench.orchestration.store import Store
    from mubench.orchestration.sweep import GridSpec, expand_grid, run_grid
    from mubench.tasks.base import tasks

    spec = tasks.get(task_name).spec
    grid = GridSpec(tasks=[task_name], scenarios=[s.name for s in spec.scenarios[:2]],
                    methods=list(EXECUTOR_BENCH_METHODS), seeds=list(range(seeds)), profile="smoke")
    configs = expand_grid(grid)
    Harness().task_data(tasks.get(task_name))  # decode the data once, outside every timing
    work = Path(tempfile.mkdtemp(prefix="mubench-bench-"))
    try:
        seconds: dict[str, float] = {}
        parallel = ["processes"] + (["ray"] if importlib.util.find_spec("ray") else [])
        for name in ["local", *parallel]:
            harness = Harness(cache=ModelCache(work / f"{name}-models"))
            start = time.perf_counter()
            if name == "local":  # one torch thread, as each worker has: the same work per run
                threads = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    records = run_grid(configs, Store(work / "local.sqlite"), harness)
                finally:
                    torch.set_num_threads(threads)
            else:
                with make_executor(name, harness, workers=workers) as executor:
                    seconds[f"{name} start"] = time.perf_counter() - start
                    records = run_grid(configs, Store(work / f"{name}.sqlite"), harness, executor=executor)
            seconds[name] = time.perf_counter() - start
            failed = [r.config.label for r in records if r.status != "ok"]
            assert not failed, f"{name}: failed runs {failed}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title=f"mubench bench --executors: {len(configs)} runs of {task_name} smoke "
                        f"({', '.join(EXECUTOR_BENCH_METHODS)}; {seeds} seeds), one trial; "
                        f"{provenance.hardware('cpu')}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("local executor: seconds", f"{seconds['local']:.1f}")
    for name in parallel:
        table.add_row(f"{name} executor, {workers} workers: seconds (with its start)", f"{seconds[name]:.1f}")
        table.add_row(f"speed-up (local / {name})", f"{seconds['local'] / seconds[name]:.2f}")
    if "ray" in parallel:
        table.add_row("ray start: seconds", f"{seconds['ray start']:.1f}")
        table.add_row("speed-up without ray's start", f"{seconds['local'] / (seconds['ray'] - seconds['ray start']):.2f}")
    console.print(table)


SANDBOX_BENCH_METHODS = ("identity", "finetune")


def sandbox_overhead(console: Console, task_name: str, scenario: str, trials: int) -> None:
    """Wall seconds of one run in this process against the same run in the jail."""
    from mubench.harness.record import RunConfig
    from mubench.orchestration import jail
    from mubench.orchestration.sandbox import Limits, run_in_sandbox
    from mubench.tasks.base import tasks

    jail.require()
    harness = Harness()
    harness.prepare(task_name, scenario, 0, "smoke")  # the original and oracle: trained once, outside the timing
    table = Table(title=f"mubench bench: the sandbox's jail, {task_name}/{scenario} smoke, median of {trials} "
                        f"runs; {provenance.hardware('cpu')}")
    for column in ("method", "in process: s", "jailed: s", "jail's cost: s"):
        table.add_column(column, justify="right" if column != "method" else "left")
    for name in SANDBOX_BENCH_METHODS:
        cls = methods.get(name)
        config = RunConfig(task=task_name, task_version=tasks.get(task_name).spec.version, scenario=scenario,
                           method=name, method_version=str(cls.version), hparams=dict(cls.resolve(profile="smoke")),
                           seed=0, profile="smoke")
        plain = _median_seconds(lambda: harness.run(config), trials)
        jailed = _median_seconds(lambda: run_in_sandbox(harness, config, Limits()), trials)
        table.add_row(name, f"{plain:.2f}", f"{jailed:.2f}", f"{jailed - plain:.2f}")
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cmnist")
    parser.add_argument("--scenario", default="random_10")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--executors", action="store_true", help="time a grid of ~40 runs: local vs processes vs ray")
    parser.add_argument("--workers", type=int, default=2, help="--executors: worker processes (and CPUs of the local Ray instance)")
    parser.add_argument("--sandbox", action="store_true", help="time runs in this process against runs in the jail")
    args = parser.parse_args(argv)
    console = Console()
    if args.sandbox:
        sandbox_overhead(console, args.task, args.scenario, args.trials)
        return
    if args.executors:
        executor_speedup(console, args.task, args.workers)
        return
    harness = Harness()
    prepared = harness.prepare(args.task, args.scenario, 0, "smoke")
    task, recipe = prepared.task, prepared.task.spec.profile("smoke").recipe
    data = harness.task_data(task)
    index = torch.from_numpy(prepared.split.train)
    x, y = task.to_inputs(data.train.x[index]), data.train.y[index]
    assert recipe.optimizer == "adam" and recipe.schedule == "constant", "the bare loop mirrors Adam, constant lr"

    def harness_loop() -> None:
        model = harness.fresh_model(task, "smoke", 0)
        train_model(model, x, y, recipe, torch.Generator().manual_seed(derived_seed(task.spec.name, 0, "train")))

    def reference_loop() -> None:
        model = harness.fresh_model(task, "smoke", 0)
        bare_loop(model, x, y, recipe.epochs, recipe.batch_size, recipe.lr, torch.Generator().manual_seed(0))

    harness_loop()  # warm-up: first-call allocations and kernel selection
    ours_times, bare_times = [], []
    for _ in range(args.trials):  # interleaved, so drift in machine load hits both alike
        ours_times.append(_median_seconds(harness_loop, 1))
        bare_times.append(_median_seconds(reference_loop, 1))
    ours, bare = statistics.median(ours_times), statistics.median(bare_times)
    samples = recipe.epochs * len(y)

    method = methods.get("finetune")
    hp = method.resolve()

    def run_method() -> torch.nn.Module:
        request = Request({k: prepared.subsets[k] for k in method.access.subsets}, method.access,
                          task.spec.num_classes, harness.device, seed=0)
        return method().unlearn(copy.deepcopy(prepared.original.model), request, hp)

    unlearned = run_method()
    method_seconds = _median_seconds(run_method, args.trials)

    def evaluate() -> None:
        compute_metrics(harness.evaluation_context(prepared, unlearned, method_seconds))

    eval_seconds = _median_seconds(evaluate, args.trials)
    table = Table(title=f"mubench bench: {args.task} smoke, median of {args.trials} trials; "
                        f"{provenance.hardware('cpu')}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("train original: seconds", f"{ours:.2f}")
    table.add_row("train original: samples/s (harness loop)", f"{samples / ours:,.0f}")
    table.add_row("bare PyTorch loop: samples/s", f"{samples / bare:,.0f}")
    table.add_row("harness / bare throughput (target ≥ 0.95)", f"{bare / ours:.3f}")
    table.add_row("finetune: method seconds", f"{method_seconds:.2f}")
    table.add_row("evaluation seconds (all parts, all metrics)", f"{eval_seconds:.2f}")
    table.add_row("evaluation / method seconds", f"{eval_seconds / method_seconds:.3f}")
    console.print(table)


if __name__ == "__main__":
    main()

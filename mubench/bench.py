"""`make bench`: speed figures of the smoke profile (not a test; numbers, not pass/fail).

Prints, for Colored MNIST under `smoke`:
- seconds to train the original model with the harness's training loop;
- that loop's samples/s and its ratio to a bare hand-written PyTorch loop on the same model,
  data, batches and optimiser (target: at least 0.95, i.e. the harness adds under 5 % overhead);
- evaluation seconds (outputs on every split part plus every metric) as a fraction of the
  method's seconds, for the default `finetune`.
Each timing is the median of `--trials` runs; hardware and trial count are printed with them.
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

from mubench import provenance
from mubench.methods import methods
from mubench.metrics import compute_metrics
from mubench.request import Request
from mubench.runner import Harness, derived_seed
from mubench.training import train_model


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cmnist")
    parser.add_argument("--scenario", default="random_10")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args(argv)
    console = Console()
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

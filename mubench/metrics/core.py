"""The metric registry: every metric has a namespaced key, a direction and a description.

Directions: "higher" or "lower" is better; "oracle": closest to the oracle's value is best (e.g.
forget accuracy after random forgetting should match a model that never saw the data, not fall
to zero); "info": context, not a score. A metric returns None where it does not apply (bias
metrics on a task without a bias attribute); it is then absent from the record. Each metric names
the target kinds it is defined for (`targets`): classification only unless it says otherwise, so
a metric written for classifiers never runs on a regression task's outputs.

A metric computed from the context's outputs, attributes and costs alone, never a model or a
subset, says so (`outputs_only=True`). Such metrics are the host phase of a run: they need no
device, so a run's host phase may go on in a CPU thread while the next run's method uses the GPU
(`Harness.begin` / `Harness.finish`, the local executor's `overlap`). The others (relearning,
representations, FGSM, counterfactuals, parameters changed) are the device phase. A metric that
does not say is in the device phase: the safe place for one that reads a model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mubench.evaluation import EvaluationContext
from mubench.metrics.intervals import Estimate
from mubench.registry import Registry

Direction = Literal["higher", "lower", "oracle", "info"]
MetricFunction = Callable[[EvaluationContext], "float | Estimate | None"]
CLASS_ONLY: frozenset[str] = frozenset({"class"})
ANY_TARGET: frozenset[str] = frozenset({"class", "regression"})
REGRESSION_ONLY: frozenset[str] = frozenset({"regression"})


@dataclass(frozen=True)
class Metric:
    key: str
    direction: Direction
    compute: MetricFunction
    description: str
    targets: frozenset[str] = CLASS_ONLY
    outputs_only: bool = False  # reads outputs, attributes and costs only: may run beside the next run


metrics: Registry[Metric] = Registry("metric")


def add_metric(key: str, direction: Direction, description: str, targets: frozenset[str] = CLASS_ONLY,
               outputs_only: bool = False) -> Callable[[MetricFunction], MetricFunction]:
    """Decorator registering a metric function under `key`."""

    def decorate(fn: MetricFunction) -> MetricFunction:
        metrics.add(key, Metric(key, direction, fn, description, targets, outputs_only))
        return fn

    return decorate


Phase = Literal["all", "device", "host"]


def in_phase(metric: Metric, phase: Phase) -> bool:
    """`host`: the outputs-only metrics; `device`: the others; `all`: every metric."""
    return phase == "all" or metric.outputs_only == (phase == "host")


def compute_metrics(ctx: EvaluationContext, seconds: dict[str, float] | None = None,
                    phase: Phase = "all", intervals: dict[str, Estimate] | None = None) -> dict[str, float]:
    """Every metric of `phase` defined for the task's target kind. `seconds`, when given, gains each
    metric's wall time under its key (added to what it holds: a profile over many runs,
    `bench_training`). Metrics sharing a cached value (an attack and its gap) charge it to the first
    one computed. A metric that returns an `Estimate` gives its value here and, when `intervals`
    is given, its interval there under the same key."""
    values: dict[str, float | Estimate | None] = {}
    for key, metric in metrics.items():
        if ctx.target.kind not in metric.targets or not in_phase(metric, phase):
            continue
        started = time.perf_counter()
        values[key] = metric.compute(ctx)
        if seconds is not None:
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started
    if intervals is not None:
        intervals.update({key: value for key, value in values.items() if isinstance(value, Estimate)})
    return {key: float(value.value if isinstance(value, Estimate) else value)
            for key, value in values.items() if value is not None}


def is_finite(values: dict[str, float]) -> bool:
    return all(math.isfinite(v) for v in values.values())

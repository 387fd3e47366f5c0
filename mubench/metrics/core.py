"""The metric registry: every metric has a namespaced key, a direction and a description.

Directions: "higher" or "lower" is better; "oracle": closest to the oracle's value is best (e.g.
forget accuracy after random forgetting should match a model that never saw the data, not fall
to zero); "info": context, not a score. A metric returns None where it does not apply (bias
metrics on a task without a bias attribute); it is then absent from the record.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mubench.evaluation import EvaluationContext
from mubench.registry import Registry

Direction = Literal["higher", "lower", "oracle", "info"]
MetricFunction = Callable[[EvaluationContext], float | None]


@dataclass(frozen=True)
class Metric:
    key: str
    direction: Direction
    compute: MetricFunction
    description: str


metrics: Registry[Metric] = Registry("metric")


def add_metric(key: str, direction: Direction, description: str) -> Callable[[MetricFunction], MetricFunction]:
    """Decorator registering a metric function under `key`."""

    def decorate(fn: MetricFunction) -> MetricFunction:
        metrics.add(key, Metric(key, direction, fn, description))
        return fn

    return decorate


def compute_metrics(ctx: EvaluationContext) -> dict[str, float]:
    values = {key: metric.compute(ctx) for key, metric in metrics.items()}
    return {key: float(value) for key, value in values.items() if value is not None}


def is_finite(values: dict[str, float]) -> bool:
    return all(math.isfinite(v) for v in values.values())

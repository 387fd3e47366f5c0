"""Three trade-off objectives per run, each in [0, 1], higher is better; the oracle scores 1 on
utility and forgetting. They are what the Pareto fronts and hypervolumes (mubench.tradeoff) use.

- utility    = min(1, test accuracy / the oracle's test accuracy)
- forgetting = 1 - (|forget acc - oracle's| + min(1, 2 |loss-attack AUC - oracle's|)) / 2
               (the AUC gap is doubled because it cannot exceed 0.5 around an oracle at 0.5)
- cost       = max(0, 1 - method seconds / oracle training seconds)
"""

from __future__ import annotations

from mubench.evaluation import EvaluationContext
from mubench.metrics.accuracy import accuracy_gap
from mubench.metrics.core import add_metric
from mubench.metrics.membership import loss_auc

OBJECTIVES = ("objective/utility", "objective/forgetting", "objective/cost")


@add_metric("objective/utility", "higher", "min(1, test accuracy / the oracle's): utility relative to retraining")
def utility(ctx: EvaluationContext) -> float | None:
    oracle = ctx.oracle["test"].accuracy
    return min(1.0, ctx.unlearned["test"].accuracy / oracle) if oracle > 0 else None


@add_metric("objective/forgetting", "higher", "1 - mean(forget accuracy gap, 2 x loss-attack AUC gap, capped at 1)")
def forgetting(ctx: EvaluationContext) -> float:
    mia_gap = min(1.0, 2 * abs(loss_auc(ctx.unlearned) - loss_auc(ctx.oracle)))
    return 1.0 - (accuracy_gap(ctx, "forget") + mia_gap) / 2


@add_metric("objective/cost", "higher", "max(0, 1 - method seconds / oracle training seconds)")
def cost(ctx: EvaluationContext) -> float | None:
    return max(0.0, 1.0 - ctx.method_seconds / ctx.oracle_seconds) if ctx.oracle_seconds > 0 else None

"""Three trade-off objectives per run, each in [0, 1], higher is better; the oracle scores 1 on
utility and forgetting. They are what the Pareto fronts and hypervolumes (mubench.results.tradeoff) use.

- utility    = min(1, test accuracy / the oracle's test accuracy)
- forgetting = 1 - (|forget acc - oracle's| + min(1, 2 |loss-attack AUC - oracle's|)) / 2
               (the AUC gap is doubled because it cannot exceed 0.5 around an oracle at 0.5)
- cost       = max(0, 1 - method seconds / oracle training seconds)

Regression tasks (errors, lower is better) use the same forms with the errors' ratio inverted:
- utility    = min(1, the oracle's test MAE / test MAE)
- forgetting = 1 - (min(1, |forget MAE - oracle's| / oracle's forget MAE) + min(1, 2 |AUC gap|)) / 2
"""

from __future__ import annotations

from mubench.evaluation import EvaluationContext
from mubench.metrics.accuracy import accuracy_gap
from mubench.metrics.core import ANY_TARGET, add_metric
from mubench.metrics.membership import loss_auc
from mubench.metrics.regression import regression_error

OBJECTIVES = ("objective/utility", "objective/forgetting", "objective/cost")


@add_metric("objective/utility", "higher", "min(1, test accuracy / the oracle's) (regression: min(1, the "
            "oracle's test MAE / test MAE)): utility relative to retraining", ANY_TARGET,
            outputs_only=True)
def utility(ctx: EvaluationContext) -> float | None:
    if ctx.regression:
        ours, oracle = regression_error(ctx.unlearned["test"], "mae"), regression_error(ctx.oracle["test"], "mae")
        if ours is None or oracle is None:
            return None
        return min(1.0, oracle / ours) if ours > 0 else 1.0
    oracle = ctx.oracle["test"].accuracy
    return min(1.0, ctx.unlearned["test"].accuracy / oracle) if oracle > 0 else None


def forget_gap(ctx: EvaluationContext) -> float | None:
    """The forget-set performance gap to the oracle, in [0, 1]: the accuracy gap, or the MAE gap
    relative to the oracle's forget MAE (capped at 1)."""
    if not ctx.regression:
        return accuracy_gap(ctx, "forget")
    ours, oracle = regression_error(ctx.unlearned["forget"], "mae"), regression_error(ctx.oracle["forget"], "mae")
    if ours is None or oracle is None or oracle <= 0:
        return None
    return min(1.0, abs(ours - oracle) / oracle)


@add_metric("objective/forgetting", "higher", "1 - mean(forget accuracy gap (regression: relative MAE gap), "
            "2 x loss-attack AUC gap, capped at 1)", ANY_TARGET, outputs_only=True)
def forgetting(ctx: EvaluationContext) -> float | None:
    gap = forget_gap(ctx)
    if gap is None:
        return None
    mia_gap = min(1.0, 2 * abs(loss_auc(ctx.unlearned) - loss_auc(ctx.oracle)))
    return 1.0 - (gap + mia_gap) / 2


@add_metric("objective/cost", "higher", "max(0, 1 - method seconds / oracle training seconds)", ANY_TARGET,
            outputs_only=True)
def cost(ctx: EvaluationContext) -> float | None:
    return max(0.0, 1.0 - ctx.method_seconds / ctx.oracle_seconds) if ctx.oracle_seconds > 0 else None

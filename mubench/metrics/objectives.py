"""The board's two trade-off objectives and its headline score, each in [0, 1], higher is better.

The oracle (retraining without the forget set) scores 1 on both objectives; doing nothing scores 0
forgetting wherever there is something to forget; a model that no longer works scores near 0
utility. Hypervolumes (mubench.results.tradeoff) are taken over these two objectives, as CUP
(Hwang and Lim 2024), which brought hypervolume to unlearning, measures forgetting and fidelity;
cost is reported beside them (mubench.metrics.cost), never folded in.

**Forgetting** measures how much of what there was to forget is gone, not how far the model is
from a floor. For each forgetting component k (the forget set's accuracy, or its MAE on a
regression task; and the loss-attack membership AUC on forget vs held-out samples, Yeom et al.
2018), with the original's value o_k, the oracle's r_k and the unlearned model's u_k:

    signal_k = |o_k - r_k|                  (how much there is to forget, on this split and seed)
    closed_k = 1 - min(1, |u_k - r_k| / signal_k)

    objective/forgetting = mean of closed_k over the components whose signal_k reaches its floor
                           (accuracy 0.01, AUC 0.02, relative forget MAE 0.01); undefined when none does

so `identity` (u = o) scores 0 and the oracle 1; overshooting the oracle by the whole signal
(forgetting "too well", the Streisand effect of Chundawat et al. 2023) scores 0 as well. A
component whose signal is below its floor cannot tell methods apart and is left out rather than
divided by noise. The regression component is relative to the oracle's forget MAE.

**Utility** is measured on what should be kept, relative to the oracle, in the form of the NeurIPS
2023 machine-unlearning competition (Triantafillou et al. 2024: the ratios of retain and test
accuracy to retraining's):

    objective/utility = min(1, retain acc / oracle's) x min(1, kept test acc / oracle's)

where the kept test set leaves out the classes the request forgets whole (a class of the forget
set with no retain sample): the oracle cannot classify them, so counting them would cap every
method's utility, and reward none for keeping the rest. Regression tasks use
min(1, the oracle's MAE / MAE) on retain and test. Doing better than retraining is not rewarded.

**score** = objective/forgetting x objective/utility: the competition's multiplicative form, and
the hypervolume of the single point (forgetting, utility) above the reference point (0, 0), so a
run's score and its sweep's hypervolume are on one scale (a sweep's hypervolume is at least the
score of each of its settings). **score/val** is the same with the validation set in place of the
test set: the board's tuning protocol chooses settings by it, and never reads test data.
"""

from __future__ import annotations

import torch

from mubench.evaluation import EvaluationContext, Outputs
from mubench.metrics.core import ANY_TARGET, add_metric
from mubench.metrics.membership import loss_auc
from mubench.metrics.regression import regression_error

OBJECTIVES = ("objective/forgetting", "objective/utility")
SIGNAL_FLOORS = {"acc": 0.01, "mae": 0.01, "auc": 0.02}  # per-run signal below which a component is left out


def closed_share(unlearned: float, original: float, oracle: float, floor: float) -> float | None:
    """1 - min(1, |unlearned - oracle| / |original - oracle|): the share of the original-to-oracle
    distance that the unlearned model closed; None when that distance is below `floor`."""
    signal = abs(original - oracle)
    if signal < floor:
        return None
    return 1.0 - min(1.0, abs(unlearned - oracle) / signal)


def forgetting_components(ctx: EvaluationContext) -> dict[str, float]:
    """The closed share of each forgetting component that has signal on this run ("acc" or "mae",
    and "auc"); components below their floor are absent."""
    found: dict[str, float | None] = {}
    if ctx.regression:
        values = [regression_error(outputs["forget"], "mae") for outputs in (ctx.unlearned, ctx.original, ctx.oracle)]
        if None not in values and values[2] > 0:
            ours, original, oracle = (v / values[2] for v in values)  # relative to the oracle's forget MAE
            found["mae"] = closed_share(ours, original, oracle, SIGNAL_FLOORS["mae"])
    else:
        found["acc"] = closed_share(ctx.unlearned["forget"].accuracy, ctx.original["forget"].accuracy,
                                    ctx.oracle["forget"].accuracy, SIGNAL_FLOORS["acc"])
    found["auc"] = closed_share(loss_auc(ctx.unlearned), loss_auc(ctx.original), loss_auc(ctx.oracle),
                                SIGNAL_FLOORS["auc"])
    return {k: v for k, v in found.items() if v is not None}


@add_metric("objective/forgetting", "higher", "share of the original-to-oracle distance closed, averaged over "
            "forget accuracy (regression: relative forget MAE) and loss-attack AUC where each has signal: "
            "1 for the oracle, 0 for doing nothing", ANY_TARGET, outputs_only=True)
def forgetting(ctx: EvaluationContext) -> float | None:
    components = forgetting_components(ctx)
    return sum(components.values()) / len(components) if components else None


def forgotten_classes(ctx: EvaluationContext) -> torch.Tensor:
    """Labels of the forget set that no retain sample has: the classes a request forgets whole
    (empty for random, subgroup and poison requests and for regression tasks)."""
    if ctx.regression:
        return torch.empty(0, dtype=torch.long)
    forget, retain = ctx.oracle["forget"].labels.unique(), ctx.oracle["retain"].labels.unique()
    return forget[~torch.isin(forget, retain)]


def kept_accuracy(outputs: Outputs, forgotten: torch.Tensor) -> float | None:
    """Accuracy over the samples whose label is not a forgotten class; None when none is left."""
    keep = ~torch.isin(outputs.labels, forgotten)
    return float(outputs.correct[keep].float().mean()) if bool(keep.any()) else None


def _ratio(ours: float | None, oracle: float | None) -> float | None:
    """min(1, ours / oracle's) for a higher-is-better value (1 when both are 0)."""
    if ours is None or oracle is None:
        return None
    return min(1.0, ours / oracle) if oracle > 0 else 1.0


def _inverse_ratio(ours: float | None, oracle: float | None) -> float | None:
    """min(1, oracle's / ours) for an error (1 when ours is 0)."""
    if ours is None or oracle is None:
        return None
    return min(1.0, oracle / ours) if ours > 0 else 1.0


def kept_utility(ctx: EvaluationContext, held_out: str) -> float | None:
    """Retain ratio x `held_out` ratio ("test", or "val" for choosing settings), as `utility` says;
    None where a part was not evaluated."""
    if any(part not in outputs for part in ("retain", held_out) for outputs in (ctx.unlearned, ctx.oracle)):
        return None
    if ctx.regression:
        parts = [_inverse_ratio(regression_error(ctx.unlearned[p], "mae"), regression_error(ctx.oracle[p], "mae"))
                 for p in ("retain", held_out)]
    else:
        forgotten = forgotten_classes(ctx)
        parts = [_ratio(ctx.unlearned["retain"].accuracy, ctx.oracle["retain"].accuracy),
                 _ratio(kept_accuracy(ctx.unlearned[held_out], forgotten),
                        kept_accuracy(ctx.oracle[held_out], forgotten))]
    if parts[0] is None or parts[1] is None:
        return None
    return parts[0] * parts[1]


@add_metric("objective/utility", "higher", "min(1, retain acc / the oracle's) x min(1, test acc on the kept "
            "classes / the oracle's) (regression: the oracle's MAE / MAE on retain and test, each capped at 1)",
            ANY_TARGET, outputs_only=True)
def utility(ctx: EvaluationContext) -> float | None:
    return kept_utility(ctx, "test")


def _product(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a * b


@add_metric("score", "higher", "the board's headline score: objective/forgetting x objective/utility (1 for the "
            "oracle, 0 for doing nothing where there is signal, near 0 for a model that no longer works)",
            ANY_TARGET, outputs_only=True)
def score(ctx: EvaluationContext) -> float | None:
    return _product(forgetting(ctx), utility(ctx))


@add_metric("score/val", "higher", "the score with validation in place of test data: what the board's tuning "
            "protocol chooses settings by, so that no choice reads the test set", ANY_TARGET, outputs_only=True)
def selection_score(ctx: EvaluationContext) -> float | None:
    return _product(forgetting(ctx), kept_utility(ctx, "val"))

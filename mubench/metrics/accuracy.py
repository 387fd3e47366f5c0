"""Utility and closeness to the oracle: accuracies, their gaps, output divergence, tug-of-war."""

from __future__ import annotations

import torch

from mubench.evaluation import EvaluationContext, Outputs
from mubench.metrics.core import Direction, Metric, add_metric, metrics

ACCURACY_PARTS: dict[str, Direction] = {"forget": "oracle", "retain": "higher", "test": "higher", "val": "higher"}
GAP_PARTS = ("forget", "retain", "test")


def accuracy_gap(ctx: EvaluationContext, part: str) -> float:
    """|accuracy of the unlearned model - the oracle's| on one part of the same split and seed."""
    return abs(ctx.unlearned[part].accuracy - ctx.oracle[part].accuracy)


def _accuracy_metric(part: str) -> Metric:
    return Metric(f"{part}/acc", ACCURACY_PARTS[part],
                  lambda ctx: ctx.unlearned[part].accuracy if part in ctx.unlearned else None,
                  f"accuracy on the {part} set", outputs_only=True)


def _gap_metric(part: str) -> Metric:
    return Metric(f"gap/{part}_acc", "lower", lambda ctx: accuracy_gap(ctx, part),
                  f"|{part} accuracy - the oracle's| (same split and seed)", outputs_only=True)


for _part in ACCURACY_PARTS:
    metrics.add(f"{_part}/acc", _accuracy_metric(_part))
for _part in GAP_PARTS:
    metrics.add(f"gap/{_part}_acc", _gap_metric(_part))


def jensen_shannon(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-row Jensen-Shannon divergence (natural log) between probability vectors.

    JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2 with m = (p + q) / 2 (Lin 1991), as used against
    the retrained model by Chundawat et al. 2023 and LoTUS (Spartalis et al. 2025).
    """
    p, q = p.double(), q.double()
    m = (p + q) / 2

    def kl(a: torch.Tensor) -> torch.Tensor:
        return torch.where(a > 0, a * (a.log() - m.log()), torch.zeros_like(a)).sum(dim=1)

    return (kl(p) + kl(q)) / 2


def subgroup_accuracy(outputs: Outputs, mask: torch.Tensor) -> float | None:
    return float(outputs.correct[mask].float().mean()) if bool(mask.any()) else None


@add_metric("js/oracle", "lower", "mean Jensen-Shannon divergence to the oracle's outputs on the forget set",
            outputs_only=True)
def js_to_oracle(ctx: EvaluationContext) -> float:
    return float(jensen_shannon(ctx.unlearned["forget"].probs, ctx.oracle["forget"].probs).mean())


@add_metric("tow", "higher", "tug-of-war: product over forget, retain, test of (1 - |accuracy gap to the oracle|)",
            outputs_only=True)
def tug_of_war(ctx: EvaluationContext) -> float:
    """ToW (Zhao et al. 2024, "What makes unlearning hard and what to do about it", eq. 1):
    prod_{S in forget, retain, test} (1 - |acc(unlearned, S) - acc(oracle, S)|); 1 for the oracle."""
    score = 1.0
    for part in GAP_PARTS:
        score *= 1.0 - accuracy_gap(ctx, part)
    return score


@add_metric("signal/forget_acc", "info", "original's minus the oracle's forget accuracy: how much there is to "
            "forget (signed, so that a difference that holds over seeds can be told from noise)", outputs_only=True)
def signal_forget_acc(ctx: EvaluationContext) -> float:
    return ctx.original["forget"].accuracy - ctx.oracle["forget"].accuracy

"""Reliance on a spurious attribute (Colored MNIST's colour): accuracy on bias-aligned vs
bias-conflicting test samples, as reported by ReBias (Bahng et al. 2020) and FMD (Chen et al. 2023).
Apply to tasks whose test pool has a `bias_aligned` attribute."""

from __future__ import annotations

import torch

from mubench.evaluation import EvaluationContext
from mubench.metrics.accuracy import subgroup_accuracy
from mubench.metrics.core import add_metric


def _bias_masks(ctx: EvaluationContext) -> tuple[torch.Tensor, torch.Tensor] | None:
    aligned = ctx.test_attributes.get("bias_aligned")
    if aligned is None:
        return None
    return aligned.bool(), ~aligned.bool()


@add_metric("bias/aligned_acc", "higher", "test accuracy on bias-aligned samples (e.g. digit in its class colour)", outputs_only=True)
def bias_aligned_acc(ctx: EvaluationContext) -> float | None:
    masks = _bias_masks(ctx)
    return subgroup_accuracy(ctx.unlearned["test"], masks[0]) if masks else None


@add_metric("bias/conflicting_acc", "higher", "test accuracy on bias-conflicting samples", outputs_only=True)
def bias_conflicting_acc(ctx: EvaluationContext) -> float | None:
    masks = _bias_masks(ctx)
    return subgroup_accuracy(ctx.unlearned["test"], masks[1]) if masks else None


@add_metric("bias/gap", "lower", "aligned minus conflicting test accuracy: reliance on the spurious attribute", outputs_only=True)
def bias_gap(ctx: EvaluationContext) -> float | None:
    aligned, conflicting = bias_aligned_acc(ctx), bias_conflicting_acc(ctx)
    return None if aligned is None or conflicting is None else aligned - conflicting

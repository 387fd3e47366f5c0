"""The metric suite (v1): utility, forgetting, membership inference, bias and cost.

Every metric has a namespaced key and a direction: "higher" or "lower" is better, "oracle"
(closest to the oracle's value is best: e.g. forget accuracy after random forgetting should
match a model that never saw the data, not fall to zero), or "info" (context, not a score).
A metric returns None where it does not apply (bias metrics on a task without a bias
attribute), and is then absent from the record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from mubench.evaluation import EvaluationContext, Outputs
from mubench.registry import Registry

Direction = Literal["higher", "lower", "oracle", "info"]
METRICS_VERSION = "1"


@dataclass(frozen=True)
class Metric:
    key: str
    direction: Direction
    compute: Callable[[EvaluationContext], float | None]
    description: str


metrics: Registry[Metric] = Registry("metric")


def add_metric(key: str, direction: Direction, description: str) -> Callable[[Callable[[EvaluationContext], float | None]], Callable[[EvaluationContext], float | None]]:
    def decorate(fn: Callable[[EvaluationContext], float | None]) -> Callable[[EvaluationContext], float | None]:
        metrics.add(key, Metric(key, direction, fn, description))
        return fn

    return decorate


def compute_metrics(ctx: EvaluationContext) -> dict[str, float]:
    values = {key: metric.compute(ctx) for key, metric in metrics.items()}
    return {key: float(value) for key, value in values.items() if value is not None}


# ---- formulas ---------------------------------------------------------------------------------

def membership_auc(member_losses: torch.Tensor, nonmember_losses: torch.Tensor) -> float:
    """Area under the ROC curve of the loss attack: members are predicted by low loss.

    Population loss attack (Yeom et al. 2018; Shokri et al. 2017): score = -loss. The AUC
    equals the Mann-Whitney U statistic of the member scores over n_members * n_nonmembers
    (ties count one half), which is how it is computed here; 0.5 means members and non-members
    are indistinguishable.
    """
    members, nonmembers = -member_losses.double().numpy(), -nonmember_losses.double().numpy()
    statistic = mannwhitneyu(members, nonmembers, alternative="two-sided", method="asymptotic").statistic
    return float(statistic) / (len(members) * len(nonmembers))


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


# ---- registered metrics -----------------------------------------------------------------------

def _accuracy(part: str, model: str = "unlearned") -> Callable[[EvaluationContext], float]:
    return lambda ctx: getattr(ctx, model)[part].accuracy


def _gap(part: str) -> Callable[[EvaluationContext], float]:
    return lambda ctx: abs(ctx.unlearned[part].accuracy - ctx.oracle[part].accuracy)


for _part, _direction in (("forget", "oracle"), ("retain", "higher"), ("test", "higher")):
    metrics.add(f"{_part}/acc", Metric(f"{_part}/acc", _direction, _accuracy(_part), f"accuracy on the {_part} set"))  # type: ignore[arg-type]
    metrics.add(f"gap/{_part}_acc", Metric(f"gap/{_part}_acc", "lower", _gap(_part),
                                           f"|{_part} accuracy - the oracle's| (same split and seed)"))


def _mia(outputs: dict[str, Outputs]) -> float:
    return membership_auc(outputs["forget"].losses, outputs["heldout"].losses)


@add_metric("mia/auc", "oracle", "loss-attack AUC, forget set vs held-out samples of the same population")
def mia_auc(ctx: EvaluationContext) -> float:
    return _mia(ctx.unlearned)


@add_metric("gap/mia_auc", "lower", "|mia/auc - the oracle's|")
def mia_auc_gap(ctx: EvaluationContext) -> float:
    return abs(_mia(ctx.unlearned) - _mia(ctx.oracle))


@add_metric("js/oracle", "lower", "mean Jensen-Shannon divergence to the oracle's outputs on the forget set")
def js_to_oracle(ctx: EvaluationContext) -> float:
    return float(jensen_shannon(ctx.unlearned["forget"].probs, ctx.oracle["forget"].probs).mean())


@add_metric("cost/seconds", "lower", "wall-clock seconds of the method's unlearn call")
def cost_seconds(ctx: EvaluationContext) -> float:
    return ctx.method_seconds


@add_metric("cost/rte", "lower", "method seconds over the oracle's training seconds (run-time efficiency)")
def cost_rte(ctx: EvaluationContext) -> float | None:
    return ctx.method_seconds / ctx.oracle_seconds if ctx.oracle_seconds > 0 else None


@add_metric("signal/forget_acc", "info", "|original - oracle| forget accuracy: how much there is to forget")
def signal_forget_acc(ctx: EvaluationContext) -> float:
    return abs(ctx.original["forget"].accuracy - ctx.oracle["forget"].accuracy)


@add_metric("signal/mia_auc", "info", "original's mia/auc minus the oracle's: membership signal to remove")
def signal_mia(ctx: EvaluationContext) -> float:
    return _mia(ctx.original) - _mia(ctx.oracle)


def _bias_masks(ctx: EvaluationContext) -> tuple[torch.Tensor, torch.Tensor] | None:
    aligned = ctx.test_attributes.get("bias_aligned")
    if aligned is None:
        return None
    return aligned.bool(), ~aligned.bool()


@add_metric("bias/aligned_acc", "higher", "test accuracy on bias-aligned samples (e.g. digit in its class colour)")
def bias_aligned_acc(ctx: EvaluationContext) -> float | None:
    masks = _bias_masks(ctx)
    return subgroup_accuracy(ctx.unlearned["test"], masks[0]) if masks else None


@add_metric("bias/conflicting_acc", "higher", "test accuracy on bias-conflicting samples")
def bias_conflicting_acc(ctx: EvaluationContext) -> float | None:
    masks = _bias_masks(ctx)
    return subgroup_accuracy(ctx.unlearned["test"], masks[1]) if masks else None


@add_metric("bias/gap", "lower", "aligned minus conflicting test accuracy: reliance on the spurious attribute")
def bias_gap(ctx: EvaluationContext) -> float | None:
    aligned, conflicting = bias_aligned_acc(ctx), bias_conflicting_acc(ctx)
    return None if aligned is None or conflicting is None else aligned - conflicting


def is_finite(values: dict[str, float]) -> bool:
    return all(np.isfinite(v) for v in values.values())

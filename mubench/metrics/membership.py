"""Membership inference (spec v1): does the unlearned model still treat the forget set as members?

Non-members are held-out samples of the forget set's own population (`heldout`: validation
samples; for a class or subgroup scenario, those of the class or subgroup), never the test
split, which may be shifted (Colored MNIST's is) and would be told apart for reasons unrelated
to membership. Every record carries `MIA_SPEC_VERSION`; changing an attack bumps it.
"""

from __future__ import annotations

import torch
from scipy.stats import mannwhitneyu

from mubench.evaluation import EvaluationContext, Outputs
from mubench.metrics.core import add_metric

MIA_SPEC_VERSION = "1"


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


def loss_auc(outputs: dict[str, Outputs]) -> float:
    return membership_auc(outputs["forget"].losses, outputs["heldout"].losses)


@add_metric("mia/loss_auc", "oracle", "loss-attack AUC, forget set vs held-out samples of the same population")
def mia_loss_auc(ctx: EvaluationContext) -> float:
    return loss_auc(ctx.unlearned)


@add_metric("gap/mia_loss_auc", "lower", "|mia/loss_auc - the oracle's|")
def mia_loss_auc_gap(ctx: EvaluationContext) -> float:
    return abs(loss_auc(ctx.unlearned) - loss_auc(ctx.oracle))


@add_metric("signal/mia_loss_auc", "info", "original's mia/loss_auc minus the oracle's: membership signal to remove")
def signal_mia(ctx: EvaluationContext) -> float:
    return loss_auc(ctx.original) - loss_auc(ctx.oracle)

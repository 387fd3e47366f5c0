"""Retrain from scratch on the retain set: exact unlearning, the oracle every gap is measured
against. With the task's own recipe, the run's seed and the retain set it is the oracle's training
exactly, so the harness hands back a copy of the prepared oracle and charges its training seconds
(`Harness._from_scratch`): all of its gaps are zero on every device, and its cost (the oracle's
training time) is the cost to beat."""

from __future__ import annotations

from torch import nn

from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request


@register_method("retrain")
class Retrain(Method):
    access = Access.RETAIN
    paper = "exact unlearning by retraining (e.g. Bourtoule et al. 2021, SISA, as the gold standard)"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        return request.train_from_scratch("retain")

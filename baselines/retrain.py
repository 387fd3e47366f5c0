"""Retrain from scratch on the retain set: exact unlearning, the oracle every gap is measured
against. It uses the task's own recipe and the run's seed, so on the CPU it reproduces the
harness's oracle bit for bit and all of its gaps are zero; its cost is the cost to beat."""

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

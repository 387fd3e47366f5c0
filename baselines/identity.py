"""Identity: the original model, unchanged. The lower bracket of every table: it keeps the
original's forget accuracy and membership signal, and costs nothing."""

from __future__ import annotations

from torch import nn

from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request


@register_method("identity")
class Identity(Method):
    access = Access.FORGET
    paper = "none (reference point)"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        return model

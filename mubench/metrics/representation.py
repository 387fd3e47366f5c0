"""Representation-level forgetting: is the forget set represented as the oracle represents it?

"Are we truly forgetting?" (Kim, Cha, Kim 2025) shows that output-level metrics can look
retrained while the features still encode the forgotten data; they compare penultimate features
with centred kernel alignment. Linear CKA (Kornblith et al. 2019, eq. 5):
CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) for column-centred X (n x p), Y (n x q).
It is 1 for features equal up to an orthogonal transform and isotropic scaling.
"""

from __future__ import annotations

import torch
from torch import nn

from mubench.evaluation import EvaluationContext
from mubench.metrics.core import ANY_TARGET, add_metric

MAX_SAMPLES = 2000  # the first samples of the forget set, in split order: deterministic and bounded


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    x = x.double() - x.double().mean(dim=0, keepdim=True)
    y = y.double() - y.double().mean(dim=0, keepdim=True)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    norm = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / norm) if float(norm) > 0 else float("nan")


def last_linear(model: nn.Module) -> nn.Linear | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


@torch.no_grad()
def penultimate_features(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor | None:
    """The input of the model's last linear layer (its penultimate representation)."""
    head = last_linear(model)
    if head is None:
        return None
    captured: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0].flatten(1).float().cpu()))
    try:
        model.eval()
        for start in range(0, len(x), batch_size):
            model(x[start:start + batch_size])
    finally:
        hook.remove()
    return torch.cat(captured)


def oracle_features(ctx: EvaluationContext, x: torch.Tensor) -> torch.Tensor | None:
    """The oracle's penultimate features on `x`, computed once per split: kept on the oracle's
    forget-set Outputs, which every run of the split shares (as the attacks keep their values)."""
    holder = ctx.oracle.get("forget")
    if holder is None:
        return penultimate_features(ctx.models["oracle"], x, ctx.eval_batch_size)
    cache = holder.__dict__.setdefault("_oracle_features", {})
    if len(x) not in cache:
        cache[len(x)] = penultimate_features(ctx.models["oracle"], x, ctx.eval_batch_size)
    return cache[len(x)]


@add_metric("repr/cka_oracle", "higher", "linear CKA between the unlearned and the oracle's penultimate features on the forget set",
            ANY_TARGET)
def cka_to_oracle(ctx: EvaluationContext) -> float | None:
    if "forget" not in ctx.subsets or "unlearned" not in ctx.models:
        return None
    x = ctx.subsets["forget"].x[:MAX_SAMPLES]
    if len(x) < 2:
        return None
    ours = penultimate_features(ctx.models["unlearned"], x, ctx.eval_batch_size)
    theirs = oracle_features(ctx, x)
    if ours is None or theirs is None:
        return None
    value = linear_cka(ours, theirs)
    return None if value != value else value  # undefined (NaN) when a model's features are constant

"""CUP (Hwang and Lim 2025, "Controllable Machine Unlearning via Gradient Pivoting", arXiv
2510.19226): unlearning as a two-objective problem (forgetting on the forget set, fidelity on the
retain set) whose whole trade-off front is walked by one "unlearning intensity" rho in [0, 1].

No public code was found and only the abstract was read (see docs/methods.md, cup), so the update
below is a RECONSTRUCTION of the "pivoting" idea, not the paper's algorithm. Per step, on a forget
batch paired with a retain batch (the retain set cycled), with all parameters flattened:

- g_f = grad of -loss(forget batch): descending along it ascends the task's loss on the forget
  data (gradient ascent; `request.loss`, so the method also runs on regression tasks);
- g_r = grad of loss(retain batch): descending along it keeps fidelity on the retain data;
- conflict projection (PCGrad, Yu et al. 2020; mubench.toolkit.gradients.project_conflict):
  g_f_perp = g_f - min(0, <g_f, g_r>) / |g_r|^2 g_r, so <g_f_perp, g_r> = max(0, <g_f, g_r>)
  >= 0 and a forget step never raises the retain loss to first order;
- pivot: d = normalize((1 - rho) * unit(g_r) + rho * unit(g_f_perp)). Both terms have a
  non-negative inner product with g_r, so <d, g_r> >= 0 for every rho (the safeguard this
  reconstruction is built around); rho = 0 is pure retain descent, rho = 1 pure (projected) forgetting,
  and rho in between rotates the direction from one to the other;
- theta <- theta - lr * d with SGD (the parameter step has length lr whatever rho is, so the
  intensity changes only the direction of the step, not its size).

Choices where the paper is unread (all [UNVERIFIED]): the PCGrad projection as the "pivot"
safeguard, unit-normalising both gradients and the mixed direction, the forget objective (ascent
on the task loss), and plain SGD without momentum by default (momentum would accumulate past
directions, for which <d, g_r> >= 0 no longer holds; `momentum` is a hyper-parameter). Epochs run
over the forget set (a class-forget set is ~10 % of the smoke training sets, so 5 epochs are ~40
steps). lr 0.05 (a parameter-space step length) and 5 epochs were tuned on the smoke tasks
(cmnist, cwru) so that rho 0.9 removes a forgotten class while keeping retain accuracy; the rho
sweep [0.1 .. 0.9] is the trade-off curve whose hypervolume the paper reports. A small forget set
gives few steps: cwru's class_0 (34 samples, one batch) makes 5 steps at the defaults and needs
about 30 epochs to forget (30 is in the epochs sweep).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mubench.errors import MubenchError
from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.gradients import flat_grad, project_conflict, unit
from mubench.toolkit.optim import sgd


def pivot_direction(g_f: torch.Tensor, g_r: torch.Tensor, rho: float) -> torch.Tensor:
    """The unit descent direction normalize((1 - rho) unit(g_r) + rho unit(g_f_perp)); zeros if
    both gradients vanish. Descending along it (theta - lr d) never raises the retain loss to first
    order: <d, g_r> >= 0."""
    return unit((1 - rho) * unit(g_r) + rho * unit(project_conflict(g_f, g_r)))


def _check(hp: HParams) -> None:
    if not 0.0 <= hp.rho <= 1.0:
        raise MubenchError(f"cup.rho must be in [0, 1], got {hp.rho}")
    if not (math.isfinite(hp.lr) and hp.lr > 0):
        raise MubenchError(f"cup.lr must be > 0, got {hp.lr}")
    if hp.epochs < 1:
        raise MubenchError(f"cup.epochs must be >= 1, got {hp.epochs}")
    if not 0.0 <= hp.momentum < 1.0:
        raise MubenchError(f"cup.momentum must be in [0, 1), got {hp.momentum}")
    if hp.batch_size < 1:
        raise MubenchError(f"cup.batch_size must be >= 1, got {hp.batch_size}")


@register_method("cup")
class CUP(Method):
    access = Access.RETAIN
    paper = "Hwang and Lim 2025 (arXiv 2510.19226); reconstruction, no public code"
    space = {"rho": (0.5, [0.1, 0.3, 0.5, 0.7, 0.9]),
             "lr": (0.05, [0.01, 0.02, 0.05, 0.1]),
             "epochs": (5, [1, 3, 5, 10, 30]),
             "momentum": (0.0, [0.0, 0.9]),
             "batch_size": (128, [128])}
    intensity = "rho"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        _check(hp)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = sgd(model, hp.lr, momentum=hp.momentum)
        for (xf, yf), (xr, yr) in request.batches("forget", "retain", batch_size=hp.batch_size, epochs=hp.epochs):
            g_f = flat_grad(-request.loss(model(xf), yf), params)
            g_r = flat_grad(request.loss(model(xr), yr), params)
            direction = pivot_direction(g_f, g_r, hp.rho)
            for p, part in zip(params, direction.split([p.numel() for p in params])):
                p.grad = part.view_as(p).clone()
            optimizer.step()
        return model

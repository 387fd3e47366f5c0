"""Flattened gradients and the conflict projection of PCGrad (Yu et al. 2020, "Gradient Surgery
for Multi-Task Learning"), used by CUP's gradient pivoting (Hwang and Lim 2025,
baselines/cup.py) to combine a forgetting and a retaining gradient."""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-12


def flat_grad(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    """The gradient of `loss` with respect to `params`, flattened and concatenated in their order;
    a parameter the loss does not reach contributes zeros."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


def unit(vector: torch.Tensor) -> torch.Tensor:
    """`vector` / |vector|, or zeros when it is (numerically) zero."""
    norm = vector.norm()
    return vector / norm if norm > EPS else torch.zeros_like(vector)


def project_conflict(g_f: torch.Tensor, g_r: torch.Tensor) -> torch.Tensor:
    """PCGrad's projection (Yu et al. 2020): g_f without its component against g_r when
    <g_f, g_r> < 0, else g_f unchanged; the result never has a negative inner product with g_r."""
    inner = torch.dot(g_f, g_r)
    squared = torch.dot(g_r, g_r)
    if inner >= 0 or squared <= EPS:
        return g_f
    return g_f - inner / squared * g_r

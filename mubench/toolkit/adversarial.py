"""Adversarial examples on the model-input scale (inputs are already normalised, so there is no
pixel clamp): FGSM (Goodfellow et al. 2015), used by Boundary Shrink (Chen et al. 2023), the
FGSM resilience scenario and its metric (Khorasani et al. 2025), and projected gradient ascent
in an L-inf ball (Madry et al. 2018), used to probe a decision boundary (PTE, Chen et al.), and
targeted PGD in an L2 ball with a random start (advertorch's L2PGDAttack), which makes L2UL's
adversarial examples (Cha et al. 2024)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from mubench.transfer import to_device

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def fgsm_perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                 loss_fn: LossFn = F.cross_entropy) -> torch.Tensor:
    """x + eps * sign(grad_x loss(model(x), y)): one untargeted FGSM step, no clamp. The model's
    parameters receive no gradient."""
    x_adv = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(model(x_adv), y), [x_adv])
    return (x + eps * grad.sign()).detach()


def fgsm_labels(frozen: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """The frozen model's prediction on the FGSM step from x: the nearest wrong class when the step
    crosses the decision boundary (Boundary Shrink's relabelling)."""
    x_adv = fgsm_perturb(frozen, x, y, eps)
    with torch.no_grad():
        return frozen(x_adv).argmax(dim=1)


def pgd_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float, steps: int,
             loss_fn: LossFn = F.cross_entropy) -> torch.Tensor:
    """Projected gradient ascent of loss(model(x + delta), y) over ||delta||_inf <= eps, from
    delta = 0, with sign steps of `step_size` (Madry et al. 2018, without the random start so the
    result is deterministic). Returns x + delta, detached."""
    delta = torch.zeros_like(x)
    for _ in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(model(x + delta), y), [delta])
        delta = (delta.detach() + step_size * grad.sign()).clamp(-eps, eps)
    return (x + delta).detach()


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def project_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """delta scaled into the L2 ball of radius eps (per sample), as advertorch's clamp_by_pnorm."""
    return delta * (eps / _per_sample_norm(delta)).clamp(max=1.0)


def targeted_l2_pgd(model: nn.Module, x: torch.Tensor, target: torch.Tensor, eps: float, step_size: float,
                    steps: int, generator: torch.Generator) -> torch.Tensor:
    """Targeted L2 PGD (Madry et al. 2018; advertorch L2PGDAttack, targeted, rand_init, as L2UL,
    Cha et al. 2024, uses it): minimise CE(model(x + delta), target) by steps of `step_size` along
    the L2-normalised gradient, projecting onto ||delta||_2 <= eps after each; random start inside
    the ball (a uniform direction times eps * u, u ~ U(0, 1); draws from `generator`, on the CPU).
    No pixel clamp: x is on the model-input scale. The model's parameters get no gradient."""
    direction = to_device(torch.randn(x.shape, generator=generator), x.device, x.dtype)
    radius = to_device(torch.rand(len(x), generator=generator), x.device, x.dtype).view(-1, *([1] * (x.dim() - 1)))
    delta = direction / _per_sample_norm(direction) * eps * radius
    for _ in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(-F.cross_entropy(model(x + delta), target, reduction="sum"), [delta])
        delta = project_l2(delta.detach() + step_size * grad / _per_sample_norm(grad), eps)
    return (x + delta).detach()

"""Robustness to adversarial inputs: test accuracy under a white-box FGSM attack.

For the resilience scenario `fgsm_poison` (after Khorasani et al. 2025, "Protecting the Neural
Networks against FGSM Attack Using Machine Unlearning"): the training set held FGSM-perturbed,
mislabelled samples, and the unlearning method removes them. Its clean accuracy is test/acc; the
accuracy under attack is robust/fgsm_acc: each test sample moves one untargeted FGSM step
x + eps * sign(grad_x CE(f(x), y)) against the evaluated model itself (white box, Goodfellow et al.
2015), clamped to the valid pixel range, with the scenario's `eps` converted to the model-input
scale (`fgsm_budget`). Computed only where the scenario sets an attack budget (EvaluationContext.attack);
classification only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mubench.evaluation import AttackBudget, EvaluationContext
from mubench.metrics.core import add_metric
from mubench.request import Subset
from mubench.toolkit.adversarial import fgsm_perturb


def fgsm_budget(to_inputs: Callable[[torch.Tensor], torch.Tensor], input_shape: tuple[int, ...], scale: float,
                eps: float, device: torch.device | str = "cpu") -> AttackBudget:
    """An FGSM budget of `eps` pixel units (stored value = pixel * `scale`: 255 for uint8 images, 1
    for float pools) on the model-input scale, assuming `to_inputs` is affine per element (scaling
    and per-channel normalisation): eps_input = to_inputs(eps * scale) - to_inputs(0) per element
    (eps / std per channel for normalised images). uint8 pools also clamp to the model-ready images
    of pixels 0 and 255; float pools are not clamped."""
    shape = (1, *input_shape)
    low = to_inputs(torch.zeros(shape))
    step = to_inputs(torch.full(shape, eps * scale)) - low
    if scale == 1.0:
        return AttackBudget(eps=step.to(device))
    high = to_inputs(torch.full(shape, scale))
    return AttackBudget(eps=step.to(device), low=low.to(device), high=high.to(device))


def fgsm_accuracy(model: nn.Module, subset: Subset, attack: AttackBudget, batch_size: int) -> float:
    """Accuracy of `model` on `subset` after one untargeted FGSM step per sample against `model`
    (toolkit.adversarial.fgsm_perturb), clamped to [attack.low, attack.high] when set. The model
    is put in eval mode and not modified (its parameters receive no gradient)."""
    model.eval()
    correct = 0
    for start in range(0, len(subset), batch_size):
        x, y = subset.x[start:start + batch_size], subset.y[start:start + batch_size]
        with torch.enable_grad():
            adversarial = fgsm_perturb(model, x, y, attack.eps)  # type: ignore[arg-type]  # a tensor eps broadcasts
        if attack.low is not None and attack.high is not None:
            adversarial = torch.maximum(torch.minimum(adversarial, attack.high), attack.low)
        with torch.no_grad():
            correct += int((model(adversarial).argmax(dim=1) == y).sum())
    return correct / len(subset) if len(subset) else float("nan")


def _fgsm_acc(ctx: EvaluationContext, role: str) -> float | None:
    if ctx.attack is None or role not in ctx.models or "test" not in ctx.subsets:
        return None
    return fgsm_accuracy(ctx.models[role], ctx.subsets["test"], ctx.attack, ctx.eval_batch_size)


@add_metric("robust/fgsm_acc", "higher", "test accuracy under a white-box untargeted FGSM step of the scenario's "
            "eps against the evaluated model (fgsm_poison scenarios only)")
def robust_fgsm_acc(ctx: EvaluationContext) -> float | None:
    return _fgsm_acc(ctx, "unlearned")


@add_metric("gap/fgsm_acc", "lower", "|robust/fgsm_acc - the oracle's| (fgsm_poison scenarios only)")
def gap_fgsm_acc(ctx: EvaluationContext) -> float | None:
    ours, oracle = _fgsm_acc(ctx, "unlearned"), _fgsm_acc(ctx, "oracle")
    return None if ours is None or oracle is None else abs(ours - oracle)

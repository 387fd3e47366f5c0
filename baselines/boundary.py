"""Boundary Unlearning (Chen et al. 2023, "Boundary Unlearning: Rapid Forgetting of Deep Networks
via Shifting the Decision Boundary", CVPR): two forget-only baselines that move the decision
boundary instead of the weights' data fit. Both are as in SalUn's re-implementation (Fan et al.
2024, OPTML-Group/Unlearn-Saliency `Classification/unlearn/boundary_sh.py`, `boundary_ex.py`):
SGD with momentum 0.9 and weight decay 5e-4 over the forget set, the model in train mode.

- `boundary_shrink`: for each forget batch (x, y), one FGSM step through a frozen copy of the
  original, x_adv = x + eps * sign(grad_x CE(f0(x), y)), and the label y_adv = argmax f0(x_adv),
  the nearest wrong class when the step crosses the boundary; then minimise CE(f(x), y_adv).
  eps = 0.1 is "hard coding in the paper" (SalUn), there on [0, 1] pixels with a clamp to [0, 1]
  and rounding to 1/255. Our inputs are already the model's (normalised) inputs, of no common
  pixel range, so eps is applied on the model-input scale with no clamp or rounding: for an input
  normalised by a standard deviation s, eps here is eps * s in pixel units (CIFAR-10's s ~ 0.25:
  eps 0.1 here ~ 0.025 in pixels, 0.4 here ~ the paper's 0.1); the sweep spans both.
- `boundary_expand`: widen the head (the last nn.Linear with num_classes outputs) by one shadow
  unit, train on the forget set with every label set to the shadow class K, then drop the unit.
  The widened head is a separate layer: its first K rows start as copies of the head's, the shadow
  row is drawn as nn.Linear initialises one (uniform in +-1/sqrt(fan_in)) from the request's
  generator; after training its first K rows are copied back into the original head object, so
  the returned model has the original class and parameter shapes. SalUn keeps the K+1 head;
  dropping it is the paper's "pruning" of the shadow neuron.

The learning rate and epochs were tuned in both sources (Chen et al.'s code: SGD lr 1e-5, 10
epochs); the defaults here (lr 0.01, 10 epochs, batch 64) suit the smoke profile's small models.
Epochs are the intensity axis. Classification only: both relabel forget samples with classes.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from baselines.common import sgd, step
from mubench.errors import MubenchError
from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request

_SPACE = {"lr": (0.01, [0.001, 0.003, 0.01, 0.03]),
          "epochs": (10, [1, 3, 10, 20]),
          "batch_size": (64, [64]),
          "weight_decay": (5e-4, [5e-4])}


def fgsm_labels(frozen: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """The frozen model's prediction on x + eps * sign(grad_x CE(frozen(x), y)): one untargeted
    FGSM step (Goodfellow et al. 2015) on the model-input scale, no clamp."""
    x_adv = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(frozen(x_adv), y), [x_adv])
    with torch.no_grad():
        return frozen(x + eps * grad.sign()).argmax(dim=1)


def _frozen_copy(model: nn.Module) -> nn.Module:
    frozen = copy.deepcopy(model).eval()
    for parameter in frozen.parameters():
        parameter.requires_grad_(False)
    return frozen


@register_method("boundary_shrink")
class BoundaryShrink(Method):
    access = Access.FORGET
    paper = "Chen et al. 2023 (CVPR), Boundary Shrink; SalUn's boundary_sh.py (Fan et al. 2024)"
    targets = frozenset({"class"})
    space = {**_SPACE, "eps": (0.1, [0.03, 0.1, 0.3, 1.0])}
    intensity = "epochs"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        if hp.eps < 0:
            raise MubenchError(f"boundary_shrink: eps must be >= 0, got {hp.eps}")
        frozen = _frozen_copy(model)
        model.train()
        optimizer = sgd(model, hp.lr, weight_decay=hp.weight_decay)
        for ((x, y),) in request.batches("forget", batch_size=hp.batch_size, epochs=hp.epochs):
            step(optimizer, F.cross_entropy(model(x), fgsm_labels(frozen, x, y, hp.eps)))
        return model


def find_head(model: nn.Module, num_classes: int) -> tuple[nn.Module, str, nn.Linear]:
    """(parent module, attribute name, layer) of the last nn.Linear with num_classes outputs."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == num_classes:
            found = name, module
    if found is None:
        raise MubenchError(f"boundary_expand needs a final nn.Linear with {num_classes} outputs; none found")
    name, layer = found
    parent_name, _, attribute = name.rpartition(".")
    return model.get_submodule(parent_name), attribute, layer


def widen(head: nn.Linear, generator: torch.Generator) -> nn.Linear:
    """A new Linear with one more output: the head's rows, then a shadow row drawn as nn.Linear's
    default init draws one (uniform in +-1/sqrt(in_features)) from `generator`."""
    weight = head.weight
    widened = nn.Linear(head.in_features, head.out_features + 1, bias=head.bias is not None,
                        device=weight.device, dtype=weight.dtype)
    bound = 1.0 / math.sqrt(head.in_features)
    with torch.no_grad():
        widened.weight[:-1] = weight
        widened.weight[-1] = (torch.rand(head.in_features, generator=generator) * 2 - 1).mul(bound).to(weight)
        if head.bias is not None:
            widened.bias[:-1] = head.bias
            widened.bias[-1] = float((torch.rand(1, generator=generator) * 2 - 1) * bound)
    return widened


def narrow(widened: nn.Linear, head: nn.Linear) -> None:
    """Copy the widened layer's first K rows back into the original head (dropping the shadow)."""
    with torch.no_grad():
        head.weight.copy_(widened.weight[:-1])
        if head.bias is not None:
            head.bias.copy_(widened.bias[:-1])


@register_method("boundary_expand")
class BoundaryExpand(Method):
    access = Access.FORGET
    paper = "Chen et al. 2023 (CVPR), Boundary Expanding; SalUn's boundary_ex.py (Fan et al. 2024)"
    targets = frozenset({"class"})
    space = dict(_SPACE)
    intensity = "epochs"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        parent, attribute, head = find_head(model, request.num_classes)
        widened = widen(head, request.generator)
        setattr(parent, attribute, widened)
        try:
            model.train()
            optimizer = sgd(model, hp.lr, weight_decay=hp.weight_decay)
            for ((x, y),) in request.batches("forget", batch_size=hp.batch_size, epochs=hp.epochs):
                shadow = torch.full_like(y, request.num_classes)
                step(optimizer, F.cross_entropy(model(x), shadow))
        finally:
            setattr(parent, attribute, head)
        narrow(widened, head)
        return model

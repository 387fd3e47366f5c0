"""The classifier head of a model: find it, widen it by a shadow class, narrow it back
(Boundary Expanding, Chen et al. 2023), and read the penultimate features that feed it, without
gradients (FMD, Chen et al. 2023, edits only the head) or with them, beside the output (CCU, Xu
et al. 2025, trains a contrastive loss on them)."""

from __future__ import annotations

import math

import torch
from torch import nn

from mubench.errors import MubenchError


def head_layer(model: nn.Module, num_classes: int) -> nn.Linear:
    """The last nn.Linear with num_classes outputs (the model itself when it is one)."""
    return _last_head(model, num_classes)[1]


def find_head(model: nn.Module, num_classes: int) -> tuple[nn.Module, str, nn.Linear]:
    """(parent module, attribute name, layer) of the last nn.Linear with num_classes outputs, for
    methods that swap the head for another layer (a bare head has no parent to swap it in)."""
    name, layer = _last_head(model, num_classes)
    if not name:
        raise MubenchError("this method replaces the classifier head inside the model, and the model is the head "
                           "itself (a bare nn.Linear); wrap it, e.g. nn.Sequential(head)")
    parent_name, _, attribute = name.rpartition(".")
    return model.get_submodule(parent_name), attribute, layer


def _last_head(model: nn.Module, num_classes: int) -> tuple[str, nn.Linear]:
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == num_classes:
            found = name, module
    if found is None:
        raise MubenchError(f"this method edits the classifier head, a final nn.Linear with {num_classes} outputs; the model has none")
    return found


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


def head_inputs(model: nn.Module, head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The inputs the head receives for `x` (the penultimate features), captured by a forward
    hook during one forward pass in the model's current mode; no gradient is kept."""
    captured: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda _module, inputs, _output: captured.append(inputs[0].detach()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    if not captured:
        raise MubenchError("the head was not called in the model's forward pass")
    return captured[-1]


def logits_and_features(model: nn.Module, head: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's output for `x` and the head's inputs (penultimate features, flattened to
    (n, d)), both from one forward pass and with gradients (head_inputs reads them without)."""
    captured: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda _module, inputs, _output: captured.append(inputs[0]))
    try:
        output = model(x)
    finally:
        handle.remove()
    if not captured:
        raise MubenchError("the head was not called in the model's forward pass")
    return output, captured[-1].flatten(1)

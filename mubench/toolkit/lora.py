"""LoRA adapters that can be merged back into the base weights (Hu et al. 2022, "LoRA: Low-Rank
Adaptation of Large Language Models", eq. 3), used by Bias-Aware LoRA unlearning (Aylapuram et
al. 2025, baselines/bias_lora.py).

h = W x + (alpha / r) B A x, A (r x in) random, B (out x r) zero, so the adapted model starts equal
to the original; only A and B train; afterwards W <- W + (alpha/r) B A and the adapters are
removed, so the model has exactly the original's modules and parameters. Linear layers as in the
paper; convolutions (any nn.ConvNd with groups 1) as two convolutions, A = the layer's own
kernel/stride/padding/dilation with r output channels, B = a 1x1 convolution from r channels
(loralib's ConvLoRA shape), whose product is the kernel update dW[o, i, ...] = sum_k B[o, k]
A[k, i, ...]. A is drawn as loralib draws it (kaiming_uniform with a = sqrt(5), i.e. uniform in
+-1/sqrt(fan_in)), from the caller's generator on the CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mubench.errors import MubenchError

ADAPTABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class LoRA(nn.Module):
    """A frozen base layer (nn.Linear or an nn.ConvNd with groups 1) plus a rank-`rank` update
    scale * B A, scale = alpha / rank; B starts at zero."""

    def __init__(self, base: nn.Module, rank: int, alpha: float, generator: torch.Generator) -> None:
        super().__init__()
        if rank < 1:
            raise MubenchError(f"LoRA rank must be >= 1, got {rank}")
        if isinstance(base, nn.modules.conv._ConvNd) and (base.groups != 1 or base.padding_mode != "zeros"):
            raise MubenchError("LoRA supports convolutions with groups 1 and zero padding only")
        self.base, self.rank, self.scale = base, rank, alpha / rank
        weight = base.weight
        fan_in = weight[0].numel()  # in_features, or in_channels * kernel volume
        bound = 1.0 / math.sqrt(fan_in)
        a = (torch.rand((rank, *weight.shape[1:]), generator=generator) * 2 - 1) * bound
        self.lora_a = nn.Parameter(a.to(weight))
        self.lora_b = nn.Parameter(torch.zeros((weight.shape[0], rank, *[1] * (weight.dim() - 2)), device=weight.device,
                                               dtype=weight.dtype))

    def delta(self) -> torch.Tensor:
        """The weight update scale * B A, shaped like the base weight."""
        b = self.lora_b.flatten(1)  # (out, r)
        return self.scale * torch.einsum("or,r...->o...", b, self.lora_a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if isinstance(self.base, nn.Linear):
            return out + self.scale * F.linear(F.linear(x, self.lora_a), self.lora_b)
        hidden = self.base._conv_forward(x, self.lora_a, None)  # the base's stride, padding, dilation
        return out + self.scale * _CONV[len(self.base.kernel_size)](hidden, self.lora_b)  # 1x1: B


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def add_lora(model: nn.Module, rank: int, alpha: float, generator: torch.Generator) -> list[nn.Parameter]:
    """Freeze `model` and wrap each adaptable layer (ADAPTABLE, in module order) in a LoRA, in
    place; return the adapter parameters, the only ones left trainable."""
    targets = [(name, module) for name, module in model.named_modules() if isinstance(module, ADAPTABLE)]
    if not targets:
        raise MubenchError("LoRA found no nn.Linear or nn.ConvNd layer to adapt")
    model.requires_grad_(False)
    adapters: list[nn.Parameter] = []
    for name, module in targets:
        wrapped = LoRA(module, rank, alpha, generator)
        _replace(model, name, wrapped)
        adapters += [wrapped.lora_a, wrapped.lora_b]
    return adapters


def merge_lora(model: nn.Module) -> nn.Module:
    """W <- W + scale * B A for every LoRA in `model`, each replaced by its base layer (in place);
    every parameter trainable again. The result has the original's modules and parameter names."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRA):
            with torch.no_grad():
                module.base.weight.add_(module.delta())
            _replace(model, name, module.base)
    return model.requires_grad_(True)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attribute, module)

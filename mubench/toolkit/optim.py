"""Optimiser steps shared by unlearning methods: plain SGD with momentum, one step from a loss,
SGD restricted to a mask of weights (SalUn, Fan et al. 2024), and train mode with BatchNorm
statistics frozen, for methods that see only the forget set (L2UL, Cha et al. 2024; PTE, Chen et
al. 2025)."""

from __future__ import annotations

import torch
from torch import nn

Mask = dict[str, torch.Tensor]

BATCHNORM_MODES = ("frozen", "train")


def sgd(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.SGD:
    """SGD with momentum; on CUDA the fused single-kernel implementation (the same update, as the
    training engine uses: mubench.harness.training.make_optimizer)."""
    params = list(model.parameters())
    fused = {"fused": True} if params and params[0].is_cuda else {}
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **fused)


def step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def top_share_mask(scores: dict[str, torch.Tensor], ratio: float) -> Mask:
    """Boolean masks selecting exactly int(N * ratio) of the N entries of `scores`, the largest
    ones under one global threshold; ties go to the entry earlier in `scores`' (flattened) order."""
    flat = torch.cat([s.detach().flatten() for s in scores.values()])
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    order = torch.sort(flat, descending=True, stable=True).indices
    keep[order[:int(flat.numel() * ratio)]] = True
    return {name: part.view_as(s) for (name, s), part in
            zip(scores.items(), keep.split([s.numel() for s in scores.values()]))}


class MaskedSGD:
    """SGD whose steps move only the entries a mask selects: gradients are masked before the step,
    and the masked-out entries (which weight decay and momentum would still move) are reset to
    their values at construction afterwards, with their momentum zeroed."""

    def __init__(self, model: nn.Module, mask: Mask, lr: float, weight_decay: float) -> None:
        self.params = dict(model.named_parameters())
        self.mask = mask
        self.original = {name: p.detach().clone() for name, p in self.params.items()}
        self.optimizer = sgd(model, lr, weight_decay=weight_decay)

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for name, p in self.params.items():
            if p.grad is not None:
                p.grad.mul_(self.mask[name])
        self.optimizer.step()
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(torch.where(self.mask[name], p, self.original[name]))
                buffer = self.optimizer.state.get(p, {}).get("momentum_buffer")
                if buffer is not None:
                    buffer.mul_(self.mask[name])


def train_mode(model: nn.Module, batchnorm: str = "train") -> nn.Module:
    """model.train(), with every BatchNorm layer back in eval mode when batchnorm == "frozen": it
    then normalises with the original's running statistics and does not update them (its affine
    weights still train). Forget-only batches, often of a single class, would otherwise replace the
    running statistics with the forget set's, and a method with no retain data cannot restore them
    (the choice L2UL and PTE make; baselines/l2ul.py)."""
    model.train()
    if batchnorm == "frozen":
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    return model

"""Training from scratch: the original model, the oracle, and the `retrain` baseline.

In-memory data stays on the device and batches are taken by indexing a shuffled permutation
drawn from an explicit `torch.Generator` (no DataLoader): on small models a DataLoader's
per-sample collation costs more than the model itself (airbench, Jordan 2024).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from mubench.targets import CLASSIFICATION, Target
from mubench.tasks.spec import Recipe


# Part of every cached model's key: bump it when training changes what is cached (weights or
# the recorded seconds), so stale models are retrained instead of reused.
TRAINER_VERSION = "2"  # unchanged by the loss/augment options: their defaults train exactly as before


@dataclass(frozen=True)
class TrainStats:
    seconds: float
    samples_seen: int
    final_loss: float


def make_optimizer(params: list[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, recipe: Recipe, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-step learning-rate schedule; None for a constant rate (no per-step Python work)."""
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    return None


def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crops and horizontal flips of a whole image batch (N, C, H, W) at once.

    Each image is zero-padded by `pad` pixels, cropped back to H x W at a random offset, and
    mirrored with probability 1/2: the standard CIFAR augmentation (He et al. 2016), applied to the
    batch on its device with one gather instead of per-sample transforms (airbench, Jordan 2024).
    Random draws come from the CPU `generator`, so a run is reproducible on any device.
    """
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator).to(x.device)
    flip = (torch.rand(n, 1, generator=generator) < 0.5).to(x.device)
    rows = dy + torch.arange(h, device=x.device)
    cols = dx + torch.arange(w, device=x.device)
    cols = torch.where(flip, cols.flip(1), cols)
    index = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[index, channels, rows[:, None, :, None], cols[:, None, None, :]]


def train_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                generator: torch.Generator, target: Target = CLASSIFICATION) -> TrainStats:
    """Minimise the task's loss (`target.loss`: cross-entropy, or masked MAE for regression) on
    (x, y) with `recipe`; x and y already live on the model's device."""
    start = time.perf_counter()
    model.train()
    optimizer = make_optimizer(list(model.parameters()), recipe)
    steps_per_epoch = math.ceil(len(y) / recipe.batch_size)
    schedule = make_schedule(optimizer, recipe, recipe.epochs * steps_per_epoch)
    loss = torch.zeros(())
    for _ in range(recipe.epochs):
        permutation = torch.randperm(len(y), generator=generator).to(x.device)
        for offset in range(0, len(y), recipe.batch_size):
            batch = permutation[offset:offset + recipe.batch_size]
            inputs = x[batch]
            if recipe.augment == "crop_flip":
                inputs = crop_flip(inputs, generator)
            loss = target.loss(model(inputs), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
    model.eval()
    return TrainStats(time.perf_counter() - start, recipe.epochs * len(y), float(loss.detach()))

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

from mubench.tasks.spec import Recipe


# Part of every cached model's key: bump it when training changes what is cached (weights or
# the recorded seconds), so stale models are retrained instead of reused.
TRAINER_VERSION = "2"


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


def train_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                generator: torch.Generator) -> TrainStats:
    """Minimise cross-entropy on (x, y) with `recipe`; x and y already live on the model's device."""
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
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
    model.eval()
    return TrainStats(time.perf_counter() - start, recipe.epochs * len(y), float(loss.detach()))

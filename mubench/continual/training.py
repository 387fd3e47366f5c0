"""Task-incremental training and evaluation: masked logits, a training loop, per-task accuracy.

One model with one output layer of `num_classes` units serves every task; a sample of task t is
scored on the logits of t's classes only (the others are set to -inf), as with the multi-headed
output layer of task-incremental split MNIST (van de Ven & Tolias 2019). Training minimises the
cross-entropy over those logits, so a class that was never trained receives no gradient at all.
The output layer starts at zero: the logits of a task never learned are all equal, the masked
argmax then picks the task's first class for every sample, and on a balanced test set that scores
exactly chance (1 / classes). The loop mirrors mubench.harness.training.train_model (data on the device,
batches by indexing a permutation drawn from an explicit generator).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from mubench.continual.spec import ContinualSpec
from mubench.errors import MubenchError
from mubench.harness.models import model_factories
from mubench.harness.training import crop_flip, make_optimizer, make_schedule
from mubench.request import shuffled
from mubench.tasks.spec import Recipe
from mubench.transfer import synchronize, to_device


@dataclass(frozen=True)
class StreamSubset:
    """Model-ready inputs, global labels and the task of every sample, on the run's device."""

    x: torch.Tensor
    y: torch.Tensor
    task: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    @staticmethod
    def concat(subsets: Iterable[StreamSubset]) -> StreamSubset:
        parts = list(subsets)
        if not parts:
            raise ValueError("no data to concatenate: no task is available")
        return StreamSubset(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]),
                            torch.cat([p.task for p in parts]))


def class_mask(spec: ContinualSpec) -> torch.Tensor:
    """(tasks, classes) booleans: True where the class belongs to the task."""
    mask = torch.zeros(spec.n_tasks, spec.num_classes, dtype=torch.bool)
    for task, classes in enumerate(spec.task_classes):
        mask[task, list(classes)] = True
    return mask


def masked_logits(logits: torch.Tensor, task: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each sample's logits with every class outside its task set to -inf."""
    return logits.masked_fill(~to_device(mask, logits.device)[task], float("-inf"))


def task_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each sample among its own task's classes."""
    return F.cross_entropy(masked_logits(model(x), task, mask), y)


def fit(model: nn.Module, data: StreamSubset, recipe: Recipe, mask: torch.Tensor, generator: torch.Generator) -> float:
    """Train `model` in place on `data` with `recipe` (a fresh optimizer); returns the seconds."""
    start = time.perf_counter()
    model.train()
    optimizer = make_optimizer(list(model.parameters()), recipe)
    schedule = make_schedule(optimizer, recipe, recipe.epochs * math.ceil(len(data) / recipe.batch_size))
    for _ in range(recipe.epochs):
        for batch in shuffled(len(data), generator, data.x.device).split(recipe.batch_size):
            inputs = crop_flip(data.x[batch], generator) if recipe.augment == "crop_flip" else data.x[batch]
            loss = task_loss(model, inputs, data.y[batch], data.task[batch], mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
    model.eval()
    synchronize(data.x.device)  # the loop never waits on the device: count its queued steps
    return time.perf_counter() - start


@torch.no_grad()
def task_accuracy(model: nn.Module, data: StreamSubset, mask: torch.Tensor, batch_size: int) -> float:
    """Accuracy of the masked argmax (ties go to the task's first class) on one task's samples."""
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        part = slice(start, start + batch_size)
        predicted = masked_logits(model(data.x[part]), data.task[part], mask).argmax(dim=1)
        correct += int((predicted == data.y[part]).sum())
    return correct / len(data)


def output_layer(model: nn.Module, num_classes: int) -> nn.Linear:
    """The model's output layer: its last nn.Linear with `num_classes` outputs."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not heads:
        raise MubenchError(f"a task-incremental model needs an nn.Linear output layer of {num_classes} units; "
                           f"{type(model).__name__} has none")
    return heads[-1]


def fresh_model(spec: ContinualSpec, profile: str, seed: int) -> nn.Module:
    """The profile's untrained model, initialised from `seed` (inside fork_rng, as
    mubench.harness.models.build_model does), with its output layer set to zero."""
    settings = spec.profile(profile)
    factory = model_factories.get(settings.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory(spec.input_shape, spec.num_classes, **settings.model_args)
    head = output_layer(model, spec.num_classes)
    with torch.no_grad():
        head.weight.zero_()
        if head.bias is not None:
            head.bias.zero_()
    return model

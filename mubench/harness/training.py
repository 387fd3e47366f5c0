"""Training from scratch: the original model, the oracle, and the `retrain` baseline.

One engine serves every task and profile. In-memory data stays on the device and batches are
taken by indexing a shuffled permutation drawn from an explicit `torch.Generator` (no DataLoader:
on small models a DataLoader's per-sample collation costs more than the model itself; airbench,
Jordan 2024). Stored samples (e.g. uint8 images) can stay on the device as they are and be turned
into model inputs batch by batch (`transform`), so a full image dataset occupies a quarter of its
float32 size. On a GPU the engine also trains in channels_last memory format with fused
optimisers, and, where the recipe asks for it, under bf16 autocast and `torch.compile`: the speed
techniques of airbench (Jordan 2024). None of them changes what is computed in exact arithmetic;
the CPU default path is the plain loop. Unlearning methods' own loops run under the same engine
(`Engine.hosting`, used by the harness), so they train as fast as the original did.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from mubench.targets import CLASSIFICATION, Target
from mubench.tasks.spec import Recipe
from mubench.transfer import to_device

# Part of every cached model's key: bump it when training changes what is cached (weights or
# the recorded seconds), so stale models are retrained instead of reused.
TRAINER_VERSION = "2"  # unchanged by the engine options: their defaults train exactly as before

Transform = Callable[[torch.Tensor], torch.Tensor]

METHOD_PRECISION_ENV = "MUBENCH_METHOD_PRECISION"  # "fp32": methods' loops never autocast (Engine.for_method)


@dataclass(frozen=True)
class TrainStats:
    seconds: float
    samples_seen: int
    final_loss: float


@dataclass(frozen=True)
class Engine:
    """How a recipe is executed on a device: memory format, mixed precision, fused optimiser
    kernels and compilation. `for_device` picks them; tests may build one by hand."""

    channels_last: bool = False
    autocast: torch.dtype | None = None
    fused: bool = False
    compile: bool = False

    @classmethod
    def for_device(cls, device: torch.device, recipe: Recipe, compile: bool | None = None) -> Engine:
        """channels_last and fused kernels on CUDA (where they pay; on a CPU they can be slower),
        bf16 autocast wherever the recipe asks for it (`precision`), and `torch.compile` when asked
        for by `compile` or, when that is None, by MUBENCH_COMPILE=1."""
        cuda = device.type == "cuda"
        if compile is None:
            compile = os.environ.get("MUBENCH_COMPILE", "") == "1"
        return cls(channels_last=cuda, autocast=torch.bfloat16 if recipe.precision == "bf16" else None,
                   fused=cuda, compile=compile)

    @classmethod
    def for_method(cls, device: torch.device, recipe: Recipe, mixed_precision: bool = True) -> Engine:
        """The engine an unlearning method's own loop runs under (`hosting`): the task's memory
        format and precision, with autocast dropped for a method that opts out
        (`Method.mixed_precision`) and for every method under MUBENCH_METHOD_PRECISION=fp32 (to
        compare; `python -m mubench.bench.training --methods-fp32`). Never compiled: a method's
        loop is its own code."""
        engine = cls.for_device(device, recipe, compile=False)
        if mixed_precision and os.environ.get(METHOD_PRECISION_ENV, "") != "fp32":
            return engine
        return replace(engine, autocast=None)

    @contextlib.contextmanager
    def hosting(self, model: nn.Module, device: torch.device) -> Iterator[None]:
        """Run a method's own training loop under this engine, as the original was trained: the
        model's weights in channels_last (convolutions then take that layout; a no-op for models
        without 4-D weights) and forward passes under bf16 autocast, with weights, optimiser state
        and autocast's float32 ops (losses, softmax) left in float32. A method inherits the speed
        of the task's recipe without code of its own. `contiguous` undoes the layout afterwards.

        The autocast region spans the method's whole loop, so its cache of cast weights is off:
        autocast keeps the bf16 copy of a weight until the outermost region ends, and a method's
        optimiser steps would otherwise train on stale copies of the first forward pass's
        weights (measured: fine-tuning Colored MNIST's standard model fell from 0.78 to 0.18 test
        accuracy). Each forward pass casts afresh, as a region per forward pass would."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=self.autocast or torch.bfloat16, enabled=self.autocast is not None,
                            cache_enabled=False):
            yield


def contiguous(model: nn.Module) -> nn.Module:
    """`model` with every weight back in the default (contiguous) layout: safetensors, flattened
    gradients and `.view` need it."""
    return model.to(memory_format=torch.contiguous_format)


def make_optimizer(params: list[nn.Parameter], recipe: Recipe, fused: bool = False) -> torch.optim.Optimizer:
    """The recipe's optimiser; `fused` selects the single-kernel CUDA implementation (same update)."""
    extra = {"fused": True} if fused else {}
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                               nesterov=recipe.nesterov, **extra)
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, **extra)


def make_schedule(optimizer: torch.optim.Optimizer, recipe: Recipe, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-step learning-rate schedule; None for a constant rate (no per-step Python work).

    "onecycle" is Smith & Topin (2019)'s super-convergence schedule as fast CIFAR trainers use it
    (Page 2018; airbench, Jordan 2024): see `onecycle_factor`.
    """
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if recipe.schedule == "onecycle":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: onecycle_factor(step, total_steps, recipe.warmup, recipe.warmup_div))
    return None


def onecycle_factor(step: int, total_steps: int, warmup: float, warmup_div: float) -> float:
    """The one-cycle multiplier of the peak lr at `step`: a linear rise from 1/warmup_div to 1 over
    the first round(warmup x total) steps (at least one), then a linear fall to 0 at `total_steps`.
    (torch's OneCycleLR divides by zero on runs of a few steps; this is defined for any length.)"""
    rise = max(1, round(warmup * total_steps))
    if step < rise:
        return 1 / warmup_div + (1 - 1 / warmup_div) * step / rise
    return max(0.0, (total_steps - step) / max(1, total_steps - rise))


def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crops and horizontal flips of a whole image batch (N, C, H, W) at once.

    Each image is zero-padded by `pad` pixels, cropped back to H x W at a random offset, and
    mirrored with probability 1/2: the standard CIFAR augmentation (He et al. 2016), applied to the
    batch on its device with one gather instead of per-sample transforms (airbench, Jordan 2024).
    Random draws come from the CPU `generator`, so a run is reproducible on any device.
    """
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator)
    flip = torch.rand(n, 1, generator=generator) < 0.5
    draws = to_device(torch.cat([dy, dx, flip.long()], dim=1), x.device)  # one copy per batch, no wait
    dy, dx, flip = draws[:, :1], draws[:, 1:2], draws[:, 2:].bool()
    rows = dy + torch.arange(h, device=x.device)
    cols = dx + torch.arange(w, device=x.device)
    cols = torch.where(flip, cols.flip(1), cols)
    index = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[index, channels, rows[:, None, :, None], cols[:, None, None, :]]


def training_loss(target: Target, recipe: Recipe) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The task's loss (`target.loss`), with the recipe's label smoothing (Szegedy et al. 2016)
    for classification."""
    if recipe.label_smoothing and not target.regression:
        return lambda output, y: F.cross_entropy(output, y, label_smoothing=recipe.label_smoothing)
    return target.loss


def train_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                generator: torch.Generator, target: Target = CLASSIFICATION, *,
                transform: Transform | None = None, engine: Engine | None = None,
                max_steps: int | None = None) -> TrainStats:
    """Minimise the task's loss (`target.loss`: cross-entropy, or masked MAE for regression) on
    (x, y) with `recipe`; x and y already live on the model's device.

    `transform`, when given, turns a batch of stored samples into model inputs (e.g. uint8 images
    into normalised floats) on the device; x then holds the stored samples. `engine` defaults to
    `Engine.for_device` of the model's device. `max_steps` stops after that many optimiser steps
    (the schedule is still the whole recipe's): a timing sample of the recipe (Harness.reference_seconds).
    """
    start = time.perf_counter()
    device = x.device
    engine = engine or Engine.for_device(device, recipe)
    images = x.dim() == 4
    if engine.channels_last and images:
        model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if engine.compile else model
    model.train()
    optimizer = make_optimizer(list(model.parameters()), recipe, fused=engine.fused)
    steps_per_epoch = math.ceil(len(y) / recipe.batch_size)
    schedule = make_schedule(optimizer, recipe, recipe.epochs * steps_per_epoch)
    loss_fn = training_loss(target, recipe)
    loss = torch.zeros(())
    steps, seen = 0, 0
    for _ in range(recipe.epochs):
        permutation = to_device(torch.randperm(len(y), generator=generator), device)
        for offset in range(0, len(y), recipe.batch_size):
            if max_steps is not None and steps >= max_steps:
                break
            steps += 1
            batch = permutation[offset:offset + recipe.batch_size]
            seen += len(batch)
            inputs = x[batch] if transform is None else transform(x[batch])
            if recipe.augment == "crop_flip":
                inputs = crop_flip(inputs, generator)
            if engine.channels_last and images:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=engine.autocast or torch.bfloat16,
                                enabled=engine.autocast is not None):
                output = step_model(inputs)
            loss = loss_fn(output.float(), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
        if max_steps is not None and steps >= max_steps:
            break
    if engine.channels_last and images:
        contiguous(model)
    model.eval()
    final = float(loss.detach())  # the one synchronisation of the loop: the clock stops after the GPU does
    return TrainStats(time.perf_counter() - start, seen, final)


def can_train_batched(model: nn.Module) -> bool:
    """Whether copies of `model` can be trained as one vmapped model: no buffers (BatchNorm's
    running statistics are updated in place, which `torch.func.vmap` cannot batch)."""
    return not any(True for _ in model.buffers())


def train_models_batched(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
                         generators: list[torch.Generator], target: Target = CLASSIFICATION, *,
                         transform: Transform | None = None, engine: Engine | None = None) -> TrainStats:
    """Train K same-architecture models on the same (x, y) at once, each with its own generator:
    the result of `train_model` on each in turn, up to floating-point rounding.

    The K parameter sets are stacked (`torch.func.stack_module_state`) and one vmapped forward
    pass serves every model, so K small models cost about one kernel launch each instead of K
    (the shadow models of the per-example membership attack: Carlini et al. 2022 train many). Each
    model draws its own permutation and augmentation from its own generator in the order
    `train_model` would, and the optimiser acts elementwise on the stacked tensors, so every slice
    follows the update of its own optimiser. Models with buffers (BatchNorm) cannot be batched:
    `can_train_batched`. Returns the stats of the whole batch (seconds for all K together).
    """
    from torch.func import functional_call, stack_module_state, vmap

    if len(models) != len(generators) or not models:
        raise ValueError(f"{len(models)} models need as many generators, got {len(generators)}")
    if not all(can_train_batched(m) for m in models):
        raise ValueError("models with buffers (e.g. BatchNorm) cannot be trained batched; use train_model")
    start = time.perf_counter()
    device = x.device
    engine = engine or Engine.for_device(device, recipe)
    params, _ = stack_module_state(models)
    skeleton = copy_to_meta(models[0])
    optimizer = make_optimizer(list(params.values()), recipe, fused=engine.fused)
    steps_per_epoch = math.ceil(len(y) / recipe.batch_size)
    schedule = make_schedule(optimizer, recipe, recipe.epochs * steps_per_epoch)
    loss_fn = training_loss(target, recipe)

    def forward(p: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(skeleton, p, (inputs,))

    batched_forward = vmap(forward)
    loss = torch.zeros(())
    for _ in range(recipe.epochs):
        permutations = [to_device(torch.randperm(len(y), generator=g), device) for g in generators]
        for offset in range(0, len(y), recipe.batch_size):
            batches = [p[offset:offset + recipe.batch_size] for p in permutations]
            inputs = []
            for batch, generator in zip(batches, generators):
                one = x[batch] if transform is None else transform(x[batch])
                inputs.append(crop_flip(one, generator) if recipe.augment == "crop_flip" else one)
            with torch.autocast(device.type, dtype=engine.autocast or torch.bfloat16,
                                enabled=engine.autocast is not None):
                outputs = batched_forward(params, torch.stack(inputs))
            # the sum of the K losses: each model's parameters get exactly its own loss's gradient
            losses = torch.stack([loss_fn(out.float(), y[batch]) for out, batch in zip(outputs, batches)])
            loss = losses.mean()
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
    with torch.no_grad():
        for k, model in enumerate(models):
            for name, tensor in model.named_parameters():
                tensor.copy_(params[name][k])
            model.eval()
    final = float(loss.detach())
    return TrainStats(time.perf_counter() - start, len(models) * recipe.epochs * len(y), final)


def copy_to_meta(model: nn.Module) -> nn.Module:
    """A weightless copy of `model` (parameters on the meta device) to call with other weights."""
    import copy

    return copy.deepcopy(model).to("meta")

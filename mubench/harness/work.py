"""Hardware-independent cost: the sample passes a method makes through the task's model.

Seconds depend on the machine and its load (one method's nine settings, the same work, ranged
almost twofold in seconds on one machine), so the board reports cost as work as well: every
sample that goes through a model of the task's architecture counts 1 when no gradient is recorded
and 3 when autograd records it (a forward and a backward, whose cost is about twice a forward's:
Kaplan et al. 2020 count 2N FLOPs per token forward and 6N for training). Retraining's work is
its recipe's: 3 x epochs x retain samples, so `retrain` costs exactly 1 by construction.

Counting uses PyTorch's global module forward hook, which sees every call of a model of the
task's class, whatever the method does with it: copies (`copy.deepcopy`), `torch.func.functional_call`,
`vmap` over per-sample gradients (a batched input is unwrapped to count its physical samples) and
new models trained from scratch. Work inside other modules (a method's own auxiliary network)
is not counted: it is not the task's model, and its cost shows in the seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

FORWARD_UNITS, TRAINING_UNITS = 1, 3


def training_work(epochs: int, samples: int) -> float:
    """The work of training from scratch for `epochs` on `samples` (every sample once per epoch)."""
    return float(TRAINING_UNITS * epochs * samples)


def _physical(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor under every functorch level (vmap's batching, grad's tracking), with its batch
    dimensions."""
    functorch = torch._C._functorch
    while functorch.is_functorch_wrapped_tensor(tensor):
        tensor = functorch.get_unwrapped(tensor)
    return tensor


def samples_in(inputs: object, sample_numel: int) -> int:
    """How many samples a model call's first input holds: its physical elements over one
    sample's, else the leading dimension; 0 when the call has no tensor input."""
    first = inputs[0] if isinstance(inputs, tuple) and inputs else inputs
    if not isinstance(first, torch.Tensor):
        return 0
    physical = _physical(first)
    if sample_numel > 0 and physical.numel() % sample_numel == 0:
        return physical.numel() // sample_numel
    return int(physical.shape[0]) if physical.dim() else 1


@dataclass
class WorkCounter:
    """Work units counted so far (see the module's docstring)."""

    units: float = 0.0

    def add(self, samples: int, training: bool) -> None:
        self.units += samples * (TRAINING_UNITS if training else FORWARD_UNITS)


@contextmanager
def counting_work(model_class: type[nn.Module], input_shape: tuple[int, ...]) -> Iterator[WorkCounter]:
    """Count the work of every call of a `model_class` module while the block runs (any thread)."""
    counter = WorkCounter()
    sample_numel = math.prod(input_shape)

    def hook(module: nn.Module, inputs: tuple[object, ...]) -> None:
        if type(module) is model_class:
            counter.add(samples_in(inputs, sample_numel), torch.is_grad_enabled())

    handle = nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()

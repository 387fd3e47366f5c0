"""What a method's `unlearn` receives: the data it declared, a device, seeded generators.

The runner builds a Request holding only the subsets the method's `Access` allows, so data a
method did not declare is not merely hidden, it is absent; asking for it raises AccessError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mubench.access import Access
from mubench.errors import AccessError, MubenchError
from mubench.targets import CLASSIFICATION, Target
from mubench.transfer import to_device

# Task.counterfactual: (model-ready inputs, their attributes, a CPU generator) -> counterfactual inputs or None
Counterfactual = Callable[[torch.Tensor, dict[str, torch.Tensor], torch.Generator], torch.Tensor | None]


@dataclass(frozen=True)
class Subset:
    """Model-ready inputs and labels of one part of a split, on the run's device; `attributes`
    (per-sample, on the CPU) only where a method's access includes them (the `unseen` part under
    Access.COUNTERFACTUAL)."""

    x: torch.Tensor
    y: torch.Tensor
    attributes: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)


class Request:
    """The forget request and the declared extras, with a time budget and explicit generators."""

    def __init__(self, subsets: dict[str, Subset], access: Access, num_classes: int, device: torch.device,
                 seed: int, time_budget_s: float | None = None,
                 trainer: Callable[[Subset], nn.Module] | None = None, target: Target = CLASSIFICATION,
                 counterfactual: Counterfactual | None = None, sensitive_attributes: tuple[str, ...] = ()) -> None:
        undeclared = set(subsets) - access.subsets
        if undeclared:
            raise AccessError(f"refusing to hand undeclared data {sorted(undeclared)} to a {access.value!r} method")
        if access is not Access.COUNTERFACTUAL:  # attributes (sex, colour, ...) come only with counterfactuals
            subsets = {name: Subset(s.x, s.y) if s.attributes else s for name, s in subsets.items()}
        self._subsets = subsets
        self.access = access
        self.num_classes = num_classes
        self.device = device
        self.seed = seed
        self.time_budget_s = time_budget_s
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self._trainer = trainer
        self.target = target
        self._counterfactual = counterfactual
        self.sensitive_attributes = sensitive_attributes if access is Access.COUNTERFACTUAL else ()

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task's own training loss on a batch: cross-entropy for classification, the masked
        MAE for regression (mubench.targets). Methods that minimise or ascend "the loss" use this."""
        return self.target.loss(output, y)

    def subset(self, name: str) -> Subset:
        if name not in self._subsets:
            raise AccessError(f"this method declared access {self.access.value!r}, which does not include {name!r} data")
        return self._subsets[name]

    def counterfactual(self, x: torch.Tensor, attributes: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The task's counterfactuals of model-ready inputs `x` (the same samples with only the
        sensitive attribute changed; Task.counterfactual), drawn with the request's generator;
        None where the task cannot build them (a method then pairs real samples instead, as FMD
        does on CelebA). Only for methods that declared Access.COUNTERFACTUAL."""
        if self.access is not Access.COUNTERFACTUAL:
            raise AccessError(f"this method declared access {self.access.value!r}, which does not include counterfactuals")
        if self._counterfactual is None:
            return None
        return self._counterfactual(x, attributes, self.generator)

    @property
    def forget(self) -> Subset:
        return self.subset("forget")

    @property
    def retain(self) -> Subset:
        return self.subset("retain")

    @property
    def unseen(self) -> Subset:
        return self.subset("unseen")

    def forgets_whole_classes(self) -> bool:
        """Whether no forget label occurs in the retain set: every forgotten class is forgotten
        whole. Methods whose authors run a separate class-unlearning setting (Fisher forgetting's
        full-class strategy, LoTUS's class flag) decide it from this; it reads the retain set."""
        return not bool(torch.isin(self.forget.y, self.retain.y).any())

    def available(self) -> list[str]:
        return sorted(self._subsets)

    def batches(self, *names: str, batch_size: int | tuple[int, ...] = 128,
                epochs: int = 1) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], ...]]:
        """Shuffled mini-batches of the named subsets, zipped.

        The first subset sets the epoch length; the others are reshuffled and cycled as needed
        (NegGrad+ pairs each retain batch with a forget batch this way). `batch_size` is one size
        for every subset or one per subset, in the order of `names` (NegGrad+'s notebook pairs
        retain batches of 32 with forget batches of 64).
        """
        sizes = (batch_size,) * len(names) if isinstance(batch_size, int) else tuple(batch_size)
        if len(sizes) != len(names) or min(sizes, default=1) < 1:
            raise MubenchError(f"batches: batch_size must be a positive int or one per subset ({names}), got {batch_size}")
        subsets = [self.subset(name) for name in names]
        others = [_cycle(s, size, self.generator) for s, size in zip(subsets[1:], sizes[1:])]
        for batch in self.batches_of(subsets[0], batch_size=sizes[0], epochs=epochs):
            yield (batch, *(next(other) for other in others))

    def batches_of(self, subset: Subset, batch_size: int = 128, epochs: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled mini-batches of any subset a method built itself (e.g. relabelled forget data)."""
        for _ in range(epochs):
            for index in shuffled(len(subset), self.generator, subset.y.device).split(batch_size):
                yield subset.x[index], subset.y[index]

    def train_from_scratch(self, name: str = "retain") -> nn.Module:
        """Train a fresh model on subset `name` with the task's own recipe and the run's seed."""
        if self._trainer is None:
            raise AccessError("this request offers no trainer")
        return self._trainer(self.subset(name))


def _cycle(subset: Subset, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        for index in shuffled(len(subset), generator, subset.y.device).split(batch_size):
            yield subset.x[index], subset.y[index]


def shuffled(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A permutation of range(n) drawn on the CPU from `generator` (the same on every device),
    moved to `device` once per pass and without waiting on it (mubench.transfer): batches are then
    sliced on the device, and the loop never synchronises with the GPU."""
    return to_device(torch.randperm(n, generator=generator), device)

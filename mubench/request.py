"""What a method's `unlearn` receives: the data it declared, a device, seeded generators.

The runner builds a Request holding only the subsets the method's `Access` allows, so data a
method did not declare is not merely hidden, it is absent; asking for it raises AccessError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mubench.errors import AccessError
from mubench.methods import Access
from mubench.targets import CLASSIFICATION, Target


@dataclass(frozen=True)
class Subset:
    """Model-ready inputs and labels of one part of a split, on the run's device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


class Request:
    """The forget request and the declared extras, with a time budget and explicit generators."""

    def __init__(self, subsets: dict[str, Subset], access: Access, num_classes: int, device: torch.device,
                 seed: int, time_budget_s: float | None = None,
                 trainer: Callable[[Subset], nn.Module] | None = None, target: Target = CLASSIFICATION) -> None:
        undeclared = set(subsets) - access.subsets
        if undeclared:
            raise AccessError(f"refusing to hand undeclared data {sorted(undeclared)} to a {access.value!r} method")
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

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task's own training loss on a batch: cross-entropy for classification, the masked
        MAE for regression (mubench.targets). Methods that minimise or ascend "the loss" use this."""
        return self.target.loss(output, y)

    def subset(self, name: str) -> Subset:
        if name not in self._subsets:
            raise AccessError(f"this method declared access {self.access.value!r}, which does not include {name!r} data")
        return self._subsets[name]

    @property
    def forget(self) -> Subset:
        return self.subset("forget")

    @property
    def retain(self) -> Subset:
        return self.subset("retain")

    def available(self) -> list[str]:
        return sorted(self._subsets)

    def batches(self, *names: str, batch_size: int = 128, epochs: int = 1) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], ...]]:
        """Shuffled mini-batches of the named subsets, zipped.

        The first subset sets the epoch length; the others are reshuffled and cycled as needed
        (NegGrad+ and SCRUB pair each retain batch with a forget batch this way).
        """
        subsets = [self.subset(name) for name in names]
        others = [_cycle(s, batch_size, self.generator) for s in subsets[1:]]
        for batch in self.batches_of(subsets[0], batch_size=batch_size, epochs=epochs):
            yield (batch, *(next(other) for other in others))

    def batches_of(self, subset: Subset, batch_size: int = 128, epochs: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled mini-batches of any subset a method built itself (e.g. relabelled forget data)."""
        for _ in range(epochs):
            for index in torch.randperm(len(subset), generator=self.generator).split(batch_size):
                index = index.to(subset.y.device)
                yield subset.x[index], subset.y[index]

    def train_from_scratch(self, name: str = "retain") -> nn.Module:
        """Train a fresh model on subset `name` with the task's own recipe and the run's seed."""
        if self._trainer is None:
            raise AccessError("this request offers no trainer")
        return self._trainer(self.subset(name))


def _cycle(subset: Subset, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        for index in torch.randperm(len(subset), generator=generator).split(batch_size):
            index = index.to(subset.y.device)
            yield subset.x[index], subset.y[index]

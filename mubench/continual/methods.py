"""The ContinualMethod base class: what a method for learn/unlearn streams looks like to its author.

A method receives the stream one request at a time: `learn(model, task, request)` and
`unlearn(model, task, request)`, each returning the model to carry on with. Its data access is
declared, as for ordinary methods (mubench.methods.Access), and enforced the same way: data not
granted is absent from the request, not hidden.

- `keeps_data = False` (the default, continual learning's rule of discarding past data): a learn
  request carries the new task's training data only; an unlearn request carries no data at all.
- `keeps_data = True`: the harness keeps, on the method's behalf, the training data of every task
  learned and not yet unlearned; every request carries all of it (an unlearn request includes the
  task being unlearned), and the data of an unlearned task is dropped once its request is served.

A request ends when its call returns: any later access raises AccessError, so a method cannot
hold on to a request for data it was not granted later.

Methods are found like ordinary ones: the modules published under the `mubench.methods` entry
point are imported on the first lookup (the baselines' are in baselines/continual.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from mubench.continual.training import StreamSubset, fit, task_loss
from mubench.errors import AccessError
from mubench.methods import HParams, HParamValue, resolve_hparams
from mubench.registry import Registry
from mubench.request import shuffled
from mubench.tasks.spec import Recipe


class StreamRequest:
    """One request of a stream as a method sees it: the task, the data it may use, the profile's
    training recipe, a device and explicit generators."""

    def __init__(self, op: Literal["learn", "unlearn"], task: int, subsets: dict[int, StreamSubset], keeps_data: bool,
                 retained: tuple[int, ...], mask: torch.Tensor, recipe: Recipe, device: torch.device, seed: int,
                 trainer: Callable[[StreamSubset], nn.Module] | None = None) -> None:
        granted = {task} if op == "learn" else set()
        if not keeps_data and set(subsets) - granted:
            raise AccessError(f"refusing to hand the data of tasks {sorted(set(subsets) - granted)} to a method "
                              f"that does not keep data ({op} {task})")
        self.op, self.task, self.keeps_data = op, task, keeps_data
        self.retained = retained  # the tasks the model should know once this request is served
        self.mask, self.recipe, self.device, self.seed = mask, recipe, device, seed
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self._subsets = dict(subsets)
        self._trainer = trainer
        self._ended = False

    # -- data ------------------------------------------------------------------------------------
    def data(self, task: int | None = None) -> StreamSubset:
        """The training data of `task` (default: this request's task), if the method may have it."""
        task = self.task if task is None else task
        if self._ended:
            raise AccessError(f"the request ({self.op} {self.task}) has ended; its data is gone "
                              "(keep data by declaring keeps_data = True, and the harness keeps it for you)")
        if task not in self._subsets:
            if not self.keeps_data and self.op == "unlearn":
                raise AccessError(f"this method declared keeps_data = False: the data of task {task} was not kept, "
                                  "and an unlearn request carries no data")
            raise AccessError(f"task {task}'s data is not in this request (available: {self.available() or 'none'})")
        return self._subsets[task]

    def available(self) -> list[int]:
        return [] if self._ended else sorted(self._subsets)

    def union(self, tasks: list[int] | tuple[int, ...]) -> StreamSubset:
        """The data of several tasks concatenated (each must be available)."""
        return StreamSubset.concat(self.data(task) for task in tasks)

    def batches_of(self, data: StreamSubset, batch_size: int = 128,
                   epochs: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Shuffled mini-batches (x, y, task) of `data`, drawn from the request's generator."""
        for _ in range(epochs):
            for index in shuffled(len(data), self.generator, data.y.device).split(batch_size):
                yield data.x[index], data.y[index], data.task[index]

    # -- training --------------------------------------------------------------------------------
    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """The task-incremental loss: cross-entropy among each sample's own task's classes."""
        return task_loss(model, x, y, task, self.mask)

    def fit(self, model: nn.Module, data: StreamSubset) -> nn.Module:
        """Train `model` further on `data` with the profile's recipe (one learn request's training)."""
        fit(model, data, self.recipe, self.mask, self.generator)
        return model

    def train_from_scratch(self, data: StreamSubset) -> nn.Module:
        """A fresh model trained on `data` with the recipe and the seeds of the harness's oracle."""
        if self._trainer is None:
            raise AccessError("this request offers no trainer")
        return self._trainer(data)

    def end(self) -> None:
        """Called by the harness when the method returns: the request's data is released."""
        self._subsets.clear()
        self._ended = True


class ContinualMethod(ABC):
    """Base class of every method for learn/unlearn streams; one instance serves one stream run,
    so it may carry state (but no data beyond what `keeps_data` lets the harness hand it)."""

    name: ClassVar[str] = ""
    keeps_data: ClassVar[bool] = False
    space: ClassVar[dict[str, tuple[HParamValue, list[HParamValue]]]] = {}
    version: ClassVar[str] = "1"
    paper: ClassVar[str] = ""
    # As Method.authors_code: the authors' code read, "owner/repository@commit files" (or empty).
    authors_code: ClassVar[str] = ""

    def __init__(self, hp: HParams) -> None:
        self.hp = hp

    @abstractmethod
    def learn(self, model: nn.Module, task_id: int, request: StreamRequest) -> nn.Module:
        """Return the model after learning task `task_id` from `request.data()`."""

    @abstractmethod
    def unlearn(self, model: nn.Module, task_id: int, request: StreamRequest) -> nn.Module:
        """Return the model after forgetting task `task_id`."""

    def task_model(self, model: nn.Module, task_id: int) -> nn.Module:
        """The network the harness scores task `task_id` on after each request: `model` itself
        (the default). A method that keeps one network per task (UnCLe's hypernetwork generates
        them, Adhikari et al. 2025) returns task t's; in the task-incremental setting the task's
        identity is known at test time, as the masked head already assumes. The harness checks
        that it has `model`'s architecture."""
        return model

    @classmethod
    def defaults(cls) -> dict[str, HParamValue]:
        return {name: default for name, (default, _) in cls.space.items()}

    @classmethod
    def resolve(cls, overrides: Mapping[str, Any] | None = None) -> HParams:
        """Defaults updated with `overrides`, each cast to its default's type; unknown names are errors."""
        return resolve_hparams(f"continual method {cls.name!r}", cls.name, cls.defaults(), overrides)


class _MethodRegistry(Registry[type[ContinualMethod]]):
    """Imports the modules published under the `mubench.methods` entry point before the first
    lookup (importing registers their continual methods); objects published there that are not
    modules are ordinary methods, which this registry leaves to mubench.methods."""

    def __init__(self) -> None:
        super().__init__("continual method", entry_point_group="mubench.methods")

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for entry_point in entry_points(group=self.entry_point_group):
            entry_point.load()


continual_methods: Registry[type[ContinualMethod]] = _MethodRegistry()


def register_continual_method(name: str) -> Callable[[type[ContinualMethod]], type[ContinualMethod]]:
    """Class decorator: validate a ContinualMethod subclass and register it under `name`."""

    def decorate(cls: type[ContinualMethod]) -> type[ContinualMethod]:
        if not (isinstance(cls, type) and issubclass(cls, ContinualMethod)):
            raise TypeError(f"{cls!r} is not a subclass of mubench.continual.methods.ContinualMethod")
        if not isinstance(cls.keeps_data, bool):
            raise ValueError(f"continual method {name}: keeps_data must be True or False")
        for key, entry in cls.space.items():
            if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], list)):
                raise ValueError(f"continual method {name}: space[{key!r}] must be (default, [sweep values])")
        cls.name = name
        continual_methods.add(name, cls)
        return cls

    return decorate

"""The continual-task interface and its registry.

A continual task is a spec (mubench.continual.spec) plus a loader of the official training and
test pools it splits into tasks; the pools are the same `Pool`s ordinary tasks hand the harness
(mubench.tasks.base). The built-in tasks register on the registry's first lookup, like methods
published under an entry point do, so importing this module loads no data module.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod

import torch

from mubench.continual.spec import ContinualSpec
from mubench.data.files import DataFile
from mubench.registry import Registry
from mubench.tasks.base import DataStatus, TaskData, data_status_of

BUILTIN_MODULES = ("mubench.continual.split_mnist", "mubench.continual.split_cifar10")


class ContinualTask(ABC):
    """A registered continual task: a spec and a loader of the pools its tasks are drawn from."""

    spec: ContinualSpec

    @abstractmethod
    def load(self) -> TaskData:
        """The official training and test pools (labels are the dataset's own class ids)."""

    def to_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Stored samples (e.g. uint8 images) -> model inputs; applied after subsetting."""
        return x

    def data_source(self) -> str:
        """Empty for the official files in full, else a phrase naming the form used (after `load`)."""
        return ""

    def data_files(self) -> list[DataFile]:
        return []

    def data_status(self) -> DataStatus:
        return data_status_of(self.spec.name, self.data_files())


class _ContinualTaskRegistry(Registry[ContinualTask]):
    """A Registry that imports the built-in task modules before its first lookup."""

    def __init__(self) -> None:
        super().__init__("continual task", entry_point_group="mubench.continual_tasks")
        self._builtins_loaded = False

    def _load_entry_points(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True  # first: a module registering itself looks the registry up
            for module in BUILTIN_MODULES:
                importlib.import_module(module)
        super()._load_entry_points()


continual_tasks: Registry[ContinualTask] = _ContinualTaskRegistry()

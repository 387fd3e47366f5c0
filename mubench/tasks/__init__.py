"""The task registry. Built-in tasks register on import; others through `mubench.tasks` entry points."""

from mubench.tasks import adult, celeba, cifar10, colored_mnist, cub, cwru, debug, metr_la  # noqa: F401  (registration)
from mubench.tasks.base import Pool, Task, TaskData, tasks
from mubench.tasks.spec import ProfileSpec, Recipe, ScenarioSpec, TaskSpec

__all__ = ["Pool", "ProfileSpec", "Recipe", "ScenarioSpec", "Task", "TaskData", "TaskSpec", "tasks"]

"""Grids of runs: expand names into configs (checking them all first), run, store, resume."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mubench.errors import MubenchError, UnknownNameError
from mubench.methods import methods
from mubench.profiles import profiles
from mubench.record import Record, RunConfig
from mubench.runner import Harness
from mubench.store import Store
from mubench.tasks.base import tasks


@dataclass(frozen=True)
class Suite:
    """A named preset grid; None for scenarios or methods means "all of them"."""

    name: str
    description: str
    tasks: tuple[str, ...]
    profile: str
    seeds: tuple[int, ...]
    scenarios: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None


SUITES = {
    "quick": Suite("quick", "Colored MNIST, every method and scenario, one seed, smoke profile (CPU, minutes)",
                   tasks=("cmnist",), profile="smoke", seeds=(0,)),
}


@dataclass
class GridSpec:
    tasks: Sequence[str]
    scenarios: Sequence[str] | None
    methods: Sequence[str] | None
    seeds: Sequence[int]
    profile: str
    hparams: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_suite(cls, name: str) -> GridSpec:
        if name not in SUITES:
            raise UnknownNameError(f"unknown suite {name!r}. Valid suites: {', '.join(SUITES)}")
        suite = SUITES[name]
        return cls(suite.tasks, suite.scenarios, suite.methods, suite.seeds, suite.profile)


def expand_grid(grid: GridSpec) -> list[RunConfig]:
    """The cross product as configs, ordered so that runs sharing a split and models are adjacent.

    Every name is checked before anything runs, and all problems are reported together.
    """
    problems: list[str] = []
    _collect(problems, lambda: profiles.get(grid.profile))
    method_names = list(grid.methods or methods.names())
    for name in method_names:
        _collect(problems, lambda name=name: methods.get(name))
    task_names = list(grid.tasks)
    for name in task_names:
        _collect(problems, lambda name=name: tasks.get(name).spec.profile(grid.profile))
    if problems:
        raise MubenchError("\n".join(problems))
    configs = []
    for task_name in task_names:
        spec = tasks.get(task_name).spec
        scenario_names = list(grid.scenarios or [s.name for s in spec.scenarios])
        for name in scenario_names:
            _collect(problems, lambda name=name: spec.scenario(name))
        for method_name in method_names:
            _collect(problems, lambda m=method_name: methods.get(m).resolve(grid.hparams.get(m)))
        if problems:
            continue
        for seed in grid.seeds:
            for scenario in scenario_names:
                for method_name in method_names:
                    method = methods.get(method_name)
                    configs.append(RunConfig(
                        task=task_name, task_version=spec.version, scenario=scenario, method=method_name,
                        method_version=method.version, hparams=dict(method.resolve(grid.hparams.get(method_name))),
                        seed=seed, profile=grid.profile))
    if problems:
        raise MubenchError("\n".join(dict.fromkeys(problems)))
    return configs


def run_grid(configs: Sequence[RunConfig], store: Store, harness: Harness,
             on_record: Callable[[Record, bool], None] | None = None) -> list[Record]:
    """Run every config whose successful record is not in the store yet; store each at once.

    `on_record(record, was_stored_before)` is called for every config, in order.
    """
    done = store.completed_ids()
    results = []
    for config in configs:
        existing = store.get(config.id) if config.id in done else None
        if existing is not None:
            record, skipped = existing, True
        else:
            record, skipped = harness.run(config), False
            store.put(record)
        results.append(record)
        if on_record:
            on_record(record, skipped)
    return results


def _collect(problems: list[str], check: Callable[[], object]) -> None:
    try:
        check()
    except (MubenchError, ValueError) as exc:
        problems.append(str(exc))

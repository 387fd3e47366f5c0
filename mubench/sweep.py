"""Grids of runs: expand names into configs (checking them all first), run, store, resume."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mubench.errors import MubenchError, UnknownNameError
from mubench.methods import methods
from mubench.profiles import profiles
from mubench.record import Record, RunConfig
from mubench.registry import unknown_name_message
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
    method_names = list(dict.fromkeys(grid.methods or methods.names()))
    resolved = {}
    for name in method_names:
        if _collect(problems, lambda name=name: methods.get(name)) is not None:
            hparams = _collect(problems, lambda name=name: methods.get(name).resolve(grid.hparams.get(name)))
            if hparams is not None:
                resolved[name] = dict(hparams)
    for name in grid.hparams:  # an override for a method that does not run would be silently ignored
        if name not in method_names and name in methods:
            problems.append(f"--hparam names method {name!r}, which is not in this run (methods: {', '.join(method_names)})")
        elif name not in method_names:
            problems.append("--hparam: " + unknown_name_message("method", name, methods.names()))
    seeds = list(dict.fromkeys(grid.seeds))
    problems += [f"seed {seed}: seeds must be non-negative integers" for seed in seeds if seed < 0]
    specs = {}
    for name in dict.fromkeys(grid.tasks):
        spec = _collect(problems, lambda name=name: tasks.get(name).spec)
        if spec is not None and _collect(problems, lambda spec=spec: spec.profile(grid.profile)) is not None:
            specs[name] = spec
    scenarios = {}
    for task_name, spec in specs.items():
        scenario_names = list(dict.fromkeys(grid.scenarios or [s.name for s in spec.scenarios]))
        for name in scenario_names:
            _collect(problems, lambda name=name, spec=spec: spec.scenario(name))
        scenarios[task_name] = scenario_names
    if problems:
        raise MubenchError("\n".join(dict.fromkeys(problems)))
    configs = []
    for task_name, spec in specs.items():
        for seed in seeds:
            for scenario in scenarios[task_name]:
                for method_name in method_names:
                    configs.append(RunConfig(
                        task=task_name, task_version=spec.version, scenario=scenario, method=method_name,
                        method_version=methods.get(method_name).version, hparams=dict(resolved[method_name]),
                        seed=seed, profile=grid.profile))
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


def _collect(problems: list[str], check: Callable[[], Any]) -> Any:
    """`check()`'s value, or None after noting its error in `problems`."""
    try:
        return check()
    except (MubenchError, ValueError) as exc:
        problems.append(str(exc))
        return None

"""The board's tuning protocol: the same budget for every method, chosen on a development seed.

DeepUnlearn (Cadet et al. 2024) tunes every method under one budget before comparing them; the
protocol here does the same, and keeps the choice away from everything it is judged on:

1. **Search.** Each method gets `budget` settings of its own `space`: its defaults, then distinct
   draws from the cross product of its sweep lists, from a generator seeded by the method's name
   (the same draws on every machine and run). A method with fewer settings than the budget runs
   them all.
2. **Choose.** Every setting runs on the development seed (`dev_seed`, never a reported seed; a
   different split, initialisation and validation set), and the one with the best `score/val`
   (the headline score with validation data in place of test data) is chosen per scenario
   (mubench.results.scoreboard.choose_settings).
3. **Report.** The chosen setting runs on the reported seeds; only those records are ranked.
4. **Audit** (`mubench run --suite board --population N`). On the suite's privacy-domain cells,
   the chosen setting runs once more on the first reported seed with a population of N
   (`audit_configs`; mubench.metrics.audit), so that the privacy cells are judged by attacks
   over N unlearned and N retrained models, not one model's attack.

Class scenarios forget the same class on every seed, so their forget sets overlap between the
development and reported seeds; the models, validation sets and random draws do not.

Every stage goes through `run_grid`, so a killed run resumes where it stopped: the search's
records are in the store, the choice is recomputed from them, and the reported runs already
made are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from mubench.errors import MubenchError
from mubench.harness.record import Record, RunConfig
from mubench.harness.runner import Harness, derived_seed
from mubench.hashing import canonical_json
from mubench.methods import HParamValue, Method
from mubench.orchestration.executors import Executor
from mubench.orchestration.store import Store
from mubench.orchestration.sweep import GridSpec, Tuning, expand_grid, run_grid, sweep_points
from mubench.results.scoreboard import choose_settings
from mubench.tasks.base import tasks


def tuning_points(method_cls: type[Method], budget: int, profile: str | None = None) -> list[dict[str, HParamValue]]:
    """At most `budget` settings of the method: its defaults first, then distinct seeded draws
    (without replacement) from the cross product of its sweep lists, among the settings the
    method accepts (`Method.check`): a refused setting would spend budget on no run."""
    grid = sweep_points(method_cls, "grid", profile)
    defaults = dict(method_cls.resolve({}, profile))
    others = [point for point in grid if canonical_json(point) != canonical_json(defaults)
              and _accepted(method_cls, point, profile)]
    if len(others) + 1 <= budget:
        return [defaults, *others]
    rng = np.random.default_rng(derived_seed("tuning", method_cls.name) % 2**32)
    drawn = rng.choice(len(others), size=budget - 1, replace=False)
    return [defaults, *(others[i] for i in sorted(drawn))]


def _accepted(method_cls: type[Method], point: dict[str, HParamValue], profile: str | None) -> bool:
    try:
        method_cls.check(method_cls.resolve(point, profile))
    except MubenchError:
        return False
    return True


def search_configs(grid: GridSpec, tuning: Tuning) -> list[RunConfig]:
    """The search stage: every method's tuning points on the development seed."""
    if tuning.dev_seed in grid.seeds:
        raise MubenchError(f"the development seed {tuning.dev_seed} is also a reported seed: choose one outside "
                           f"{list(grid.seeds)}")
    base = expand_grid(GridSpec(grid.tasks, grid.scenarios, grid.methods, [tuning.dev_seed], grid.profile))
    from mubench.methods import methods

    configs = []
    for config in base:
        for point in tuning_points(methods.get(config.method), tuning.budget, config.profile):
            configs.append(config.model_copy(update={"hparams": point}))
    return configs


def report_configs(grid: GridSpec, choices: pd.DataFrame) -> list[RunConfig]:
    """The report stage: each method at its chosen setting on the reported seeds; a method with
    no choice for a scenario (its search has not run) is not reported there."""
    chosen = {(r.task, r.scenario, r.method, r.profile): json.loads(r.hparams) for r in choices.itertuples(index=False)}
    configs = []
    for config in expand_grid(GridSpec(grid.tasks, grid.scenarios, grid.methods, grid.seeds, grid.profile)):
        setting = chosen.get((config.task, config.scenario, config.method, config.profile))
        if setting is not None:
            configs.append(config.model_copy(update={"hparams": setting}))
    return configs


def run_tuned(grid: GridSpec, tuning: Tuning, store: Store, harness: Harness,
              on_record: Callable[[Record, bool], None] | None = None,
              executor: Executor | str = "local") -> tuple[pd.DataFrame, list[Record], list[Record]]:
    """Search, choose, report (the module's docstring). Returns (the choices, the search's records,
    the reported records)."""
    search = run_grid(search_configs(grid, tuning), store, harness, on_record, executor)
    choices = choose_settings(search, tuning.dev_seed)
    reported = run_grid(report_configs(grid, choices), store, harness, on_record, executor)
    return choices, search, reported


def tuned_records(grid: GridSpec, tuning: Tuning, records: Sequence[Record]) -> tuple[pd.DataFrame, list[Record], list[Record]]:
    """The same split of stored records, without running anything: (choices, the search's
    records, the reported records at the chosen settings)."""
    search_ids = {c.id for c in search_configs(grid, tuning)}
    search = [r for r in records if r.id in search_ids]
    choices = choose_settings(search, tuning.dev_seed)
    report_ids = {c.id for c in report_configs(grid, choices)}
    return choices, search, [r for r in records if r.id in report_ids]


def audit_configs(reported: Sequence[Record], population: int) -> list[RunConfig]:
    """The privacy audit of a tuned suite: its privacy-domain cells' reported configs on each cell's
    first reported seed (each method at its chosen setting), with a population of `population`."""
    first_seed: dict[tuple[str, str, str], int] = {}
    for record in reported:
        cell = (record.config.task, record.config.scenario, record.config.profile)
        first_seed[cell] = min(first_seed.get(cell, record.config.seed), record.config.seed)
    return [record.config.model_copy(update={"population": population}) for record in reported
            if record.config.seed == first_seed[(record.config.task, record.config.scenario, record.config.profile)]
            and tasks.get(record.config.task).spec.scenario(record.config.scenario).domain == "privacy"]

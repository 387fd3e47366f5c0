"""Grids of runs: expand names into configs (checking them all first), run, store, resume.

Hyper-parameter sweeps: without one, every method runs at its defaults. The `axes` sweep runs the
defaults plus every value of every hyper-parameter's sweep list varied one at a time, the others
at their defaults (deduplicated); the `grid` sweep runs the full cross product of the sweep lists.
`--hparam` overrides apply on top of every point (points that become equal are run once).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mubench.errors import MubenchError, UnknownNameError
from mubench.harness.record import Record, RunConfig
from mubench.harness.runner import Harness
from mubench.hashing import canonical_json
from mubench.methods import HParamValue, Method, methods
from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION
from mubench.metrics.audit import MIN_MEMBERS as MIN_POPULATION
from mubench.orchestration.executors import Executor, make_executor
from mubench.orchestration.store import Store
from mubench.profiles import profiles
from mubench.registry import unknown_name_message
from mubench.tasks.base import tasks

if TYPE_CHECKING:
    from mubench.orchestration.sandbox import Limits


Scenarios = Sequence[str] | Mapping[str, Sequence[str]] | None  # one list for every task, or per task


@dataclass(frozen=True)
class Tuning:
    """A suite's tuning protocol (mubench.orchestration.tuning): `budget` settings per method,
    chosen on the development seed `dev_seed`, which is never a reported seed."""

    dev_seed: int
    budget: int

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ValueError(f"a tuning budget must be at least 1 setting, got {self.budget}")
        if self.dev_seed < 0:
            raise ValueError(f"the development seed must be non-negative, got {self.dev_seed}")


@dataclass(frozen=True)
class Suite:
    """A named preset grid; None for scenarios or methods means "all of them". `scenarios` may
    name a list per task (a task it does not name runs all of its scenarios). Tasks whose data is
    missing are skipped by `mubench run --suite` (and named), not run. `profiles` gives a task
    another profile than the suite's. `tuning`: the methods' settings are chosen by the tuning
    protocol rather than left at their defaults. `folder`: a tier of its own (entries and records
    under `<folder>/submissions` and `<folder>/records`), kept apart from the board's."""

    name: str
    description: str
    tasks: tuple[str, ...]
    profile: str
    seeds: tuple[int, ...]
    scenarios: Mapping[str, tuple[str, ...]] | tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None
    profiles: Mapping[str, str] | None = None
    tuning: Tuning | None = None
    version: str = "1"
    folder: str | None = None  # where `leaderboard-data` writes the suite's entries; None: the board's own
    task_seeds: Mapping[str, tuple[int, ...]] | None = None  # a task reported on other seeds than `seeds`
    population: int = 0  # N > 0: every run also builds a population of N for the audit/* attacks

    def profile_of(self, task: str) -> str:
        return (self.profiles or {}).get(task, self.profile)

    def seeds_of(self, task: str) -> tuple[int, ...]:
        return tuple((self.task_seeds or {}).get(task, self.seeds))

    def all_seeds(self) -> tuple[int, ...]:
        """Every seed some task of the suite reports, sorted."""
        return tuple(sorted({seed for task in self.tasks for seed in self.seeds_of(task)}))

    def grids(self, tasks: Sequence[str] | None = None) -> list[GridSpec]:
        """One grid per (profile, seeds), over `tasks` (default: the suite's), in the suite's task order."""
        chosen = [t for t in self.tasks if tasks is None or t in tasks] + [t for t in tasks or () if t not in self.tasks]
        by_profile: dict[tuple[str, tuple[int, ...]], list[str]] = {}
        for task in chosen:
            by_profile.setdefault((self.profile_of(task), self.seeds_of(task)), []).append(task)
        return [GridSpec(names, self.scenarios, self.methods, seeds, profile)
                for (profile, seeds), names in by_profile.items()]


# The quick suite: the smoke profile, seed 0, every method, on the CPU, over one or a few scenarios
# of different kinds (a random draw, a class, a subgroup, a poison) of each task family, so that `make run`
# with every baseline stays under 15 minutes on 2 CPU cores (an image-task scenario costs about
# 3 minutes with 15 methods). `celeba_smiling` shares `celeba_blond`'s images and models and is
# left to `mubench run --task celeba_smiling`.
QUICK_SCENARIOS: dict[str, tuple[str, ...]] = {
    "cmnist": ("random_10", "class_0", "bias_aligned", "fgsm_poison_5"),
    "adult": ("random_1", "female_over_50k"),
    "adult_logreg": ("female_over_50k",),
    "celeba_blond": ("bias_aligned",),
    "cifar10": ("random_10",),
    "cifar10_patch": ("patch_bias",),
    "cub200": ("class_1",),
    "cwru": ("random_10", "class_0"),
    "metr_la": ("sensor", "random_5"),
}

# The board suite: what the leaderboard publishes (mubench.orchestration.tuning, docs/board.md).
# Per task, the scenarios that carry a forgetting signal at the board's scale, one per
# intervention domain the task has, measured rather than assumed (identity's records over seeds
# 0-2: docs/board.md lists each signal):
# - privacy, a random draw: random_1 on adult (its MLP fits 1 % of the rows measurably better than
#   an oracle does: forget accuracy +0.020 to +0.033); random_10 on cwru (loss-attack AUC +0.19 to
#   +0.25). Colored MNIST's MLP and adult_logreg's logistic regression keep no significant trace
#   of a random draw at their scale (cmnist random_10: +0.003 to +0.015 forget accuracy, AUC
#   -0.014 to +0.010; adult_logreg random_1: 0.000), so they have no privacy scenario here;
#   METR-LA's is a day of windows (`day`, forget MAE 1.5 % to 2.6 % below the oracle's, the one of
#   its scenarios whose interval excludes 0: removing the sensor with the most windows moves it by
#   -0.9 % to +0.7 %);
# - adaptability, one class: class_0 (every class scenario is the same kind of request; one is
#   representative, ten would weigh the board towards one task);
# - fairness, the bias subgroup: female_over_50k (Adult), bias_aligned (Colored MNIST);
# - resilience, the poison: fgsm_poison_5 (Colored MNIST); on METR-LA a failed detector
#   (`stuck_sensor`: the sensor with the most windows reads a stuck 5 mph in its own channel and
#   targets), designed because no clean METR-LA request moves the oracle beyond a few per cent:
#   forget MAE 31 % to 53 % below the oracle's, loss-attack AUC +0.22 to +0.45 (seeds 0-2).
# The tabular and vibration tasks run at their standard (paper) scale, which a CPU trains in
# seconds; Colored MNIST (an MLP on 10,000 images: the bias literature's model, a sixth of the
# data) and METR-LA (an MLP on 20,000 windows; the standard GRU takes hours on a CPU) at their
# smoke scale, named so in every record and on the board.
# The image tasks at a reduced scale, named `smoke` likewise, where their original and oracle work:
# CIFAR-10 with a two-block CNN on 10,000 images (test accuracy 0.52-0.56 against the paper-scale
# ResNet-18's 0.90 on a GPU), one scenario per domain: random_10 (privacy: the original's forget
# accuracy 0.079 above the oracle's, seeds 0-2), class_0 (adaptability), fgsm_poison_5
# (resilience: the poisoned labels 0.091 above, loss-attack AUC +0.074), and its patch-biased
# variant's patch_bias (fairness: forget accuracy 0.998 against the oracle's 0.431, test accuracy
# 0.331 against 0.530). A CIFAR-10 cell costs the CPU about an hour of one core (search and
# reported runs), so the task is built cell by cell (docs/board.md, "Making the board").
# CelebA is left off, by measurement (retrain and identity, seeds 0-2): forgetting the
# bias-aligned blond images leaves an oracle that calls no one blond (test accuracy 0.851 on
# every seed, the share of non-blond faces); the smoke smiling model keeps no trace of a random
# draw (random_10: the oracle's forget accuracy 0.836 against the original's 0.817, its seed
# spread +-0.09), and its bias_aligned oracle is near the class share (test 0.553 against 0.51).
# CUB's ten classes from 250 training photos without pretrained weights (test 0.37, seed 0) are no
# faithful reduction of a fine-grained task. Both belong to the GPU tier (`standard` profile).
BOARD_SCENARIOS: dict[str, tuple[str, ...]] = {
    "adult": ("random_1", "female_over_50k"),
    "adult_logreg": ("female_over_50k",),
    "cmnist": ("class_0", "bias_aligned", "fgsm_poison_5"),
    "cwru": ("random_10", "class_0"),
    "metr_la": ("day", "stuck_sensor"),
    "cifar10": ("random_10", "class_0", "fgsm_poison_5"),
    "cifar10_patch": ("patch_bias",),
}
BOARD_PROFILES: dict[str, str] = {"adult": "standard", "adult_logreg": "standard", "cmnist": "smoke",
                                  "cwru": "standard", "metr_la": "smoke", "cifar10": "smoke", "cifar10_patch": "smoke"}
BOARD_TUNING = Tuning(dev_seed=100, budget=6)
# Seeds: 0, 1, 2 for every task; 0-4 where a task is cheap (every task but the image ones, whose
# reported runs cost about an hour per three seeds here), which narrows the 95 % intervals by
# t(0.975, 4) / sqrt(5) against t(0.975, 2) / sqrt(3): 1.24 against 2.48 standard deviations.
BOARD_SEEDS = (0, 1, 2)
BOARD_TASK_SEEDS: dict[str, tuple[int, ...]] = {task: (0, 1, 2, 3, 4)
                                                 for task in ("adult", "adult_logreg", "cmnist", "cwru", "metr_la")}

# The GPU tier: the same protocol at the paper-scale `standard` profile of every built-in task,
# over the board's scenarios plus the tasks the CPU board leaves off (CelebA's bias-aligned
# subgroup and a random draw, CUB's random draw and class). Its
# entries are a tier of their own (leaderboard/gpu/), filled by `mubench leaderboard-data --suite
# board_gpu --device cuda` where a GPU is present; never by the tests. Which of its scenarios
# carry a forgetting signal at this scale is measured when it runs: the scoreboard shows the
# others unranked (`no signal`), as on the CPU board.
GPU_BOARD_SCENARIOS: dict[str, tuple[str, ...]] = {
    **BOARD_SCENARIOS,
    "celeba_blond": ("bias_aligned", "random_10"),
    "celeba_smiling": ("bias_aligned", "random_10"),
    "cub200": ("random_10", "class_1"),
}
GPU_BOARD_FOLDER = "leaderboard/gpu"

# The privacy audit's population size on the CPU: 32 members per side (64 trainings of the audit
# profile's MLP, about 15 minutes of one core) keep U-LiRA's and RMIA's intervals narrow enough to
# separate `identity` from `retrain` (docs/metrics.md, "The privacy audit").
AUDIT_POPULATION = 32

SUITES = {
    "board": Suite("board", "the leaderboard: every task the CPU trains at a faithful or honestly reduced scale, its "
                            "scenarios with a forgetting signal, every method tuned on seed 100 (6 settings each) "
                            "and reported on seeds 0-4 (0-2 for the image tasks) (CPU; `make board`)",
                   tasks=tuple(BOARD_SCENARIOS), profile="standard", seeds=BOARD_SEEDS, scenarios=BOARD_SCENARIOS,
                   profiles=BOARD_PROFILES, tuning=BOARD_TUNING, task_seeds=BOARD_TASK_SEEDS),
    "board_gpu": Suite("board_gpu", "the leaderboard's GPU tier: the board's protocol at the paper-scale standard "
                                    "profile of every built-in task, CelebA and CUB included (`--device cuda`; "
                                    "entries in leaderboard/gpu/)",
                       tasks=tuple(GPU_BOARD_SCENARIOS), profile="standard", seeds=(0, 1, 2),
                       scenarios=GPU_BOARD_SCENARIOS, tuning=BOARD_TUNING, folder=GPU_BOARD_FOLDER),
    "audit": Suite("audit", "the privacy audit: a population of 32 originals unlearned by every method beside 32 "
                            "oracles, attacked with U-LiRA, KLOM and RMIA (95 % intervals), on Colored MNIST's random "
                            "draw at the audit profile, seed 0 (CPU, about an hour; `mubench results --view audit`)",
                   tasks=("cmnist",), profile="audit", seeds=(0,), scenarios={"cmnist": ("random_10",)},
                   population=AUDIT_POPULATION),
    "quick": Suite("quick", "every task with data, every method, its main scenarios, one seed, smoke profile "
                            "(CPU, minutes)",
                   tasks=tuple(QUICK_SCENARIOS), profile="smoke", seeds=(0,), scenarios=QUICK_SCENARIOS),
    "standard": Suite("standard", "every task with data, every scenario, every method, seeds 0, 1, 2, standard "
                                  "profile (the paper-scale recipes: meant for a GPU, `--device cuda`; days on a CPU)",
                      tasks=(*QUICK_SCENARIOS, "celeba_smiling"), profile="standard", seeds=(0, 1, 2)),
}
# The standard suite names the built-in benchmark tasks (every registered task but the synthetic
# `debug`); tests/test_leaderboard_data.py fails when a new built-in task is missing here.


@dataclass
class GridSpec:
    tasks: Sequence[str]
    scenarios: Scenarios
    methods: Sequence[str] | None
    seeds: Sequence[int]
    profile: str
    hparams: dict[str, Any] = field(default_factory=dict)
    sweep: str | None = None  # None: defaults only; "axes" or "grid" (see SWEEP_KINDS)
    population: int = 0  # RunConfig.population of every run

    @classmethod
    def from_suite(cls, name: str) -> GridSpec:
        if name not in SUITES:
            raise UnknownNameError(f"unknown suite {name!r}. Valid suites: {', '.join(SUITES)}")
        suite = SUITES[name]
        return cls(suite.tasks, suite.scenarios, suite.methods, suite.seeds, suite.profile, population=suite.population)


SWEEP_KINDS = ("axes", "grid")


def sweep_points(method_cls: type[Method], kind: str | None, profile: str | None = None) -> list[dict[str, HParamValue]]:
    """The hyper-parameter settings a sweep of `kind` runs for one method, in a fixed order.

    The defaults are those of `profile` (`Method.defaults`). None: the defaults only. "axes": the defaults first, then, for each hyper-parameter in the
    order of `space`, each value of its sweep list with the others at their defaults, without
    repeats. "grid": the cross product of the sweep lists (it holds the defaults only where every
    default is in its own list). A method with an empty space has one point, {}. Values are cast to
    their default's type (as `Method.resolve` does), so 1 and 1.0 for a float are one point.
    """
    if kind is not None and kind not in SWEEP_KINDS:
        raise MubenchError(f"unknown sweep kind {kind!r}. Valid kinds: {', '.join(SWEEP_KINDS)}")
    defaults = method_cls.defaults(profile)
    if kind is None:
        points = [defaults]
    elif kind == "axes":
        points = [defaults] + [{**defaults, name: value} for name, (_, values) in method_cls.space.items()
                               for value in values]
    else:
        names = list(method_cls.space)
        points = [dict(zip(names, combo)) for combo in itertools.product(*(method_cls.space[n][1] for n in names))]
    return _unique([dict(method_cls.resolve(point, profile)) for point in points])


def _unique(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for point in points:
        seen.setdefault(canonical_json(dict(point)), dict(point))
    return list(seen.values())


def expand_grid(grid: GridSpec) -> list[RunConfig]:
    """The cross product as configs, ordered so that runs sharing a split and models are adjacent
    (a method's sweep points follow each other, in `sweep_points` order). A method is paired only
    with tasks it applies to (`Method.inapplicable`: target kind and the method's own needs).

    Every name is checked before anything runs, and all problems are reported together.
    """
    problems: list[str] = []
    _collect(problems, lambda: profiles.get(grid.profile))
    if grid.sweep is not None and grid.sweep not in SWEEP_KINDS:
        problems.append(f"unknown sweep kind {grid.sweep!r}. Valid kinds: {', '.join(SWEEP_KINDS)}")
    method_names = list(dict.fromkeys(grid.methods or methods.names()))
    resolved: dict[str, list[dict[str, HParamValue]]] = {}
    for name in method_names:
        if _collect(problems, lambda name=name: methods.get(name)) is not None:
            points = _collect(problems, lambda name=name: _resolved_points(name, grid))
            if points is not None:
                resolved[name] = points
    for name in grid.hparams:  # an override for a method that does not run would be silently ignored
        if name not in method_names and name in methods:
            problems.append(f"--hparam names method {name!r}, which is not in this run (methods: {', '.join(method_names)})")
        elif name not in method_names:
            problems.append("--hparam: " + unknown_name_message("method", name, methods.names()))
    seeds = list(dict.fromkeys(grid.seeds))
    problems += [f"seed {seed}: seeds must be non-negative integers" for seed in seeds if seed < 0]
    if grid.population:
        _collect(problems, lambda: check_population(grid.population))
    specs = {}
    for name in dict.fromkeys(grid.tasks):
        spec = _collect(problems, lambda name=name: tasks.get(name).spec)
        if spec is not None and _collect(problems, lambda spec=spec: spec.profile(grid.profile)) is not None:
            specs[name] = spec
    scenarios = {}
    for task_name, spec in specs.items():
        chosen = grid.scenarios.get(task_name) if isinstance(grid.scenarios, Mapping) else grid.scenarios
        scenario_names = list(dict.fromkeys(chosen or [s.name for s in spec.scenarios]))
        for name in scenario_names:
            _collect(problems, lambda name=name, spec=spec: spec.scenario(name))
        scenarios[task_name] = scenario_names
    if problems:
        raise MubenchError("\n".join(dict.fromkeys(problems)))
    configs = []
    digests = {name: methods.get(name).source_digest() for name in resolved}
    for task_name, spec in specs.items():
        for seed in seeds:
            for scenario in scenarios[task_name]:
                for method_name in method_names:
                    if methods.get(method_name).inapplicable(spec) is not None:
                        continue  # e.g. random relabelling on a regression task: not defined, not run
                    for hparams in resolved[method_name]:
                        configs.append(RunConfig(
                            task=task_name, task_version=spec.version, scenario=scenario, method=method_name,
                            method_version=methods.get(method_name).version, hparams=dict(hparams),
                            seed=seed, profile=grid.profile, method_digest=digests[method_name],
                            population=grid.population))
    return configs


def check_population(n: int) -> None:
    """A population's members are each scored against the others: at least MIN_POPULATION."""
    if n < MIN_POPULATION:
        raise MubenchError(f"population {n}: a population needs at least {MIN_POPULATION} members "
                           "(each is scored against the others)")


def _resolved_points(name: str, grid: GridSpec) -> list[dict[str, HParamValue]]:
    """Each sweep point with the run's overrides on top, cast and checked; equal results run once."""
    method_cls = methods.get(name)
    kind = grid.sweep if grid.sweep in SWEEP_KINDS else None  # an unknown kind is reported once, above
    overrides = grid.hparams.get(name) or {}
    method_cls.resolve(overrides, grid.profile)  # an override error is reported as such, not once per point
    return _unique([dict(method_cls.resolve({**point, **overrides}, grid.profile))
                    for point in sweep_points(method_cls, kind, grid.profile)])


def run_grid(configs: Sequence[RunConfig], store: Store, harness: Harness,
             on_record: Callable[[Record, bool], None] | None = None,
             executor: Executor | str = "local", isolate: Limits | None = None) -> list[Record]:
    """Run every config whose successful record is not in the store yet, or was computed under
    other metric or MIA spec versions than this mubench's (it is rerun and replaced, so a store
    never mixes metric definitions within a grid); store each at once.

    `executor` (an `Executor`, or the name of one built here for `harness` and closed at the end)
    runs the pending configs; this process alone writes the store, each record as soon as it
    arrives. `on_record(record, was_stored_before)` is called once per config: a stored config at
    its place in `configs`, a run when it finishes (with the local executor, also in order).
    The returned records follow `configs`.
    `isolate` (limits): each run in its own child process under them (mubench.orchestration.sandbox; local only).
    """
    if isolate is not None:
        from mubench.orchestration.sandbox import isolated_executor

        executor = isolated_executor(executor, harness, isolate)
    if isinstance(executor, str):
        with make_executor(executor, harness) as owned:
            return run_grid(configs, store, harness, on_record, owned)
    done = store.completed_ids()
    stored = {c.id: record for c in configs
              if c.id in done and (record := store.get(c.id)) is not None and is_current(record)}
    pending: dict[str, RunConfig] = {}
    for config in configs:
        if config.id not in stored:
            pending.setdefault(config.id, config)  # the same config twice in the grid runs once
    results: dict[str, Record] = dict(stored)
    arrivals = executor.map(list(pending.values()))
    try:
        for config in configs:
            if config.id in stored:
                record, skipped = stored[config.id], True
            elif pending.get(config.id) is config:  # one run arrives (with Ray, perhaps another config's)
                record, skipped = next(arrivals), False
                store.put(record)
                results[record.id] = record
            else:
                continue
            if on_record:
                on_record(record, skipped)
    finally:
        getattr(arrivals, "close", lambda: None)()  # a generator left early cancels its runs in flight
    return [results[c.id] for c in configs]


def is_current(record: Record) -> bool:
    """Whether the record's metrics were computed under this mubench's metric and MIA spec versions."""
    return (record.metrics_version, record.mia_spec_version) == (METRICS_VERSION, MIA_SPEC_VERSION)


def _collect(problems: list[str], check: Callable[[], Any]) -> Any:
    """`check()`'s value, or None after noting its error in `problems`."""
    try:
        return check()
    except (MubenchError, ValueError) as exc:
        problems.append(str(exc))
        return None

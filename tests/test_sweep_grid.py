"""Hyper-parameter sweeps (mubench.orchestration.sweep): the point sets of the `axes` and `grid` kinds, written
out by hand for throwaway method classes, their expansion into configs, `--hparam` on top, and
`mubench run --sweep` end to end on the debug task."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from mubench.cli.app import app
from mubench.errors import MubenchError
from mubench.harness.record import Record
from mubench.methods import Access, Method, methods, register_method
from mubench.orchestration.store import Store
from mubench.orchestration.sweep import SWEEP_KINDS, GridSpec, expand_grid, sweep_points
from mubench.tasks import tasks


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny debug models: one intra-op thread is the fastest
    yield tmp_path / "home"
    torch.set_num_threads(before)


class Toy(Method):
    """Never registered globally: a three-axis space whose defaults are all in their lists."""

    access = Access.FORGET
    space = {"lr": (0.1, [0.01, 0.1, 1.0]), "epochs": (3, [1, 3]), "mode": ("a", ["a"])}

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        return model


class OffList(Method):
    """Defaults that are not in the sweep lists."""

    access = Access.FORGET
    space = {"lr": (0.5, [0.1, 0.2]), "k": (1, [1, 2])}

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        return model


class Empty(Method):
    access = Access.FORGET

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        return model


class Casts(Method):
    """Sweep values written with another type than their default's."""

    access = Access.FORGET
    space = {"lr": (0.1, [1, 0.1]), "n": (2, [2.0, 3])}

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        return model


def P(lr=0.1, epochs=3, mode="a"):  # noqa: N802  (a Toy point)
    return {"lr": lr, "epochs": epochs, "mode": mode}


# ---- point sets -------------------------------------------------------------------------------

def test_without_a_sweep_a_method_runs_at_its_defaults():
    assert sweep_points(Toy, None) == [P()]


def test_axes_vary_one_hyper_parameter_at_a_time_around_the_defaults_without_repeats():
    assert sweep_points(Toy, "axes") == [P(), P(lr=0.01), P(lr=1.0), P(epochs=1)]


def test_grid_is_the_cross_product_of_the_sweep_lists():
    assert sweep_points(Toy, "grid") == [P(lr=0.01, epochs=1), P(lr=0.01, epochs=3), P(lr=0.1, epochs=1),
                                         P(lr=0.1, epochs=3), P(lr=1.0, epochs=1), P(lr=1.0, epochs=3)]


def test_defaults_outside_the_lists():
    assert sweep_points(OffList, None) == [{"lr": 0.5, "k": 1}]
    assert sweep_points(OffList, "axes") == [{"lr": 0.5, "k": 1}, {"lr": 0.1, "k": 1}, {"lr": 0.2, "k": 1},
                                             {"lr": 0.5, "k": 2}]
    # the cross product of the lists, as asked: the defaults are not in it
    assert sweep_points(OffList, "grid") == [{"lr": 0.1, "k": 1}, {"lr": 0.1, "k": 2}, {"lr": 0.2, "k": 1},
                                             {"lr": 0.2, "k": 2}]


@pytest.mark.parametrize("kind", [None, *SWEEP_KINDS])
def test_a_method_without_hyper_parameters_runs_once(kind):
    assert sweep_points(Empty, kind) == [{}]


def test_values_are_cast_to_their_default_type_before_removing_repeats():
    axes = sweep_points(Casts, "axes")
    assert axes == [{"lr": 0.1, "n": 2}, {"lr": 1.0, "n": 2}, {"lr": 0.1, "n": 3}]
    assert all(isinstance(p["lr"], float) and isinstance(p["n"], int) for p in axes)
    assert sweep_points(Casts, "grid") == [{"lr": 1.0, "n": 2}, {"lr": 1.0, "n": 3}, {"lr": 0.1, "n": 2},
                                           {"lr": 0.1, "n": 3}]


def test_an_unknown_sweep_kind_is_an_error():
    with pytest.raises(MubenchError, match="unknown sweep kind 'random'.*axes, grid"):
        sweep_points(Toy, "random")


@pytest.mark.parametrize("profile", [None, "smoke", "standard"])
def test_every_registered_method_has_its_defaults_among_its_axes_points(profile):
    for name, cls in methods.items():
        axes, grid = sweep_points(cls, "axes", profile), sweep_points(cls, "grid", profile)
        assert axes[0] == dict(cls.resolve(profile=profile)), name
        assert len({json.dumps(p, sort_keys=True) for p in axes}) == len(axes)
        assert len(grid) == len({json.dumps(p, sort_keys=True) for p in grid})
        defaults = cls.resolve(profile=profile)
        expected = 1 + sum(len({v for v in values if v != defaults[key]}) for key, (_, values) in cls.space.items())
        assert len(axes) == expected, name


class PerProfile(Method):
    """Standard-profile defaults that differ from the space's (smoke) defaults."""

    access = Access.FORGET
    space = {"lr": (0.1, [0.01, 0.1]), "epochs": (3, [1, 3])}
    profile_defaults = {"standard": {"epochs": 10}}

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        return model


def test_points_sweep_around_the_defaults_of_the_profile():
    assert sweep_points(PerProfile, None, "smoke") == sweep_points(PerProfile, None) == [{"lr": 0.1, "epochs": 3}]
    assert sweep_points(PerProfile, None, "standard") == [{"lr": 0.1, "epochs": 10}]
    assert sweep_points(PerProfile, "axes", "standard") == [{"lr": 0.1, "epochs": 10}, {"lr": 0.01, "epochs": 10},
                                                            {"lr": 0.1, "epochs": 1}, {"lr": 0.1, "epochs": 3}]
    assert sweep_points(PerProfile, "grid", "standard") == sweep_points(PerProfile, "grid")  # the lists alone


@pytest.mark.parametrize("profile, epochs", [("smoke", 3), ("standard", 10)])
def test_configs_carry_the_defaults_of_their_profile_and_overrides_win(monkeypatch, profile, epochs):
    methods.names()
    monkeypatch.setattr(methods, "_items", dict(methods._items))
    register_method("test_sweep_grid_per_profile")(PerProfile)
    grid = GridSpec(tasks=["debug"], scenarios=["class_0"], methods=["test_sweep_grid_per_profile"], seeds=[0],
                    profile=profile)
    assert [c.hparams for c in expand_grid(grid)] == [{"lr": 0.1, "epochs": epochs}]
    grid = GridSpec(tasks=["debug"], scenarios=["class_0"], methods=["test_sweep_grid_per_profile"], seeds=[0],
                    profile=profile, hparams={"test_sweep_grid_per_profile": {"lr": "0.5"}})
    assert [c.hparams for c in expand_grid(grid)] == [{"lr": 0.5, "epochs": epochs}]


# ---- expansion into configs -------------------------------------------------------------------

@pytest.fixture
def toy_registered(monkeypatch):
    """Toy and OffList in a copy of the method registry, dropped after the test."""
    methods.names()  # load the entry points first, so they stay loaded
    monkeypatch.setattr(methods, "_items", dict(methods._items))
    register_method("test_sweep_grid_toy")(Toy)
    register_method("test_sweep_grid_offlist")(OffList)
    yield
    # register_method set the classes' names; the registry copy is dropped by monkeypatch


def grid_of(*names: str, sweep: str | None, hparams: dict | None = None, seeds=(0, 1)) -> GridSpec:
    return GridSpec(tasks=["debug"], scenarios=["random_10", "class_0"], methods=list(names), seeds=list(seeds),
                    profile="smoke", hparams=hparams or {}, sweep=sweep)


@pytest.mark.parametrize("kind", [None, *SWEEP_KINDS])
def test_expand_grid_runs_every_point_for_every_seed_and_scenario(toy_registered, kind):
    configs = expand_grid(grid_of("test_sweep_grid_toy", "identity", sweep=kind))
    points = sweep_points(Toy, kind)
    assert len(configs) == 2 * 2 * (len(points) + 1)
    assert len({c.id for c in configs}) == len(configs)
    block = len(points) + 1  # one (seed, scenario): the toy's points in order, then identity
    for start in range(0, len(configs), block):
        chunk = configs[start:start + block]
        assert len({(c.seed, c.scenario) for c in chunk}) == 1
        assert [c.hparams for c in chunk] == [*points, {}]
        assert [c.method for c in chunk] == ["test_sweep_grid_toy"] * len(points) + ["identity"]


def test_hparam_overrides_apply_on_top_of_every_point_and_collapse_their_axis(toy_registered):
    overrides = {"test_sweep_grid_toy": {"lr": "0.5"}}
    axes = expand_grid(grid_of("test_sweep_grid_toy", sweep="axes", hparams=overrides, seeds=[0]))
    assert [c.hparams for c in axes if c.scenario == "random_10"] == [P(lr=0.5), P(lr=0.5, epochs=1)]
    grid = expand_grid(grid_of("test_sweep_grid_toy", sweep="grid", hparams=overrides, seeds=[0]))
    assert [c.hparams for c in grid if c.scenario == "random_10"] == [P(lr=0.5, epochs=1), P(lr=0.5, epochs=3)]
    plain = expand_grid(grid_of("test_sweep_grid_toy", sweep=None, hparams=overrides, seeds=[0]))
    assert [c.hparams for c in plain if c.scenario == "random_10"] == [P(lr=0.5)]


def test_a_bad_override_or_kind_is_reported_once_with_the_other_problems(toy_registered):
    grid = grid_of("test_sweep_grid_toy", "no_such_method", sweep="random",
                   hparams={"test_sweep_grid_toy": {"lr": "fast"}})
    with pytest.raises(MubenchError) as info:
        expand_grid(grid)
    message = str(info.value)
    assert message.count("unknown sweep kind 'random'") == 1
    assert message.count("cannot read 'fast' as float") == 1
    assert "no_such_method" in message


def test_without_a_sweep_expansion_is_unchanged_for_the_registered_methods():
    configs = expand_grid(GridSpec(tasks=["debug"], scenarios=None, methods=None, seeds=[0], profile="smoke"))
    applicable = [name for name, cls in methods.items() if cls.inapplicable(tasks.get("debug").spec) is None]
    assert "fmd" not in applicable  # debug has no sensitive attribute: not applicable, not run
    assert len(configs) == 2 * len(applicable)
    assert all(c.hparams == dict(methods.get(c.method).resolve()) for c in configs)


def test_the_debug_axes_sweep_size_is_the_sum_of_the_methods_points():
    configs = expand_grid(GridSpec(tasks=["debug"], scenarios=None, methods=None, seeds=[0], profile="smoke",
                                   sweep="axes"))
    debug = tasks.get("debug").spec
    assert len(configs) == 2 * sum(len(sweep_points(cls, "axes")) for _, cls in methods.items()
                                   if cls.inapplicable(debug) is None)
    assert len({c.id for c in configs}) == len(configs)


# ---- the command line -------------------------------------------------------------------------

def invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_run_sweep_axes_then_grid_on_the_debug_task(tmp_path):
    store = tmp_path / "store.sqlite"
    base = ["run", "--task", "debug", "--scenario", "random_10", "--method", "grad_ascent", "--method", "identity",
            "--store", store]
    axes = invoke(*base, "--sweep", "--json")  # --sweep followed by another option: the axes kind
    assert axes.exit_code == 0, axes.stderr
    records = [Record.model_validate_json(line) for line in axes.stdout.splitlines()]
    grad_ascent = methods.get("grad_ascent")
    assert [r.config.hparams for r in records] == [*sweep_points(grad_ascent, "axes"), {}]
    assert all(r.status == "ok" for r in records)
    assert {"objective/utility", "objective/forgetting", "score", "cost/work"} <= set(records[0].metrics)

    # the grid kind, with an override on top of every point: lr x {epochs=1}; two runs are stored already
    grid = invoke(*base, "--json", "--sweep", "grid", "--hparam", "grad_ascent.epochs=1")
    assert grid.exit_code == 0, grid.stderr
    again = [Record.model_validate_json(line) for line in grid.stdout.splitlines()]
    lrs = grad_ascent.space["lr"][1]
    assert [r.config.hparams for r in again] == [{"lr": lr, "epochs": 1, "batch_size": 128, "weight_decay": 5e-4} for lr in lrs] + [{}]
    assert grid.stderr.count("stored before") == 2  # (default lr, epochs 1) from the axes, and identity
    assert Store(store).count() == len(records) + len(lrs) - 1

    table = invoke(*base, "--sweep=axes")  # everything stored: prints the sweep's hypervolumes
    assert table.exit_code == 0
    assert "hypervolume" in table.stdout and "grad_ascent" in table.stdout and "identity" in table.stdout
    assert Store(store).count() == len(records) + len(lrs) - 1


def test_run_sweep_with_an_unknown_kind_exits_2_before_running(tmp_path):
    result = CliRunner().invoke(app, ["run", "--task", "debug", "--sweep", "random", "--store", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2
    assert "random" in result.output and "axes" in result.output
    assert not (tmp_path / "s.sqlite").exists()

"""Sweeps survive being killed, and a broken method fails its own run, not the sweep.

The first test SIGKILLs `mubench run` in the middle of a 24-run grid and resumes it; the second
runs misbehaving methods (registered only for the test) through the real sweep, harness and store.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from mubench.harness.record import Record
from mubench.harness.runner import Harness
from mubench.hashing import sha256_text
from mubench.methods import Access, Method, methods, register_method
from mubench.orchestration.store import Store
from mubench.orchestration.sweep import GridSpec, expand_grid, run_grid

MUBENCH = Path(sys.executable).with_name("mubench")
SCENARIOS, METHODS, SEEDS = ["random_10", "class_0"], ["identity", "finetune", "grad_ascent", "random_label"], [0, 1, 2]
GRID_ARGS = ["run", "--task", "debug", *[a for s in SCENARIOS for a in ("--scenario", s)],
             *[a for m in METHODS for a in ("--method", m)], *[a for s in SEEDS for a in ("--seed", str(s))], "--json"]
KILL_AFTER = 8


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    return tmp_path / "home"


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


# ---- SIGKILL and resume -----------------------------------------------------------------------

@pytest.mark.slow
def test_a_sweep_killed_with_sigkill_resumes_without_losing_or_duplicating_records(tmp_path):
    store_path = tmp_path / "store.sqlite"
    command = [str(MUBENCH), *GRID_ARGS, "--store", str(store_path)]
    expected_ids = {c.id for c in expand_grid(GridSpec(tasks=["debug"], scenarios=SCENARIOS, methods=METHODS,
                                                        seeds=SEEDS, profile="smoke"))}
    assert len(expected_ids) == 24

    printed: list[Record] = []
    with open(tmp_path / "killed.stderr", "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=subprocess_env(), text=True)
        try:
            for line in process.stdout:
                printed.append(Record.model_validate_json(line))
                if len(printed) == KILL_AFTER:
                    os.kill(process.pid, signal.SIGKILL)
                    break
        finally:
            if process.poll() is None and len(printed) < KILL_AFTER:
                process.kill()
            process.wait(timeout=60)
            process.stdout.close()
    assert len(printed) == KILL_AFTER, (tmp_path / "killed.stderr").read_text()
    assert process.returncode == -signal.SIGKILL

    # the store opens and is intact; everything reported before the kill is in it
    with sqlite3.connect(store_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = Store(store_path)
    for record in printed:
        assert store.get(record.id) == record
    before = {r.id: r for r in store.records()}
    assert KILL_AFTER <= len(before) < 24  # killed mid-sweep, not after it
    assert set(before) <= expected_ids
    store.close()

    # resume: the same command to completion
    rerun = subprocess.run(command, capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    lines = rerun.stdout.splitlines()
    assert len(lines) == 24
    reported = [Record.model_validate_json(line) for line in lines]
    assert {r.id for r in reported} == expected_ids
    assert all(r.status == "ok" for r in reported)

    store = Store(store_path)
    after = {r.id: r for r in store.records()}
    assert set(after) == expected_ids
    assert store.count() == 24
    with sqlite3.connect(store_path) as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM records").fetchone() == (24, 24)
    for record_id, old in before.items():  # stored before the re-run: kept, not recomputed
        assert after[record_id].created_at == old.created_at
        assert after[record_id].metrics == old.metrics
        assert after[record_id] == old
    reported_by_id = {r.id: r for r in reported}
    assert all(reported_by_id[i] == before[i] for i in before)
    store.close()


# ---- misbehaving methods ----------------------------------------------------------------------

class Raises(Method):
    access = Access.FORGET

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        raise RuntimeError("deliberate failure inside test_raises")


class NanWeights(Method):
    access = Access.FORGET

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(float("nan"))
        return model


class OtherArchitecture(Method):
    """Same class (a Sequential MLP) with a different hidden width."""

    access = Access.FORGET

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        inputs = next(m for m in model.modules() if isinstance(m, nn.Linear)).in_features
        return nn.Sequential(nn.Flatten(), nn.Linear(inputs, 3), nn.ReLU(), nn.Linear(3, request.num_classes))


class OtherClass(Method):
    access = Access.FORGET

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        inputs = next(m for m in model.modules() if isinstance(m, nn.Linear)).in_features
        return nn.Linear(inputs, request.num_classes)


class NotAModel(Method):
    access = Access.FORGET

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        return model.state_dict()


class PeeksAtRetain(Method):
    access = Access.FORGET  # but it reads the retain set

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        request.retain
        return model


BROKEN = {  # name: (class, what its error must say)
    "test_raises": (Raises, ["RuntimeError", "deliberate failure inside test_raises"]),
    "test_nan_weights": (NanWeights, ["non-finite"]),
    "test_other_architecture": (OtherArchitecture, ["architecture"]),
    "test_other_class": (OtherClass, ["Linear", "Sequential"]),
    "test_not_a_model": (NotAModel, ["not a torch.nn.Module"]),
    "test_peeks_at_retain": (PeeksAtRetain, ["AccessError", "retain"]),
}


@pytest.fixture
def broken_methods(monkeypatch):
    """Register the misbehaving methods in a copy of the (global) registry, dropped after the test."""
    methods.names()  # load the entry points first, so they stay loaded
    monkeypatch.setattr(methods, "_items", dict(methods._items))
    for name, (cls, _) in BROKEN.items():
        register_method(name)(cls)
    return list(BROKEN)


def test_misbehaving_methods_fail_their_own_runs_and_the_sweep_goes_on(tmp_path, broken_methods):
    grid = GridSpec(tasks=["debug"], scenarios=["random_10"], methods=["identity", *broken_methods, "retrain"],
                    seeds=[0], profile="smoke")
    configs = expand_grid(grid)
    store = Store(tmp_path / "store.sqlite")
    harness = Harness()
    seen: list[tuple[str, bool]] = []
    records = run_grid(configs, store, harness, lambda record, skipped: seen.append((record.config.method, skipped)))

    by_method = {r.config.method: r for r in records}
    assert list(by_method) == ["identity", *broken_methods, "retrain"]
    for name in ("identity", "retrain"):
        assert by_method[name].status == "ok", by_method[name].error
        assert by_method[name].error is None and by_method[name].metrics
    for name, (_, expected) in BROKEN.items():
        record = by_method[name]
        assert record.status == "failed"
        assert record.metrics == {}
        for text in expected:
            assert text in record.error, (name, record.error)
    assert seen == [(m, False) for m in by_method]

    stored = {r.id: r for r in store.records()}
    assert stored == {r.id: r for r in records}
    assert store.count() == len(configs)
    assert store.completed_ids() == {by_method["identity"].id, by_method["retrain"].id}

    # a second pass skips the successful runs and tries the failed ones again (replacing them)
    seen.clear()
    again = run_grid(configs, store, harness, lambda record, skipped: seen.append((record.config.method, skipped)))
    assert seen == [("identity", True), *[(m, False) for m in broken_methods], ("retrain", True)]
    assert again[0] == by_method["identity"] and again[-1] == by_method["retrain"]
    assert all(r.status == "failed" for r in again[1:-1])
    assert store.count() == len(configs)


# ---- metric versions ---------------------------------------------------------------------------

def test_records_of_other_metric_versions_are_rerun_and_replaced(tmp_path):
    """A resumed grid reruns stored results computed under an older metrics or MIA spec version
    (and replaces them), and skips the current ones."""
    from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION

    configs = expand_grid(GridSpec(tasks=["debug"], scenarios=["random_10"], methods=["identity", "grad_ascent",
                                                                                      "finetune"], seeds=[0],
                                   profile="smoke"))
    store, harness = Store(tmp_path / "store.sqlite"), Harness()
    first = run_grid(configs, store, harness)
    assert all(r.metrics_version == METRICS_VERSION and r.mia_spec_version == MIA_SPEC_VERSION for r in first)
    with sqlite3.connect(tmp_path / "store.sqlite") as db:  # make two of them look computed by an older mubench
        for record, field in ((first[0], "metrics_version"), (first[1], "mia_spec_version")):
            old = record.model_copy(update={field: "0", "metrics": {"forget/acc": -1.0}, "intervals": {}})
            body = old.model_dump_json()  # written as an older mubench would have: with its digest
            db.execute("UPDATE records SET body=?, digest=? WHERE id=?", (body, sha256_text(body), record.id))
    seen: list[tuple[str, bool]] = []
    again = run_grid(configs, store, harness, on_record=lambda r, skipped: seen.append((r.config.method, skipped)))
    assert seen == [("identity", False), ("grad_ascent", False), ("finetune", True)]
    assert [r.metrics["forget/acc"] for r in again] == [r.metrics["forget/acc"] for r in first]
    assert all(store.get(r.id).metrics_version == METRICS_VERSION and store.get(r.id).mia_spec_version == MIA_SPEC_VERSION
               for r in first)

"""Untrusted methods run isolated (mubench.orchestration.sandbox): every kind of misbehaviour becomes a failed
record with its reason, in one grid, and a well-behaved method in that grid gives the numbers of
the in-process harness. The methods live in a file the test writes (loaded as file:Class, as
`mubench submit` loads them); the children run four at a time to keep the module fast."""

from __future__ import annotations

import json
import textwrap

import pytest
from pydantic import ValidationError

from helpers import shared_home
from mubench.board.entries import method_problems
from mubench.errors import MubenchError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.orchestration.loading import load_method_class
from mubench.orchestration.sandbox import (
    Failure,
    Finished,
    Limits,
    Message,
    Outcome,
    failure_reason,
    isolated_executor,
    method_source,
)
from mubench.orchestration.store import Store
from mubench.orchestration.sweep import run_grid
from mubench.tasks import tasks

TIME_LIMIT_S = 3.0
MEMORY_LIMIT_MB = 1024

METHODS = textwrap.dedent('''
    """Methods that misbehave, one way each, and one that behaves (and prints)."""
    import os
    import signal
    import time

    import numpy as np
    import torch
    from torch import nn

    from mubench.methods import Access, Method


    class Hang(Method):
        """Sleeps far beyond the time limit."""
        name = "test_sbx_hang"
        def unlearn(self, model, request, hp):
            time.sleep(3600)
            return model


    class Boom(Method):
        """Raises."""
        name = "test_sbx_boom"
        def unlearn(self, model, request, hp):
            raise RuntimeError("boom from the method")


    class Hog(Method):
        """Allocates 4 GiB, far beyond a 1 GB limit."""
        name = "test_sbx_hog"
        def unlearn(self, model, request, hp):
            block = np.ones(2**29)
            return model


    class NanWeights(Method):
        """Returns NaN weights."""
        name = "test_sbx_nan"
        def unlearn(self, model, request, hp):
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.fill_(float("nan"))
            return model


    class NewHead(Method):
        """Replaces the head with one more output."""
        name = "test_sbx_head"
        def unlearn(self, model, request, hp):
            model[-1] = nn.Linear(model[-1].in_features, model[-1].out_features + 1)
            return model


    class Peek(Method):
        """Declares the forget set only, then reads the retain set."""
        name = "test_sbx_peek"
        access = Access.FORGET
        def unlearn(self, model, request, hp):
            request.retain
            return model


    class Suicide(Method):
        """Kills its own process."""
        name = "test_sbx_kill"
        def unlearn(self, model, request, hp):
            os.kill(os.getpid(), signal.SIGKILL)
            return model


    class Fine(Method):
        """Fine-tunes on the retain set for one epoch, printing (which must not corrupt the record)."""
        name = "test_sbx_fine"
        access = Access.RETAIN
        def unlearn(self, model, request, hp):
            print("hello from the method")
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
            for (x, y), in request.batches("retain", batch_size=64):
                optimizer.zero_grad()
                request.loss(model(x), y).backward()
                optimizer.step()
            return model
''')

CLASSES = ("Hang", "Boom", "Hog", "NanWeights", "NewHead", "Peek", "Suicide", "Fine")


def _config(name: str) -> RunConfig:
    return RunConfig(task="debug", task_version=tasks.get("debug").spec.version, scenario="class_0", method=name,
                     method_version="1", hparams={}, seed=0, profile="smoke")


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """One isolated grid of all eight methods (stored), and the in-process record of the good one."""
    base = tmp_path_factory.mktemp("sandbox")
    source = base / "methods.py"
    source.write_text(METHODS)
    with shared_home(base):
        names = {}
        for class_name in CLASSES:
            cls, _, problems = load_method_class(f"{source}:{class_name}")
            assert not problems and not method_problems(cls)
            names[class_name] = cls.name
        configs = [_config(names[c]) for c in CLASSES]
        store = Store(base / "results.sqlite")
        limits = Limits(time_limit_s=TIME_LIMIT_S, memory_limit_mb=MEMORY_LIMIT_MB, parallel=4)
        harness = Harness()
        records = run_grid(configs, store, harness, isolate=limits)
        in_process = harness.run(_config(names["Fine"]))
        stored = {r.config.method: r for r in store.records()}
        store.close()
        yield {c: r for c, r in zip(CLASSES, records)}, in_process, stored, names


@pytest.mark.parametrize(("class_name", "reason"), [
    ("Hang", f"exceeded the wall-time limit of {TIME_LIMIT_S:g} s"),
    ("Boom", "RuntimeError: boom from the method"),
    ("Hog", f"exceeded the memory limit of {MEMORY_LIMIT_MB} MB (MemoryError"),
    ("NanWeights", "MethodOutputError: unlearn returned non-finite weights"),
    ("NewHead", "MethodOutputError: unlearn changed the architecture"),
    ("Peek", "AccessError: this method declared access 'forget', which does not include 'retain' data"),
    ("Suicide", "killed by signal SIGKILL"),
])
@pytest.mark.slow
def test_each_misbehaviour_is_a_failed_record_with_its_reason(grid, class_name, reason):
    records, _, stored, names = grid
    record = records[class_name]
    assert record.status == "failed" and not record.metrics
    assert record.error.startswith(reason) or reason in record.error, record.error
    assert stored[names[class_name]] == record  # stored, and the sweep went on to the next run
    assert record.split_id == records["Fine"].split_id  # the driver prepared the split before the method ran


@pytest.mark.slow
def test_the_hung_method_is_stopped_at_the_limit(grid):
    hang = grid[0]["Hang"]
    assert TIME_LIMIT_S <= hang.seconds < TIME_LIMIT_S + 3  # counted from the child's "started"


@pytest.mark.slow
def test_a_good_method_in_the_same_grid_gives_the_in_process_numbers(grid):
    records, in_process, _, _ = grid
    isolated = records["Fine"]
    assert isolated.status == "ok" and in_process.status == "ok", isolated.error
    same = {k for k in in_process.metrics if "cost" not in k}  # cost/*, objective/cost: seconds and memory vary
    assert same and {k: isolated.metrics[k] for k in same} == {k: in_process.metrics[k] for k in same}
    assert isolated.id == in_process.id and isolated.split_id == in_process.split_id
    assert isolated.weights_sha256 == in_process.weights_sha256 != ""  # the same weights, read back from the jail


@pytest.mark.slow
def test_a_file_method_travels_by_file_and_a_baseline_by_module(grid):
    names = grid[3]
    assert method_source(names["Fine"]).file.endswith("methods.py:Fine")
    assert method_source("finetune").module == "baselines.finetune"  # an entry-point package


def test_the_driver_trusts_only_well_formed_messages_in_their_order():
    """A result before "started", a second "started", an error or silence: each a failed run
    with its reason; a forged metric has nowhere to go (the child sends no record)."""
    limits = Limits(time_limit_s=1)
    early = failure_reason(limits, Outcome(result=Finished(kind="finished", work=0.0)))
    assert early == "the isolated run said it finished before it started"
    said = failure_reason(limits, Outcome(started=True, result=Failure(kind="error", error="SystemExit: 3")))
    assert said == "SystemExit: 3"
    silent = failure_reason(limits, Outcome(exit_code=3, stderr_tail=["Traceback", "ValueError: x"]))
    assert silent == "the isolated run exited with status 3 without a result: ValueError: x"
    for forged in ({"kind": "record", "record": {"metrics": {"forget/acc": 0.0}}},
                   {"kind": "finished", "work": "nan"}, {"kind": "finished", "work": 1.0, "seconds": 0.001}):
        with pytest.raises(ValidationError):
            Message.validate_json(json.dumps(forged))


def test_isolation_does_not_combine_with_another_executor():
    with pytest.raises(MubenchError, match="local executor"):
        isolated_executor("ray", Harness.__new__(Harness), Limits())
    with pytest.raises(ValueError):
        Limits(time_limit_s=0)


def test_without_the_jail_an_isolated_grid_is_refused_before_any_run(tmp_path, monkeypatch):
    from mubench.orchestration import jail

    monkeypatch.setattr(jail, "bwrap_path", lambda: None)
    jail.unavailable.cache_clear()
    store = Store(tmp_path / "results.sqlite")
    try:
        with pytest.raises(jail.JailUnavailableError, match="install bubblewrap"):
            run_grid([_config("identity")], store, Harness(), isolate=Limits())
        assert store.records() == []  # nothing ran unjailed, nothing was recorded as failed
    finally:
        store.close()
        jail.unavailable.cache_clear()


def test_an_isolated_run_on_a_gpu_is_refused_up_front():
    import torch

    from mubench.orchestration.sandbox import require_jail_for

    with pytest.raises(MubenchError, match="the jail binds no GPU device"):
        require_jail_for(torch.device("cuda"))

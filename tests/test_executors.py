"""Executors: the Ray executor gives the local executor's records, shares models through the
cache's lock, and retries a run whose worker was killed once, then records it as failed.

One local Ray instance of two CPUs serves the whole module (starting one costs about 5 s).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from mubench.artifacts import ModelCache
from mubench.errors import UnknownNameError
from mubench.executors import LocalExecutor, RayExecutor, make_executor
from mubench.methods import Access, Method, methods, register_method
from mubench.runner import Harness
from mubench.store import Store
from mubench.sweep import GridSpec, expand_grid, run_grid
from tests.helpers import one_torch_thread  # noqa: F401  (autouse fixture)

ray = pytest.importorskip("ray")

# measured, not computed: wall-clock seconds and memory differ between any two runs
MEASURED = {"cost/seconds", "cost/rte", "cost/peak_mem_mb", "objective/cost"}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    return tmp_path / "home"


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance with two worker CPUs for the module; executors join it (and leave it up)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


def computed(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k not in MEASURED}


def test_ray_gives_the_local_records_same_ids_same_numbers(tmp_path, local_ray, home):
    configs = expand_grid(GridSpec(tasks=["debug"], scenarios=["random_10", "class_0"],
                                   methods=["identity", "grad_ascent"], seeds=[0, 1], profile="smoke"))
    assert len(configs) == 8
    local = run_grid(configs, Store(tmp_path / "local.sqlite"), Harness(cache=ModelCache(tmp_path / "local-models")))

    harness = Harness(cache=ModelCache(tmp_path / "ray-models"))
    arrived: list[str] = []
    with RayExecutor(harness) as executor:
        assert not executor._owned and executor.workers == 2 and executor.gpus_per_run == 0.0
        remote = run_grid(configs, Store(tmp_path / "ray.sqlite"), harness,
                          lambda record, skipped: arrived.append(record.id), executor)

    assert [r.id for r in remote] == [r.id for r in local] == [c.id for c in configs]
    assert sorted(arrived) == sorted(r.id for r in local)
    for mine, theirs in zip(local, remote):
        assert theirs.status == mine.status == "ok", theirs.error
        assert computed(theirs.metrics) == computed(mine.metrics), mine.config.label
        assert theirs.split_id == mine.split_id
    stored = Store(tmp_path / "ray.sqlite")  # the driver stored every record, once
    assert {r.id: r for r in stored.records()} == {r.id: r for r in remote}
    # the workers trained the same originals and oracles into the driver's cache, with the same weights
    def cached(folder: str) -> dict[str, str]:
        return {p.stem: json.loads(p.read_text())["sha256"] for p in (tmp_path / folder).glob("*.json")}

    assert cached("ray-models") == cached("local-models") and len(cached("local-models")) == 6


# ---- a worker killed mid-run -------------------------------------------------------------------

def _kill_marker(name: str) -> Path:
    return Path(os.environ["MUBENCH_HOME"]) / f"killed-{name}"


class KilledOnce(Method):
    """Its worker process is SIGKILLed the first time it runs (a marker file remembers), then it
    does nothing, as `identity` does."""

    access = Access.FORGET
    kills, tag = 1, "test_killed_once"

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        done = list(_kill_marker(self.tag).parent.glob(f"killed-{self.tag}-*"))
        if len(done) < self.kills:
            _kill_marker(f"{self.tag}-{len(done)}").touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return model


class KilledTwice(KilledOnce):
    kills, tag = 2, "test_killed_twice"


@pytest.fixture
def killed_methods(monkeypatch):
    methods.names()
    monkeypatch.setattr(methods, "_items", dict(methods._items))
    register_method("test_killed_once")(KilledOnce)
    register_method("test_killed_twice")(KilledTwice)


def test_a_killed_worker_is_retried_once_then_its_run_is_recorded_failed(tmp_path, local_ray, killed_methods, home):
    configs = expand_grid(GridSpec(tasks=["debug"], scenarios=["random_10"],
                                   methods=["identity", "test_killed_once", "test_killed_twice", "finetune"],
                                   seeds=[0], profile="smoke"))
    store = Store(tmp_path / "store.sqlite")
    with RayExecutor(Harness()) as executor:
        records = {r.config.method: r for r in run_grid(configs, store, executor=executor, harness=Harness())}

    killed_once = records["test_killed_once"]
    assert killed_once.status == "ok", killed_once.error  # the retry ran it to the end
    assert len(list(home.glob("killed-test_killed_once-*"))) == 1
    killed_twice = records["test_killed_twice"]
    assert killed_twice.status == "failed" and killed_twice.metrics == {}
    assert killed_twice.error.startswith("worker died on each of 2 attempt(s)"), killed_twice.error
    assert len(list(home.glob("killed-test_killed_twice-*"))) == 2  # tried, retried once, not a third time
    assert records["identity"].status == records["finetune"].status == "ok"  # the sweep finished
    assert store.count() == 4 and store.completed_ids() == {r.id for r in records.values() if r.status == "ok"}
    assert store.get(killed_twice.id) == killed_twice  # a normal record, stored by the driver


# ---- the cache lock ----------------------------------------------------------------------------

def _train_through_cache(root: str, log: str) -> None:
    def train(model: torch.nn.Module) -> float:
        with open(log, "a") as handle:
            handle.write("trained\n")
        time.sleep(0.5)  # long enough for the other process to arrive while this one trains
        return 0.5

    ModelCache(Path(root)).get_or_train({"model": "shared"}, lambda: torch.nn.Linear(3, 2), train)


def test_two_processes_needing_one_model_train_it_once(tmp_path):
    log = tmp_path / "trainings.log"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_train_through_cache, args=(str(tmp_path / "models"), str(log)))
               for _ in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=30)
    assert [p.exitcode for p in workers] == [0, 0]
    assert log.read_text() == "trained\n"  # the second waited on the lock and loaded
    assert len(list((tmp_path / "models").glob("*.safetensors"))) == 1


# ---- the executor registry ---------------------------------------------------------------------

def test_executors_are_found_by_name_and_an_unknown_one_is_refused():
    harness = Harness()
    assert isinstance(make_executor("local", harness), LocalExecutor)
    with pytest.raises(UnknownNameError, match="Did you mean 'ray'"):
        make_executor("rey", harness)

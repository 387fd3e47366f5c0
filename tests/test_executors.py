"""Executors: the Ray and processes executors give the local executor's records, share models
through the cache's lock, and retry a run whose worker was killed once, then record it as failed.

One local Ray instance of two CPUs serves the Ray tests (starting one costs about 5 s); they are
skipped where Ray is not installed. One `processes` executor of two workers serves the processes
tests (spawning a worker and importing torch in it costs a few seconds). Their method classes are
defined here: a spawned worker imports this module by name (`sys.path` travels to it).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from helpers import debug_config
from mubench.errors import MubenchError, UnknownNameError
from mubench.harness.artifacts import ModelCache
from mubench.harness.record import Record, RunConfig
from mubench.harness.runner import Harness
from mubench.methods import Access, Method, methods, register_method
from mubench.orchestration.executors import LocalExecutor, ProcessExecutor, RayExecutor, make_executor
from mubench.orchestration.store import Store
from mubench.orchestration.sweep import GridSpec, expand_grid, run_grid

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
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


def computed(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k not in MEASURED}


def small_grid() -> list[RunConfig]:
    configs = expand_grid(GridSpec(tasks=["debug"], scenarios=["random_10", "class_0"],
                                   methods=["identity", "grad_ascent"], seeds=[0, 1], profile="smoke"))
    assert len(configs) == 8
    return configs


def assert_same_records(local: list[Record], remote: list[Record], configs: list[RunConfig]) -> None:
    assert [r.id for r in remote] == [r.id for r in local] == [c.id for c in configs]
    for mine, theirs in zip(local, remote):
        assert theirs.status == mine.status == "ok", theirs.error
        assert computed(theirs.metrics) == computed(mine.metrics), mine.config.label
        assert theirs.split_id == mine.split_id


def cached_weights(folder: Path) -> dict[str, str]:
    return {p.stem: json.loads(p.read_text())["sha256"] for p in folder.glob("*.json")}


@pytest.mark.slow
def test_ray_gives_the_local_records_same_ids_same_numbers(tmp_path, local_ray, home):
    configs = small_grid()
    local = run_grid(configs, Store(tmp_path / "local.sqlite"), Harness(cache=ModelCache(tmp_path / "local-models")))

    harness = Harness(cache=ModelCache(tmp_path / "ray-models"))
    arrived: list[str] = []
    with RayExecutor(harness) as executor:
        assert not executor._owned and executor.workers == 2 and executor.gpus_per_run == 0.0
        remote = run_grid(configs, Store(tmp_path / "ray.sqlite"), harness,
                          lambda record, skipped: arrived.append(record.id), executor)

    assert_same_records(local, remote, configs)
    assert sorted(arrived) == sorted(r.id for r in local)
    stored = Store(tmp_path / "ray.sqlite")  # the driver stored every record, once
    assert {r.id: r for r in stored.records()} == {r.id: r for r in remote}
    # the workers trained the same originals and oracles into the driver's cache, with the same weights
    local_models = cached_weights(tmp_path / "local-models")
    assert cached_weights(tmp_path / "ray-models") == local_models and len(local_models) == 6


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


@pytest.mark.slow
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


# ---- the processes executor --------------------------------------------------------------------

class Raises(Method):
    """Raises in `unlearn`: the harness in the worker records the run as failed, as it does locally."""

    access = Access.FORGET

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        raise ValueError("this method always fails")


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    """Two spawned workers for the module, with a home and a model cache of their own (the
    executor's settings carry the home to the workers)."""
    folder = tmp_path_factory.mktemp("processes")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUBENCH_HOME", str(folder / "home"))
        patch.setenv("MUBENCH_OFFLINE", "1")
        harness = Harness(cache=ModelCache(folder / "models"))
        executor = ProcessExecutor(harness, workers=2)
    with executor:
        yield SimpleNamespace(executor=executor, harness=harness, home=folder / "home", models=folder / "models")


def test_processes_give_the_local_records_same_ids_same_numbers(tmp_path, processes):
    configs = small_grid()
    local = run_grid(configs, Store(tmp_path / "local.sqlite"), Harness(cache=ModelCache(tmp_path / "local-models")))

    arrived: list[str] = []
    remote = run_grid(configs, Store(tmp_path / "processes.sqlite"), processes.harness,
                      lambda record, skipped: arrived.append(record.id), processes.executor)

    assert processes.executor.workers == 2
    assert_same_records(local, remote, configs)
    assert sorted(arrived) == sorted(r.id for r in local)
    assert {r.id: r for r in Store(tmp_path / "processes.sqlite").records()} == {r.id: r for r in remote}
    local_models = cached_weights(tmp_path / "local-models")
    assert cached_weights(processes.models) == local_models and len(local_models) == 6


def test_processes_stop_on_an_error_outside_the_method_as_locally(processes):
    config = debug_config("identity").model_copy(update={"task": "no_such_task"})
    with pytest.raises(UnknownNameError, match="no_such_task") as raised:
        list(processes.executor.map([config]))
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no worker traceback chained


@pytest.mark.slow
def test_processes_record_a_failing_method_and_retry_a_killed_worker_once(tmp_path, processes, killed_methods):
    register_method("test_raises")(Raises)
    configs = expand_grid(GridSpec(tasks=["debug"], scenarios=["random_10"], seeds=[0], profile="smoke",
                                   methods=["identity", "test_raises", "test_killed_once", "test_killed_twice"]))
    store = Store(tmp_path / "store.sqlite")
    records = {r.config.method: r for r in run_grid(configs, store, processes.harness, executor=processes.executor)}

    raised = records["test_raises"]
    assert raised.status == "failed" and raised.error.startswith("ValueError: this method always fails"), raised.error
    assert raised.split_id == records["identity"].split_id  # a normal failed run: prepared, then the method raised
    killed_once = records["test_killed_once"]
    assert killed_once.status == "ok", killed_once.error  # its worker was replaced and the run tried again
    killed_twice = records["test_killed_twice"]
    assert killed_twice.status == "failed" and killed_twice.metrics == {}
    assert killed_twice.error.startswith("worker died on each of 2 attempt(s) (BrokenProcessPool"), killed_twice.error
    assert len(list(processes.home.glob("killed-test_killed_once-*"))) == 1
    assert len(list(processes.home.glob("killed-test_killed_twice-*"))) == 2
    assert records["identity"].status == "ok"  # the other runs went on
    assert store.count() == 4 and store.get(killed_twice.id) == killed_twice


def test_processes_refuse_zero_workers_and_a_class_no_worker_can_import(monkeypatch):
    with pytest.raises(MubenchError, match="--workers must be at least 1, got 0"):
        ProcessExecutor(Harness(), workers=0)

    class Nested(Method):
        access = Access.FORGET

    methods.names()
    monkeypatch.setattr(methods, "_items", dict(methods._items))
    register_method("test_nested")(Nested)
    executor = ProcessExecutor(Harness(), workers=1)
    with executor, pytest.raises(MubenchError, match="cannot be imported by a worker process.*--executor ray"):
        list(executor.map([debug_config("test_nested")]))
    assert executor._pools == [None]  # refused before any worker started


def test_a_worker_limits_every_native_thread_pool_to_its_threads():
    """A worker promised one CPU keeps one thread in torch's pool and in each BLAS / OpenMP pool
    (numpy, scipy, scikit-learn: the attacks' fits), however many cores the machine has. Checked
    in a fresh interpreter, so this process's pools stay as they are."""
    import subprocess
    import sys

    script = ("import json, torch, mubench.harness.runner\n"
              "from threadpoolctl import threadpool_info\n"
              "from mubench.orchestration.executors import limit_native_threads\n"
              "limit_native_threads(1)\n"
              "print(json.dumps([torch.get_num_threads()] + [p['num_threads'] for p in threadpool_info()]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr
    threads = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(threads) > 2 and threads == [1] * len(threads)  # torch, and the pools of numpy/scipy/sklearn

"""Executors: where the runs of a grid execute. The driver alone writes the store.

An executor turns run configs into records and nothing else: `Executor.map(configs)` yields one
`Record` per config as each run finishes (the local executor in order, the others in the order runs
complete) and never touches the store; `mubench.orchestration.sweep.run_grid` stores each record the moment it
arrives, in the driver process, so a killed driver loses at most the runs in flight.
`start()` starts the workers ahead of the first run (for timings); `close()` (or leaving a `with`
block) releases what the executor started.

- `local`: `Harness.run` in this process, one config after another (the default; the records are
  exactly those of a plain loop). With `overlap` a run's outputs-only metrics run in a thread
  beside the next run's method.
- `processes`: `workers` worker processes of this machine (spawned, standard library only), each
  running one run at a time; for several cores of one machine, or several runs sharing one GPU
  (while one run waits on the CPU for its attacks' scikit-learn fits, another computes on the GPU).
- `ray`: each run is a Ray task (Moritz et al. 2018, "Ray: a distributed framework for emerging AI
  applications"). With an address it joins that cluster, otherwise it starts a local instance of
  `workers` CPUs.

Both `processes` and `ray` run `run_in_worker` in their worker processes. Each worker builds its own
`Harness` with the driver's device, model cache root and shadow-model count (and the driver's
MUBENCH_* variables), and keeps it between runs, so task data and the prepared split are loaded
once per worker. Originals and oracles are shared through the content-addressed `ModelCache`, whose
per-key file lock makes a second worker wait for the first one's model and load it instead of
training it again. A method that raises gives a failed record (the harness records it, as locally);
a run whose worker process dies (killed, out of memory) is retried once (`max_retries`), then
recorded as failed with the reason; an exception raised outside the method (data missing, a bad
config) stops the sweep as it does locally. The method classes the driver has registered (built-in,
plug-in, or defined in a test or a script) are registered in the workers.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.metadata
import logging
import multiprocessing
import os
import pickle
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from mubench import paths
from mubench.errors import MubenchError
from mubench.harness import provenance
from mubench.harness.record import Record, RunConfig
from mubench.harness.runner import Harness
from mubench.hashing import sha256_of
from mubench.methods import Method, methods
from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION
from mubench.orchestration import reaper
from mubench.registry import Registry

log = logging.getLogger(__name__)


class Executor(ABC):
    """Runs configs and yields their records; never writes the store (the driver does)."""

    @abstractmethod
    def map(self, configs: Sequence[RunConfig]) -> Iterator[Record]:
        """One record per config, each yielded as soon as its run has finished."""

    def start(self) -> None:
        """Start the workers now rather than on their first run (for timings); a no-op by default."""

    def close(self) -> None:
        """Release what the executor started (a local Ray instance); a no-op by default."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


executors: Registry[Callable[..., Executor]] = Registry("executor")


def make_executor(name: str, harness: Harness, **options: Any) -> Executor:
    """The executor registered as `name`, for `harness`'s device and cache; `options` are its own
    (ray: address, workers, gpus_per_run, max_retries, threads_per_run; processes: workers,
    threads_per_run, max_retries; local: overlap)."""
    return executors.get(name)(harness, **options)


@executors.register("local")
class LocalExecutor(Executor):
    """In this process, in order: the records of `[harness.run(c) for c in configs]`.

    With `overlap`, each run's host phase (the outputs-only metrics: the membership attacks'
    scikit-learn fits, on the CPU) runs in a second thread while the next run's device phase
    (its method, its outputs, the metrics that read a model) goes on: on a GPU, the attacks
    otherwise leave the GPU idle for about half of a run. scikit-learn's libsvm and BLAS release
    the GIL. The records' numbers are the same (outputs-only metrics never touch a model or a
    random state the next run uses) and come in order; at most two runs are in flight, one in
    each phase. Off by default: a method's seconds (`cost/seconds`, a leaderboard column)
    measured beside another run's host phase include the contention, and which runs it hits
    depends on their order. On this project's 2-core CPU a training loop ran 34-47 % slower beside
    an SVC fit in a thread (19 % beside one in another process); `overlap=True` is for
    throughput where that does not matter, and `bench_training --overlap` measures both.
    """

    def __init__(self, harness: Harness, overlap: bool = False) -> None:
        self.harness = harness
        self.overlap = overlap

    def map(self, configs: Sequence[RunConfig]) -> Iterator[Record]:
        if not self.overlap:
            for config in configs:
                yield self.harness.run(config)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mubench-host-phase") as host:
            finishing: Future[Record] | None = None
            for config in configs:
                try:
                    pending = self.harness.begin(config)  # beside the previous run's host phase
                except BaseException:
                    if finishing is not None:
                        yield finishing.result()  # the previous run reaches the store before the error stops the sweep
                    raise
                if finishing is not None:
                    yield finishing.result()
                finishing = host.submit(self.harness.finish, pending)
            if finishing is not None:
                yield finishing.result()


# ---- worker processes (processes, ray) ----------------------------------------------------------

ENV_PREFIX = "MUBENCH_"  # the driver's data mirror, home and offline switch reach the workers


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker needs to build a harness equivalent to the driver's."""

    device: str
    cache_root: str
    shadow_models: int
    env: tuple[tuple[str, str], ...]
    torch_threads: int

    @classmethod
    def of(cls, harness: Harness, torch_threads: int) -> WorkerSettings:
        device = "cuda" if harness.device.type == "cuda" else str(harness.device)  # Ray picks the GPU
        env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX)))
        return cls(device, str(harness.cache.root), harness.shadow_models, env, torch_threads)


_worker_harnesses: dict[WorkerSettings, Harness] = {}


def _worker_harness(settings: WorkerSettings) -> Harness:
    """This worker process's harness for `settings`, built once and kept between tasks."""
    from mubench.harness.artifacts import ModelCache

    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        del os.environ[key]
    os.environ.update(dict(settings.env))
    limit_native_threads(settings.torch_threads)
    if settings not in _worker_harnesses:
        _worker_harnesses.clear()  # one sweep at a time per worker: drop the last one's data
        _worker_harnesses[settings] = Harness(settings.device, ModelCache(settings.cache_root), settings.shadow_models)
    return _worker_harnesses[settings]


def limit_native_threads(threads: int) -> None:
    """At most `threads` threads in each of this process's native thread pools: torch's, and the
    BLAS and OpenMP pools that numpy, scipy and scikit-learn use (the attacks' fits), through
    threadpoolctl. A worker is promised that many CPUs; without the limit each of K workers would
    start one BLAS thread per core of the machine and K of them would fight over the cores."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


def _register_driver_methods(classes: dict[str, type[Method]]) -> None:
    """Make the worker's method registry agree with the driver's for the methods of this sweep."""
    for name, cls in classes.items():
        cls.name = name  # set by register_method in the driver; a class pickled by reference lacks it
        if name not in methods:
            methods.add(name, cls)
        elif methods.get(name) is not cls:
            methods._items[name] = cls  # the driver's class wins over a same-named one found here


def run_in_worker(settings: WorkerSettings, classes: dict[str, type[Method]], config_json: str) -> str:
    """The body of one run in a worker process (a Ray task, a call in a process pool): its record,
    as JSON (the driver validates it)."""
    _register_driver_methods(classes)
    harness = _worker_harness(settings)
    config = RunConfig.model_validate_json(config_json)
    prepare_exclusively(harness, config)
    return harness.run(config).model_dump_json()


def prepare_exclusively(harness: Harness, config: RunConfig) -> None:
    """Prepare the run's split and models while holding file locks under MUBENCH_HOME: one per task
    around its first data load, one per (task, scenario, seed, profile) around the preparation.
    Workers of one node share the home, and its prepared-data and split files are written under
    fixed temporary names; two workers writing one of them at once would collide. The second
    worker waits, then reads what the first wrote."""
    from mubench.harness.artifacts import file_lock
    from mubench.tasks.base import tasks

    locks = paths.home() / "locks"
    task = tasks.get(config.task)
    with file_lock(locks / f"task-{sha256_of([config.task])[:16]}.lock"):
        harness.task_data(task)
    prepared = [config.task, config.scenario, config.seed, config.profile]
    with file_lock(locks / f"prepare-{sha256_of(prepared)[:16]}.lock"):
        harness.prepare(*prepared)


def died_record(config: RunConfig, exc: BaseException, seconds: float, attempts: int, device: str) -> Record:
    """A failed record for a run whose worker died on each of `attempts` attempts: no split was
    reported, so its id is empty."""
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return Record(
        id=config.id, config=config, status="failed",
        error=f"worker died on each of {attempts} attempt(s) ({type(exc).__name__}: {first_line})",
        split_id="", metrics_version=METRICS_VERSION, mia_spec_version=MIA_SPEC_VERSION,
        mubench_version=provenance.mubench_version(), git_commit=provenance.git_commit(),
        hardware=provenance.hardware(device), device=device, seconds=seconds, peak_rss_mb=0.0)


# ---- processes ----------------------------------------------------------------------------------

def _check_importable(classes: dict[str, type[Method]]) -> None:
    """A spawned worker finds a method class by its module and name (plain pickle): a class of an
    installed package, of a module on the Python path, or at the top level of the script being run
    (spawn runs the script again as `__mp_main__`, so its sweep must sit below an
    `if __name__ == "__main__":` guard) travels; one typed into a notebook or the REPL, or defined
    inside a function, does not (the Ray executor ships such a class by value, with cloudpickle)."""
    for name, cls in classes.items():
        module = sys.modules.get(cls.__module__)
        if "<locals>" in cls.__qualname__ or module is None or not getattr(module, "__file__", None):
            raise MubenchError(f"method {name!r}: its class {cls.__qualname__} (in {cls.__module__}) cannot be "
                               "imported by a worker process; define it at the top level of a module, or use "
                               "--executor ray")


def _run_pickled(settings: WorkerSettings, classes: bytes, config_json: str) -> str:
    """`run_in_worker`, with the method classes unpickled here: a class the worker cannot import
    then fails this run with a clear error instead of killing the worker before it starts."""
    try:
        loaded = pickle.loads(classes)
    except Exception as exc:  # noqa: BLE001 - any import error of the driver's module
        raise MubenchError(f"a worker process could not import the sweep's method classes ({type(exc).__name__}: "
                           f"{exc}); define them in an importable module, or use --executor ray") from None
    return run_in_worker(settings, loaded, config_json)


WATCH_PARENT_S = 0.5  # how often a worker checks that its driver is alive


def _die_with_driver() -> None:
    """A worker's initializer: a daemon thread that ends the worker (and the run it holds) as soon
    as its driver is gone (its parent pid changes: a SIGKILLed driver runs no clean-up), so a
    killed driver leaves no worker running a run nobody will record."""
    driver = os.getppid()

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(WATCH_PARENT_S)
        os._exit(1)

    threading.Thread(target=watch, name="mubench-watch-driver", daemon=True).start()


def _warm_up() -> None:
    import mubench.harness.runner  # noqa: F401  (torch, the tasks and the methods with it)


@dataclass(frozen=True)
class _Attempt:
    config: RunConfig
    number: int  # 1 for the first attempt
    slot: int
    started: float


@executors.register("processes")
class ProcessExecutor(Executor):
    """Each run in one of `workers` (default: the CPU count) spawned worker processes of this
    machine, without Ray; see the module docstring. A worker is a one-process
    `concurrent.futures.ProcessPoolExecutor` of its own, so a worker that dies breaks only its own
    pool and the run it held is known (retried, then recorded as failed); the others go on. Each
    run gets `threads_per_run` torch threads. On CUDA every worker uses the one GPU the driver's
    device names, all at once: there is no share per run as with Ray, so `workers` bounds the runs
    (and their memory) on the GPU. Method classes reach the workers by module and name
    (`_check_importable`)."""

    def __init__(self, harness: Harness, workers: int | None = None, threads_per_run: int = 1,
                 max_retries: int = 1) -> None:
        if workers is not None and workers < 1:
            raise MubenchError(f"--workers must be at least 1, got {workers}")
        self.workers = workers or os.cpu_count() or 1
        self.max_retries, self.threads_per_run = max_retries, threads_per_run
        self.device = str(harness.device)  # the driver's GPU (Ray picks one; here there is no picking)
        self.settings = dataclasses.replace(WorkerSettings.of(harness, threads_per_run), device=self.device)
        self._pools: list[ProcessPoolExecutor | None] = [None] * self.workers

    def map(self, configs: Sequence[RunConfig]) -> Iterator[Record]:
        """One run per worker at a time, started in the grid's order; records as runs finish."""
        classes = {name: methods.get(name) for name in {c.method for c in configs}}
        _check_importable(classes)
        pickled = pickle.dumps(classes)
        waiting = collections.deque((config, 1) for config in configs)
        idle = collections.deque(range(self.workers))
        in_flight: dict[Future[str], _Attempt] = {}
        try:
            while waiting or in_flight:
                while waiting and idle:
                    (config, number), slot = waiting.popleft(), idle.popleft()
                    future = self._pool(slot).submit(_run_pickled, self.settings, pickled, config.model_dump_json())
                    in_flight[future] = _Attempt(config, number, slot, time.perf_counter())
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in [f for f in in_flight if f in done]:  # in the order they started
                    attempt = in_flight.pop(future)
                    idle.append(attempt.slot)
                    record = self._collect(future, attempt, waiting)
                    if record is not None:
                        yield record
        finally:
            for attempt in in_flight.values():  # the driver stopped early: do not leave runs behind
                self._discard(attempt.slot)

    def start(self) -> None:
        """Spawn every worker and import the harness in it (a few seconds each)."""
        for future in [self._pool(slot).submit(_warm_up) for slot in range(self.workers)]:
            future.result()

    def _collect(self, future: Future[str], attempt: _Attempt,
                 waiting: collections.deque[tuple[RunConfig, int]]) -> Record | None:
        """The run's record; None when its worker died and the run waits for another attempt."""
        try:
            return Record.model_validate_json(future.result())
        except BrokenProcessPool as exc:  # the worker process died
            self._discard(attempt.slot)
            if attempt.number <= self.max_retries:
                waiting.appendleft((attempt.config, attempt.number + 1))
                return None
            return died_record(attempt.config, exc, time.perf_counter() - attempt.started, attempt.number, self.device)
        except Exception as exc:  # raised outside the method (which the harness records): stop, as locally
            raise exc from None

    def _pool(self, slot: int) -> ProcessPoolExecutor:
        """The slot's worker, started on its first run (spawned: CUDA cannot run in a forked child)."""
        pool = self._pools[slot]
        if pool is None:
            pool = self._pools[slot] = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                           initializer=_die_with_driver)
        return pool

    def _discard(self, slot: int) -> None:
        """End the slot's worker now (a run it holds is abandoned); the next run starts a new one."""
        pool, self._pools[slot] = self._pools[slot], None
        if pool is not None:
            processes = list((pool._processes or {}).values())  # no public handle before Python 3.14
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.kill()

    def close(self) -> None:
        """Stop the workers, side by side (a worker takes about a second to exit after torch)."""
        pools, self._pools = [p for p in self._pools if p is not None], [None] * self.workers
        stopping = [threading.Thread(target=pool.shutdown, kwargs={"cancel_futures": True}) for pool in pools]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()


# ---- Ray ----------------------------------------------------------------------------------------

def _pickle_unpackaged_by_value(classes: Iterable[type]) -> None:
    """A class from an installed distribution (mubench, baselines, a plug-in) travels by reference
    and is imported in the worker; one from a script, a notebook or a test module, which a worker
    may not be able to import, travels with its code (cloudpickle by value)."""
    from ray import cloudpickle

    installed = importlib.metadata.packages_distributions()
    for cls in classes:
        module = sys.modules.get(cls.__module__)
        if module is not None and cls.__module__.split(".")[0] not in installed and module.__name__ != "__main__":
            cloudpickle.register_pickle_by_value(module)


@executors.register("ray")
class RayExecutor(Executor):
    """Each run a Ray task; see the module docstring. `gpus_per_run` defaults to 1/4 of a GPU when
    the harness runs on CUDA (four runs share a GPU) and 0 on the CPU; each run gets
    `threads_per_run` CPUs and as many torch threads."""

    def __init__(self, harness: Harness, address: str | None = None, workers: int | None = None,
                 gpus_per_run: float | None = None, max_retries: int = 1, threads_per_run: int = 1) -> None:
        import ray

        if workers is not None and workers < 1:
            raise MubenchError(f"--workers must be at least 1, got {workers}")
        if gpus_per_run is not None and not (0 <= gpus_per_run <= 1 or (gpus_per_run > 1 and gpus_per_run == int(gpus_per_run))):
            raise MubenchError(f"--gpus-per-run must be a fraction in [0, 1] or a whole number, got {gpus_per_run}")
        on_gpu = harness.device.type == "cuda"
        self.gpus_per_run = (0.25 if on_gpu else 0.0) if gpus_per_run is None else float(gpus_per_run)
        self.max_retries, self.threads_per_run = max_retries, threads_per_run
        self.settings = WorkerSettings.of(harness, threads_per_run)
        self.device = str(harness.device)
        self._owned = not ray.is_initialized()
        self._reaper = None
        if self._owned:
            started = {"address": address} if address else {"num_cpus": workers or os.cpu_count() or 1}
            before = reaper.children_of(os.getpid())
            ray.init(**started, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            if not address:  # the local instance this driver started: ended with it, even if it is killed
                self._reaper = reaper.start(os.getpid(), reaper.children_of(os.getpid()) - before)
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads_per_run)

    def map(self, configs: Sequence[RunConfig]) -> Iterator[Record]:
        """Submits at most two runs per worker ahead (the grid's order, which keeps the runs of one
        split together, is roughly the order they start in) and yields records as runs finish."""
        import ray

        remote = ray.remote(run_in_worker).options(
            num_cpus=self.threads_per_run, num_gpus=self.gpus_per_run, max_retries=self.max_retries,
            retry_exceptions=False)
        classes = {name: methods.get(name) for name in {c.method for c in configs}}
        _pickle_unpackaged_by_value(classes.values())
        classes = ray.put(classes)
        waiting = collections.deque(configs)
        in_flight: dict[Any, tuple[RunConfig, float]] = {}
        try:
            while waiting or in_flight:
                while waiting and len(in_flight) < 2 * self.workers:
                    config = waiting.popleft()
                    in_flight[remote.remote(self.settings, classes, config.model_dump_json())] = (config, time.perf_counter())
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                config, started = in_flight.pop(ready[0])
                yield self._collect(ready[0], config, started)
        finally:
            for ref in in_flight:  # the driver stopped early: do not leave runs behind
                ray.cancel(ref, force=True)

    def _collect(self, ref: Any, config: RunConfig, started: float) -> Record:
        import ray
        from ray.exceptions import RayTaskError

        try:
            return Record.model_validate_json(ray.get(ref))
        except RayTaskError as exc:  # raised outside the method (which the harness records): stop, as locally
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            raise cause from None
        except ray.exceptions.RayError as exc:  # the worker process died, on every attempt
            return self.died_record(config, exc, time.perf_counter() - started)

    def died_record(self, config: RunConfig, exc: BaseException, seconds: float) -> Record:
        return died_record(config, exc, seconds, self.max_retries + 1, self.device)

    def close(self) -> None:
        import ray

        if self._owned and ray.is_initialized():
            ray.shutdown()
        self._owned = False
        reaper.stop(self._reaper)
        self._reaper = None

"""From a stream run's config to a record: the harness serves the requests and measures everything.

One run is (continual task, stream, method, hyper-parameters, seed, profile), stored as an ordinary
`mubench.harness.record.Record` whose `task` is the continual task, `scenario` the stream and `split_id`
the stream id. For one (task, stream, seed, profile) the harness prepares, once, what every
method shares: the per-task data on the device and the retrain oracle's accuracy after every
request. The oracle after request r is the model trained from scratch on the tasks retained then;
models go through the content-addressed ModelCache, keyed by the retained tasks and their
indices, so streams that reach the same retained set share one model. A method then gets a fresh
model (the oracle's initialisation) and the requests one at a time, each holding only the data it
declared (mubench.continual.methods); after each, the harness checks the model and measures every
task's test accuracy. A method that fails yields a failed record with the reason.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mubench.continual.methods import ContinualMethod, StreamRequest, continual_methods
from mubench.continual.metrics import STREAM_METRICS_VERSION, retained_accuracy, stream_metrics, unlearned_accuracy
from mubench.continual.spec import StreamState
from mubench.continual.streams import PreparedStream, load_or_make_stream
from mubench.continual.task import ContinualTask, continual_tasks
from mubench.continual.training import StreamSubset, class_mask, fit, fresh_model, task_accuracy
from mubench.errors import MubenchError
from mubench.harness import provenance
from mubench.harness.artifacts import ModelCache
from mubench.harness.record import Record, RunConfig
from mubench.harness.runner import check_architecture, derived_seed, resolve_device
from mubench.hashing import sha256_arrays
from mubench.tasks.base import TaskData
from mubench.transfer import synchronize

ORACLE_TRAINER_VERSION = "1"  # part of every cached oracle's key: bump when training changes


@dataclass
class PreparedStreamRun:
    """What every method of one (task, stream, seed, profile) shares."""

    task: ContinualTask
    profile: str
    seed: int
    stream: PreparedStream
    states: list[StreamState]
    train: dict[int, StreamSubset]
    test: dict[int, StreamSubset]
    mask: torch.Tensor
    oracle_acc: np.ndarray  # (requests, tasks)
    oracle_seconds: list[float]  # training seconds of the oracle after each request

    @property
    def chance(self) -> np.ndarray:
        return np.array([self.task.spec.chance(t) for t in range(self.task.spec.n_tasks)])

    def oracle_summary(self) -> tuple[list[float | None], list[float | None]]:
        """The oracle's retained and unlearned accuracy after every request."""
        return retained_accuracy(self.states, self.oracle_acc), unlearned_accuracy(self.states, self.oracle_acc)


class StreamHarness:
    def __init__(self, device: str = "cpu", cache: ModelCache | None = None) -> None:
        self.device = torch.device(resolve_device(device))
        self.cache = cache or ModelCache()
        self._data: dict[str, TaskData] = {}
        self._prepared: dict[tuple[str, str, int, str], PreparedStreamRun] = {}

    # -- models -----------------------------------------------------------------------------------
    def fresh_model(self, task: ContinualTask, profile: str, seed: int) -> nn.Module:
        return fresh_model(task.spec, profile, derived_seed(task.spec.name, seed, "init")).to(self.device)

    def train_from_scratch(self, task: ContinualTask, profile: str, seed: int, data: StreamSubset | None) -> nn.Module:
        """The oracle's training: a fresh model on `data` (None: nothing retained, no training)."""
        model = self.fresh_model(task, profile, seed)
        self._fit(model, task, profile, seed, data)
        return model

    def _fit(self, model: nn.Module, task: ContinualTask, profile: str, seed: int, data: StreamSubset | None) -> float:
        if data is None:
            return 0.0
        generator = torch.Generator().manual_seed(derived_seed(task.spec.name, seed, "train"))
        return fit(model, data, task.spec.profile(profile).recipe, class_mask(task.spec), generator)

    def evaluate(self, model: nn.Module, prepared: PreparedStreamRun,
                 networks: Callable[[int], nn.Module] | None = None) -> np.ndarray:
        """Every task's test accuracy (masked to its own classes), task t scored on `networks(t)`
        where given (ContinualMethod.task_model), else on `model`."""
        batch = prepared.task.spec.profile(prepared.profile).eval_batch_size
        network = networks or (lambda _task: model)
        return np.array([task_accuracy(network(t), prepared.test[t], prepared.mask, batch) for t in sorted(prepared.test)])

    # -- preparation ------------------------------------------------------------------------------
    def prepare(self, task: ContinualTask | str, stream: str, seed: int, profile: str) -> PreparedStreamRun:
        task = continual_tasks.get(task) if isinstance(task, str) else task
        key = (task.spec.name, stream, seed, profile)
        if key not in self._prepared:
            self._prepared.clear()
            self._prepared[key] = self._prepare(task, stream, seed, profile)
        return self._prepared[key]

    def _prepare(self, task: ContinualTask, stream_name: str, seed: int, profile: str) -> PreparedStreamRun:
        if task.spec.name not in self._data:
            self._data[task.spec.name] = task.load()
        data = self._data[task.spec.name]
        stream = load_or_make_stream(task.spec, data, stream_name, profile)
        train = {t: self._subset(task, data.train, idx, t) for t, idx in stream.indices.train.items()}
        test = {t: self._subset(task, data.test, idx, t) for t, idx in stream.indices.test.items()}
        prepared = PreparedStreamRun(task, profile, seed, stream, stream.stream.states(), train, test,
                                     class_mask(task.spec), np.zeros((0, 0)), [])
        rows, seconds = [], []
        for state in prepared.states:
            model, train_seconds = self._oracle(prepared, state.retained)
            rows.append(self.evaluate(model, prepared))
            seconds.append(train_seconds)
        prepared.oracle_acc, prepared.oracle_seconds = np.stack(rows), seconds
        return prepared

    def _subset(self, task: ContinualTask, pool, indices: np.ndarray, task_id: int) -> StreamSubset:
        index = torch.from_numpy(indices)
        return StreamSubset(task.to_inputs(pool.x[index]).to(self.device), pool.y[index].to(self.device),
                            torch.full((len(index),), task_id, dtype=torch.long, device=self.device))

    def _oracle(self, prepared: PreparedStreamRun, retained: tuple[int, ...]) -> tuple[nn.Module, float]:
        """The model trained from scratch on the `retained` tasks, through the model cache."""
        task, profile, seed = prepared.task, prepared.profile, prepared.seed
        spec = task.spec
        tasks = sorted(retained)
        description = {"continual_task": spec.name, "version": spec.version, "profile": profile,
                       "profile_spec": spec.profile(profile).model_dump(mode="json"), "seed": seed,
                       "role": "stream_oracle", "tasks": tasks, "setting": spec.setting,
                       "train_indices": sha256_arrays({f"task{t}": prepared.stream.indices.train[t] for t in tasks}),
                       "trainer": ORACLE_TRAINER_VERSION}
        data = StreamSubset.concat(prepared.train[t] for t in tasks) if tasks else None
        cached = self.cache.get_or_train(description, lambda: self.fresh_model(task, profile, seed),
                                         lambda model: self._fit(model, task, profile, seed, data))
        return cached.model, cached.train_seconds

    # -- one run ----------------------------------------------------------------------------------
    def run(self, config: RunConfig, task: ContinualTask | None = None) -> Record:
        """Serve the stream to the method; `task` overrides the registry (tests inject fake data)."""
        start = time.perf_counter()
        task = task or continual_tasks.get(config.task)
        if task.spec.name != config.task:
            raise MubenchError(f"config names continual task {config.task!r}, the task given is {task.spec.name!r}")
        prepared = self.prepare(task, config.scenario, config.seed, config.profile)
        try:
            metrics, status, error = self._serve(config, prepared), "ok", None
        except Exception as exc:  # noqa: BLE001 - a method's failure is recorded, the sweep goes on
            metrics, status, error = {}, "failed", _reason(exc)
        return Record(
            id=config.id, config=config, status=status, error=error, metrics=metrics, split_id=prepared.stream.id,
            data_source=task.data_source(), metrics_version=f"stream-{STREAM_METRICS_VERSION}",
            mia_spec_version="none", mubench_version=provenance.mubench_version(),
            git_commit=provenance.git_commit(), hardware=provenance.hardware(str(self.device)),
            device=str(self.device), seconds=time.perf_counter() - start, peak_rss_mb=provenance.peak_rss_mb())

    def _serve(self, config: RunConfig, prepared: PreparedStreamRun) -> dict[str, float]:
        method_cls = continual_methods.get(config.method)
        method = method_cls(method_cls.resolve(config.hparams))
        reference = self.fresh_model(prepared.task, config.profile, config.seed)
        model = self.fresh_model(prepared.task, config.profile, config.seed)
        kept: dict[int, StreamSubset] = {}
        acc, seconds = np.zeros((len(prepared.states), prepared.task.spec.n_tasks)), []
        for state in prepared.states:
            request = self._request(config, prepared, state, method, kept)
            started = time.perf_counter()
            serve = method.learn if state.step.op == "learn" else method.unlearn
            model = serve(model, state.step.task, request)
            synchronize(self.device)  # count the queued steps too
            seconds.append(time.perf_counter() - started)
            request.end()
            check_architecture(model, reference)
            if state.step.op == "unlearn":
                kept.pop(state.step.task, None)  # the unlearned task's data is deleted
            acc[state.request - 1] = self.evaluate(model, prepared, self._checked_networks(method, model, reference))
        values = stream_metrics(prepared.states, acc, prepared.chance, prepared.oracle_acc)
        values.update(_costs(prepared.states, seconds, prepared.oracle_seconds))
        return values

    @staticmethod
    def _checked_networks(method: ContinualMethod, model: nn.Module, reference: nn.Module) -> Callable[[int], nn.Module]:
        def network(task: int) -> nn.Module:
            chosen = method.task_model(model, task)
            if chosen is not model:
                check_architecture(chosen, reference)
            return chosen
        return network

    def _request(self, config: RunConfig, prepared: PreparedStreamRun, state: StreamState,
                 method: ContinualMethod, kept: dict[int, StreamSubset]) -> StreamRequest:
        step = state.step
        if step.op == "learn" and method.keeps_data:
            kept[step.task] = prepared.train[step.task]
        if method.keeps_data:
            subsets = dict(kept)
        else:
            subsets = {step.task: prepared.train[step.task]} if step.op == "learn" else {}
        spec = prepared.task.spec
        return StreamRequest(
            step.op, step.task, subsets, method.keeps_data, state.retained, prepared.mask,
            spec.profile(config.profile).recipe, self.device,
            seed=derived_seed(config.task, config.scenario, config.method, config.seed, "method", state.request),
            trainer=lambda data: self.train_from_scratch(prepared.task, config.profile, config.seed, data))


def _costs(states: list[StreamState], seconds: list[float], oracle_seconds: list[float]) -> dict[str, float]:
    """The method's seconds in total, per kind of request and per request, and their ratio to the
    oracle's training seconds over the whole stream (cost/rte)."""
    values = {f"cost/seconds@{s.request}": t for s, t in zip(states, seconds)}
    values["cost/seconds"] = float(sum(seconds))
    for op in ("learn", "unlearn"):
        values[f"cost/{op}_seconds"] = float(sum(t for s, t in zip(states, seconds) if s.step.op == op))
    if sum(oracle_seconds) > 0:
        values["cost/rte"] = values["cost/seconds"] / float(sum(oracle_seconds))
    return values


def _reason(exc: Exception) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


def make_config(task: str, stream: str, method: str, seed: int, profile: str,
                overrides: dict[str, str] | None = None) -> RunConfig:
    """The run config of one stream run, its hyper-parameters resolved (defaults + overrides)."""
    spec = continual_tasks.get(task).spec
    spec.stream(stream)
    spec.profile(profile)
    method_cls = continual_methods.get(method)
    return RunConfig(task=task, task_version=spec.version, scenario=stream, method=method,
                     method_version=method_cls.version, hparams=dict(method_cls.resolve(overrides)),
                     seed=seed, profile=profile)

"""A run in two phases (`Harness.begin`, `Harness.finish`) and the local executor's overlap.

The device phase unlearns and computes the metrics that read a model; the host phase computes the
outputs-only metrics (the membership attacks' scikit-learn fits) from a context without models or
subsets. With `overlap`, the local executor runs each host phase in a thread beside the next run's
device phase. Checked here: every metric marked outputs-only gives the same value without the
models, subsets and counterfactual builder (so the split cannot change a number); the two phases
give `run`'s record; overlapped records equal the plain loop's, in order, failures included; the
host phase really runs beside the next method; an error outside the method still lets the previous
run reach the store.
"""

from __future__ import annotations

import dataclasses
import threading
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from helpers import debug_config
from mubench.errors import UnknownNameError
from mubench.evaluation import EVALUATED_PARTS, EvaluationContext, Outputs, PopulationOutputs
from mubench.harness.artifacts import ModelCache
from mubench.harness.population import AUDIT_PARTS
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.methods import Access, Method, methods, register_method
from mubench.metrics import compute_metrics, metrics
from mubench.metrics.core import Metric, in_phase
from mubench.orchestration.executors import LocalExecutor, make_executor
from mubench.orchestration.store import Store
from mubench.orchestration.sweep import GridSpec, expand_grid, run_grid
from mubench.request import Subset
from mubench.targets import Target

MEASURED = {"cost/seconds", "cost/rte", "cost/peak_mem_mb", "objective/cost"}  # wall clock and memory


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


@pytest.fixture
def harness(tmp_path):
    return Harness(cache=ModelCache(tmp_path / "models"))


def computed(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if k not in MEASURED}


@pytest.fixture
def temporary(monkeypatch):
    """Register methods and metrics for one test: the registries are global, so each is swapped
    for a copy that vanishes afterwards."""
    for registry in (methods, metrics):
        registry.names()  # entry points first, so they are in the copy
        monkeypatch.setattr(registry, "_items", dict(registry._items))

    def metric(key: str, compute) -> None:  # type: ignore[no-untyped-def]
        metrics.add(key, Metric(key, "info", compute, "a test's probe", outputs_only=True))

    return SimpleNamespace(method=lambda name, cls: register_method(name)(cls), metric=metric)


# ---- which metrics are outputs-only --------------------------------------------------------------

def seeded_linear(inputs: int, outputs: int, generator: torch.Generator) -> nn.Linear:
    model = nn.Linear(inputs, outputs)
    with torch.no_grad():
        model.weight.copy_(torch.randn(outputs, inputs, generator=generator))
        model.bias.copy_(torch.randn(outputs, generator=generator))
    return model


def classification_context(seed: int = 0) -> EvaluationContext:
    """Every part of every model, random logits over 3 classes; bias and sensitive attributes on the
    test part; shadow outputs; a model, subsets and a counterfactual builder that the device
    metrics would use. Built afresh each call: attack values are cached on the outputs."""
    g = torch.Generator().manual_seed(seed)
    n = 240

    def outputs() -> dict[str, Outputs]:
        return {part: Outputs(torch.randn(n, 3, generator=g) * 2, torch.randint(0, 3, (n,), generator=g))
                for part in (*EVALUATED_PARTS, "unseen")}

    unlearned, oracle, original = outputs(), outputs(), outputs()
    shadow = {side: [{part: Outputs(torch.randn(n, 3, generator=g), original[part].labels)
                      for part in ("forget", "heldout", "unseen")} for _ in range(3)] for side in ("in", "out")}
    population = PopulationOutputs(*([{part: Outputs(torch.randn(n, 3, generator=g), original[part].labels)
                                       for part in AUDIT_PARTS} for _ in range(3)] for _ in range(2)))
    model = seeded_linear(4, 3, g)
    subsets = {part: Subset(torch.randn(n, 4, generator=g), unlearned[part].labels) for part in EVALUATED_PARTS}
    attributes = {"bias_aligned": torch.randint(0, 2, (n,), generator=g), "colour": torch.randint(0, 3, (n,), generator=g)}
    return EvaluationContext(unlearned, oracle, original, test_attributes=attributes, method_seconds=1.5,
                             oracle_seconds=6.0, method_work=2.0, oracle_work=8.0, models={"unlearned": model, "oracle": model, "original": model},
                             subsets=subsets, method_peak_memory_mb=12.0, sensitive_attributes=("colour",),
                             counterfactual=lambda x, attributes, generator: x.flip(1), shadow_outputs=shadow,
                             population=population)


def regression_context(seed: int = 0) -> EvaluationContext:
    g = torch.Generator().manual_seed(seed)
    target = Target(kind="regression", missing_value=0.0)

    def outputs() -> dict[str, Outputs]:
        return {part: Outputs(torch.rand(120, 12, generator=g) * 60, torch.rand(120, 12, generator=g) * 60, target)
                for part in EVALUATED_PARTS}

    model = seeded_linear(4, 12, g)
    unlearned = outputs()
    return EvaluationContext(unlearned, outputs(), outputs(), method_seconds=1.0, oracle_seconds=4.0,
                             method_work=1.0, oracle_work=4.0,
                             method_peak_memory_mb=3.0, models={"unlearned": model, "oracle": model, "original": model},
                             subsets={p: Subset(torch.randn(120, 4, generator=g), unlearned[p].labels)
                                      for p in EVALUATED_PARTS},
                             target=target)


def without_models(ctx: EvaluationContext) -> EvaluationContext:
    return dataclasses.replace(ctx, models={}, subsets={}, counterfactual=None)


@pytest.mark.parametrize("build", [classification_context, regression_context], ids=["class", "regression"])
def test_every_outputs_only_metric_gives_its_value_without_models_subsets_or_counterfactuals(build):
    full, host = compute_metrics(build(), phase="host"), compute_metrics(without_models(build()), phase="host")
    assert host == full
    outputs_only = {k for k, m in metrics.items() if m.outputs_only and build().target.kind in m.targets}
    assert set(full) == outputs_only  # none of them gave None: the contexts exercise each one
    assert compute_metrics(build()) == full | compute_metrics(build(), phase="device")


def test_the_model_reading_metrics_are_the_device_phase():
    device = {k for k, m in metrics.items() if in_phase(m, "device")}
    assert {"relearn/steps", "repr/cka_oracle", "robust/fgsm_acc", "gap/fgsm_acc", "fair/counterfactual_bias",
            "cost/params_changed"} <= device
    assert {"mia/svc", "gap/mia_svc", "mia/lr_auc", "mia/entropy_lr", "forget/acc"}.isdisjoint(device)
    assert not any(in_phase(m, "host") and in_phase(m, "device") for _, m in metrics.items())
    unmarked = Metric("x", "info", lambda ctx: 0.0, "a plug-in's metric that does not say")
    assert in_phase(unmarked, "device") and not in_phase(unmarked, "host")  # the safe default


# ---- the two phases -----------------------------------------------------------------------------

def test_begin_then_finish_is_run_and_the_host_phase_holds_no_model(harness):
    config = debug_config("grad_ascent")
    whole = harness.run(config)
    pending = harness.begin(config)
    assert pending.context is not None and pending.context.models == {} and pending.context.subsets == {}
    assert set(pending.values) == {k for k, m in metrics.items() if not m.outputs_only} & set(whole.metrics)
    split = harness.finish(pending)
    assert split.status == whole.status == "ok" and split.id == whole.id and split.split_id == whole.split_id
    assert computed(split.metrics) == computed(whole.metrics)
    assert list(split.metrics) == sorted(split.metrics) == list(whole.metrics)  # by name, as the registry computes them


def test_an_error_in_the_host_phase_is_a_failed_record_naming_it(harness, temporary):
    metric = temporary.metric

    def broken(ctx):  # type: ignore[no-untyped-def]
        raise ValueError("this attack cannot fit")

    metric("test/broken_attack", broken)
    record = harness.run(debug_config("identity"))
    assert record.status == "failed" and record.metrics == {}
    assert record.error.startswith("ValueError: this attack cannot fit"), record.error


def test_a_non_finite_host_metric_fails_the_run_as_before(harness, temporary):
    metric = temporary.metric
    metric("test/nan_attack", lambda ctx: float("nan"))
    record = harness.run(debug_config("identity"))
    assert record.status == "failed" and "non-finite metrics ['test/nan_attack']" in record.error


# ---- the local executor's overlap ----------------------------------------------------------------

class Raises(Method):
    access = Access.FORGET

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        raise ValueError("this method always fails")


def grid(*method_names: str) -> list[RunConfig]:
    return expand_grid(GridSpec(tasks=["debug"], scenarios=["random_10", "class_0"], methods=list(method_names),
                                seeds=[0], profile="smoke"))


def test_overlapped_records_are_the_plain_loops_in_order_failures_included(tmp_path, harness, temporary):
    method = temporary.method
    method("test_overlap_raises", Raises)
    configs = grid("identity", "grad_ascent", "test_overlap_raises", "finetune")
    plain = run_grid(configs, Store(tmp_path / "plain.sqlite"), harness, executor=LocalExecutor(harness, overlap=False))
    arrived: list[str] = []
    overlapped = run_grid(configs, Store(tmp_path / "overlap.sqlite"), harness,
                          lambda record, skipped: arrived.append(record.id), LocalExecutor(harness, overlap=True))
    assert arrived == [r.id for r in plain] == [c.id for c in configs]  # in order, as they finished
    for mine, theirs in zip(plain, overlapped):
        assert theirs.status == mine.status and theirs.error == mine.error, mine.config.label
        assert computed(theirs.metrics) == computed(mine.metrics), mine.config.label
    assert [r.status for r in overlapped].count("failed") == 2  # the raising method, on both scenarios
    assert {r.id: r for r in Store(tmp_path / "overlap.sqlite").records()} == {r.id: r for r in overlapped}


class SignalsTheProbe(Method):
    """Sets the probe's event from its unlearn: the next run's device phase."""

    access = Access.FORGET
    started = threading.Event()

    def unlearn(self, model, request, hp):  # type: ignore[no-untyped-def]
        type(self).started.set()
        return model


def test_the_host_phase_runs_in_a_thread_beside_the_next_runs_method(harness, temporary):
    """The first run's host phase waits for the second run's method to start: it can only see it
    start if the two overlap (one after another, it would wait out its 20 s and record 0)."""
    method, metric = temporary.method, temporary.metric
    SignalsTheProbe.started.clear()
    method("test_signals_the_probe", SignalsTheProbe)
    threads: list[str] = []

    def probe(ctx):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return 1.0 if SignalsTheProbe.started.wait(timeout=20) else 0.0

    metric("test/overlap_probe", probe)
    configs = [debug_config("identity"), debug_config("test_signals_the_probe")]
    records = list(LocalExecutor(harness, overlap=True).map(configs))
    assert [r.status for r in records] == ["ok", "ok"]
    assert records[0].metrics["test/overlap_probe"] == 1.0
    assert all(name.startswith("mubench-host-phase") for name in threads) and len(threads) == 2


def test_overlap_is_asked_for_never_the_default(harness, monkeypatch):
    """Off by default on every device: method seconds measured beside another run's host phase
    include the contention, so the leaderboard's cost columns are taken without it."""
    assert LocalExecutor(harness).overlap is False and make_executor("local", harness).overlap is False
    assert make_executor("local", harness, overlap=True).overlap is True
    monkeypatch.setattr(harness, "device", torch.device("cuda"))  # only read, never used here
    assert LocalExecutor(harness).overlap is False


def test_an_error_outside_a_method_stops_the_sweep_after_the_previous_run_is_stored(tmp_path, harness):
    bad = debug_config("identity").model_copy(update={"task": "no_such_task"})
    configs = [debug_config("grad_ascent"), bad]
    store = Store(tmp_path / "store.sqlite")
    with pytest.raises(UnknownNameError, match="no_such_task"):
        run_grid(configs, store, harness, executor=LocalExecutor(harness, overlap=True))
    assert [r.id for r in store.records()] == [configs[0].id]  # the run before the error is not lost

"""Continual streams end to end (mubench/continual/runner.py, methods.py, cli.py, baselines/continual.py)
on a tiny fake MNIST written as IDX files, plus one slow run on the real mirror."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import baselines.continual  # noqa: F401  (registers the continual baselines; the entry point does so once installed)
from helpers import REAL_MIRROR, needs_real_mnist
from mubench.cli.app import app
from mubench.continual.methods import ContinualMethod, StreamRequest, continual_methods, register_continual_method
from mubench.continual.runner import StreamHarness, make_config
from mubench.continual.spec import ContinualProfile, StreamSpec
from mubench.continual.split_mnist import SPEC, SplitMnist
from mubench.continual.task import continual_tasks
from mubench.continual.training import StreamSubset, class_mask
from mubench.data.idx import write_idx
from mubench.data.mnist import PARTS, MnistSource, PinnedIdx
from mubench.errors import AccessError, MubenchError
from mubench.harness.record import RunConfig
from mubench.hashing import sha256_file
from mubench.orchestration.store import Store
from mubench.results.aggregate import records_frame, summarise
from mubench.tasks.spec import Recipe

# The smoke profile shrunk for fake data, and a short stream: unlearn 0, then learn 2 (room to relapse).
TINY = SPEC.model_copy(update={
    "profiles": {"smoke": ContinualProfile(model="mlp", model_args={"hidden": [32]}, train_per_task=80, test_per_task=40,
                                           recipe=Recipe(optimizer="adam", lr=3e-3, epochs=5, batch_size=32))},
    "streams": (*SPEC.streams, StreamSpec(name="tiny", description="a short test stream", steps="L0,L1,U0,L2"))})


class TinySplitMnist(SplitMnist):
    spec = TINY


def _fake_mnist(folder: Path) -> MnistSource:
    """Ten easy 'digits': each class a fixed random pattern plus noise; 40 train, 20 test per class."""
    rng = np.random.default_rng(0)
    templates = rng.random((10, 28, 28)) < 0.2

    def images(labels: np.ndarray) -> np.ndarray:
        noise = rng.integers(0, 90, size=(len(labels), 28, 28))
        return np.clip(templates[labels] * 170 + noise, 0, 255).astype(np.uint8)

    train_labels, test_labels = np.repeat(np.arange(10), 40), np.repeat(np.arange(10), 20)
    arrays = {"train_images": images(train_labels), "train_labels": train_labels.astype(np.uint8),
              "test_images": images(test_labels), "test_labels": test_labels.astype(np.uint8)}
    folder.mkdir(parents=True)
    pinned = {}
    for part, array in arrays.items():
        path = folder / PARTS[part]
        write_idx(path, array)
        pinned[part] = PinnedIdx("0" * 64, sha256_file(path), array.shape)
    return MnistSource(folder.name, pinned)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """MUBENCH_HOME / MIRROR in a temporary folder, the tiny task on fake MNIST, one harness."""
    root = tmp_path_factory.mktemp("continual")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUBENCH_HOME", str(root / "home"))
        patch.setenv("MUBENCH_MIRROR", str(root / "mirror"))
        patch.setenv("MUBENCH_OFFLINE", "1")
        task = TinySplitMnist(_fake_mnist(root / "mirror" / "fakemnist"))
        yield task, StreamHarness(), root


@pytest.fixture(scope="module")
def runs(fake):
    task, harness, _ = fake
    return {m: harness.run(_config(m, sequential={"unlearn_lr": 0.03}), task) for m in ("retrain", "no_unlearn", "sequential")}


def _config(method: str, stream: str = "tiny", **overrides: dict) -> RunConfig:
    """make_config, but for the tiny task's spec (the registered split_mnist has no 'tiny' stream)."""
    cls = continual_methods.get(method)
    return RunConfig(task="split_mnist", task_version=TINY.version, scenario=stream, method=method,
                     method_version=cls.version, hparams=dict(cls.resolve(overrides.get(method))), seed=0,
                     profile="smoke")


def test_the_oracle_sits_at_chance_on_unlearned_tasks_and_retrain_reproduces_it(fake, runs):
    task, harness, _ = fake
    prepared = harness.prepare(task, "tiny", 0, "smoke")
    retained, unlearned = prepared.oracle_summary()
    assert unlearned[2:] == pytest.approx([0.5] * 2, abs=0.02)  # zero output layer: exactly chance
    assert min(r for r in retained) > 0.9
    record = runs["retrain"]
    assert record.status == "ok", record.error
    assert record.metrics["stream/unlearned_acc"] == pytest.approx(0.5, abs=0.02)
    assert record.metrics["stream/gap_retained"] == 0.0 and record.metrics["stream/gap_unlearned"] == 0.0
    assert record.metrics["stream/relapse"] == 0.0


def test_no_unlearn_keeps_what_it_was_asked_to_forget(runs):
    m = runs["no_unlearn"].metrics
    assert runs["no_unlearn"].status == "ok"
    assert m["stream/unlearned_acc@3"] > 0.85  # right after "unlearn 0": task 0 untouched
    assert m["stream/task0_acc@3"] == m["stream/task0_acc@2"]  # the model was returned unchanged
    assert m["cost/unlearn_seconds"] < 0.05


def test_sequential_runs_and_every_metric_is_a_finite_float(runs):
    for record in runs.values():
        assert record.status == "ok", record.error
        assert all(isinstance(v, float) and np.isfinite(v) for v in record.metrics.values())
        assert {"stream/retained_acc", "stream/unlearned_acc", "stream/relapse", "cost/seconds",
                "cost/rte"} <= set(record.metrics)
    assert runs["sequential"].metrics["stream/unlearned_acc@3"] < runs["no_unlearn"].metrics["stream/unlearned_acc@3"]


def test_records_are_stored_read_back_and_aggregated(fake, runs):
    task, harness, root = fake
    store = Store(root / "results.sqlite")
    for record in runs.values():
        assert store.put(record)
        assert not store.put(record)  # idempotent: the id is the config's hash
    back = store.records(task=["split_mnist"], scenario=["tiny"])
    assert sorted(r.config.method for r in back) == ["no_unlearn", "retrain", "sequential"]
    assert back[0].split_id == harness.prepare(task, "tiny", 0, "smoke").stream.id
    assert back[0].metrics_version == "stream-1"
    summary = summarise(records_frame(back))
    assert summary.loc[(summary["method"] == "retrain") & (summary["metric"] == "stream/unlearned_acc"),
                       "mean"].item() == pytest.approx(0.5, abs=0.02)


# -- data access --------------------------------------------------------------------------------

SEEN: dict[str, list[tuple[str, int, list[int]]]] = {"keeper": [], "forgetter": []}


@register_continual_method("test_keeper")
class Keeper(ContinualMethod):
    keeps_data = True

    def learn(self, model, task_id, request):
        SEEN["keeper"].append(("learn", task_id, request.available()))
        return model

    def unlearn(self, model, task_id, request):
        SEEN["keeper"].append(("unlearn", task_id, request.available()))
        return model


@register_continual_method("test_forgetter")
class Forgetter(Keeper):
    keeps_data = False

    def learn(self, model, task_id, request):
        SEEN["forgetter"].append(("learn", task_id, request.available()))
        return model

    def unlearn(self, model, task_id, request):
        SEEN["forgetter"].append(("unlearn", task_id, request.available()))
        return model


@register_continual_method("test_peeker")
class Peeker(Forgetter):
    def unlearn(self, model, task_id, request):
        request.data()  # declared keeps_data = False: there is nothing to read
        return model


@register_continual_method("test_hoarder")
class Hoarder(Forgetter):
    def learn(self, model, task_id, request):
        if hasattr(self, "old"):
            self.old.data()  # a request kept from an earlier call has ended
        self.old = request
        return model


def test_the_harness_hands_only_declared_data(fake):
    task, harness, _ = fake
    for name in ("keeper", "forgetter"):
        SEEN[name].clear()
        record = harness.run(_config(f"test_{name}"), task)
        assert record.status == "ok", record.error
    assert SEEN["forgetter"] == [("learn", 0, [0]), ("learn", 1, [1]), ("unlearn", 0, []), ("learn", 2, [2])]
    assert SEEN["keeper"] == [("learn", 0, [0]), ("learn", 1, [0, 1]), ("unlearn", 0, [0, 1]), ("learn", 2, [1, 2])]


# -- per-task networks (ContinualMethod.task_model) ----------------------------------------------

@register_continual_method("test_per_task")
class PerTask(Forgetter):
    """Keeps one network per learned task: a trained one (sequential fine-tuning) for task 0, an
    untrained fresh copy for every other task. The harness must score task t on task t's."""

    def learn(self, model, task_id, request):
        if not hasattr(self, "blank"):
            self.blank = copy.deepcopy(model)
        return request.fit(model, request.data(task_id)) if task_id == 0 else model

    def task_model(self, model, task_id):
        return model if task_id == 0 else self.blank


@register_continual_method("test_wrong_shape")
class WrongShape(Forgetter):
    def task_model(self, model, task_id):
        return nn.Linear(3, 3)


def test_each_task_is_scored_on_the_network_the_method_names(fake):
    task, harness, _ = fake
    per_task = harness.run(_config("test_per_task"), task)
    assert per_task.status == "ok", per_task.error
    m = per_task.metrics
    assert m["stream/task0_acc@1"] > 0.9
    blank = harness.evaluate(harness.fresh_model(task, "smoke", 0),
                             harness.prepare(task, "tiny", 0, "smoke"))
    assert m["stream/task1_acc@2"] == pytest.approx(float(blank[1]))  # the untrained network's score
    wrong = harness.run(_config("test_wrong_shape"), task)
    assert wrong.status == "failed" and "architecture" in wrong.error


@pytest.mark.parametrize("method, message", [("test_peeker", "declared keeps_data = False"),
                                             ("test_hoarder", "has ended")])
def test_undeclared_data_is_absent_and_the_run_fails_saying_so(fake, method, message):
    task, harness, _ = fake
    record = harness.run(_config(method), task)
    assert record.status == "failed" and "AccessError" in record.error and message in record.error


def test_a_request_refuses_to_carry_undeclared_data():
    subset = StreamSubset(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    common = dict(retained=(), mask=class_mask(SPEC), recipe=TINY.profile("smoke").recipe,
                  device=torch.device("cpu"), seed=0)
    with pytest.raises(AccessError, match="does not keep data"):
        StreamRequest("unlearn", 0, {0: subset}, keeps_data=False, **common)
    with pytest.raises(AccessError, match="does not keep data"):
        StreamRequest("learn", 1, {0: subset, 1: subset}, keeps_data=False, **common)
    request = StreamRequest("learn", 1, {1: subset}, keeps_data=False, **common)
    with pytest.raises(AccessError, match="task 0's data is not in this request"):
        request.data(0)


def test_method_registry_and_hyper_parameters():
    assert {"retrain", "sequential", "no_unlearn"} <= set(continual_methods.names())
    assert continual_methods.get("retrain").keeps_data and not continual_methods.get("no_unlearn").keeps_data
    hp = continual_methods.get("sequential").resolve({"unlearn_lr": "0.001"})
    assert hp.unlearn_lr == 0.001 and hp.unlearn_epochs == 5
    with pytest.raises(MubenchError, match="no hyper-parameter 'lr'"):
        continual_methods.get("sequential").resolve({"lr": 1})
    with pytest.raises(TypeError):
        register_continual_method("test_not_a_method")(object)  # type: ignore[arg-type]


# -- command line -------------------------------------------------------------------------------

def test_cli_lists_streams():
    result = CliRunner().invoke(app, ["stream", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {"task": "split_mnist", "stream": "uncle_5a", "requests": "L0,L1,U0,L2,L3,L4,U1"}.items() <= next(
        r for r in rows if r["task"] == "split_mnist" and r["stream"] == "uncle_5a").items()


def test_cli_runs_a_stream_prints_the_table_and_stores_the_record(fake, monkeypatch):
    task, _, root = fake
    continual_tasks.names()  # the built-in tasks are registered; swap in the fake one
    monkeypatch.setitem(continual_tasks._items, "split_mnist", task)
    store = root / "cli.sqlite"
    args = ["stream", "run", "--task", "split_mnist", "--stream", "tiny", "--method", "no_unlearn",
            "--seed", "0", "--profile", "smoke", "--store", str(store)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3: unlearn 0" in result.stdout and "oracle retained" in result.stdout and "relapse" in result.stdout
    assert [r.config.method for r in Store(store).records(task=["split_mnist"])] == ["no_unlearn"]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "stored before" in again.stderr
    summary = CliRunner().invoke(app, ["stream", "results", "--task", "split_mnist", "--store", str(store)])
    assert summary.exit_code == 0 and "no_unlearn" in summary.stdout and "relapse" in summary.stdout


def test_cli_names_a_bad_stream(fake):
    result = CliRunner().invoke(app, ["stream", "run", "--task", "split_mnist", "--stream", "uncle_5x"])
    assert result.exit_code != 0 and "uncle_5a" in str(result.exception)


# -- the real mirror ----------------------------------------------------------------------------

@pytest.mark.slow
@needs_real_mnist
@pytest.mark.slow
def test_real_split_mnist_smoke_stream(tmp_path, monkeypatch):
    """The smoke profile of uncle_5c on the real MNIST with `retrain` and `sequential`."""
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_MIRROR", str(REAL_MIRROR))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    harness, started = StreamHarness(), time.perf_counter()
    records = {m: harness.run(make_config("split_mnist", "uncle_5c", m, 0, "smoke")) for m in ("retrain", "sequential")}
    for method, record in records.items():
        assert record.status == "ok", record.error
        print(method, {k: round(v, 3) for k, v in record.metrics.items() if "@" not in k})
    retrain = records["retrain"].metrics
    assert retrain["stream/retained_acc"] > 0.95 and retrain["stream/unlearned_acc"] == 0.5
    assert retrain["stream/gap_retained"] == 0.0
    print(f"wall {time.perf_counter() - started:.1f} s")

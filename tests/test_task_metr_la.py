"""METR-LA (mubench/data/metr_la.py, mubench/tasks/metr_la.py) on small files in the published
formats, written here: T-GCN's speed CSV, DCRNN's pandas HDF5 store and its adj_mx.pkl graph."""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import MIRROR_SKIP, REAL_MIRROR
from mubench.data import metr_la as data
from mubench.data.files import DataFile, FileForm
from mubench.errors import CorruptDataError, MissingDataError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.metrics.regression import regression_error
from mubench.orchestration.sweep import GridSpec, expand_grid
from mubench.tasks import metr_la as task_module
from mubench.tasks.base import Task, TaskData, tasks
from mubench.tasks.spec import ProfileSpec, Recipe

SENSORS = ["773869", "767541", "767542", "717447"]
STEPS = 2 * data.STEPS_PER_DAY  # two days


def _speeds(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(STEPS)[:, None]
    speeds = 55 + 8 * np.sin(2 * np.pi * t / data.STEPS_PER_DAY + np.arange(len(SENSORS))) + rng.normal(0, 1, (STEPS, len(SENSORS)))
    speeds[100:130, 2] = 0.0  # an outage: missing readings
    return np.round(speeds, 4)


def _write_graph(path, ids=SENSORS) -> None:
    adjacency = np.array([[1, 0.5, 0, 0], [0.2, 1, 0.7, 0], [0, 0.4, 1, 0], [0, 0, 0, 1]], dtype=np.float32)
    with open(path, "wb") as handle:
        pickle.dump([list(ids), {s: i for i, s in enumerate(ids)}, adjacency], handle, protocol=2)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def week_form(tmp_path, monkeypatch):
    """A mirror with a CSV slice and a graph, and a SeriesForm pinning them."""
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    folder = tmp_path / "mirror" / "metr-week"
    folder.mkdir(parents=True)
    monkeypatch.setenv("MUBENCH_MIRROR", str(tmp_path / "mirror"))
    speeds = _speeds(np.random.default_rng(0))
    pd.DataFrame(speeds, columns=SENSORS).to_csv(folder / "los_speed.csv", index=False)
    _write_graph(folder / "adj_mx.pkl")
    form = data.SeriesForm("week", DataFile("metr-week", (FileForm("los_speed.csv", _sha(folder / "los_speed.csv")),)),
                           DataFile("metr-week", (FileForm("adj_mx.pkl", _sha(folder / "adj_mx.pkl")),)), "test slice")
    return form, folder, speeds


def test_csv_slice_and_graph_are_read(week_form):
    form, _, speeds = week_form
    series = data.read_form(form)
    assert series.sensor_ids == tuple(SENSORS)
    np.testing.assert_allclose(series.speeds, speeds, rtol=1e-6)
    assert series.adjacency.shape == (4, 4) and series.adjacency[0, 1] == pytest.approx(0.5)


def test_h5_store_in_dcrnn_layout_is_read(tmp_path):
    speeds = _speeds(np.random.default_rng(1))
    index = pd.date_range("2012-03-01", periods=STEPS, freq="5min")
    path = tmp_path / "metr-la.h5"
    pd.DataFrame(speeds, index=index, columns=SENSORS).to_hdf(path, key="df")
    ids, read = data.read_speed_h5(path)
    assert ids == tuple(SENSORS)
    np.testing.assert_allclose(read, speeds, rtol=1e-6)


def test_h5_with_a_gap_in_time_is_refused(tmp_path):
    index = pd.date_range("2012-03-01", periods=STEPS, freq="5min").delete(50)
    path = tmp_path / "metr-la.h5"
    pd.DataFrame(_speeds(np.random.default_rng(1))[1:], index=index, columns=SENSORS).to_hdf(path, key="df")
    with pytest.raises(CorruptDataError, match="not 5 minutes apart"):
        data.read_speed_h5(path)


def test_bad_csv_cell_names_file_line_and_sensor(tmp_path):
    path = tmp_path / "los_speed.csv"
    path.write_text("773869,767541\n60.1,59.0\n61.0,fast\n")
    with pytest.raises(CorruptDataError, match=r"los_speed.csv, line 3: sensor 767541: 'fast'"):
        data.read_speed_csv(path)


def test_negative_speed_and_bad_header_are_refused(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("773869,767541\n60.1,-3\n61.0,60\n")
    with pytest.raises(CorruptDataError, match="not a finite non-negative"):
        data.read_speed_csv(path)
    path.write_text("time,767541\n60.1,3\n61.0,60\n")
    with pytest.raises(CorruptDataError, match="line 1: the header must list numeric sensor ids"):
        data.read_speed_csv(path)


def test_graph_sensors_must_match_the_speed_columns(week_form):
    form, folder, _ = week_form
    _write_graph(folder / "adj_mx.pkl", ids=list(reversed(SENSORS)))
    form = replace(form, graph=DataFile("metr-week", (FileForm("adj_mx.pkl", _sha(folder / "adj_mx.pkl")),)))
    with pytest.raises(CorruptDataError, match="do not match the 4 sensors"):
        data.read_form(form)


def test_a_pickle_naming_any_other_global_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "adj_mx.pkl"
    path.write_bytes(pickle.dumps([Exploit()]))
    with pytest.raises(CorruptDataError, match="refusing to load global"):
        data.read_graph(path)


def test_missing_forms_name_every_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    with pytest.raises(MissingDataError) as error:
        data.load_series()
    assert "metr-la.h5" in str(error.value) and "los_speed.csv" in str(error.value) and "adj_mx.pkl" in str(error.value)


def test_diffusion_channels_by_hand():
    adjacency = np.array([[0, 1, 0], [1, 0, 3], [0, 0, 0]], dtype=np.float32)
    speeds = np.array([[10.0, 20.0, 40.0]], dtype=np.float32)
    features = task_module.diffusion_channels(speeds, adjacency, hops=1)
    # forward P_f = D_out^-1 W: row 0 -> sensor 1; row 1 -> (1/4) s0 + (3/4) s2; row 2 has no edges
    np.testing.assert_allclose(features[0, :, 1], [20.0, 32.5, 0.0])
    # backward P_b = D_in^-1 W^T: in-edges of 0: from 1; of 1: from 0; of 2: from 1
    np.testing.assert_allclose(features[0, :, 2], [20.0, 10.0, 20.0])
    np.testing.assert_allclose(features[0, :, 0], speeds[0])


def test_windows_split_in_time_and_targets_are_the_next_steps(week_form):
    form, _, speeds = week_form
    pools = task_module.build_task_data(data.read_form(form))
    boundary = int(STEPS * task_module.TRAIN_FRACTION)
    train_start, test_start = pools.train.attributes["start"], pools.test.attributes["start"]
    assert int(train_start.max()) + 24 <= boundary <= int(test_start.min())  # no step on both sides
    for pool in (pools.train, pools.test):
        i = len(pool) // 3
        t, s = int(pool.attributes["start"][i]), int(pool.attributes["sensor"][i])
        np.testing.assert_allclose(pool.y[i].numpy(), speeds[t + 12:t + 24, s], rtol=1e-6)
        np.testing.assert_allclose(pool.x[i, 0].numpy(), speeds[t:t + 12, s], rtol=1e-6)
        assert int(pool.attributes["day"][i]) == (t + 12) // data.STEPS_PER_DAY
    # the outage (steps 100-129 of sensor 2) leaves no window with all 12 targets missing
    assert bool((pools.train.y != 0).any(dim=1).all())
    all_missing_starts = set(range(88, 107))  # targets 100..129 cover all of t+12..t+23 for t in 88..106
    sensor2 = pools.train.attributes["sensor"] == 2
    assert not all_missing_starts & set(pools.train.attributes["start"][sensor2].tolist())


class TinyMetrLA(Task):
    """The METR-LA task's code on the fake two-day slice, with profile sizes that fit it."""

    def __init__(self, form: data.SeriesForm) -> None:
        small = ProfileSpec(model="speed_mlp", model_args={"hidden": [16]},
                            recipe=Recipe(optimizer="adam", lr=3e-3, epochs=2, batch_size=128),
                            train_size=1200, val_size=200, test_size=200)
        self.spec = task_module.SPEC.model_copy(update={"name": "metr_la_tiny", "profiles": {"smoke": small}})
        self.form = form

    def load(self) -> TaskData:
        return task_module.build_task_data(data.read_form(self.form))


@pytest.fixture
def tiny(week_form, monkeypatch):
    monkeypatch.setattr(tasks, "_items", {**tasks._items, "metr_la_tiny": TinyMetrLA(week_form[0])})
    return "metr_la_tiny"


def _run(harness: Harness, task: str, scenario: str, method: str):
    return harness.run(RunConfig(task=task, task_version="1.0", scenario=scenario, method=method,
                                 method_version="1", hparams={}, seed=0, profile="smoke"))


def test_harness_on_regression_oracle_gaps_zero_identity_keeps_forget_error(tiny):
    torch.set_num_threads(1)
    harness = Harness()
    for scenario in ("sensor", "random_5"):
        retrain = _run(harness, tiny, scenario, "retrain")
        identity = _run(harness, tiny, scenario, "identity")
        assert retrain.status == identity.status == "ok", (retrain.error, identity.error)
        assert retrain.metrics["gap/forget_mae"] == 0.0 and retrain.metrics["gap/test_rmse"] == 0.0
        prepared = harness.prepare(tiny, scenario, 0, "smoke")
        original_forget = regression_error(prepared.original_outputs["forget"], "mae")
        assert identity.metrics["forget/mae"] == pytest.approx(original_forget)
        assert identity.metrics["cost/params_changed"] == 0.0
        assert "test/acc" not in identity.metrics and "test/mae_h12" in identity.metrics
    sensor = harness.prepare(tiny, "sensor", 0, "smoke")  # the forget set is one sensor's windows
    assert len(set(harness.task_data(tasks.get(tiny)).train.attributes["sensor"][sensor.split.forget].tolist())) == 1


def test_class_only_methods_are_not_paired_with_regression_tasks(tiny):
    configs = expand_grid(GridSpec(tasks=[tiny], scenarios=["random_5"], methods=None, seeds=[0], profile="smoke"))
    assert {c.method for c in configs} >= {"identity", "retrain", "finetune"}
    assert "random_label" not in {c.method for c in configs}
    record = _run(Harness(), tiny, "random_5", "random_label")
    assert record.status == "failed" and "defined for class targets" in record.error


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_MIRROR / "metr-la-1week").is_dir(), reason=f"{MIRROR_SKIP}metr-la-1week/ in {REAL_MIRROR}")
def test_real_week_slice(monkeypatch):
    monkeypatch.setenv("MUBENCH_MIRROR", str(REAL_MIRROR))
    series = data.read_form(data.WEEK)
    assert series.speeds.shape == (2016, 207)
    assert 1.0 <= float(series.speeds.min()) and float(series.speeds.max()) <= 70.0
    assert float(series.speeds.mean()) == pytest.approx(58.89, abs=0.01)
    assert int((series.adjacency > 0).sum()) == 1722


def test_stuck_sensor_poisons_one_sensors_windows_for_the_original_only(tiny):
    torch.set_num_threads(1)
    harness = Harness()
    prepared = harness.prepare(tiny, "stuck_sensor", 0, "smoke")
    clean = harness.task_data(tasks.get(tiny)).train
    forget = torch.from_numpy(np.asarray(prepared.split.forget))
    assert len(set(clean.attributes["sensor"][forget].tolist())) == 1  # one sensor's windows
    assert prepared.split.poison  # the poison is part of the split's identity
    # the forget set the metrics read is the stuck data: own channel and targets at 5 mph ...
    stuck = prepared.subsets["forget"]
    assert bool((stuck.y == 5.0).all()) and bool((stuck.x[:, 0, :] == 5.0).all())
    # ... while the neighbourhood channels keep the true traffic and the cached pool stays clean
    assert torch.equal(stuck.x[:, 1:, :].cpu(), clean.x[forget][:, 1:, :])
    assert not bool((clean.y[forget] == 5.0).all())
    retrain = _run(harness, tiny, "stuck_sensor", "retrain")
    assert retrain.status == "ok" and retrain.metrics["gap/forget_mae"] == 0.0


def test_stuck_readings_refuse_a_missing_speed_and_flat_inputs():
    from mubench.tasks.scenarios import stuck_readings

    x, y, forget = torch.ones(6, 5, 12), torch.ones(6, 12), np.array([1, 3])
    moved, targets = stuck_readings(x, y, np.arange(6), forget, lambda t: t, 12, {"speed": 7.5},
                                    np.random.default_rng(0))
    assert bool((moved[:, 0] == 7.5).all()) and bool((moved[:, 1:] == 1.0).all()) and bool((targets == 7.5).all())
    assert bool((x == 1.0).all())  # the pool itself is never modified
    with pytest.raises(ValueError, match="0 marks a missing reading"):
        stuck_readings(x, y, np.arange(6), forget, lambda t: t, 12, {"speed": 0.0}, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"needs \(channels, steps\) inputs"):
        stuck_readings(torch.ones(6, 60), y, np.arange(6), forget, lambda t: t, 12, {"speed": 5.0},
                       np.random.default_rng(0))


def test_a_poison_is_refused_on_a_task_of_the_other_target(tiny):
    from mubench.harness.splits import make_poison, make_split
    from mubench.tasks.debug import SPEC as DEBUG_SPEC
    from mubench.tasks.spec import ScenarioSpec

    debug = tasks.get("debug")
    wrong = DEBUG_SPEC.model_copy(update={"scenarios": (*DEBUG_SPEC.scenarios, ScenarioSpec(
        name="stuck", kind="stuck_sensor", params={"attribute": "group", "speed": 5.0}, domain="resilience",
        description="a regression poison on a classification task"))})
    debug_wrong = type(debug).__new__(type(debug))
    debug_wrong.__dict__.update({**debug.__dict__, "spec": wrong})
    data = debug_wrong.load()
    split = make_split(debug, data, "random_10", 0, "smoke")  # the refusal comes before any draw
    with pytest.raises(ValueError, match="poisons regression targets, the task's target is class"):
        make_poison(debug_wrong, data, split, "stuck", 0, "smoke")

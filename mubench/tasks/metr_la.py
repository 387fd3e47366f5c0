"""Traffic speed forecasting on METR-LA (Li et al. 2018): the next hour from the past hour.

A sample is one sensor at one time: its input is the past 12 five-minute steps of the sensor's
speed together with its graph-diffused neighbourhood (DCRNN's bidirectional random walks on the
sensor graph, Li et al. 2018: the forward and backward transition matrices to the power 1 and 2,
so 5 channels x 12 steps), its target the sensor's next 12 speeds. Making the sensor-time pair the
sample lets a forget request name what a person or an operator can ask to remove: one sensor's
data, the data of one day, or a random set of windows. Targets equal to 0 mph are missing values
(failed detectors) and are masked in the loss and in every metric; samples whose 12 targets are
all missing are dropped. The series is split in time as in DCRNN: windows of the first 80 % of
the steps form the training pool (validation is drawn from it at random, like every task, so
that membership inference's held-out samples share the members' distribution), windows that start
after that point the test pool, so no test input or target was seen in training.
"""

from __future__ import annotations

import numpy as np
import torch

from mubench.data.files import DataFile
from mubench.data.metr_la import FORMS, STEPS_PER_DAY, WEEK, SpeedSeries, available_form, load_series
from mubench.tasks.base import Pool, Task, TaskData, cached_task_data, tasks
from mubench.tasks.spec import DataFileSpec, ProfileSpec, Recipe, ScenarioSpec, TaskSpec

PAST_STEPS = 12
FUTURE_STEPS = 12
HOPS = 2
TRAIN_FRACTION = 0.8
CHANNELS = 1 + 2 * HOPS


def transition_matrices(adjacency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DCRNN's random-walk transitions: forward D_out^-1 W and backward D_in^-1 W^T (a row of zeros
    for a sensor without edges)."""
    w = adjacency.astype(np.float64)

    def normalise(m: np.ndarray) -> np.ndarray:
        degree = m.sum(axis=1, keepdims=True)
        return np.divide(m, degree, out=np.zeros_like(m), where=degree > 0)

    return normalise(w), normalise(w.T)


def diffusion_channels(speeds: np.ndarray, adjacency: np.ndarray, hops: int = HOPS) -> np.ndarray:
    """(steps, sensors, 1 + 2 hops): the speeds, then P_f^k x and P_b^k x for k = 1..hops, per step."""
    forward, backward = transition_matrices(adjacency)
    channels = [speeds.astype(np.float64)]
    for transition in (forward, backward):
        current = speeds.astype(np.float64)
        for _ in range(hops):
            current = current @ transition.T  # row t: P @ x_t over sensors
            channels.append(current)
    return np.stack(channels, axis=-1).astype(np.float32)


def window_pool(features: np.ndarray, speeds: np.ndarray, starts: np.ndarray, first_step: int) -> Pool:
    """Samples for windows starting at `starts` (absolute steps), every sensor: x (N, C, past), y
    (N, future); attributes: sensor index, day of the first predicted step (from the series start),
    absolute start step. Windows whose targets are all missing (0) are dropped."""
    n_sensors = speeds.shape[1]
    t = np.repeat(starts, n_sensors)
    s = np.tile(np.arange(n_sensors), len(starts))
    past = t[:, None] + np.arange(PAST_STEPS)
    future = t[:, None] + PAST_STEPS + np.arange(FUTURE_STEPS)
    y = speeds[future, s[:, None]]
    keep = (y != 0).any(axis=1)
    t, s, past, y = t[keep], s[keep], past[keep], y[keep]
    x = features[past, s[:, None]].transpose(0, 2, 1)  # (N, past, C) -> (N, C, past)
    day = (t + PAST_STEPS) // STEPS_PER_DAY
    return Pool(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)),
                {"sensor": torch.from_numpy(s.astype(np.int64)), "day": torch.from_numpy(day.astype(np.int64)),
                 "start": torch.from_numpy(t.astype(np.int64))})


def build_task_data(series: SpeedSeries) -> TaskData:
    steps = series.speeds.shape[0]
    boundary = int(steps * TRAIN_FRACTION)
    span = PAST_STEPS + FUTURE_STEPS
    if boundary < span or steps - boundary < span:
        raise ValueError(f"METR-LA: {steps} steps are too few for {span}-step windows on both sides of the split")
    features = diffusion_channels(series.speeds, series.adjacency)
    train_starts = np.arange(0, boundary - span + 1)
    test_starts = np.arange(boundary, steps - span + 1)
    return TaskData(train=window_pool(features, series.speeds, train_starts, 0),
                    test=window_pool(features, series.speeds, test_starts, boundary))


def _scenarios() -> tuple[ScenarioSpec, ...]:
    return (
        ScenarioSpec(name="sensor", kind="one_group", params={"attribute": "sensor"}, domain="privacy",
                     description="every training window whose target is the sensor with the most windows "
                                 "(ties: the first in the file): a device owner's request"),
        ScenarioSpec(name="day", kind="one_group", params={"attribute": "day", "value": 1}, domain="privacy",
                     description="every training window whose first predicted step falls on the series' second day"),
        ScenarioSpec(name="random_5", kind="random", params={"fraction": 0.05}, domain="privacy",
                     description="5 % of the training windows (sensor x time), drawn uniformly at random"),
        ScenarioSpec(name="stuck_sensor", kind="stuck_sensor", params={"attribute": "sensor", "speed": 5.0},
                     domain="resilience",
                     description="the sensor with the most windows failed stuck at 5 mph: its own readings and "
                                 "targets read 5 while its neighbours' traffic stays true; the original learned "
                                 "them, the oracle never saw them"),
    )


def _profiles() -> dict[str, ProfileSpec]:
    return {
        "smoke": ProfileSpec(model="speed_mlp", model_args={"hidden": [64, 64]},
                             recipe=Recipe(optimizer="adam", lr=1e-3, epochs=5, batch_size=256),
                             train_size=20_000, val_size=3_000, test_size=5_000, eval_batch_size=4096),
        "standard": ProfileSpec(model="speed_gru", model_args={"hidden": 64, "layers": 2},
                                recipe=Recipe(optimizer="adam", lr=1e-3, epochs=30, batch_size=1024,
                                              schedule="cosine"),
                                train_size=None, val_size=20_000, test_size=None, eval_batch_size=8192),
    }


SPEC = TaskSpec(
    name="metr_la",
    version="1.1",
    title="METR-LA traffic speed forecasting",
    modality="timeseries",
    description=__doc__.split("\n\n")[0].strip(),
    num_classes=FUTURE_STEPS,
    input_shape=(CHANNELS, PAST_STEPS),
    target="regression",
    missing_value=0.0,
    source=(DataFileSpec(name=WEEK.speeds.name, sha256=WEEK.speeds.forms[0].sha256),
            DataFileSpec(name=WEEK.graph.name, sha256=WEEK.graph.forms[0].sha256)),
    source_folder=WEEK.speeds.folder,
    profiles=_profiles(),
    scenarios=_scenarios(),
    main_metric="test/mae",
    notes=(
        "Two published forms are read: DCRNN's full metr-la.h5 (34,272 steps, 1 March - 27 June 2012; no digest is "
        "published, so it is checked by content) and T-GCN's one-week CSV slice los_speed.csv (2,016 steps; pinned). "
        "The full form is used when present; every record names the form in its data source.",
        "The sensor graph is DCRNN's adj_mx.pkl, read with a restricted unpickler after its sha256 is checked; the "
        "speed columns must name its 207 sensors in its order.",
        "0 mph marks a missing reading: such targets are masked in the loss and every metric, windows whose 12 targets "
        "are all missing are dropped; inputs keep the zeros, as in DCRNN.",
        "Split in time: windows inside the first 80 % of the steps form the training pool, windows starting after it "
        "the test pool (DCRNN uses 70/10/20; here validation is a random part of the training pool).",
        "Days are counted from the first step of the series; the CSV slice has no timestamps (T-GCN dates it to "
        "1-7 March 2012, not verified here), so the slice is assumed to start at midnight.",
        "A sensor's readings still enter its neighbours' diffusion inputs after its own windows are forgotten: the "
        "forget set is the windows the sensor is the target of.",
        "Speeds are scaled inside the models by fixed constants ((v - 55) / 20), not fitted on any split.",
    ),
    licence="METR-LA as released with DCRNN (Li et al. 2018; liyaguang/DCRNN, MIT); T-GCN's slice (lehaifeng/T-GCN)",
    citation="Li, Yu, Shahabi & Liu 2018, Diffusion Convolutional Recurrent Neural Network (ICLR); "
             "Jagadish et al. 2014 (METR-LA); Zhao et al. 2019, T-GCN",
)


class MetrLA(Task):
    spec = SPEC

    def data_files(self) -> list[DataFile]:
        form = available_form() or FORMS[0]
        return [form.speeds, form.graph]

    def data_source(self) -> str:
        form = available_form()
        return form.description if form is not None else ""

    def load(self) -> TaskData:
        form = available_form()
        key = [SPEC.name, SPEC.version, form.name if form else None, PAST_STEPS, FUTURE_STEPS, HOPS, TRAIN_FRACTION]
        return cached_task_data("metr_la", key, lambda: build_task_data(load_series()))


tasks.add("metr_la", MetrLA())

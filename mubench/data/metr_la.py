"""METR-LA loop-detector speeds (Li et al. 2018, DCRNN) and its sensor graph, in the published forms.

- The full series `metr-la.h5` as DCRNN released it: a pandas HDF5 store whose one frame holds
  34,272 five-minute steps (1 March - 27 June 2012) x 207 sensors, in mph, 0 where a detector
  reported nothing. No digest of it is published anywhere we could find, so it is checked by
  content instead: a numeric frame, sensor ids equal to the graph's, a regular 5-minute index.
- The one-week CSV slice T-GCN released as "Los-loop" (`los_speed.csv`: a header of 207 sensor
  ids, then 2,016 rows of speeds, no timestamps), pinned by sha256; the mirror holds this one.
- The sensor graph `adj_mx.pkl` of DCRNN: [sensor ids, id -> index, 207 x 207 float32 weights]
  (a thresholded Gaussian kernel of road distances), pinned by sha256 and read with the
  restricted unpickler (mubench.data.safe_pickle). Both forms use this graph; the speed columns
  must name the graph's sensors in the graph's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mubench.data.files import DataFile, FileForm, find, locate, missing_message
from mubench.data.safe_pickle import load_pickle
from mubench.errors import CorruptDataError, MissingDataError

STEP_MINUTES = 5
STEPS_PER_DAY = 24 * 60 // STEP_MINUTES
GRAPH_SHA256 = "a35687c6e15aa228dc45027b0ed2a0ea0f4ec78f573deb992c595092d12f61b3"
WEEK_CSV_SHA256 = "7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4"
UNPINNED = None  # the full h5 has no published digest: it is verified by content (see module docstring)
H5_URL = "https://zenodo.org/records/5724362/files/metr-la.h5?download=1"
GRAPH_URL = "https://raw.githubusercontent.com/liyaguang/DCRNN/master/data/sensor_graph/adj_mx.pkl"
CSV_URL = "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/data/los_speed.csv"


@dataclass(frozen=True)
class SeriesForm:
    """One published form: the speed file and the graph file that goes with it."""

    name: str
    speeds: DataFile
    graph: DataFile
    description: str  # recorded as the run's data source


FULL = SeriesForm("full", DataFile("metr-la", (FileForm("metr-la.h5", UNPINNED),), H5_URL),
                  DataFile("metr-la", (FileForm("adj_mx.pkl", GRAPH_SHA256),), GRAPH_URL),
                  "")
WEEK = SeriesForm("week", DataFile("metr-la-1week", (FileForm("los_speed.csv", WEEK_CSV_SHA256),), CSV_URL),
                  DataFile("metr-la-1week", (FileForm("adj_mx.pkl", GRAPH_SHA256),), GRAPH_URL),
                  "one-week CSV slice (T-GCN's Los-loop, 2,016 of 34,272 steps)")
FORMS = (FULL, WEEK)


@dataclass(frozen=True)
class SpeedSeries:
    """Speeds (steps x sensors, float32 mph, 0 = missing), sensor ids, the graph, and the form."""

    speeds: np.ndarray
    sensor_ids: tuple[str, ...]
    adjacency: np.ndarray
    form: SeriesForm


def available_form() -> SeriesForm | None:
    """The first form whose speed and graph files are both found (the full series first)."""
    for form in FORMS:
        if find(form.speeds) is not None and find(form.graph) is not None:
            return form
    return None


def load_series(forms: tuple[SeriesForm, ...] = FORMS) -> SpeedSeries:
    """Read the first available form; MissingDataError naming every form's files when none is found."""
    for form in forms:
        if find(form.speeds) is not None and find(form.graph) is not None:
            return read_form(form)
    wanted = "\n".join(missing_message(f) for form in forms for f in (form.speeds, form.graph) if find(f) is None)
    raise MissingDataError(f"METR-LA needs one of its forms (the full metr-la.h5 or the one-week CSV slice), "
                           f"each with the sensor graph adj_mx.pkl:\n{wanted}")


def read_form(form: SeriesForm) -> SpeedSeries:
    graph_path, _ = locate(form.graph)
    graph_ids, adjacency = read_graph(graph_path)
    speed_path, _ = locate(form.speeds)
    if speed_path.suffix == ".h5":
        ids, speeds = read_speed_h5(speed_path)
    else:
        ids, speeds = read_speed_csv(speed_path)
    if ids != graph_ids:
        first = next((i for i, (a, b) in enumerate(zip(ids, graph_ids)) if a != b), min(len(ids), len(graph_ids)))
        raise CorruptDataError(f"{speed_path}: its {len(ids)} sensor columns do not match the {len(graph_ids)} "
                               f"sensors of {graph_path} (first difference at column {first})")
    return SpeedSeries(speeds, ids, adjacency, form)


def read_graph(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """DCRNN's adj_mx.pkl: [sensor ids, {id: index}, (n, n) weights]; checked for consistency."""
    content = load_pickle(path, encoding="latin1")
    if not (isinstance(content, list | tuple) and len(content) == 3):
        raise CorruptDataError(f"{path}: expected [sensor_ids, sensor_id_to_ind, adj_mx], got {type(content).__name__}")
    ids, index, adjacency = content
    ids = tuple(str(i) for i in ids)
    adjacency = np.asarray(adjacency)
    n = len(ids)
    if adjacency.shape != (n, n) or not np.issubdtype(adjacency.dtype, np.floating):
        raise CorruptDataError(f"{path}: adjacency of shape {adjacency.shape} {adjacency.dtype} for {n} sensors")
    if not np.isfinite(adjacency).all() or (adjacency < 0).any():
        raise CorruptDataError(f"{path}: adjacency weights must be finite and non-negative")
    if {str(k): int(v) for k, v in dict(index).items()} != {sensor: i for i, sensor in enumerate(ids)}:
        raise CorruptDataError(f"{path}: the id -> index map disagrees with the sensor id list")
    return ids, adjacency.astype(np.float32)


def read_speed_csv(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """T-GCN's CSV: a header of sensor ids, then one row of speeds per 5-minute step."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CorruptDataError(f"{path}: not a speed CSV ({exc})") from None
    ids = tuple(c.strip() for c in frame.columns)
    if not ids or not all(i.isdigit() for i in ids):
        bad = next((i for i in ids if not i.isdigit()), "")
        raise CorruptDataError(f"{path}, line 1: the header must list numeric sensor ids (found {bad!r})")
    values = frame.apply(pd.to_numeric, errors="coerce")
    bad_rows, bad_cols = np.nonzero(values.isna().to_numpy())
    if len(bad_rows):
        row, col = bad_rows[0], bad_cols[0]
        raise CorruptDataError(f"{path}, line {row + 2}: sensor {ids[col]}: {frame.iat[row, col]!r} is not a speed")
    return ids, _checked_speeds(path, values.to_numpy(np.float64))


def read_speed_h5(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """DCRNN's pandas HDF5 store: one frame, 5-minute DatetimeIndex, one column per sensor id."""
    try:
        frame = pd.read_hdf(path)
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise CorruptDataError(f"{path}: not a readable pandas HDF5 store with one frame ({exc})") from None
    if not isinstance(frame, pd.DataFrame):
        raise CorruptDataError(f"{path}: holds a {type(frame).__name__}, not a DataFrame")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise CorruptDataError(f"{path}: the index must be timestamps, found {type(frame.index).__name__}")
    steps = np.diff(frame.index.values.astype("datetime64[ns]").astype(np.int64))  # any stored resolution
    expected = pd.Timedelta(minutes=STEP_MINUTES).value
    if len(steps) and not (steps == expected).all():
        where = int(np.flatnonzero(steps != expected)[0])
        raise CorruptDataError(f"{path}: timestamps are not 5 minutes apart after {frame.index[where]}")
    try:
        values = frame.to_numpy(np.float64)
    except (TypeError, ValueError) as exc:
        raise CorruptDataError(f"{path}: non-numeric speeds ({exc})") from None
    return tuple(str(c) for c in frame.columns), _checked_speeds(path, values)


def _checked_speeds(path: Path, values: np.ndarray) -> np.ndarray:
    if values.ndim != 2 or values.shape[0] < 2:
        raise CorruptDataError(f"{path}: expected steps x sensors speeds, got shape {values.shape}")
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise CorruptDataError(f"{path}: step {row}, sensor column {col}: speed {values[row, col]} is not a "
                               f"finite non-negative number")
    return values.astype(np.float32)

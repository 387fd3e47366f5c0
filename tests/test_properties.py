"""Property-based tests (hypothesis, bounded in examples and time) of what reads outside input:
the headers of data files (IDX, the Adult CSVs, CWRU's MATLAB files, CIFAR-10's pickles) either
parse or are refused with CorruptDataError naming the file, never another exception; and of the
identities everything is keyed by (same config, same id; any change, another id)."""

from __future__ import annotations

import dataclasses
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mubench.data.adult import OFFICIAL as ADULT
from mubench.data.adult import read_adult_file
from mubench.data.cwru import OFFICIAL as CWRU
from mubench.data.cwru import read_drive_end
from mubench.data.idx import read_idx, write_idx
from mubench.data.safe_pickle import load_pickle
from mubench.errors import CorruptDataError
from mubench.harness.record import RunConfig

# derandomize: CI runs the same examples every time (a failure found once is kept as a plain test below)
BOUNDED = settings(max_examples=60, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- IDX (MNIST) ---------------------------------------------------------------------------------

@BOUNDED
@given(raw=st.binary(max_size=64))
def test_any_bytes_are_an_idx_array_or_a_clear_refusal(tmp_path_factory, raw):
    path = _write(tmp_path_factory.mktemp("idx"), "x.idx", raw)
    try:
        array = read_idx(path)
    except CorruptDataError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(array, np.ndarray)


@BOUNDED
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), dtype=st.just(np.uint8),  # write_idx writes MNIST's type only
       header_cut=st.integers(0, 30))
def test_idx_round_trips_and_any_truncation_is_refused(tmp_path_factory, shape, dtype, header_cut):
    folder = tmp_path_factory.mktemp("idx")
    array = (np.arange(int(np.prod(shape))) % 200).astype(dtype).reshape(shape)
    path = folder / "a.idx"
    write_idx(path, array, compress=False)
    np.testing.assert_array_equal(read_idx(path), array)
    raw = path.read_bytes()
    cut = _write(folder, "cut.idx", raw[:max(0, len(raw) - 1 - header_cut)])
    with pytest.raises(CorruptDataError, match="cut.idx"):
        read_idx(cut)


# -- Adult (CSV) ---------------------------------------------------------------------------------

_cells = st.text(alphabet=string.ascii_letters + string.digits + " -?.<=>,|", max_size=12)


@BOUNDED
@given(lines=st.lists(st.lists(_cells, min_size=0, max_size=17).map(", ".join), max_size=5))
def test_any_csv_lines_are_an_adult_table_or_a_clear_refusal(tmp_path_factory, lines):
    for part in (ADULT.train, ADULT.test):
        text = "\n".join(([part.first_line] if part.first_line else []) + lines) + "\n"
        path = _write(tmp_path_factory.mktemp("adult"), part.form.name, text.encode())
        try:
            table = read_adult_file(path, part)
        except CorruptDataError as exc:
            assert str(path) in str(exc)
        else:
            assert len(table) == len([line for line in lines if line.strip()])


# -- CWRU (.mat) ---------------------------------------------------------------------------------

@BOUNDED
@given(raw=st.binary(max_size=256))
def test_any_bytes_are_a_cwru_recording_or_a_clear_refusal(tmp_path_factory, raw):
    path = _write(tmp_path_factory.mktemp("mat"), "97.mat", b"MATLAB 5.0 MAT-file" + raw)
    with pytest.raises(CorruptDataError, match="97.mat"):
        read_drive_end(path, CWRU.recordings[0])


@BOUNDED
@given(n=st.integers(1, 40), wrong_name=st.booleans(), bad_value=st.sampled_from([None, np.nan, np.inf]))
def test_a_mat_file_with_the_wrong_variable_or_values_is_refused_by_name(tmp_path_factory, n, wrong_name, bad_value):
    from scipy.io import savemat

    recording = dataclasses.replace(CWRU.recordings[0], length=n)
    samples = np.linspace(-1, 1, n).reshape(-1, 1)
    if bad_value is not None:
        samples[n // 2] = bad_value
    path = tmp_path_factory.mktemp("mat") / "97.mat"
    savemat(path, {("X999_DE_time" if wrong_name else recording.variable): samples})
    if wrong_name or bad_value is not None:
        with pytest.raises(CorruptDataError, match="97.mat"):
            read_drive_end(path, recording)
    else:
        signal, _ = read_drive_end(path, recording)
        np.testing.assert_allclose(signal, samples.ravel())


# -- CIFAR-10 (restricted pickle) ----------------------------------------------------------------

@BOUNDED
@given(raw=st.binary(max_size=128))
def test_any_bytes_are_a_data_pickle_or_a_clear_refusal(tmp_path_factory, raw):
    path = _write(tmp_path_factory.mktemp("pickle"), "data_batch_1", raw)
    try:
        load_pickle(path)
    except CorruptDataError as exc:
        assert str(path) in str(exc)


def test_a_pickle_that_names_a_global_is_refused_without_running_it(tmp_path):
    import pickle

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(print))  # a reference to builtins.print: code, not data
    with pytest.raises(CorruptDataError, match="data_batch_1"):
        load_pickle(path)


# -- identities -----------------------------------------------------------------------------------

_BASE = dict(task="debug", task_version="1.1", scenario="class_0", method="finetune", method_version="1",
             hparams={"lr": 0.01, "epochs": 5}, seed=0, profile="smoke")
_changes = st.one_of(
    st.builds(lambda v: {"task": v}, st.text(min_size=1, max_size=8).filter(lambda v: v != "debug")),
    st.builds(lambda v: {"task_version": v}, st.sampled_from(["1.0", "1.2", "2.0"])),
    st.builds(lambda v: {"scenario": v}, st.sampled_from(["random_10", "class_1", "bias_aligned"])),
    st.builds(lambda v: {"method": v}, st.sampled_from(["identity", "retrain", "scrub"])),
    st.builds(lambda v: {"seed": v}, st.integers(1, 10**6)),
    st.builds(lambda v: {"profile": v}, st.just("standard")),
    st.builds(lambda v: {"hparams": {"lr": v, "epochs": 5}},
              st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != 0.01)),
    st.builds(lambda v: {"hparams": {"lr": 0.01, "epochs": v}}, st.integers().filter(lambda v: v != 5)),
)


@BOUNDED
@given(change=_changes)
def test_the_record_id_is_the_config_and_any_change_makes_another(change):
    base = RunConfig(**_BASE)
    assert RunConfig(**_BASE).id == base.id  # same config, same id
    assert RunConfig(**{**_BASE, "hparams": dict(reversed(list(_BASE["hparams"].items())))}).id == base.id  # key order
    assert RunConfig(**{**_BASE, **change}).id != base.id


@pytest.fixture(scope="module")
def debug_data():
    from mubench.tasks import tasks

    task = tasks.get("debug")
    return task, task.load()


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), scenario=st.sampled_from(["random_10", "class_0"]))
def test_the_split_id_is_the_drawn_indices(debug_data, seed, scenario):
    from mubench.harness.splits import make_split

    task, data = debug_data
    split = make_split(task, data, scenario, seed, "smoke")
    assert make_split(task, data, scenario, seed, "smoke").id == split.id  # same arguments, same split
    other = make_split(task, data, scenario, seed + 1, "smoke")
    if scenario == "random_10":  # a random draw depends on the seed; a class does not
        assert other.id != split.id
    tampered = dataclasses.replace(split, forget=split.forget[1:], retain=np.sort(np.append(split.retain, split.forget[0])))
    assert tampered.id != split.id


@pytest.mark.parametrize("last", [b"\x80", b"\x01"])
def test_a_pickle_announcing_a_huge_frame_is_refused_without_allocating_it(tmp_path, last):
    """Found by the property test above: a FRAME opcode (0x95) with a length near 2^63 made the
    unpickler allocate the frame (MemoryError) or overflow, instead of reporting a corrupt file."""
    path = _write(tmp_path, "data_batch_1", b"G" + b"\x00" * 8 + b"\x95" + b"\x00" * 7 + last)
    with pytest.raises(CorruptDataError, match="data_batch_1"):
        load_pickle(path)

"""CWRU bearing faults (mubench/data/cwru.py, mubench/tasks/cwru.py): `.mat` fixtures written with
scipy.io.savemat in CWRU's layout, the refusals, the leak-free split, the 48 -> 12 kHz handling,
the cnn1d model, and the real mirror when it is there."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from scipy.signal import resample_poly

from helpers import MIRROR_SKIP, REAL_MIRROR
from mubench.data.cwru import (
    OFFICIAL,
    CwruSource,
    Recording,
    Signal,
    estimate_sampling_rate,
    load_cwru,
    read_drive_end,
    to_target_rate,
)
from mubench.data.files import locate
from mubench.errors import CorruptDataError, MissingDataError
from mubench.harness.models import cnn1d
from mubench.tasks import tasks
from mubench.tasks.cwru import CWRU, SIGNAL_SCALE, WINDOW, build_cwru, scale_windows, window_starts

HAS_REAL_CWRU = (REAL_MIRROR / "cwru").is_dir()
needs_real_cwru = pytest.mark.skipif(not HAS_REAL_CWRU, reason=f"{MIRROR_SKIP}cwru/ in {REAL_MIRROR}")

SHAFT_HZ = 1797 / 60.0


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.setenv("MUBENCH_MIRROR", str(tmp_path / "mirror"))


def machine_signal(n: int, rate_hz: int, seed: int = 0, orders: int = 40) -> np.ndarray:
    """Shaft harmonics of orders 1..orders (random amplitudes and phases) plus white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate_hz
    tones = sum(rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * k * SHAFT_HZ * t + rng.uniform(0, 2 * np.pi))
                for k in range(1, orders + 1))
    return tones + 0.05 * rng.standard_normal(n) + rng.uniform(-0.02, 0.02)


def write_mat(path: Path, number: int, de: object, rpm: int = 1797, de_key: str | None = None) -> str:
    """A CWRU-layout file (drive end, fan end, RPM) at `path`; returns its sha256."""
    key = de_key or f"X{number:03d}_DE_time"
    fan_end = np.zeros((np.shape(de)[0], 1)) if np.ndim(de) == 2 else np.zeros((3, 1))
    scipy.io.savemat(path, {key: de, f"X{number:03d}_FE_time": fan_end,
                            f"X{number:03d}RPM": np.array([[rpm]], dtype=np.uint16)})
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Three recordings: the normal baseline at 48 kHz (16 windows once at 12 kHz) and two 12 kHz faults.
FAKE = [  # number, mirror name, label, fault, mils, rate, length
    (97, "normal_0_97.mat", 0, "normal", 0, 48_000, 4 * 16 * WINDOW + 8),
    (105, "12k_Drive_End_IR007_0_105.mat", 1, "inner_race", 7, 12_000, 20 * WINDOW + 300),
    (118, "12k_Drive_End_B007_0_118.mat", 4, "ball", 7, 12_000, 20 * WINDOW),
]


@pytest.fixture
def fake(tmp_path):
    """The three recordings written into tmp_path/mirror/fakecwru (file 105 under CWRU's own name
    `105.mat`, the others under the mirror's names), a CwruSource pinning them, and their signals."""
    folder = tmp_path / "mirror" / "fakecwru"
    folder.mkdir(parents=True)
    recordings, signals = [], {}
    for index, (number, name, label, fault, mils, rate, length) in enumerate(FAKE):
        signal = machine_signal(length, rate, seed=index)
        file_name = f"{number}.mat" if number == 105 else name
        sha = write_mat(folder / file_name, number, signal[:, None])
        recordings.append(Recording(number, name, sha, label, fault, mils, rate, length))
        signals[number] = signal
    return CwruSource("fakecwru", tuple(recordings)), signals, folder


def _repin(source: CwruSource, number: int, path: Path, **changes) -> CwruSource:
    """`source` with recording `number` pinned to the file now at `path` (and other field changes)."""
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    recordings = tuple(r if r.number != number else Recording(**{**r.__dict__, "sha256": sha, **changes})
                       for r in source.recordings)
    return CwruSource(source.folder, recordings)


# ---- loading ---------------------------------------------------------------------------------------

def test_load_reads_both_names_and_brings_everything_to_12_khz(fake):
    source, signals, _ = fake
    loaded = load_cwru(source)
    assert [s.recording.number for s in loaded] == [97, 105, 118]
    assert all(s.rpm == 1797 for s in loaded)
    normal, inner, ball = loaded
    assert len(normal.samples) == 16 * WINDOW + 2  # ceil(65544 / 4)
    np.testing.assert_allclose(normal.samples, resample_poly(signals[97], 1, 4))
    np.testing.assert_array_equal(inner.samples, signals[105])  # 12 kHz files are untouched
    np.testing.assert_array_equal(ball.samples, signals[118])


def test_a_file_is_one_data_file_under_two_names(fake):
    source, _, folder = fake
    inner = source.data_files()[1]
    assert [f.name for f in inner.forms] == ["105.mat", "12k_Drive_End_IR007_0_105.mat"]
    assert inner.forms[0].sha256 == inner.forms[1].sha256
    assert inner.url == "https://engineering.case.edu/sites/default/files/105.mat"
    assert locate(inner)[0] == folder / "105.mat"
    (folder / "105.mat").rename(folder / "12k_Drive_End_IR007_0_105.mat")
    assert locate(inner)[0] == folder / "12k_Drive_End_IR007_0_105.mat"


def test_a_missing_file_names_both_forms(fake):
    source, _, folder = fake
    (folder / "12k_Drive_End_B007_0_118.mat").unlink()
    with pytest.raises(MissingDataError, match=r"118\.mat.*12k_Drive_End_B007_0_118\.mat"):
        load_cwru(source)


def test_a_file_that_is_not_the_pinned_one_is_refused(fake):
    source, _, folder = fake
    write_mat(folder / "105.mat", 105, machine_signal(20 * WINDOW + 300, 12_000, seed=9)[:, None])
    with pytest.raises(CorruptDataError, match=r"105\.mat: sha256"):
        load_cwru(source)


@pytest.mark.parametrize("case, message", [
    ("no_de_key", r"no drive-end variable 'X105_DE_time'.*X106_DE_time"),
    ("row_vector", r"X105_DE_time has shape \(1, 20780\)"),
    ("two_columns", r"X105_DE_time has shape \(20780, 2\)"),
    ("too_short", r"X105_DE_time has shape \(20000, 1\).*expected \(20780, 1\)"),
    ("integers", r"X105_DE_time has shape \(20780, 1\) int64"),
    ("nan", r"X105_DE_time has 1 non-finite values \(first at row 7\)"),
    ("inf", r"X105_DE_time has 2 non-finite values \(first at row 3\)"),
    ("not_mat", r"not a readable MATLAB file"),
])
def test_bad_content_is_refused_naming_the_file(fake, case, message):
    source, signals, folder = fake
    path, good = folder / "105.mat", signals[105][:, None]
    if case == "no_de_key":
        write_mat(path, 105, good, de_key="X106_DE_time")
    elif case == "row_vector":
        write_mat(path, 105, good.T)
    elif case == "two_columns":
        write_mat(path, 105, np.hstack([good, good]))
    elif case == "too_short":
        write_mat(path, 105, good[:20000])
    elif case == "integers":
        write_mat(path, 105, np.round(good * 100).astype(np.int64))
    elif case in ("nan", "inf"):
        bad = good.copy()
        bad[7] = np.nan
        if case == "inf":
            bad[3], bad[7] = np.inf, -np.inf
        write_mat(path, 105, bad)
    else:
        path.write_bytes(b"MATLAB 5.0 MAT-file, truncated" + bytes(20))
    with pytest.raises(CorruptDataError, match=message) as error:
        load_cwru(_repin(source, 105, path))
    assert str(path) in str(error.value)


def test_a_missing_rpm_variable_is_tolerated(fake, tmp_path):
    source, signals, folder = fake
    path = folder / "105.mat"
    scipy.io.savemat(path, {"X105_DE_time": signals[105][:, None]})
    samples, rpm = read_drive_end(path, _repin(source, 105, path).recordings[1])
    assert rpm is None and len(samples) == len(signals[105])


# ---- sampling rate ---------------------------------------------------------------------------------

def test_resampling_keeps_frequencies_in_hertz():
    t48 = np.arange(48_000) / 48_000
    tone = np.sin(2 * np.pi * SHAFT_HZ * 7 * t48)
    out = to_target_rate(tone, 48_000)
    assert len(out) == 12_000
    t12 = np.arange(12_000) / 12_000
    np.testing.assert_allclose(out[200:-200], np.sin(2 * np.pi * SHAFT_HZ * 7 * t12)[200:-200], atol=1e-3)
    assert to_target_rate(tone, 12_000) is tone


def test_the_rate_is_found_from_the_shaft_harmonics():
    at48 = machine_signal(2 ** 17, 48_000, seed=3)
    at12 = machine_signal(2 ** 17, 12_000, seed=4)
    assert estimate_sampling_rate(at48, 1797) == 48_000
    assert estimate_sampling_rate(at12, 1797) == 12_000
    # the loader's 48 -> 12 kHz conversion puts the harmonics where a 12 kHz file has them
    assert estimate_sampling_rate(to_target_rate(at48, 48_000), 1797, (6_000, 12_000, 24_000, 48_000)) == 12_000
    assert estimate_sampling_rate(np.random.default_rng(0).standard_normal(2 ** 16), 1797) is None


# ---- windows and split -----------------------------------------------------------------------------

def test_window_starts_first_three_quarters_then_a_gap():
    train, test = window_starts(20 * WINDOW + 300)
    assert train.tolist() == [k * WINDOW for k in range(15)]
    assert test.tolist() == [k * WINDOW for k in range(16, 20)]
    with pytest.raises(ValueError, match="too few"):
        window_starts(2 * WINDOW)


def test_no_test_sample_was_seen_in_training(fake):
    data = build_cwru(load_cwru(fake[0]))
    for number in (97, 105, 118):
        train_starts = data.train.attributes["start"][data.train.attributes["recording"] == number].numpy()
        test_starts = data.test.attributes["start"][data.test.attributes["recording"] == number].numpy()
        seen = np.zeros(20 * WINDOW + 300, dtype=bool)
        for start in train_starts:
            assert not seen[start:start + WINDOW].any()  # training windows do not overlap either
            seen[start:start + WINDOW] = True
        for start in test_starts:
            assert not seen[max(0, start - WINDOW):start + WINDOW].any()  # and a full window of gap
        assert test_starts.min() - (train_starts.max() + WINDOW) == WINDOW


def test_pools_hold_the_windows_labels_and_attributes(fake):
    source, signals, _ = fake
    loaded = load_cwru(source)
    data = build_cwru(loaded)
    assert tuple(data.train.x.shape) == (12 + 15 + 15, 1, WINDOW) and data.train.x.dtype == torch.float32
    assert tuple(data.test.x.shape) == (3 + 4 + 4, 1, WINDOW)
    assert data.train.y.tolist() == [0] * 12 + [1] * 15 + [4] * 15
    assert data.test.y.tolist() == [0] * 3 + [1] * 4 + [4] * 4
    attrs = {k: v.tolist() for k, v in data.train.attributes.items()}
    assert attrs["fault"] == [0] * 12 + [1] * 15 + [2] * 15
    assert attrs["fault_size"] == [0] * 12 + [7] * 30
    assert attrs["recording"] == [97] * 12 + [105] * 15 + [118] * 15
    assert attrs["session"][12:] == [10500] * 15 + [11800] * 15  # 15 windows: one 24-window session
    np.testing.assert_array_equal(data.train.x[20, 0].numpy(), signals[105][8 * WINDOW:9 * WINDOW].astype(np.float32))
    np.testing.assert_array_equal(data.test.x[0, 0].numpy(), loaded[0].samples[13 * WINDOW:14 * WINDOW].astype(np.float32))
    assert set(data.test.attributes) == set(data.train.attributes)


def test_sessions_are_24_window_stretches():
    recording = Recording(105, "x.mat", "0" * 64, 1, "inner_race", 7, 12_000, 100 * WINDOW)
    data = build_cwru([Signal(recording, np.zeros(100 * WINDOW), 1797)])
    sessions = data.train.attributes["session"].tolist()
    assert sessions == [10500] * 24 + [10501] * 24 + [10502] * 24 + [10503] * 3  # 75 training windows
    assert data.test.attributes["session"].tolist() == [10503] * 20 + [10504] * 4


def test_inputs_keep_the_level_and_drop_each_windows_offset():
    x = torch.stack([torch.full((1, WINDOW), 3.0), 2.0 + torch.sin(torch.arange(WINDOW) / 5.0)[None]])
    out = scale_windows(x)
    assert torch.allclose(out.mean(dim=-1), torch.zeros(2, 1), atol=1e-6)
    assert torch.equal(out[0], torch.zeros(1, WINDOW))
    assert torch.allclose(out[1] * SIGNAL_SCALE, x[1] - x[1].mean(), atol=1e-6)


def test_the_task_loads_and_caches(fake, tmp_path, private_model_cache):
    task = CWRU(fake[0])
    data = task.load()
    cached = sorted(p.name for p in (tmp_path / "home" / "prepared").iterdir())
    assert len(cached) == 1 and cached[0].startswith("cwru-")
    again = task.load()
    assert torch.equal(again.train.x, data.train.x) and torch.equal(again.test.attributes["session"],
                                                                     data.test.attributes["session"])
    assert task.data_source() == ""
    inputs = task.to_inputs(data.train.x[:5])
    assert inputs.shape == (5, 1, WINDOW) and inputs.dtype == torch.float32


# ---- registration, spec, model ---------------------------------------------------------------------

def test_cwru_is_registered_with_ten_pinned_files():
    task = tasks.get("cwru")
    assert isinstance(task, CWRU)
    files = task.data_files()
    assert [f.name for f in files] == ["97.mat", "105.mat", "169.mat", "209.mat", "118.mat", "185.mat",
                                      "222.mat", "130.mat", "197.mat", "234.mat"]
    assert [s.sha256 for s in task.spec.source] == [f.forms[0].sha256 for f in files]
    assert {r.rate_hz for r in OFFICIAL.recordings} == {12_000, 48_000}
    assert [r.label for r in OFFICIAL.recordings] == list(range(10))
    scenario_kinds = {s.name: s.kind for s in task.spec.scenarios}
    assert scenario_kinds["class_3"] == "class" and scenario_kinds["random_10"] == "random"
    assert scenario_kinds["one_session"] == "one_group"
    assert not task.data_status().complete  # the fixture's empty mirror


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core CPU, two threads spin and run tiny models far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_cnn1d_is_wdcnn_shaped_and_deterministic(one_thread):
    model = cnn1d((1, WINDOW), 10)
    convs = [m for m in model if isinstance(m, torch.nn.Conv1d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (16, 64, 16, 24), (32, 3, 1, 1), (64, 3, 1, 1), (64, 3, 1, 1), (64, 3, 1, 0)]
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    model.eval()
    x = torch.randn(4, 1, WINDOW)
    assert model(x).shape == (4, 10) and torch.equal(model(x), model(x))
    assert cnn1d((1, 2048), 10)(torch.randn(2, 1, 2048)).shape == (2, 10)  # the paper's input length
    model.train()
    model(torch.randn(1, 1, WINDOW))  # a batch of one trains (no BatchNorm after the hidden layer)
    with pytest.raises(ValueError, match="too short"):
        cnn1d((1, 64), 10)


# ---- the real mirror -------------------------------------------------------------------------------

@pytest.fixture
def real_mirror(monkeypatch):
    if not HAS_REAL_CWRU:
        pytest.skip(f"{MIRROR_SKIP}cwru/ in {REAL_MIRROR}")
    monkeypatch.setenv("MUBENCH_MIRROR", str(REAL_MIRROR))


@pytest.mark.slow
@needs_real_cwru
def test_real_cwru_ten_classes_with_the_readme_lengths(real_mirror):
    data = CWRU().load()
    # README lengths: 243,938 samples at 48 kHz -> 60,985 at 12 kHz; the faults 121,265 - 122,571 at 12 kHz
    lengths = [60_985] + [r.length for r in OFFICIAL.recordings[1:]]
    counts = [window_starts(n) for n in lengths]
    assert np.bincount(data.train.y.numpy()).tolist() == [len(train) for train, _ in counts]
    assert np.bincount(data.test.y.numpy()).tolist() == [len(test) for _, test in counts]
    assert np.bincount(data.train.y.numpy()).tolist() == [44, 88, 88, 89, 89, 88, 89, 89, 88, 89]
    assert len(data.train) == 841 and len(data.test) == 275
    assert abs(float(data.train.x.std()) - SIGNAL_SCALE) < 0.002
    assert torch.isfinite(data.train.x).all() and torch.isfinite(data.test.x).all()


@pytest.mark.slow
@needs_real_cwru
def test_real_sampling_rates_agree_with_the_spectra(real_mirror):
    for recording, data_file in zip(OFFICIAL.recordings, OFFICIAL.data_files()):
        samples, rpm = read_drive_end(locate(data_file)[0], recording)
        assert rpm in (1796, 1797)
        assert estimate_sampling_rate(samples, rpm) == recording.rate_hz, recording.number
    normal = load_cwru()[0]
    assert len(normal.samples) == 60_985
    assert estimate_sampling_rate(normal.samples, normal.rpm, (6_000, 12_000, 24_000, 48_000)) == 12_000


@pytest.mark.slow
@needs_real_cwru
@pytest.mark.slow
def test_real_splits_and_a_class_forgotten_by_the_oracle(real_mirror, one_thread):
    from mubench.harness.runner import Harness
    from mubench.harness.splits import make_split
    task = tasks.get("cwru")
    data = task.load()
    for profile in ("smoke", "standard"):
        for scenario in task.spec.scenarios:
            split = make_split(task, data, scenario.name, 0, profile)  # raises on an empty held-out set
            assert len(split.forget) and len(split.heldout)
    prepared = Harness().prepare("cwru", "class_7", 0, "smoke")

    def accuracy(model, part):
        with torch.no_grad():
            return float((model(prepared.subsets[part].x).argmax(1) == prepared.subsets[part].y).float().mean())
    assert accuracy(prepared.original.model, "test") > 0.9
    assert accuracy(prepared.original.model, "forget") > 0.9
    assert accuracy(prepared.oracle.model, "forget") == 0.0

"""CWRU bearing data (Case Western Reserve University Bearing Data Center): drive-end signals.

The ten recordings of the common 10-class set at motor load 0 HP (~1797 rpm): the normal baseline
(file 97) and the 12 kHz drive-end faults on the inner race, the balls and the outer race at 6:00,
of diameter 0.007, 0.014 and 0.021 inch. Each is a MATLAB v5 `.mat` file holding the drive-end
accelerometer signal `X<nnn>_DE_time` (n x 1 float64) and the motor speed `X<nnn>RPM`.
A file is accepted under CWRU's own download name (`105.mat`, from
https://engineering.case.edu/sites/default/files/105.mat) or under the mirror's descriptive name
(`12k_Drive_End_IR007_0_105.mat`): two forms of one `DataFile` with one pinned sha256 (the
digests are those of the mirror's copies; the official downloads have the same byte sizes, as
third-party download scripts record them, but their digests were not checked here).

Sampling rates. The `.mat` files store none. The fault files come from CWRU's "12k Drive End
Bearing Fault Data" page: 12,000 samples/s. The normal baseline is listed on its own page
("Normal Baseline Data"), which third-party loaders and the benchmark literature (Smith & Randall
2015, MSSP 64-65, not verified here) give as 48,000 samples/s; deep-learning pipelines that cut it
at 12 kHz mix two time scales. The signal itself settles it (`estimate_sampling_rate`): the shaft
turns at 1796/60 = 29.93 Hz, and a rotating machine shows spectral peaks at integer multiples
(orders) of that frequency. Read at 48 kHz, file 97 has a peak at every one of the orders 1-20
(20 of 20 stand 6 dB or more above their neighbourhood, median 19.7 dB); read at 12 kHz, three in
four of those peaks would sit at orders 0.25, 0.5, 0.75, 1.25, ..., where no shaft harmonic can
be; read at 96 kHz only 12 of the 20 orders have a peak. The nine fault files show the opposite:
every order stands out at 12 kHz (20 of 20, median 20-34 dB) but only 10-13 of 20 at 24 kHz and
6-8 of 20 (about every fourth) at 48 kHz, so 12 kHz is their rate, as documented. The normal signal
is therefore resampled from 48 to 12 kHz (`to_target_rate`: scipy's polyphase `resample_poly`,
1:4, with its default Kaiser-windowed anti-aliasing FIR filter), after which all ten recordings
share one time scale.

Every file is checked against its pinned sha256, then its content: the `_DE_time` variable must be
present, shaped (n, 1) with the pinned n, floating point and finite; anything else is refused
with a `CorruptDataError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import scipy.io
from scipy.signal import resample_poly, welch

from mubench.data.files import DataFile, FileForm, locate
from mubench.errors import CorruptDataError

URL = "https://engineering.case.edu/sites/default/files/{}.mat"
TARGET_RATE_HZ = 12_000
FAULTS = ("normal", "inner_race", "ball", "outer_race_6")  # index = the `fault` attribute


@dataclass(frozen=True)
class Recording:
    """One CWRU file: its number, mirror name, pinned digest, class, rate and length."""

    number: int
    mirror_name: str
    sha256: str
    label: int
    fault: str  # one of FAULTS
    fault_size_mils: int  # 0 for the normal baseline; 7, 14 or 21 thousandths of an inch
    rate_hz: int
    length: int  # samples of the drive-end signal at rate_hz

    @property
    def variable(self) -> str:
        return f"X{self.number:03d}_DE_time"

    @property
    def rpm_variable(self) -> str:
        return f"X{self.number:03d}RPM"

    def data_file(self, folder: str) -> DataFile:
        forms = (FileForm(f"{self.number}.mat", self.sha256), FileForm(self.mirror_name, self.sha256))
        return DataFile(folder, forms, URL.format(self.number))


@dataclass(frozen=True)
class CwruSource:
    """The folder the files live in (mirror or home cache) and the recordings it should hold."""

    folder: str
    recordings: tuple[Recording, ...]

    def data_files(self) -> list[DataFile]:
        return [recording.data_file(self.folder) for recording in self.recordings]

    @property
    def pinned(self) -> list[tuple[int, str, int, int]]:
        """What determines the decoded data: number, digest, rate and length of each file."""
        return [(r.number, r.sha256, r.rate_hz, r.length) for r in self.recordings]


def _recording(number: int, name: str, sha: str, label: int, fault: str, mils: int, length: int,
               rate_hz: int = 12_000) -> Recording:
    return Recording(number, name, sha, label, fault, mils, rate_hz, length)


# Digests and lengths of the official .mat files, checked against the copies they were computed from.
OFFICIAL = CwruSource("cwru", (
    _recording(97, "normal_0_97.mat", "16bf48babcf1c7ac224bc1a81cd9eafdb27e42d5cf559761907e067e8eeadf3c",
               0, "normal", 0, 243_938, rate_hz=48_000),
    _recording(105, "12k_Drive_End_IR007_0_105.mat", "f80b0ea04fd06b372a0eaec7c056543ea37e4bb4727a5b173d2a5bacd2aa9cab",
               1, "inner_race", 7, 121_265),
    _recording(169, "12k_Drive_End_IR014_0_169.mat", "f5448673725c4ea2735fe7d3fe4b16ad82b217eac6b62c4bf351c4549b0a5229",
               2, "inner_race", 14, 121_846),
    _recording(209, "12k_Drive_End_IR021_0_209.mat", "9f723d6d9d2eba714c6dc50f99321dffa73d8b1e4d3605675b2c2251511eff80",
               3, "inner_race", 21, 122_136),
    _recording(118, "12k_Drive_End_B007_0_118.mat", "b00628f8dd8d1d930af77fa465d1e5cdb385fe259489053f91f3680bda7f640e",
               4, "ball", 7, 122_571),
    _recording(185, "12k_Drive_End_B014_0_185.mat", "5bea2c60f177215ba3ec4ae287faf745d7e14aed1a12efe9e37b27c27044bafc",
               5, "ball", 14, 121_846),
    _recording(222, "12k_Drive_End_B021_0_222.mat", "fcc0ee740fa123b1f4683f555458891719efb2857afd9fdee63e8fde0ed14469",
               6, "ball", 21, 121_991),
    _recording(130, "12k_Drive_End_OR007@6_0_130.mat", "35a095307d0971477049b343a1b5981dde465a58fb7f233ad89b035068c1717d",
               7, "outer_race_6", 7, 121_991),
    _recording(197, "12k_Drive_End_OR014@6_0_197.mat", "fa571b47cd942f9514a920b403fb7c053cd442bb2963a360a96d0f61432f03e9",
               8, "outer_race_6", 14, 121_846),
    _recording(234, "12k_Drive_End_OR021@6_0_234.mat", "ebcbdb96612e8085bbdbf81f0e5e8e8a8d1a693d1ec559c4894f7792771aa9b2",
               9, "outer_race_6", 21, 122_426),
))


@dataclass(frozen=True)
class Signal:
    """A drive-end signal at TARGET_RATE_HZ (float64, 1-D), with the file's motor speed."""

    recording: Recording
    samples: np.ndarray
    rpm: int | None


def read_drive_end(path: Path, recording: Recording) -> tuple[np.ndarray, int | None]:
    """The drive-end signal (1-D float64 at the file's own rate) and the RPM (None if absent)."""
    try:
        contents = scipy.io.loadmat(path)
    except (scipy.io.matlab.MatReadError, ValueError, TypeError, OSError, EOFError, IndexError, KeyError) as exc:
        raise CorruptDataError(f"{path}: not a readable MATLAB file ({exc})") from None
    if recording.variable not in contents:
        present = sorted(k for k in contents if not k.startswith("__"))
        raise CorruptDataError(f"{path}: no drive-end variable {recording.variable!r} (variables: {present})")
    signal = contents[recording.variable]
    expected = (recording.length, 1)
    if not isinstance(signal, np.ndarray) or signal.shape != expected or signal.dtype.kind != "f":
        shape, dtype = getattr(signal, "shape", None), getattr(signal, "dtype", type(signal).__name__)
        raise CorruptDataError(f"{path}: {recording.variable} has shape {shape} {dtype}, expected {expected} float")
    bad = np.flatnonzero(~np.isfinite(signal[:, 0]))
    if len(bad):
        raise CorruptDataError(f"{path}: {recording.variable} has {len(bad)} non-finite values (first at row {bad[0]})")
    rpm = contents.get(recording.rpm_variable)
    rpm_value = int(np.asarray(rpm).ravel()[0]) if rpm is not None and np.asarray(rpm).size else None
    return signal[:, 0].astype(np.float64), rpm_value


def to_target_rate(samples: np.ndarray, rate_hz: int, target_hz: int = TARGET_RATE_HZ) -> np.ndarray:
    """Resample to `target_hz` with scipy's polyphase filter (anti-aliased); unchanged when equal.

    The output has ceil(n * up / down) samples; sample i sits at time i / target_hz, as input
    sample i * rate_hz / target_hz did.
    """
    if rate_hz == target_hz:
        return samples
    common = gcd(rate_hz, target_hz)
    return resample_poly(samples, target_hz // common, rate_hz // common)


def load_cwru(source: CwruSource = OFFICIAL) -> list[Signal]:
    """Every recording of `source`, verified, decoded and brought to TARGET_RATE_HZ, in order."""
    signals = []
    for recording, data_file in zip(source.recordings, source.data_files()):
        path, _ = locate(data_file)
        samples, rpm = read_drive_end(path, recording)
        signals.append(Signal(recording, to_target_rate(samples, recording.rate_hz), rpm))
    return signals


def shaft_harmonic_snr(samples: np.ndarray, rpm: float, rate_hz: float, orders: range = range(1, 21)) -> np.ndarray:
    """For each shaft order k, how far (dB) the spectrum at k * rpm / 60 Hz stands above its
    neighbourhood, when `samples` are assumed to be taken at `rate_hz`.

    Welch spectrum (Hann segments of the largest power of two up to 2**16 samples) in cycles per
    sample; the peak is the largest of the 3 bins around the predicted frequency, the
    neighbourhood the median of the bins 0.15-0.45 of an order away on either side (at least 3
    bins away), so that neighbouring harmonics and half-orders stay out of it.
    """
    segment = min(2 ** 16, 2 ** int(np.log2(max(len(samples), 1))))
    spacing = rpm / 60.0 / rate_hz * segment  # bins between consecutive orders
    inner, outer = max(3, int(0.15 * spacing)), int(0.45 * spacing)
    if outer - inner < 4:
        raise ValueError(f"{len(samples)} samples are too few to resolve shaft orders at an assumed {rate_hz} Hz")
    frequencies, power = welch(samples - samples.mean(), fs=1.0, nperseg=segment)
    level = 10 * np.log10(power + np.finfo(float).tiny)
    out = []
    for order in orders:
        i = int(round(order * spacing))
        if i + outer >= len(level):
            raise ValueError(f"shaft order {order} at an assumed {rate_hz} Hz lies beyond the spectrum")
        neighbourhood = np.r_[level[i - outer:i - inner + 1], level[i + inner:i + outer + 1]]
        out.append(level[i - 1:i + 2].max() - np.median(neighbourhood))
    return np.array(out)


def estimate_sampling_rate(samples: np.ndarray, rpm: float,
                           candidates: tuple[int, ...] = (6_000, 12_000, 24_000, 48_000, 96_000),
                           threshold_db: float = 6.0, share: float = 0.9) -> int | None:
    """The highest candidate rate at which the shaft harmonics of orders 1-20 appear where they
    should: at least `share` of them `threshold_db` above their neighbourhood.

    Why the highest: assuming a rate r below the true R puts order k on true order k R / r, still
    an integer when R / r is, so too low a rate also finds peaks; assuming one above R puts order k
    on true order k R / r, a fraction for most k, where the spectrum is flat. None when no
    candidate fits.
    """
    fitting = [rate for rate in sorted(candidates)
               if np.mean(shaft_harmonic_snr(samples, rpm, rate) > threshold_db) >= share]
    return fitting[-1] if fitting else None

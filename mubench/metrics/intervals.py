"""Attack values with their uncertainty: a 95 % interval and the number of samples behind it.

A membership attack's value is an estimate from finitely many samples (and, for the population
attacks, finitely many models): without its interval a board cannot tell a real difference
from sampling noise. A metric that can say how uncertain it is returns an `Estimate`; the
registry stores its value under the metric's key and its interval beside it, in the record's
`intervals` (mubench.harness.record.Interval).

The intervals are percentile bootstraps (Efron and Tibshirani 1993, ch. 13): the statistic is
recomputed on resamples, drawn with replacement, of each independent unit (examples, models),
and the 2.5th and 97.5th percentiles of the recomputed values are the interval. The generator
is seeded (`BOOTSTRAP_SEED`), so the same inputs always give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata

BOOTSTRAP_SEED = 0
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A metric's value, its `LEVEL` interval [low, high], how the interval was computed, and the
    sample sizes it rests on (e.g. {"forget": 1000, "heldout": 500, "models": 32})."""

    value: float
    low: float
    high: float
    method: str
    sizes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.value) and np.isfinite(self.low) and np.isfinite(self.high)):
            raise ValueError(f"an estimate must be finite, got {self.value} [{self.low}, {self.high}]")
        if self.low > self.high:
            raise ValueError(f"interval low {self.low} above high {self.high}")

    def overlaps(self, other: Estimate) -> bool:
        return self.low <= other.high and other.low <= self.high


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The central `LEVEL` range of bootstrap replicates (numpy's linear percentiles)."""
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def resample_indices(rng: np.random.Generator, size: int, resamples: int) -> np.ndarray:
    """(resamples, size) indices drawn with replacement from range(size)."""
    return rng.integers(0, size, size=(resamples, size))


def auc_rows(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """ROC AUC of each row: P(positive > negative) + P(tie) / 2, from mid-ranks (the Mann-Whitney U
    statistic over n_pos * n_neg), for (rows, n_pos) and (rows, n_neg) score arrays."""
    n_pos, n_neg = positives.shape[-1], negatives.shape[-1]
    ranks = rankdata(np.concatenate([positives, negatives], axis=-1), axis=-1)
    u = ranks[..., :n_pos].sum(axis=-1) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def bootstrap_two_groups(statistic: Callable[[np.ndarray, np.ndarray], np.ndarray], first: np.ndarray,
                         second: np.ndarray, resamples: int, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Interval of `statistic(first, second)` with each group resampled on its own (a stratified
    bootstrap: the groups are independent samples, e.g. members and non-members). `statistic`
    takes (resamples, n_first) and (resamples, n_second) arrays and returns one value per row."""
    rng = np.random.default_rng(seed)
    first_rows = first[resample_indices(rng, len(first), resamples)]
    second_rows = second[resample_indices(rng, len(second), resamples)]
    return percentile_interval(statistic(first_rows, second_rows))


def auc_estimate(positives: np.ndarray, negatives: np.ndarray, resamples: int = 1000,
                 names: tuple[str, str] = ("positives", "negatives")) -> Estimate:
    """The AUC of `positives` over `negatives` with a stratified bootstrap interval."""
    value = float(auc_rows(positives[None], negatives[None])[0])
    low, high = bootstrap_two_groups(auc_rows, positives, negatives, resamples)
    return Estimate(value, low, high, f"percentile bootstrap, {resamples} resamples of each group",
                    {names[0]: len(positives), names[1]: len(negatives)})

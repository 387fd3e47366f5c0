"""Pareto fronts and hypervolumes of trade-off sweeps (pymoo).

Each run is a point of two objectives in [0, 1], higher is better (mubench.metrics.objectives):
forgetting and utility, the setting of CUP (Hwang and Lim 2024), which brought hypervolume to
unlearning; cost is reported beside, never folded in. pymoo minimises, so points are mapped to
1 - objective; the reference point is the worst corner, objectives (0, 0), fixed for every task
so that hypervolumes are comparable across methods and releases. The hypervolume of a method's
sweep is the share of the unit square its front dominates: 1 is the oracle's point (1, 1), 0 is
doing nothing (forgetting 0 wherever there is signal), and a single point's hypervolume is its
`score` (forgetting x utility).
"""

from __future__ import annotations

import numpy as np

from mubench.metrics.objectives import OBJECTIVES

REFERENCE_POINT = (0.0, 0.0)  # in objective space (higher is better), one value per objective


def _as_minimisation(points: np.ndarray) -> np.ndarray:
    points = np.atleast_2d(np.asarray(points, dtype=float))
    if points.size and (points.min() < 0 or points.max() > 1):
        raise ValueError("objectives must lie in [0, 1]")
    return 1.0 - points


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Indices (sorted) of the non-dominated points when every column is to be maximised."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting  # pymoo loads on first use, not with the CLI

    points = np.atleast_2d(np.asarray(points, dtype=float))
    if len(points) == 0:
        return np.array([], dtype=int)
    front = NonDominatedSorting().do(-points, only_non_dominated_front=True)
    return np.sort(np.asarray(front, dtype=int))


def hypervolume(points: np.ndarray, reference: tuple[float, ...] | None = None) -> float:
    """Volume dominated by `points` (maximised, in [0, 1]) above `reference` (default: the origin)."""
    from pymoo.indicators.hv import HV

    points = np.atleast_2d(np.asarray(points, dtype=float))
    if len(points) == 0:
        return 0.0
    # the board's objectives are two (REFERENCE_POINT); any other number of objectives: the origin too
    reference = reference if reference is not None else (0.0,) * points.shape[1]
    indicator = HV(ref_point=1.0 - np.asarray(reference, dtype=float))
    return float(indicator(_as_minimisation(points)))


__all__ = ["OBJECTIVES", "REFERENCE_POINT", "hypervolume", "pareto_front"]

"""Pareto fronts and hypervolumes (mubench.results.tradeoff) against volumes computed by hand, an exact
cell-decomposition count written here, and a Monte Carlo estimate with a fixed generator."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mubench.results.tradeoff import REFERENCE_POINT, hypervolume, pareto_front


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


def exact_hypervolume(points: np.ndarray, reference: np.ndarray | None = None) -> float:
    """Independent exact volume of the union of boxes [reference, p] (maximisation): split space
    along every coordinate any point has, and add up the cells whose upper corner some point
    dominates. O(n^(d+1)); fine for a few dozen points in 3-D."""
    points = np.asarray(points, dtype=float)
    reference = np.zeros(points.shape[1]) if reference is None else np.asarray(reference, dtype=float)
    axes = [np.unique(np.concatenate([[reference[d]], points[:, d]])) for d in range(points.shape[1])]
    total = 0.0
    for cell in itertools.product(*(range(1, len(a)) for a in axes)):
        upper = np.array([axes[d][i] for d, i in enumerate(cell)])
        if np.any(np.all(points >= upper, axis=1)):
            total += float(np.prod([axes[d][i] - axes[d][i - 1] for d, i in enumerate(cell)]))
    return total


# ---- hand-computed volumes --------------------------------------------------------------------

def test_two_points_in_2d():
    # [0,1]x[0,.5] and [0,.5]x[0,1]: .5 + .5 - .25 (their overlap [0,.5]^2)
    assert hypervolume(np.array([[1.0, 0.5], [0.5, 1.0]])) == pytest.approx(0.75, abs=1e-12)


def test_a_single_point_is_the_product_of_its_coordinates():
    assert hypervolume(np.array([[0.5, 0.4, 0.25]])) == pytest.approx(0.05, abs=1e-12)
    assert hypervolume(np.array([0.5, 0.4, 0.25])) == pytest.approx(0.05, abs=1e-12)  # a 1-D row is one point


def test_three_symmetric_boxes_in_3d_by_inclusion_exclusion():
    # each box .25; each pairwise intersection [0,.5]^3 = .125, and so is the triple one:
    # 3 * .25 - 3 * .125 + .125 = .5
    points = np.array([[1.0, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 1.0]])
    assert hypervolume(points) == pytest.approx(0.5, abs=1e-12)


def test_three_unequal_boxes_in_3d_by_inclusion_exclusion():
    a, b, c = (0.8, 0.6, 0.5), (0.4, 0.9, 0.7), (0.6, 0.3, 0.9)
    boxes = 0.8 * 0.6 * 0.5 + 0.4 * 0.9 * 0.7 + 0.6 * 0.3 * 0.9           # .24 + .252 + .162 = .654
    pairs = 0.4 * 0.6 * 0.5 + 0.6 * 0.3 * 0.5 + 0.4 * 0.3 * 0.7           # .12 + .09 + .084 = .294
    triple = 0.4 * 0.3 * 0.5                                              # .06
    assert boxes - pairs + triple == pytest.approx(0.42, abs=1e-12)
    assert hypervolume(np.array([a, b, c])) == pytest.approx(0.42, abs=1e-12)


def test_dominated_and_duplicate_points_add_nothing():
    front = np.array([[1.0, 0.5], [0.5, 1.0]])
    extra = np.array([[0.4, 0.4], [1.0, 0.5], [0.5, 0.2]])  # dominated, a duplicate, dominated
    assert hypervolume(np.vstack([front, extra])) == pytest.approx(0.75, abs=1e-12)


def test_the_oracle_corner_fills_the_cube_and_the_reference_corner_is_empty():
    assert hypervolume(np.array([[1.0, 1.0, 1.0]])) == pytest.approx(1.0, abs=1e-12)
    assert hypervolume(np.array([[0.0, 0.0, 0.0]])) == pytest.approx(0.0, abs=1e-12)
    assert hypervolume(np.array([[1.0, 1.0, 0.0]])) == pytest.approx(0.0, abs=1e-12)  # free but useless


def test_another_reference_point():
    assert REFERENCE_POINT == (0.0, 0.0)  # (forgetting, utility): the worst corner
    assert hypervolume(np.array([[1.0, 1.0]]), reference=(0.5, 0.5)) == pytest.approx(0.25, abs=1e-12)
    assert hypervolume(np.array([[1.0, 0.5], [0.5, 1.0]]), reference=(0.25, 0.25)) == pytest.approx(
        0.75 * 0.25 + 0.25 * 0.75 - 0.25 * 0.25, abs=1e-12)


def test_no_points_no_volume_and_objectives_outside_the_unit_cube_are_refused():
    assert hypervolume(np.empty((0, 3))) == 0.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hypervolume(np.array([[1.2, 0.5, 0.5]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hypervolume(np.array([[0.5, -0.1, 0.5]]))


# ---- Pareto fronts ----------------------------------------------------------------------------

def test_pareto_front_drops_dominated_points():
    points = np.array([[0.9, 0.1, 0.5],   # 0: best on the first objective
                       [0.5, 0.5, 0.5],   # 1: dominated by 3
                       [0.1, 0.9, 0.5],   # 2: best on the second
                       [0.6, 0.6, 0.5],   # 3
                       [0.6, 0.6, 0.4],   # 4: dominated by 3 (worse on the third only)
                       [0.0, 0.0, 1.0]])  # 5: best on the third
    assert pareto_front(points).tolist() == [0, 2, 3, 5]


def test_pareto_front_keeps_duplicates_of_an_optimal_point_and_drops_those_of_a_dominated_one():
    points = np.array([[0.8, 0.2], [0.2, 0.8], [0.8, 0.2], [0.1, 0.1], [0.1, 0.1]])
    # neither copy of (.8, .2) dominates the other (domination needs one strictly better objective)
    assert pareto_front(points).tolist() == [0, 1, 2]


def test_pareto_front_of_one_and_of_no_points():
    assert pareto_front(np.array([[0.3, 0.3, 0.3]])).tolist() == [0]
    assert pareto_front(np.empty((0, 3))).tolist() == []


def test_a_point_better_on_one_objective_and_equal_elsewhere_dominates():
    assert pareto_front(np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.6]])).tolist() == [1]


def test_pareto_front_matches_a_brute_force_domination_check():
    rng = np.random.default_rng(7)
    points = np.round(rng.random((40, 3)), 1)  # coarse values: ties and duplicates happen
    dominated = [any(np.all(q >= p) and np.any(q > p) for q in points) for p in points]
    assert pareto_front(points).tolist() == [i for i, d in enumerate(dominated) if not d]


# ---- random sets: exact count and Monte Carlo ---------------------------------------------------

def test_the_exact_helper_agrees_with_the_hand_computed_volumes():
    assert exact_hypervolume(np.array([[1.0, 0.5], [0.5, 1.0]])) == pytest.approx(0.75, abs=1e-12)
    assert exact_hypervolume(np.array([[0.8, 0.6, 0.5], [0.4, 0.9, 0.7], [0.6, 0.3, 0.9]])) == pytest.approx(0.42, abs=1e-12)


@pytest.mark.parametrize("seed,n", [(0, 3), (1, 8), (2, 15), (3, 25)])
def test_random_3d_sets_match_the_exact_cell_count(seed, n):
    points = np.random.default_rng(seed).random((n, 3))
    assert hypervolume(points) == pytest.approx(exact_hypervolume(points), abs=1e-12)
    front = pareto_front(points)
    assert hypervolume(points[front]) == pytest.approx(hypervolume(points), abs=1e-12)


def test_a_random_3d_set_matches_a_monte_carlo_estimate():
    rng = np.random.default_rng(20240601)
    points = rng.random((12, 3))
    samples = rng.random((200_000, 3))
    covered = np.zeros(len(samples), dtype=bool)
    for p in points:
        covered |= np.all(samples <= p, axis=1)
    estimate = covered.mean()
    standard_error = math.sqrt(estimate * (1 - estimate) / len(samples))
    assert abs(hypervolume(points) - estimate) < 4 * standard_error  # 4 SE: a 6e-5 false-alarm rate
    assert standard_error < 0.0012  # the check is tight enough to mean something

"""Scenario kinds (mubench/tasks/scenarios.py) on hand-made pools."""

from __future__ import annotations

import numpy as np
import pytest

from mubench.tasks.scenarios import scenario_kinds


def test_one_group_takes_the_largest_group_of_the_whole_pool():
    person = np.array([3, 3, 7, 7, 7, 1, 1, 1, 9])
    labels = np.zeros(len(person), dtype=np.int64)
    kind = scenario_kinds.get("one_group")
    rng = np.random.default_rng(0)
    train, val = np.array([0, 2, 3, 5, 8]), np.array([1, 4, 6, 7])
    # 7 and 1 both have three members: the tie goes to the smaller value, 1
    assert kind.forget(labels, {"person": person}, train, {"attribute": "person"}, rng).tolist() == [5]
    assert kind.heldout(labels, {"person": person}, val, {"attribute": "person"}, rng).tolist() == [6, 7]
    assert kind.forget(labels, {"person": person}, train, {"attribute": "person", "rank": 1}, rng).tolist() == [2, 3]
    assert kind.forget(labels, {"person": person}, train, {"attribute": "person", "value": 9}, rng).tolist() == [8]


def test_one_group_errors_name_the_attribute_and_rank():
    kind = scenario_kinds.get("one_group")
    rng = np.random.default_rng(0)
    labels = np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError, match="no attribute 'person'"):
        kind.forget(labels, {}, np.arange(3), {"attribute": "person"}, rng)
    with pytest.raises(ValueError, match="rank 5 but attribute 'person' has 2 groups"):
        kind.forget(labels, {"person": np.array([0, 0, 1])}, np.arange(3), {"attribute": "person", "rank": 5}, rng)


def test_random_count_draws_exactly_that_many_distinct_candidates():
    kind = scenario_kinds.get("random")
    candidates = np.arange(10, 60)
    picked = kind.forget(np.zeros(60, dtype=np.int64), {}, candidates, {"count": 7}, np.random.default_rng(3))
    assert len(picked) == 7 == len(set(picked.tolist()))
    assert set(picked.tolist()) <= set(candidates.tolist())
    with pytest.raises(ValueError, match="count must be in"):
        kind.forget(np.zeros(60, dtype=np.int64), {}, candidates, {"count": 50}, np.random.default_rng(3))

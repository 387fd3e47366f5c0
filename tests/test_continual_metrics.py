"""Stream metrics (mubench/continual/metrics.py) against hand computations on a made-up matrix."""

from __future__ import annotations

import numpy as np
import pytest

from mubench.continual.metrics import relapse, stream_metrics, unlearned_stability
from mubench.continual.runner import _costs
from mubench.continual.spec import check_order, parse_steps

# Stream L0,L1,U0,L2,U1 over three two-class tasks (chance 0.5); rows: after requests 1..5.
STATES = check_order(parse_steps("L0,L1,U0,L2,U1"))
ACC = np.array([[0.90, 0.50, 0.50],
                [0.80, 0.95, 0.50],
                [0.60, 0.90, 0.50],   # unlearn 0
                [0.70, 0.85, 0.97],   # learn 2: task 0 comes back (relapse)
                [0.75, 0.55, 0.90]])  # unlearn 1
ORACLE = np.array([[0.91, 0.5, 0.5], [0.9, 0.96, 0.5], [0.5, 0.97, 0.5], [0.5, 0.96, 0.95], [0.5, 0.5, 0.96]])
CHANCE = np.full(3, 0.5)


def test_per_request_means_by_hand():
    m = stream_metrics(STATES, ACC, CHANCE, ORACLE)
    expected_retained = {1: 0.9, 2: (0.8 + 0.95) / 2, 3: 0.9, 4: (0.85 + 0.97) / 2, 5: 0.9}
    for r, value in expected_retained.items():
        assert m[f"stream/retained_acc@{r}"] == pytest.approx(value)
    assert "stream/unlearned_acc@1" not in m and "stream/unlearned_acc@2" not in m  # nothing unlearned yet
    assert m["stream/unlearned_acc@3"] == pytest.approx(0.6)
    assert m["stream/unlearned_acc@4"] == pytest.approx(0.7)
    assert m["stream/unlearned_acc@5"] == pytest.approx((0.75 + 0.55) / 2)
    # a task's accuracy is reported from the request that learns it on
    task_keys = sorted(k for k in m if k.startswith("stream/task"))
    assert len(task_keys) == 5 + 4 + 2
    assert "stream/task2_acc@3" not in m and m["stream/task2_acc@4"] == pytest.approx(0.97)


def test_final_summaries_by_hand():
    m = stream_metrics(STATES, ACC, CHANCE, ORACLE)
    assert m["stream/retained_acc"] == pytest.approx(0.9)
    assert m["stream/unlearned_acc"] == pytest.approx(0.65)
    # task 0: 0.60 right after its unlearning, then 0.70 and 0.75 -> came back by 0.15; task 1 was
    # unlearned by the last request, so it has no later request and does not count
    assert m["stream/relapse"] == pytest.approx(0.15)
    # UnCLe's stability: task 0 mean(0.5 - [0.6, 0.7, 0.75]) = -0.18333, task 1 (0.5 - 0.55) = -0.05
    assert m["stream/unlearned_stability"] == pytest.approx((-0.55 / 3 - 0.05) / 2)
    assert m["stream/unlearned_chance_gap"] == pytest.approx((0.25 + 0.05) / 2)
    assert m["stream/oracle_retained_acc"] == pytest.approx(0.96)
    assert m["stream/oracle_unlearned_acc"] == pytest.approx(0.5)
    assert m["stream/gap_retained"] == pytest.approx(0.06)
    assert m["stream/gap_unlearned"] == pytest.approx(0.15)
    assert all(isinstance(v, float) and np.isfinite(v) for v in m.values())


def test_relapse_is_clamped_at_zero_when_the_task_keeps_falling():
    states = check_order(parse_steps("L0,U0,L1,L2"))
    acc = np.array([[0.9, 0.5, 0.5], [0.6, 0.5, 0.5], [0.55, 0.9, 0.5], [0.5, 0.9, 0.9]])
    assert relapse(states, acc) == 0.0
    assert unlearned_stability(states, acc, CHANCE) == pytest.approx(np.mean([-0.1, -0.05, 0.0]))


def test_a_stream_without_unlearning_has_no_unlearning_metrics():
    states = check_order(parse_steps("L0,L1"))
    acc = np.array([[0.9, 0.5, 0.5], [0.8, 0.9, 0.5]])
    m = stream_metrics(states, acc, CHANCE, acc)
    assert m["stream/retained_acc"] == pytest.approx(0.85) and m["stream/gap_retained"] == 0.0
    assert not any(k.startswith(("stream/unlearned", "stream/relapse", "stream/gap_unlearned", "stream/oracle_unl"))
                   for k in m)


def test_nothing_retained_at_the_end_leaves_retained_keys_out():
    states = check_order(parse_steps("L0,U0"))
    m = stream_metrics(states, np.array([[0.9, 0.5, 0.5], [0.5, 0.5, 0.5]]), CHANCE, np.full((2, 3), 0.5))
    assert "stream/retained_acc" not in m and "stream/retained_acc@2" not in m
    assert m["stream/unlearned_acc"] == 0.5 and "stream/relapse" not in m


def test_costs_by_hand():
    costs = _costs(STATES, [1.0, 2.0, 0.5, 3.0, 0.25], oracle_seconds=[1.0, 2.0, 1.0, 2.0, 1.0])
    assert costs["cost/seconds"] == pytest.approx(6.75)
    assert costs["cost/learn_seconds"] == pytest.approx(6.0)
    assert costs["cost/unlearn_seconds"] == pytest.approx(0.75)
    assert costs["cost/seconds@4"] == 3.0
    assert costs["cost/rte"] == pytest.approx(6.75 / 7.0)

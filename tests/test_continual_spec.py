"""Continual streams (mubench/continual): stream rules, task split, per-task indices, stream ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from mubench.continual.spec import ContinualSpec, StreamSpec, check_order, parse_steps
from mubench.continual.split_mnist import SPEC
from mubench.continual.streams import draw_task_indices, load_or_make_stream, stream_id, stream_path, write_stream
from mubench.continual.task import continual_tasks
from mubench.continual.training import fresh_model, output_layer
from mubench.errors import SplitMismatchError, UnknownNameError
from mubench.tasks.base import Pool, TaskData


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


def _data(per_class_train: int = 30, per_class_test: tuple[int, ...] = (12,) * 10) -> TaskData:
    """Labels only matter here: a pool of 1-pixel 'images' with the given counts per class."""
    train_y = torch.arange(10).repeat_interleave(per_class_train)
    test_y = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class_test)])
    return TaskData(Pool(torch.zeros(len(train_y), 1), train_y), Pool(torch.zeros(len(test_y), 1), test_y))


def test_uncle_notation_round_trips():
    steps = parse_steps("L0, L1,U0")
    assert [str(s) for s in steps] == ["learn 0", "learn 1", "unlearn 0"]
    assert StreamSpec(name="s", description="d", steps="L0,L1,U0").codes == "L0,L1,U0"
    with pytest.raises(ValueError, match="'X2'"):
        parse_steps("L0,X2")


@pytest.mark.parametrize("steps, message", [
    ("L0,U1", "request 2 (unlearn 1): task 1 was never learned"),
    ("U0", "request 1 (unlearn 0): task 0 was never learned"),
    ("L0,L1,L0", "request 3 (learn 0): task 0 was already learned at request 1"),
    ("L0,U0,L0", "request 3 (learn 0): task 0 was already learned at request 1"),
    ("L0,L1,U0,U0", "request 4 (unlearn 0): task 0 was already unlearned at request 3"),
])
def test_invalid_streams_are_refused_naming_the_request(steps, message):
    with pytest.raises(ValidationError) as info:
        StreamSpec(name="bad", description="d", steps=steps)
    assert message in str(info.value) and "stream bad" in str(info.value)


def test_a_stream_naming_a_task_beyond_the_split_is_refused():
    bad = StreamSpec(name="too_far", description="d", steps="L0,L5")
    with pytest.raises(ValidationError, match="names task\\(s\\) \\[5\\], but there are only 5 tasks"):
        ContinualSpec.model_validate({**SPEC.model_dump(), "streams": [bad.model_dump()]})


def test_states_track_retained_and_unlearned_tasks():
    states = check_order(parse_steps("L0,L1,U0,L2,L3,L4,U1"))
    assert [s.retained for s in states] == [(0,), (0, 1), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), (2, 3, 4)]
    assert [s.unlearned for s in states] == [(), (), (0,), (0,), (0,), (0,), (0, 1)]
    assert states[-1].unlearned_at == {0: 3, 1: 7}


def test_split_mnist_spec():
    assert SPEC.task_classes == ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
    assert [SPEC.chance(t) for t in range(5)] == [0.5] * 5
    assert [s.codes for s in SPEC.streams] == ["L0,L1,U0,L2,L3,L4,U1", "L3,L4,L2,L0,L1,U3,U0", "L0,L2,U0,L4,L3,U2,U4"]
    assert {"smoke", "standard"} <= set(SPEC.profiles)
    with pytest.raises(UnknownNameError, match="Did you mean .*'uncle_5a'"):
        SPEC.stream("uncle_5")
    assert {"split_mnist", "split_cifar10"} <= set(continual_tasks.names())
    assert continual_tasks.get("split_cifar10").spec.streams == SPEC.streams


def test_task_indices_are_balanced_per_class_and_deterministic():
    data = _data(per_class_test=(12, 7, 12, 12, 12, 12, 12, 12, 12, 3))
    indices = draw_task_indices(SPEC, data, "smoke")  # smoke: 500 train, 250 test per class at most
    labels_train, labels_test = data.train.y.numpy(), data.test.y.numpy()
    for task, classes in enumerate(SPEC.task_classes):
        assert sorted(np.unique(labels_train[indices.train[task]])) == list(classes)
        assert len(indices.train[task]) == 60  # every training sample of its two classes (30 each)
        counts = np.bincount(labels_test[indices.test[task]], minlength=10)[list(classes)]
        assert counts[0] == counts[1]  # balanced: a constant prediction scores exactly chance
    assert len(indices.test[0]) == 14 and len(indices.test[4]) == 6  # limited by the rarer class (7, 3)
    again = draw_task_indices(SPEC, data, "smoke")
    assert all(np.array_equal(indices.train[t], again.train[t]) and np.array_equal(indices.test[t], again.test[t])
               for t in range(5))


def test_train_per_task_subsamples_each_class_equally():
    spec = SPEC.model_copy(update={"profiles": {**SPEC.profiles, "smoke": SPEC.profiles["smoke"].model_copy(
        update={"train_per_task": 20, "test_per_task": 8})}})
    indices = draw_task_indices(spec, _data(), "smoke")
    labels = _data().train.y.numpy()
    assert np.bincount(labels[indices.train[1]], minlength=10)[[2, 3]].tolist() == [10, 10]
    assert len(indices.test[1]) == 8


def test_stream_id_covers_requests_and_indices_but_not_descriptions():
    indices = draw_task_indices(SPEC, _data(), "smoke")
    base = SPEC.stream("uncle_5a")
    one_changed = base.model_copy(update={"steps": parse_steps("L0,L1,U1,L2,L3,L4,U0")})
    reworded = base.model_copy(update={"description": "another wording"})
    assert stream_id(SPEC, one_changed, indices) != stream_id(SPEC, base, indices)
    assert stream_id(SPEC, reworded, indices) == stream_id(SPEC, base, indices)
    other = draw_task_indices(SPEC, _data(per_class_train=31), "smoke")
    assert stream_id(SPEC, base, other) != stream_id(SPEC, base, indices)


def test_stored_stream_is_rechecked(tmp_path):
    data = _data()
    first = load_or_make_stream(SPEC, data, "uncle_5a", "smoke")
    path = stream_path("split_mnist", "uncle_5a", "smoke")
    assert path.is_file()
    assert load_or_make_stream(SPEC, data, "uncle_5a", "smoke").id == first.id
    # the definition changes without a version bump: the stored stream no longer matches
    changed = SPEC.model_copy(update={"streams": (SPEC.stream("uncle_5a").model_copy(
        update={"steps": parse_steps("L0,L1,U1")}),)})
    with pytest.raises(SplitMismatchError, match="differs from the one defined and drawn now"):
        load_or_make_stream(changed, data, "uncle_5a", "smoke")
    # the stored indices are altered: their hash no longer matches the file's record
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    arrays["task0_train"] = arrays["task0_train"][:-1]
    np.savez(path, **arrays)
    with pytest.raises(SplitMismatchError, match="indices hash to"):
        load_or_make_stream(SPEC, data, "uncle_5a", "smoke")
    path.write_bytes(b"not a zip")
    with pytest.raises(SplitMismatchError, match="unreadable stream file"):
        load_or_make_stream(SPEC, data, "uncle_5a", "smoke")
    write_stream(path, first)  # a good copy is accepted again
    assert load_or_make_stream(SPEC, data, "uncle_5a", "smoke").id == first.id


@pytest.mark.parametrize("task_name", ["split_mnist", "split_cifar10"])
def test_every_profile_builds_a_model_with_a_zero_output_layer(task_name):
    spec = continual_tasks.get(task_name).spec
    for profile in spec.profiles:
        model = fresh_model(spec, profile, seed=0)
        head = output_layer(model, spec.num_classes)
        assert head.out_features == spec.num_classes and not head.weight.any() and not head.bias.any()
        model.eval()
        logits = model(torch.rand(2, *spec.input_shape))
        assert logits.shape == (2, spec.num_classes) and not logits.any()  # every task starts exactly at chance

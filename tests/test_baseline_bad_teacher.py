"""Bad Teacher (baselines/bad_teacher.py): the incompetent teacher, the mixed targets and the
KL, the retain subset, hyper-parameter checks, and a run through the harness on the debug task."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import baselines.bad_teacher  # noqa: F401  (registers "bad_teacher")
from baselines.bad_teacher import BadTeacher, mixed_targets
from helpers import assert_seed_reproducible, assert_unlearns_debug_original, debug_config, shared_home
from mubench.errors import MubenchError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness, check_architecture
from mubench.methods import Access
from mubench.request import Request, Subset
from mubench.toolkit.distill import bad_teacher_loss, incompetent_teacher, unlearning_data


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("distillation")):
        yield Harness()


def config(method: str, scenario: str = "class_0", seed: int = 0, **hparams) -> RunConfig:
    return debug_config(method, scenario, seed, **hparams)


def numbered(n: int, offset: int) -> Subset:
    """Inputs that carry their index in every column, so rows can be traced back."""
    ids = torch.arange(offset, offset + n, dtype=torch.float32)
    return Subset(ids.unsqueeze(1).repeat(1, 3), torch.zeros(n, dtype=torch.long))


def tiny_request(seed: int = 0, retain: int = 40, forget: int = 8) -> Request:
    return Request({"retain": numbered(retain, 0), "forget": numbered(forget, 1000)}, Access.RETAIN,
                   num_classes=3, device=torch.device("cpu"), seed=seed)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 3))


def test_incompetent_teacher_is_a_seeded_reinitialisation_that_leaves_the_rest_alone():
    model = tiny_model()
    saved = copy.deepcopy(model.state_dict())
    rng_before = torch.get_rng_state()
    first = incompetent_teacher(model, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG is untouched
    again = incompetent_teacher(model, torch.Generator().manual_seed(5))
    other = incompetent_teacher(model, torch.Generator().manual_seed(6))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in saved.items())  # original untouched
    check_architecture(first, model)
    for name, value in first.state_dict().items():
        assert not torch.equal(value, saved[name])  # every layer re-initialised
        assert torch.equal(value, again.state_dict()[name])
        assert not torch.equal(value, other.state_dict()[name])
    assert not any(p.requires_grad for p in first.parameters()) and not first.training


def test_mixed_targets_and_loss_by_hand():
    competent = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    incompetent = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    targets = mixed_targets(competent, incompetent, torch.tensor([True, False]), temperature=1.0)
    sharp = 1 / (1 + math.exp(-2))
    assert targets.flatten().tolist() == pytest.approx([0.5, 0.5, sharp, 1 - sharp])
    # at T = 2 the competent teacher's softmax of [1, 0]
    soft = 1 / (1 + math.exp(-1))
    assert mixed_targets(competent, incompetent, torch.tensor([0, 0]), 2.0)[0].tolist() == pytest.approx([soft, 1 - soft])
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p_s = F.softmax(student, dim=1).tolist()
    expected = sum(t * math.log(t / s) for row_t, row_s in zip(targets.tolist(), p_s) for t, s in zip(row_t, row_s)) / 2
    assert bad_teacher_loss(student, targets, 1.0).item() == pytest.approx(expected, rel=1e-6)
    assert bad_teacher_loss(competent, F.softmax(competent, dim=1), 1.0).item() == pytest.approx(0.0, abs=1e-7)


def test_unlearning_data_is_all_of_forget_and_a_seeded_fraction_of_retain():
    request = tiny_request(retain=40, forget=8)
    data = unlearning_data(request, 0.3)
    ids = data.x[:, 0].long()
    assert len(data) == 8 + 12
    assert data.y.dtype == torch.bool and data.y.sum().item() == 8
    assert ids[data.y].tolist() == list(range(1000, 1008))
    retained = ids[~data.y].tolist()
    assert len(set(retained)) == 12 and all(0 <= i < 40 for i in retained)  # drawn without replacement
    assert torch.equal(unlearning_data(tiny_request(), 0.3).x, data.x)
    assert not torch.equal(unlearning_data(tiny_request(seed=1), 0.3).x, data.x)
    assert len(unlearning_data(tiny_request(), 1.0)) == 48 and len(unlearning_data(tiny_request(), 0.0)) == 8
    assert np.array_equal(request.retain.x[:, 0].numpy(), np.arange(40))  # the request's data is untouched


@pytest.mark.parametrize("overrides, word", [
    ({"retain_fraction": 1.5}, "retain_fraction"), ({"retain_fraction": -0.1}, "retain_fraction"),
    ({"temperature": 0.0}, "temperature"),
])
def test_bad_hyper_parameters_are_clear_errors(overrides, word):
    with pytest.raises(MubenchError, match=word):
        BadTeacher().unlearn(tiny_model(), tiny_request(), BadTeacher.resolve(overrides))


def test_same_seed_same_weights_other_seed_other_weights():
    def weights(seed):
        return BadTeacher().unlearn(tiny_model(), tiny_request(seed=seed), BadTeacher.resolve({"lr": 1e-2})).state_dict()

    assert_seed_reproducible(weights)


def test_unlearns_the_original_of_the_debug_task(harness):
    assert_unlearns_debug_original(harness, BadTeacher)


def test_forgets_class_0_through_the_harness(harness):
    identity = harness.run(config("identity")).metrics["forget/acc"]
    record = harness.run(config("bad_teacher", lr=1e-2))
    assert record.status == "ok", record.error
    assert record.metrics["forget/acc"] < min(0.5, identity) and record.metrics["retain/acc"] > 0.9


@pytest.mark.parametrize("scenario", ["class_0", "random_10"])
def test_defaults_run_through_the_harness(harness, scenario):
    record = harness.run(config("bad_teacher", scenario=scenario))
    assert record.status == "ok", record.error
    assert record.metrics["retain/acc"] > 0.9

"""SCRUB (baselines/scrub.py): the tempered KL, the learning-rate schedule, the max-step
schedule, the two optimisers and the profiles' settings, hyper-parameter checks, and a run
through the harness on the debug task."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import baselines.scrub  # noqa: F401  (registers "scrub")
from baselines.scrub import Scrub, scrub_lr
from helpers import assert_seed_reproducible, assert_unlearns_debug_original, debug_config, shared_home
from mubench.errors import MubenchError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.methods import Access
from mubench.request import Request, Subset
from mubench.toolkit.distill import distill_kl


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("distillation")):
        yield Harness()


def config(method: str, scenario: str = "class_0", seed: int = 0, **hparams) -> RunConfig:
    return debug_config(method, scenario, seed, **hparams)


def tiny_request(seed: int = 0, forget_x: torch.Tensor | None = None) -> Request:
    generator = torch.Generator().manual_seed(123)
    retain = Subset(torch.randn(40, 3, generator=generator), torch.randint(0, 3, (40,), generator=generator))
    forget_x = torch.randn(8, 3, generator=generator) if forget_x is None else forget_x
    forget = Subset(forget_x, torch.randint(0, 3, (len(forget_x),), generator=generator))
    return Request({"retain": retain, "forget": forget}, Access.RETAIN, num_classes=3,
                   device=torch.device("cpu"), seed=seed)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 3))


def test_distill_kl_by_hand():
    student = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    teacher = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    temperature = 2.0
    # row 1: p_t = softmax([0, .5, 0]), p_s = softmax([.5, 0, 0]); row 2: identical, KL 0
    z = 2 * math.exp(0) + math.exp(0.5)
    p_t = [1 / z, math.exp(0.5) / z, 1 / z]
    p_s = [math.exp(0.5) / z, 1 / z, 1 / z]
    kl_row1 = sum(t * math.log(t / s) for t, s in zip(p_t, p_s))
    expected = (kl_row1 + 0.0) / 2 * temperature**2  # batch mean, times T^2
    assert distill_kl(student, teacher, temperature).item() == pytest.approx(expected, rel=1e-6)
    assert distill_kl(teacher, teacher, temperature).item() == pytest.approx(0.0, abs=1e-7)


def test_learning_rate_schedule_matches_the_repository_at_ten_epochs_and_scales():
    # sgda_adjust_learning_rate with lr_decay_epochs [5, 8, 9]: x0.1 per point the epoch is past
    assert [scrub_lr(1.0, e, 10) for e in range(1, 11)] == pytest.approx(
        [1, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.001])
    assert [scrub_lr(1.0, e, 5) for e in range(1, 6)] == pytest.approx([1, 1, 0.1, 0.1, 0.001])


def test_explicit_decay_epochs_count_as_the_repositorys_lr_decay_epochs():
    # the large-scale configuration's [3, 5, 9]: nothing is passed within its 3 epochs
    assert [scrub_lr(1.0, e, 3, "3,5,9") for e in range(1, 4)] == pytest.approx([1, 1, 1])
    assert [scrub_lr(1.0, e, 10, "3,5,9") for e in range(1, 11)] == pytest.approx(
        [1, 1, 1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.001])
    assert [scrub_lr(1.0, e, 10, "5,8,9") for e in range(1, 11)] == pytest.approx(
        [scrub_lr(1.0, e, 10) for e in range(1, 11)])  # "scaled" at 10 epochs is exactly [5, 8, 9]


def test_the_standard_profile_runs_the_large_scale_configuration():
    smoke, standard = Scrub.resolve(profile="smoke"), Scrub.resolve(profile="standard")
    assert (smoke.optimizer, smoke.weight_decay, smoke.epochs, smoke.decay_epochs) == ("adam", 0.1, 5, "scaled")
    assert dict(standard) == {**dict(smoke), "optimizer": "sgd", "lr": 5e-4, "momentum": 0.9, "weight_decay": 5e-4,
                              "temperature": 4.0, "gamma": 0.99, "alpha": 0.001, "msteps": 2, "epochs": 3,
                              "decay_epochs": "3,5,9"}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_each_optimiser_takes_the_steps_of_a_hand_written_loop(optimizer):
    """Two min-steps on the whole retain set (one batch per epoch, no max-step), written out with
    torch.optim directly: gamma * CE + alpha * KL_T to the frozen original."""
    hp = Scrub.resolve({"optimizer": optimizer, "epochs": 2, "msteps": 0, "batch_size": 64, "lr": 0.05,
                        "weight_decay": 5e-4, "momentum": 0.5, "gamma": 0.9, "alpha": 0.3, "temperature": 3.0,
                        "decay_epochs": "1"})
    request = tiny_request()
    reference = tiny_model()
    teacher = copy.deepcopy(reference)
    x, y = request.retain.x, request.retain.y
    if optimizer == "sgd":
        opt = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.5, weight_decay=5e-4)
    else:
        opt = torch.optim.Adam(reference.parameters(), lr=0.05, weight_decay=5e-4)
    for epoch_lr in (0.05, 0.005):  # decay after epoch 1
        for group in opt.param_groups:
            group["lr"] = epoch_lr
        output = reference(x)
        loss = 0.9 * nn.functional.cross_entropy(output, y) + 0.3 * distill_kl(output, teacher(x).detach(), 3.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    unlearned = Scrub().unlearn(tiny_model(), request, hp)
    for ours, theirs in zip(unlearned.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_max_steps_happen_only_in_the_first_msteps_epochs():
    """A forget set of NaNs poisons the weights exactly when a max-step touches it."""
    poisoned = torch.full((8, 3), float("nan"))
    hp = Scrub.resolve({"epochs": 2, "msteps": 0})
    before = {k: v.clone() for k, v in tiny_model().state_dict().items()}
    model = Scrub().unlearn(tiny_model(), tiny_request(forget_x=poisoned), hp)
    weights = model.state_dict()
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert any(not torch.equal(before[k], weights[k]) for k in before)  # min-steps still trained it
    model = Scrub().unlearn(tiny_model(), tiny_request(forget_x=poisoned), Scrub.resolve({"epochs": 2, "msteps": 1}))
    assert not all(torch.isfinite(v).all() for v in model.state_dict().values())


@pytest.mark.parametrize("overrides, word", [
    ({"epochs": 3, "msteps": 4}, "msteps"), ({"msteps": -1}, "msteps"),
    ({"epochs": 0, "msteps": 0}, "epochs"), ({"temperature": 0.0}, "temperature"),
    ({"optimizer": "adamw"}, "optimizer must be one of adam, sgd"),
    ({"decay_epochs": "3;5"}, "decay_epochs must be 'scaled' or comma-separated epochs"),
])
def test_bad_hyper_parameters_are_clear_errors(overrides, word):
    with pytest.raises(MubenchError, match=word):
        Scrub().unlearn(tiny_model(), tiny_request(), Scrub.resolve(overrides))


def test_same_seed_same_weights_other_seed_other_weights():
    def weights(seed):
        return Scrub().unlearn(tiny_model(), tiny_request(seed=seed), Scrub.resolve()).state_dict()

    assert_seed_reproducible(weights)


def test_unlearns_the_original_of_the_debug_task(harness):
    assert_unlearns_debug_original(harness, Scrub)


@pytest.mark.parametrize("hparams", [{}, {"lr": 5e-3}], ids=["defaults", "strong"])
def test_forgets_class_0_through_the_harness(harness, hparams):
    identity = harness.run(config("identity")).metrics["forget/acc"]
    record = harness.run(config("scrub", **hparams))
    assert record.status == "ok", record.error
    assert record.metrics["forget/acc"] < identity
    if hparams:  # a stronger step removes the class, keeping most of the retain accuracy
        assert record.metrics["forget/acc"] < 0.2 and record.metrics["retain/acc"] > 0.9


def test_runs_on_random_10(harness):
    record = harness.run(config("scrub", scenario="random_10"))
    assert record.status == "ok", record.error
    assert record.metrics["retain/acc"] > 0.9

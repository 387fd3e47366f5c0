"""LoTUS (baselines/lotus.py): the temperature and stop rule, the Gumbel-softmax targets against a
hand computation with a fixed generator, the loss, class-unlearning detection, hyper-parameter
checks, reproducibility, runs through the harness on the debug task and a smoke behaviour test."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import baselines.identity  # noqa: F401  (registers "identity")
import baselines.lotus  # noqa: F401  (registers "lotus")
from baselines.lotus import (
    LoTUS,
    accuracy,
    hard_targets,
    is_class_unlearning,
    lotus_loss,
    lotus_targets,
    resolved_alpha,
    should_stop,
    soft_targets,
    temperature,
)
from helpers import debug_config, needs_real_mnist, shared_home
from mubench.errors import MubenchError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness, check_architecture
from mubench.methods import Access, methods
from mubench.request import Request, Subset
from mubench.tasks import tasks
from mubench.toolkit.distill import gumbel_noise


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("smoke")):
        yield Harness()


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 3))


def tiny_request(seed: int = 0, forget_labels: torch.Tensor | None = None,
                 unseen_labels: torch.Tensor | None = None) -> Request:
    generator = torch.Generator().manual_seed(123)
    parts = {}
    for name, n in (("retain", 40), ("forget", 8), ("unseen", 12)):
        parts[name] = Subset(torch.randn(n, 3, generator=generator), torch.randint(0, 3, (n,), generator=generator))
    if forget_labels is not None:
        parts["forget"] = Subset(parts["forget"].x, forget_labels)
    if unseen_labels is not None:
        parts["unseen"] = Subset(parts["unseen"].x, unseen_labels)
    return Request(parts, Access.UNSEEN, num_classes=3, device=torch.device("cpu"), seed=seed)


def test_temperature_and_stop_rule_by_hand():
    assert temperature(0.0, 8.0) == 1.0
    assert temperature(0.25, 8.0) == pytest.approx(math.e**2)
    assert temperature(-0.5, 2.0) == pytest.approx(math.exp(-1))
    assert not should_stop(0.0) and not should_stop(-0.009) and should_stop(-0.01) and should_stop(-0.3)
    assert resolved_alpha("auto", 10) == 8.0 and resolved_alpha("auto", 100) == 2.0 and resolved_alpha("4", 10) == 4.0
    # the authors' class-unlearning script runs alpha 32 on every data set
    assert resolved_alpha("auto", 10, class_unlearning=True) == 32.0 == resolved_alpha("auto", 200, True)
    assert resolved_alpha("4", 10, class_unlearning=True) == 4.0


def hand_gumbel(shape, seed):
    u = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    return (-torch.log(-torch.log(u))).float()


def test_gumbel_targets_by_hand_with_a_fixed_generator():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.1, 0.2], [1.0, 1.0, 1.0]])
    g = hand_gumbel(logits.shape, 7)
    assert torch.allclose(gumbel_noise(logits.shape, torch.Generator().manual_seed(7), logits), g)
    soft = soft_targets(logits, 2.5, torch.Generator().manual_seed(7))
    assert torch.allclose(soft, F.softmax((logits + g) / 2.5, dim=1), atol=1e-6)
    hard = hard_targets(logits, torch.Generator().manual_seed(7))
    assert torch.equal(hard, F.one_hot((logits + g).argmax(1), 3).float())
    # without a generator: the code's `--probTransformer softmax` (no noise)
    assert torch.allclose(soft_targets(logits, 2.5, None), F.softmax(logits / 2.5, dim=1))
    assert torch.equal(hard_targets(logits, None), F.one_hot(logits.argmax(1), 3).float())


def test_hard_gumbel_samples_follow_the_teacher_distribution():
    """The Gumbel-max trick: argmax(logits + g) is a draw from softmax(logits)."""
    logits = torch.tensor([[1.0, 0.0, -1.0]]).repeat(20000, 1)
    frequency = hard_targets(logits, torch.Generator().manual_seed(0)).mean(0)
    assert torch.allclose(frequency, F.softmax(logits[0], dim=0), atol=0.015)


def test_mixed_targets_soft_for_forget_hard_for_retain_and_the_loss():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.1, 0.2]])
    generator = torch.Generator().manual_seed(3)
    targets = lotus_targets(logits, torch.tensor([True, False]), 4.0, generator)
    replay = torch.Generator().manual_seed(3)
    g_hard, g_soft = (gumbel_noise(logits.shape, replay, logits) for _ in range(2))  # the hard draw comes first
    assert torch.allclose(targets[0], F.softmax((logits[0] + g_soft[0]) / 4.0, dim=0), atol=1e-6)
    assert torch.equal(targets[1], F.one_hot((logits[1] + g_hard[1]).argmax(), 3).float())
    student = torch.tensor([[0.3, -0.2, 0.1], [1.0, 0.0, 0.0]])
    log_p = F.log_softmax(student, dim=1).tolist()
    expected = -sum(t * lp for row_t, row_lp in zip(targets.tolist(), log_p) for t, lp in zip(row_t, row_lp)) / 2
    assert lotus_loss(student, targets).item() == pytest.approx(expected, rel=1e-6)


def test_class_unlearning_is_detected_from_the_labels():
    mixed = tiny_request()
    assert not is_class_unlearning(mixed, "auto") and is_class_unlearning(mixed, "true")
    assert set(mixed.forget.y.tolist()) & set(mixed.retain.y.tolist())
    parts = {"retain": Subset(mixed.retain.x, torch.ones(40, dtype=torch.long)),
             "forget": Subset(mixed.forget.x, torch.zeros(8, dtype=torch.long)), "unseen": mixed.unseen}
    whole_class = Request(parts, Access.UNSEEN, 3, torch.device("cpu"), seed=0)
    assert is_class_unlearning(whole_class, "auto") and not is_class_unlearning(whole_class, "false")


def test_stops_before_the_first_epoch_when_forget_accuracy_is_below_unseen():
    model = tiny_model()
    with torch.no_grad():
        base = tiny_request()
        wrong = (model(base.forget.x).argmax(1) + 1) % 3  # forget accuracy 0
        right = model(base.unseen.x).argmax(1)  # the teacher is perfect on unseen data: delta = -1
    request = tiny_request(forget_labels=wrong, unseen_labels=right)
    assert accuracy(model, request.forget, 4) == 0.0 and accuracy(model, request.unseen, 5) == 1.0
    saved = copy.deepcopy(model.state_dict())
    stopped = LoTUS().unlearn(model, request, LoTUS.resolve({"lr": 1e-2}))
    assert all(torch.equal(v, saved[k]) for k, v in stopped.state_dict().items())
    # as class unlearning the unseen accuracy counts as 0: delta = 0, no stop, the weights move
    moved = LoTUS().unlearn(tiny_model(), request, LoTUS.resolve({"lr": 1e-2, "class_unlearning": "true"}))
    assert any(not torch.equal(v, saved[k]) for k, v in moved.state_dict().items())


@pytest.mark.parametrize("overrides, word", [
    ({"retain_fraction": 1.5}, "retain_fraction"), ({"alpha": "hot"}, "alpha"),
    ({"prob_transformer": "sparsemax"}, "prob_transformer"), ({"class_unlearning": "maybe"}, "class_unlearning"),
    ({"epochs": -1}, "epochs"),
])
def test_bad_hyper_parameters_are_clear_errors(overrides, word):
    with pytest.raises(MubenchError, match=word):
        LoTUS().unlearn(tiny_model(), tiny_request(), LoTUS.resolve(overrides))


@pytest.mark.parametrize("transformer", ["gumbel_softmax", "softmax"])
def test_same_seed_same_weights_other_seed_other_weights(transformer):
    def weights(seed):
        hp = LoTUS.resolve({"lr": 1e-2, "prob_transformer": transformer})
        return LoTUS().unlearn(tiny_model(), tiny_request(seed=seed), hp).state_dict()

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)  # other retain subset, order, noise
    assert LoTUS.access is Access.UNSEEN and LoTUS.targets == frozenset({"class"})


def test_forgets_class_0_of_the_debug_task(harness):
    identity = harness.run(debug_config("identity")).metrics
    record = harness.run(debug_config("lotus"))
    assert record.status == "ok", record.error
    prepared = harness.prepare("debug", "class_0", 0, "smoke")
    check_architecture(LoTUS().unlearn(copy.deepcopy(prepared.original.model), Request(
        {k: prepared.subsets[k] for k in ("forget", "retain", "unseen")}, Access.UNSEEN, 4, torch.device("cpu"), 0),
        LoTUS.resolve({"epochs": 1})), prepared.original.model)
    # defaults measured 0.90 against identity's 0.97; retain 0.99 against 0.98
    assert record.metrics["forget/acc"] < identity["forget/acc"] - 0.03
    assert record.metrics["retain/acc"] > identity["retain/acc"] - 0.02


def test_random_10_of_the_debug_task_moves_forget_accuracy_toward_the_unseen_level(harness):
    prepared = harness.prepare("debug", "random_10", 0, "smoke")
    # the harness's unseen part of random scenarios is empty (the attacks' held-out samples take
    # the whole val part), so this test hands LoTUS the val part itself
    parts = {k: prepared.subsets[k] for k in ("forget", "retain")} | {"unseen": prepared.subsets["val"]}
    request = Request(parts, Access.UNSEEN, 4, torch.device("cpu"), seed=0)
    original = prepared.original.model
    before = {k: accuracy(original, prepared.subsets[k], 512) for k in ("forget", "val")}
    unlearned = LoTUS().unlearn(copy.deepcopy(original), request, LoTUS.resolve({"lr": 1e-2}))
    check_architecture(unlearned, original)
    # the debug original overfits (forget 0.99, val 0.56); at lr 1e-2 LoTUS measured forget 0.79:
    # lower, but not below the unseen level, where its stop rule would end it
    forget = accuracy(unlearned, prepared.subsets["forget"], 512)
    assert before["val"] - 0.05 < forget < before["forget"] - 0.1
    with pytest.raises(MubenchError, match="unseen"):  # an empty unseen set is an error, not a silent 0
        LoTUS().unlearn(copy.deepcopy(original), Request({**parts, "unseen": Subset(parts["forget"].x[:0],
                        parts["forget"].y[:0])}, Access.UNSEEN, 4, torch.device("cpu"), seed=0), LoTUS.resolve())


def cmnist_run(harness, method, scenario, **hparams):
    cls = methods.get(method)
    return harness.run(RunConfig(task="cmnist", task_version=tasks.get("cmnist").spec.version, scenario=scenario,
                                 method=method, method_version=cls.version, hparams=dict(cls.resolve(hparams)),
                                 seed=0, profile="smoke"))


@needs_real_mnist
def test_cmnist_class_0_forgets_keeping_retain_and_test(harness):
    """In class unlearning the unseen accuracy counts as 0, so tau = exp(alpha acc_f) swings epoch by
    epoch and the final forget accuracy depends on where the last epoch falls (the code's behaviour,
    see baselines/lotus.py). At the authors' class setting, alpha 32 (what "auto" resolves to here)
    and 10 epochs, cmnist class_0 ends at forget accuracy 0.062 / 0.000 / 0.134 for seeds 0 / 1 / 2
    (the authors' code: 0.060 to 0.069), retain 0.998 / 0.998 / 0.997 (identity 0.997); at the old
    alpha 8 it kept the class (0.996; the authors' code 0.995 at 8)."""
    identity = cmnist_run(harness, "identity", "class_0")
    record = cmnist_run(harness, "lotus", "class_0")
    assert record.status == "ok", record.error
    # the oracle never saw class 0 (forget 0.0): at least half of the way from identity's 1.0
    assert record.metrics["forget/acc"] < identity.metrics["forget/acc"] - 0.5
    # retain samples keep hard teacher targets: within 1 point (measured 0.998 against 0.997)
    assert record.metrics["retain/acc"] > identity.metrics["retain/acc"] - 0.01

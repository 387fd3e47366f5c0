"""`Request.train_from_scratch("retain")` is the oracle's training (same recipe, seed and samples):
the harness hands back a copy of the prepared oracle and charges its training seconds, rather
than training it a second time; any other subset is trained afresh."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import debug_config
from mubench.harness.runner import Harness
from mubench.methods import Access, HParams, Method, methods, register_method
from mubench.request import Request


class ForgetRetrain(Method):
    """Trains from scratch on the forget set: not the oracle's data, so a fresh training."""

    access = Access.RETAIN
    paper = "a test probe"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        return request.train_from_scratch("forget")


@pytest.fixture
def harness(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    torch.set_num_threads(1)
    return Harness()


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_retrain_returns_a_copy_of_the_oracle_charged_retraining_on_this_machine(harness, monkeypatch):
    prepared = harness.prepare("debug", "random_10", 0, "smoke")
    monkeypatch.setattr(harness, "fit_from_scratch", lambda *a, **k: pytest.fail("retrain trained a second time"))
    unlearned, seconds, peak, work = harness.unlearn(debug_config("retrain", scenario="random_10"), prepared)
    assert unlearned is not prepared.oracle.model and _same_weights(unlearned, prepared.oracle.model)
    with torch.no_grad():
        next(unlearned.parameters()).add_(1.0)  # a copy: the prepared oracle is untouched
    assert not _same_weights(unlearned, prepared.oracle.model)
    reference = harness.reference_seconds(prepared)
    assert reference > 0
    assert reference <= seconds < reference + 1.0
    recipe = prepared.task.spec.profile("smoke").recipe
    assert work == 3 * recipe.epochs * len(prepared.subsets["retain"])  # the oracle's training, counted by hand
    assert peak is None  # the oracle's training was not watched here


def test_retrain_record_has_every_gap_zero_and_costs_one_retraining(harness):
    record = harness.run(debug_config("retrain", scenario="random_10"))
    prepared = harness.prepare("debug", "random_10", 0, "smoke")
    gaps = {k: v for k, v in record.metrics.items() if k.startswith("gap/")}
    assert gaps and all(v == 0.0 for v in gaps.values()), gaps
    assert record.metrics["cost/seconds"] == pytest.approx(prepared.reference_seconds, abs=1.0)
    assert record.metrics["cost/rte"] == pytest.approx(1.0, abs=0.05)  # the charge, plus copying the oracle
    assert record.metrics["cost/work"] == 1.0  # by construction, on any machine
    assert "cost/peak_mem_mb" not in record.metrics


def test_training_from_scratch_on_other_data_trains_afresh(harness, monkeypatch):
    methods.names()  # load the entry points first, so they stay loaded
    monkeypatch.setattr(methods, "_items", dict(methods._items))  # registered for this test only
    register_method("_test_forget_retrain")(ForgetRetrain)
    prepared = harness.prepare("debug", "random_10", 0, "smoke")
    trained = []
    fit = harness.fit_from_scratch
    monkeypatch.setattr(harness, "fit_from_scratch", lambda *a: trained.append(len(a[-1])) or fit(*a))
    unlearned, _, _, _ = harness.unlearn(debug_config("_test_forget_retrain", scenario="random_10"), prepared)
    assert trained == [len(prepared.subsets["forget"])]
    assert not _same_weights(unlearned, prepared.oracle.model)

"""Hardware-independent cost (mubench.harness.work): sample passes counted by hand, through copies,
functional calls and vmap; identity costs nothing, fine-tuning its epochs over the oracle's."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from helpers import debug_config
from mubench.harness.runner import Harness
from mubench.harness.work import counting_work, samples_in, training_work
from mubench.methods import methods


@pytest.fixture(scope="module")
def debug_harness() -> Harness:
    return Harness()


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def test_forward_passes_count_one_and_recorded_ones_three():
    net, x = Net(), torch.randn(10, 4)
    with counting_work(Net, (4,)) as work:
        with torch.no_grad():
            net(x)
        assert work.units == 10
        net(x[:6]).sum().backward()
        assert work.units == 10 + 3 * 6
        copy.deepcopy(net)(x[:2])  # a copy is still the task's model
        nn.Linear(4, 3)(x)  # another module class: not the task's model, not counted
    assert work.units == 10 + 18 + 6
    net(x)  # after the block: not counted
    assert work.units == 34


def test_functional_calls_and_vmapped_per_sample_gradients_count_every_sample():
    net, x, y = Net(), torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    params = dict(net.named_parameters())

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(net, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    with counting_work(Net, (4,)) as work:
        vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    assert work.units == 3 * 5  # five samples, each with a gradient


def test_samples_of_a_call_without_a_tensor_are_zero():
    assert samples_in(("not a tensor",), 4) == 0
    assert samples_in((torch.zeros(6, 2, 2),), 4) == 6
    assert samples_in((torch.zeros(6, 5),), 4) == 6  # not a multiple of the sample size: the leading dimension


def test_training_work_is_three_units_per_sample_and_epoch():
    assert training_work(epochs=5, samples=100) == 1500.0


@pytest.mark.parametrize("method, expected", [("identity", 0.0), ("retrain", 1.0)])
def test_identity_costs_nothing_and_retraining_one(debug_harness, method, expected):
    record = debug_harness.run(debug_config(method, scenario="random_10"))
    assert record.metrics["cost/work"] == expected


def test_finetuning_costs_its_epochs_over_the_oracles(debug_harness):
    hp = dict(methods.get("finetune").resolve({}, "smoke"))
    record = debug_harness.run(debug_config("finetune", scenario="random_10"))
    prepared = debug_harness.prepare("debug", "random_10", 0, "smoke")
    epochs = prepared.task.spec.profile("smoke").recipe.epochs
    assert record.metrics["cost/work"] == pytest.approx(hp["epochs"] / epochs)  # both over the same retain set

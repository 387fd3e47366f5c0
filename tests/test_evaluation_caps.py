"""EVALUATION_CAPS: a capped part is evaluated on an evenly spaced sample, the same one for every
model of a split, so that gaps to the oracle compare like with like."""

from __future__ import annotations

import pytest
import torch

from helpers import debug_config
from mubench import evaluation
from mubench.evaluation import evaluated_sample
from mubench.harness.runner import Harness
from mubench.request import Subset


def test_evaluated_sample_is_evenly_spaced_unique_and_only_when_over_the_cap():
    subset = Subset(torch.arange(100).float().view(-1, 1), torch.arange(100))
    assert evaluated_sample(subset, None) is subset and evaluated_sample(subset, 100) is subset
    sample = evaluated_sample(subset, 10)
    assert sample.y.tolist() == [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]  # floor(i * 99 / 9)
    assert torch.equal(sample.x.view(-1).long(), sample.y)  # inputs and labels stay paired
    assert evaluated_sample(subset, 1).y.tolist() == [0]
    for n, cap in ((50_000, 10_000), (10_001, 10_000), (40_500, 10_000), (7, 6)):
        index = evaluated_sample(Subset(torch.zeros(n, 1), torch.arange(n)), cap).y
        assert len(index) == cap == len(set(index.tolist())) and index[0] == 0 and index[-1] == n - 1


def test_every_model_of_a_split_is_evaluated_on_the_same_capped_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.setitem(evaluation.EVALUATION_CAPS, "retain", 50)
    harness = Harness()
    prepared = harness.prepare("debug", "random_10", 0, "smoke")
    assert len(prepared.split.retain) > 50
    sample = evaluated_sample(prepared.subsets["retain"], 50)
    for outputs in (prepared.original_outputs, prepared.oracle_outputs):
        assert torch.equal(outputs["retain"].labels, sample.y.cpu())
    assert len(prepared.original_outputs["forget"].labels) == len(prepared.split.forget)  # other parts whole
    identity = harness.run(debug_config("identity", scenario="random_10"))
    retrain = harness.run(debug_config("retrain", scenario="random_10"))
    assert identity.metrics["retain/acc"] == prepared.original_outputs["retain"].accuracy
    assert retrain.metrics["retain/acc"] == prepared.oracle_outputs["retain"].accuracy
    assert retrain.metrics["gap/retain_acc"] == 0.0
    # the method still gets the whole retain set
    assert len(prepared.subsets["retain"]) == len(prepared.split.retain)
    with torch.no_grad():
        whole = (prepared.original.model(prepared.subsets["retain"].x).argmax(1) == prepared.subsets["retain"].y)
    assert identity.metrics["retain/acc"] == pytest.approx(float(whole[sample_positions(len(whole), 50)].float().mean()))


def sample_positions(n: int, cap: int) -> torch.Tensor:
    return torch.arange(cap) * (n - 1) // (cap - 1)

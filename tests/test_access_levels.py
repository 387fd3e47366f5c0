"""Access levels beyond the retain set: `unseen` data and counterfactuals (docs/design.md), handed out
only to methods that declared them, and never the membership attacks' held-out non-members."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers import shared_home
from mubench.errors import AccessError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.methods import Access, HParams, Method, methods, register_method
from mubench.request import Request, Subset
from mubench.tasks import tasks

SEEN: dict[str, Request] = {}


@register_method("_test_unseen_probe")
class UnseenProbe(Method):
    access = Access.UNSEEN

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        SEEN["unseen"] = request
        return model


@register_method("_test_counterfactual_probe")
class CounterfactualProbe(Method):
    access = Access.COUNTERFACTUAL

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        SEEN["counterfactual"] = request
        return model


def test_levels_are_nested_supersets() -> None:
    levels = sorted(Access, key=lambda a: a.level)
    assert [a.value for a in levels] == ["forget", "retain", "unseen", "counterfactual"]
    for lower, higher in zip(levels, levels[1:]):
        assert lower.subsets <= higher.subsets
    assert Access.UNSEEN.subsets == {"forget", "retain", "unseen"}


def _subset(n: int, attributes: bool = False) -> Subset:
    return Subset(torch.zeros(n, 2), torch.zeros(n, dtype=torch.long),
                  {"sex": torch.ones(n, dtype=torch.long)} if attributes else {})


def test_attributes_and_counterfactuals_only_with_counterfactual_access() -> None:
    parts = {"forget": _subset(2), "retain": _subset(3), "unseen": _subset(4, attributes=True)}
    flip = lambda x, attributes, generator: -x  # noqa: E731
    unseen = Request(parts, Access.UNSEEN, 2, torch.device("cpu"), seed=0, counterfactual=flip,
                     sensitive_attributes=("sex",))
    assert unseen.unseen.attributes == {} and unseen.sensitive_attributes == ()
    with pytest.raises(AccessError, match="counterfactuals"):
        unseen.counterfactual(parts["unseen"].x, {})
    full = Request(parts, Access.COUNTERFACTUAL, 2, torch.device("cpu"), seed=0, counterfactual=flip,
                   sensitive_attributes=("sex",))
    assert set(full.unseen.attributes) == {"sex"} and full.sensitive_attributes == ("sex",)
    x = torch.ones(4, 2)
    assert torch.equal(full.counterfactual(x, {}), -x)
    with pytest.raises(AccessError, match="unseen"):
        Request({"forget": _subset(2), "retain": _subset(2), "unseen": _subset(2)}, Access.RETAIN, 2,
                torch.device("cpu"), seed=0)


def test_harness_hands_unseen_data_disjoint_from_training_and_heldout(tmp_path_factory: pytest.TempPathFactory) -> None:
    with shared_home(tmp_path_factory.mktemp("home")):
        harness = Harness()
        for name in ("_test_unseen_probe", "_test_counterfactual_probe"):
            config = RunConfig(task="debug", task_version=tasks.get("debug").spec.version, scenario="class_0",
                               method=name, method_version="1", hparams={}, seed=0, profile="smoke")
            assert harness.run(config).status == "ok"
        prepared = harness.prepare("debug", "class_0", 0, "smoke")
    split = prepared.split
    expected = np.setdiff1d(split.val, split.heldout)
    assert len(expected) > 0 and not np.intersect1d(expected, split.train).size
    for request in SEEN.values():
        assert len(request.unseen) == len(expected)
        assert torch.equal(request.unseen.x, prepared.subsets["unseen"].x)
    assert SEEN["counterfactual"].counterfactual(prepared.subsets["unseen"].x, {}) is None  # debug has no builder
    assert methods.get("_test_unseen_probe").access.level == 2

"""SalUn (baselines/salun.py): the global top-share saliency mask (exact share, ties), the summed
forget gradient by hand, masked weights kept bit-identical through weight decay and momentum, and
the method end to end on the debug task."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import baselines.salun  # noqa: F401  (registers "salun")
from baselines.salun import SalUn, forget_gradient_magnitude, saliency_mask
from helpers import debug_config
from mubench.errors import MubenchError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.methods import Access
from mubench.request import Request, Subset
from mubench.toolkit.optim import MaskedSGD, top_share_mask


@pytest.fixture(autouse=True)
def _home_and_one_thread(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config(scenario: str = "class_0", seed: int = 0, method: str = "salun", **hparams) -> RunConfig:
    return debug_config(method, scenario, seed, **hparams)


def debug_request(harness: Harness, scenario: str = "class_0", seed: int = 7):
    prepared = harness.prepare("debug", scenario, 0, "smoke")
    subsets = {name: prepared.subsets[name] for name in ("forget", "retain")}
    request = Request(subsets, Access.RETAIN, 4, torch.device("cpu"), seed=seed)
    return prepared.original.model, request


# ---- the mask -----------------------------------------------------------------------------------

def test_top_share_mask_keeps_exactly_the_share_and_breaks_ties_by_order():
    scores = {"a": torch.tensor([3.0, 1.0, 1.0]), "b": torch.tensor([[1.0, 0.0], [5.0, 1.0]])}
    mask = top_share_mask(scores, 0.5)  # N = 7, k = int(3.5) = 3: 5, 3 and the first of four 1s
    assert torch.equal(mask["a"], torch.tensor([True, True, False]))
    assert torch.equal(mask["b"], torch.tensor([[False, False], [True, False]]))
    assert sum(int(m.sum()) for m in top_share_mask(scores, 0.3).values()) == 2  # int(2.1)
    assert all(m.all() for m in top_share_mask(scores, 1.0).values())
    flat = top_share_mask({"z": torch.zeros(10)}, 0.5)["z"]  # all tied: the first five
    assert flat.tolist() == [True] * 5 + [False] * 5


def test_top_share_mask_threshold_is_global_not_per_layer():
    mask = top_share_mask({"small": torch.full((4,), 0.1), "large": torch.full((4,), 2.0)}, 0.5)
    assert not mask["small"].any() and mask["large"].all()


def test_forget_gradient_is_the_sum_of_batch_mean_gradients_by_hand():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    request = Request({"forget": Subset(x, y), "retain": Subset(x[:1], y[:1])}, Access.RETAIN, 2,
                      torch.device("cpu"), seed=0)
    expected_w, expected_b = torch.zeros(2, 3), torch.zeros(2)
    for start in (0, 2, 4):  # batches of 2, 2, 1: d mean CE / d logits = (softmax - onehot) / n
        xb, yb = x[start:start + 2], y[start:start + 2]
        with torch.no_grad():
            delta = (torch.softmax(model(xb), 1) - nn.functional.one_hot(yb, 2)) / len(yb)
        expected_w += delta.T @ xb
        expected_b += delta.sum(0)
    got = forget_gradient_magnitude(model, request, batch_size=2)
    assert torch.allclose(got["weight"], expected_w.abs(), atol=1e-6)
    assert torch.allclose(got["bias"], expected_b.abs(), atol=1e-6)
    assert model.training  # mode restored


def test_saliency_mask_on_the_debug_model_keeps_the_requested_share():
    model, request = debug_request(Harness())
    total = sum(p.numel() for p in model.parameters())
    for ratio in (0.1, 0.5, 0.77):
        mask = saliency_mask(model, request, ratio, batch_size=128)
        assert sum(int(m.sum()) for m in mask.values()) == int(total * ratio)


# ---- masked updates -----------------------------------------------------------------------------

def test_masked_sgd_keeps_masked_out_weights_bit_identical_despite_weight_decay_and_momentum():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    mask = {"weight": torch.rand(3, 4) < 0.5, "bias": torch.tensor([True, False, True])}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = MaskedSGD(model, mask, lr=0.1, weight_decay=0.5)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    for _ in range(5):
        optimizer.step(nn.functional.cross_entropy(model(x), y))
    for name, p in model.named_parameters():
        assert torch.equal(p[~mask[name]], before[name][~mask[name]])
        assert (p[mask[name]] != before[name][mask[name]]).all()
    # the control: masking the gradient alone lets weight decay and momentum move masked weights
    plain = copy.deepcopy(model)
    sgd = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9, weight_decay=0.5)
    sgd.zero_grad()
    nn.functional.cross_entropy(plain(x), y).backward()
    plain.weight.grad.mul_(mask["weight"])
    sgd.step()
    assert not torch.equal(plain.weight[~mask["weight"]], model.weight[~mask["weight"]])


def test_unlearn_moves_only_salient_weights_of_the_debug_model():
    harness = Harness()
    original, request = debug_request(harness)
    mask = saliency_mask(original, request, 0.3, batch_size=128)
    model = SalUn().unlearn(copy.deepcopy(original), request, SalUn.resolve({"mask_ratio": 0.3}))
    reference = dict(original.named_parameters())
    changed = 0
    for name, p in model.named_parameters():
        assert torch.equal(p[~mask[name]], reference[name][~mask[name]])
        changed += int((p[mask[name]] != reference[name][mask[name]]).sum())
    assert changed > 0.9 * sum(int(m.sum()) for m in mask.values())


def test_random_labels_are_uniform_over_all_classes_including_the_true_one():
    request = Request({"forget": Subset(torch.zeros(1, 1), torch.zeros(1, dtype=torch.long))}, Access.FORGET, 4,
                      torch.device("cpu"), seed=0)
    labels = SalUn.random_labels(4000, request)
    counts = torch.bincount(labels, minlength=4).float() / 4000
    assert ((counts - 0.25).abs() < 0.03).all()


# ---- end to end ---------------------------------------------------------------------------------

def test_salun_runs_through_the_harness_and_forgets_class_0():
    harness = Harness()
    record = harness.run(config())
    assert record.status == "ok", record.error
    identity = harness.run(config(method="identity"))
    assert record.metrics["forget/acc"] < identity.metrics["forget/acc"] - 0.3
    assert record.metrics["retain/acc"] > 0.9


def test_same_seed_same_weights_other_seed_other_weights():
    harness = Harness()
    original, _ = debug_request(harness)

    def weights(seed: int) -> list[torch.Tensor]:
        _, request = debug_request(harness, seed=seed)
        return list(SalUn().unlearn(copy.deepcopy(original), request, SalUn.resolve({"epochs": 1})).parameters())

    first, again, other = weights(3), weights(3), weights(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("hparams", [{"mask_ratio": 0.0}, {"mask_ratio": 1.5}, {"epochs": 0}])
def test_bad_hyper_parameters_are_clear_errors(hparams):
    original, request = debug_request(Harness())
    with pytest.raises(MubenchError, match="salun"):
        SalUn().unlearn(copy.deepcopy(original), request, SalUn.resolve(hparams))

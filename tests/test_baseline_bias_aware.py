"""Bias-Aware Machine Unlearning (baselines/bias_ga.py, bias_lora.py, bias_distill.py and the shared
bias_aware.py): LoRA forward, merge and gradients by hand, the neutral distillation target,
hyper-parameter checks, reproducibility, runs through the harness on the debug task, and the
paper's claim direction (bias shrinks, accuracy kept) on Colored MNIST's bias_aligned scenario."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import baselines.bias_distill  # noqa: F401  (registers "bias_distill")
import baselines.bias_ga  # noqa: F401  (registers "bias_ga")
import baselines.bias_lora  # noqa: F401  (registers "bias_lora")
import baselines.identity  # noqa: F401
from baselines.bias_distill import BiasDistill
from baselines.bias_ga import BiasGradAscent
from baselines.bias_lora import BiasLoRA
from baselines.grad_ascent import GradAscent
from helpers import debug_config, needs_real_mnist, shared_home
from mubench.errors import MubenchError
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness, check_architecture
from mubench.methods import Access
from mubench.request import Request, Subset
from mubench.tasks import tasks
from mubench.toolkit.distill import neutral_targets
from mubench.toolkit.lora import LoRA, add_lora, merge_lora

METHODS = ["bias_ga", "bias_lora", "bias_distill"]




@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("bias-aware")):
        yield Harness()


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 3))


def tiny_conv() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 3))


def tiny_request(seed: int = 0, access: Access = Access.RETAIN) -> Request:
    g = torch.Generator().manual_seed(1)
    retain = Subset(torch.randn(40, 3, generator=g), torch.randint(0, 3, (40,), generator=g))
    forget = Subset(torch.randn(8, 3, generator=g), torch.zeros(8, dtype=torch.long))
    subsets = {"retain": retain, "forget": forget} if access is Access.RETAIN else {"forget": forget}
    return Request(subsets, access, num_classes=3, device=torch.device("cpu"), seed=seed)


def randomise_b(model: nn.Module, seed: int = 3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRA):
                module.lora_b.copy_(torch.randn(module.lora_b.shape, generator=g))


# -- LoRA by hand ---------------------------------------------------------------------------------
def test_lora_linear_forward_is_wx_plus_scaled_bax():
    base = nn.Linear(3, 2)
    lora = LoRA(base, rank=2, alpha=6.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(lora.lora_b, torch.zeros(2, 2)) and lora.scale == 3.0
    assert lora.lora_a.abs().max() <= 1 / 3**0.5  # loralib's kaiming_uniform(a=sqrt(5)) bound
    with torch.no_grad():
        lora.lora_b.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
    x = torch.randn(5, 3)
    expected = x @ base.weight.T + base.bias + 3.0 * x @ lora.lora_a.T @ lora.lora_b.T
    assert torch.allclose(lora(x), expected, atol=1e-6)
    assert torch.allclose(lora.delta(), 3.0 * lora.lora_b @ lora.lora_a)


def test_lora_conv_forward_equals_the_conv_with_the_merged_kernel():
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=1)
    lora = LoRA(conv, rank=3, alpha=3.0, generator=torch.Generator().manual_seed(0))
    randomise_b(nn.Sequential(lora))
    x = torch.randn(2, 2, 6, 6)
    manual = F.conv2d(x, conv.weight + torch.einsum("or,rikl->oikl", lora.lora_b[:, :, 0, 0], lora.lora_a),
                      conv.bias, stride=2, padding=1)
    assert torch.allclose(lora(x), manual, atol=1e-5)


@pytest.mark.parametrize("build, shape", [(tiny_model, (6, 3)), (tiny_conv, (6, 2, 6, 6))])
def test_zero_b_is_the_original_and_merge_gives_the_adapted_outputs(build, shape):
    original = build()
    model = copy.deepcopy(original)
    adapters = add_lora(model, rank=2, alpha=4.0, generator=torch.Generator().manual_seed(0))
    x = torch.randn(shape)
    assert len(adapters) == 4
    assert torch.equal(model(x), original(x))  # B = 0: the adapted model is the original
    randomise_b(model)
    adapted = model(x).detach()
    assert not torch.allclose(adapted, original(x))
    merged = merge_lora(model)
    check_architecture(merged, original)
    assert not any(isinstance(m, LoRA) for m in merged.modules())
    assert [type(m) for m in merged.modules()] == [type(m) for m in original.modules()]
    assert torch.allclose(merged(x), adapted, atol=1e-5)
    assert all(p.requires_grad for p in merged.parameters())


def test_only_adapter_parameters_receive_gradients():
    model = tiny_model()
    adapters = add_lora(model, rank=2, alpha=2.0, generator=torch.Generator().manual_seed(0))
    randomise_b(model)
    model(torch.randn(4, 3)).sum().backward()
    adapter_ids = {id(p) for p in adapters}
    for name, p in model.named_parameters():
        if id(p) in adapter_ids:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_lora_rejects_grouped_convolutions_and_models_without_layers():
    with pytest.raises(MubenchError, match="groups"):
        LoRA(nn.Conv2d(4, 4, 3, groups=2), 2, 2.0, torch.Generator())
    with pytest.raises(MubenchError, match="no nn.Linear"):
        add_lora(nn.Sequential(nn.ReLU()), 2, 2.0, torch.Generator())


# -- the neutral distillation target ---------------------------------------------------------------
def test_forget_targets_are_uniform_and_retain_targets_the_teacher():
    teacher = torch.tensor([[4.0, 0.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    targets = neutral_targets(teacher, torch.tensor([True, False]), temperature=2.0)
    assert targets[0].tolist() == pytest.approx([0.25] * 4)
    assert targets[1].tolist() == pytest.approx(F.softmax(teacher[1] / 2.0, dim=0).tolist())


# -- methods on tiny data --------------------------------------------------------------------------
def test_bias_ga_is_grad_ascent_with_its_own_defaults():
    assert issubclass(BiasGradAscent, GradAscent) and BiasGradAscent.unlearn is GradAscent.unlearn
    assert BiasGradAscent.access is Access.FORGET and BiasGradAscent.defaults()["lr"] == 8e-3


@pytest.mark.parametrize("cls, overrides, word", [
    (BiasLoRA, {"rank": 0}, "rank"), (BiasLoRA, {"forget_weight": -1.0}, "forget_weight"),
    (BiasDistill, {"retain_fraction": 1.5}, "retain_fraction"), (BiasDistill, {"temperature": 0.0}, "temperature"),
])
def test_bad_hyper_parameters_are_clear_errors(cls, overrides, word):
    with pytest.raises(MubenchError, match=word):
        cls().unlearn(tiny_model(), tiny_request(), cls.resolve(overrides))


@pytest.mark.parametrize("cls", [BiasGradAscent, BiasLoRA, BiasDistill])
def test_same_seed_same_weights_other_seed_other_weights(cls):
    access = cls.access

    def weights(seed):
        # batches of 4, so that the seed's shuffling matters on 8 forget samples
        return cls().unlearn(tiny_model(), tiny_request(seed, access), cls.resolve({"batch_size": 4})).state_dict()

    first, again, other = weights(0), weights(0), weights(1)
    reference = tiny_model().state_dict()
    assert list(first) == list(reference)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
    assert any(not torch.equal(first[k], reference[k]) for k in first)


# -- the harness on the debug task -----------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_defaults_run_through_the_harness(harness, method):
    identity = harness.run(debug_config("identity")).metrics["forget/acc"]
    record = harness.run(debug_config(method))
    assert record.status == "ok", record.error
    assert record.metrics["forget/acc"] < identity and record.metrics["retain/acc"] > 0.9


# The debug forget set is one batch: the defaults (tuned on cmnist's ~1,000 forget images) take
# 3 to 10 steps there, so class 0 is forgotten outright only with a larger step or more epochs.
@pytest.mark.parametrize("method, hparams", [("bias_ga", {"lr": 0.02}), ("bias_lora", {"epochs": 20}),
                                             ("bias_distill", {"epochs": 10})])
def test_forgets_class_0_through_the_harness(harness, method, hparams):
    identity = harness.run(debug_config("identity")).metrics["forget/acc"]
    record = harness.run(debug_config(method, **hparams))
    assert record.status == "ok", record.error
    assert record.metrics["forget/acc"] < min(0.5, identity) and record.metrics["retain/acc"] > 0.9


def test_lora_returns_the_original_module_objects_merged(harness):
    prepared = harness.prepare("debug", "class_0", 0, "smoke")
    original = prepared.original.model
    request = Request({k: prepared.subsets[k] for k in ("forget", "retain")}, Access.RETAIN, 4,
                      torch.device("cpu"), seed=0)
    unlearned = BiasLoRA().unlearn(copy.deepcopy(original), request, BiasLoRA.resolve())
    check_architecture(unlearned, original)
    reference = original.state_dict()
    changed = [k for k, v in unlearned.state_dict().items() if not torch.equal(v, reference[k])]
    assert changed and all(k.endswith("weight") for k in changed)  # LoRA never touches biases


# -- the paper's claim on Colored MNIST --------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_harness(tmp_path_factory):
    with shared_home(tmp_path_factory.mktemp("smoke")):
        yield Harness()


def cmnist_config(method: str) -> RunConfig:
    from mubench.methods import methods

    cls = methods.get(method)
    return RunConfig(task="cmnist", task_version=tasks.get("cmnist").spec.version, scenario="bias_aligned",
                     method=method, method_version=cls.version, hparams=dict(cls.resolve()), seed=0, profile="smoke")


@needs_real_mnist
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.slow
def test_bias_shrinks_on_cmnist_bias_aligned(smoke_harness, method):
    """The forget set is digit 0 in its stereotyped colour (99 % of digit 0's training images).
    Claim (Aylapuram et al. 2025): unlearning it lowers the model's reliance on colour; GA gives
    the largest fairness gains at an accuracy cost, LoRA and distillation trade less accuracy.
    Measured at smoke scale, seed 0 (identity: test 0.403, bias/gap 0.656, fair/dp 0.462; the
    oracle: 0.379, 0.582, 0.458):
    - bias_ga: 0.269, 0.585, 0.306: both bias measures fall, accuracy falls most (bound: far
      above chance, 0.1, so the drop is not a collapse);
    - bias_lora: 0.351, 0.658, 0.432: fair/dp falls, bias/gap does not (the claim holds for the
      group-fairness measure only here); accuracy within 0.05 of the oracle's;
    - bias_distill: 0.359, 0.598, 0.452: both fall; accuracy within 0.03 of the oracle's.
    At smoke scale these depend on the seed (GA sits on a learning-rate cliff); the note says so."""
    prepared = smoke_harness.prepare("cmnist", "bias_aligned", 0, "smoke")
    test = prepared.oracle_outputs["test"]
    oracle_acc = float((test.logits.argmax(dim=1) == test.labels).float().mean())
    identity = smoke_harness.run(cmnist_config("identity")).metrics
    record = smoke_harness.run(cmnist_config(method))
    assert record.status == "ok", record.error
    m = record.metrics
    assert m["forget/acc"] < identity["forget/acc"]
    assert m["fair/dp"] < identity["fair/dp"] - 0.005
    if method != "bias_lora":
        assert m["bias/gap"] < identity["bias/gap"] - 0.01
    floor = {"bias_ga": 0.2, "bias_lora": oracle_acc - 0.05, "bias_distill": oracle_acc - 0.03}[method]
    assert m["test/acc"] > floor

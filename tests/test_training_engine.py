"""The training engine (mubench/harness/training.py): the one-cycle schedule, label smoothing, stored
samples turned into inputs batch by batch, and the hardware options (channels_last, bf16 autocast,
fused optimisers), each checked on the CPU against the plain path or a hand computation."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save
from torch import nn
from torch.nn import functional as F

from mubench.harness.training import (
    Engine,
    can_train_batched,
    make_optimizer,
    make_schedule,
    onecycle_factor,
    train_model,
    train_models_batched,
    training_loss,
)
from mubench.targets import Target
from mubench.tasks.cifar10 import MEAN, STD, Cifar10Task
from mubench.tasks.spec import Recipe


def _cnn() -> nn.Module:
    """No bias before the BatchNorm: its gradient is zero up to rounding, which Adam would blow up
    to full steps of noise, so no two kernels could agree on it."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))


def _images(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8), torch.randint(0, 3, (n,), generator=g)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


def test_onecycle_factor_by_hand():
    # 8 steps, warm-up 0.25 -> 2 rising steps from 1/25, then a linear fall over 6 steps to 0
    assert [onecycle_factor(s, 8, 0.25, 25.0) for s in range(9)] == pytest.approx(
        [1 / 25, 1 / 25 + (24 / 25) / 2, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0.0])


@pytest.mark.parametrize("total_steps", [1, 2, 3, 4, 7])
def test_onecycle_schedule_drives_the_optimiser_for_runs_of_any_length(total_steps):
    """torch's OneCycleLR divides by zero on a run of 4 steps; ours is defined for any length and
    sets lr = peak x factor before each step."""
    recipe = Recipe(optimizer="sgd", lr=0.4, epochs=1, batch_size=1, schedule="onecycle", warmup=0.25, warmup_div=10)
    weight = nn.Parameter(torch.zeros(1))
    optimizer = make_optimizer([weight], recipe)
    schedule = make_schedule(optimizer, recipe, total_steps)
    seen = []
    for _ in range(total_steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([0.4 * onecycle_factor(s, total_steps, 0.25, 10) for s in range(total_steps)])
    assert max(seen) <= 0.4 + 1e-12


def test_label_smoothing_is_torchs_for_classification_and_ignored_for_regression():
    logits, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    smoothed = training_loss(Target(), Recipe(lr=1, epochs=1, batch_size=1, label_smoothing=0.1))
    # by hand: (1 - eps) * CE + eps * mean over classes of -log p
    by_hand = 0.9 * F.cross_entropy(logits, y) + 0.1 * (-logits.log_softmax(1).mean(1)).mean()
    assert torch.allclose(smoothed(logits, y), by_hand)
    regression = Target(kind="regression")
    loss = training_loss(regression, Recipe(lr=1, epochs=1, batch_size=1, label_smoothing=0.1))
    out, target = torch.randn(3, 2), torch.randn(3, 2)
    assert torch.equal(loss(out, target), regression.loss(out, target))


def test_stored_samples_transformed_per_batch_train_exactly_like_prepared_inputs():
    """The harness keeps the train part as stored uint8 and calls task.to_inputs per batch: the
    weights must equal training on inputs normalised up front (elementwise, so bit for bit)."""
    to_inputs = Cifar10Task().to_inputs
    x, y = _images()
    recipe = Recipe(optimizer="sgd", lr=0.05, epochs=2, batch_size=16, augment="crop_flip", schedule="onecycle")
    upfront, per_batch = _cnn(), _cnn()
    train_model(upfront, to_inputs(x), y, recipe, torch.Generator().manual_seed(4))
    train_model(per_batch, x, y, recipe, torch.Generator().manual_seed(4), transform=to_inputs)
    assert all(torch.equal(a, b) for a, b in zip(_weights(upfront), _weights(per_batch)))
    assert torch.equal(x, _images()[0])  # the stored samples are untouched
    assert to_inputs(x[:1])[0, 0, 0, 0] == pytest.approx((float(x[0, 0, 0, 0]) / 255 - MEAN[0]) / STD[0], rel=1e-5)


def test_channels_last_trains_the_same_model_and_leaves_contiguous_weights():
    x, y = _images()
    recipe = Recipe(optimizer="adam", lr=1e-2, epochs=2, batch_size=16)
    plain, last = _cnn(), _cnn()
    train_model(plain, x.float() / 255, y, recipe, torch.Generator().manual_seed(2), engine=Engine())
    train_model(last, x.float() / 255, y, recipe, torch.Generator().manual_seed(2), engine=Engine(channels_last=True))
    for a, b in zip(_weights(plain), _weights(last)):
        assert torch.allclose(a, b, atol=1e-5)
    assert all(p.is_contiguous() for p in last.state_dict().values())
    save(last.state_dict())  # safetensors refuses non-contiguous tensors: the cache can store it


def test_bf16_autocast_trains_close_to_fp32_with_float32_weights():
    x, y = _images(96)
    recipe = Recipe(optimizer="adam", lr=1e-2, epochs=3, batch_size=32)
    fp32, bf16 = _cnn(), _cnn()
    first = train_model(fp32, x.float() / 255, y, recipe, torch.Generator().manual_seed(2), engine=Engine())
    mixed = train_model(bf16, x.float() / 255, y, recipe, torch.Generator().manual_seed(2),
                        engine=Engine(autocast=torch.bfloat16))
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in bf16.parameters())
    assert abs(first.final_loss - mixed.final_loss) < 0.1  # bf16 has 8 bits of mantissa: close, not equal
    assert any(not torch.equal(a, b) for a, b in zip(_weights(fp32), _weights(bf16)))  # autocast did act


def test_engine_for_device_uses_gpu_options_only_on_cuda(monkeypatch):
    recipe = Recipe(lr=1, epochs=1, batch_size=1, precision="bf16")
    monkeypatch.delenv("MUBENCH_COMPILE", raising=False)
    cpu = Engine.for_device(torch.device("cpu"), recipe)
    assert (cpu.channels_last, cpu.fused, cpu.autocast, cpu.compile) == (False, False, torch.bfloat16, False)
    cuda = Engine.for_device(torch.device("cuda"), recipe.model_copy(update={"precision": "fp32"}))
    assert (cuda.channels_last, cuda.fused, cuda.autocast) == (True, True, None)
    monkeypatch.setenv("MUBENCH_COMPILE", "1")
    assert Engine.for_device(torch.device("cpu"), recipe).compile
    assert not Engine.for_device(torch.device("cpu"), recipe, compile=False).compile


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fused_optimiser_makes_the_same_update(optimizer):
    recipe = Recipe(optimizer=optimizer, lr=0.1, epochs=1, batch_size=1, weight_decay=1e-3, nesterov=optimizer == "sgd")
    start = torch.randn(10)
    updated = []
    for fused in (False, True):
        weight = nn.Parameter(start.clone())
        try:
            opt = make_optimizer([weight], recipe, fused=fused)
        except RuntimeError as exc:  # a torch build without fused kernels for this device
            pytest.skip(f"fused {optimizer} unavailable on the CPU: {exc}")
        for _ in range(3):
            weight.grad = torch.linspace(-1, 1, 10)
            opt.step()
        updated.append(weight.detach())
    assert torch.allclose(updated[0], updated[1], atol=1e-6)


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 3))


@pytest.mark.parametrize("recipe", [
    Recipe(optimizer="adam", lr=1e-2, epochs=2, batch_size=16, weight_decay=1e-4),
    Recipe(optimizer="sgd", lr=0.05, epochs=2, batch_size=20, augment="crop_flip", schedule="onecycle",
           nesterov=True, label_smoothing=0.1),
], ids=["adam", "sgd-onecycle-crop-flip"])
def test_batched_training_equals_training_each_model_in_turn(recipe):
    """K models vmapped together, each with its own generator, end where train_model takes each
    (up to rounding of the batched kernels); 50 samples so the last batch is short."""
    x, y = _images(50)
    to_inputs = Cifar10Task().to_inputs
    one_by_one, together = [_mlp(k) for k in range(3)], [_mlp(k) for k in range(3)]
    for k, model in enumerate(one_by_one):
        train_model(model, x, y, recipe, torch.Generator().manual_seed(10 + k), transform=to_inputs)
    stats = train_models_batched(together, x, y, recipe, [torch.Generator().manual_seed(10 + k) for k in range(3)],
                                 transform=to_inputs)
    assert stats.samples_seen == 3 * recipe.epochs * len(y)
    for a, b in zip(one_by_one, together):
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.allclose(p, q, atol=1e-6)
    assert not torch.allclose(together[0][1].weight, together[1][1].weight)  # each kept its own seed


def test_batched_training_refuses_buffers_and_mismatched_generators():
    x, y = _images(8)
    recipe = Recipe(lr=0.1, epochs=1, batch_size=4)
    assert not can_train_batched(_cnn()) and can_train_batched(_mlp(0))
    with pytest.raises(ValueError, match="buffers"):
        train_models_batched([_cnn(), _cnn()], x.float(), y, recipe, [torch.Generator(), torch.Generator()])
    with pytest.raises(ValueError, match="generators"):
        train_models_batched([_mlp(0), _mlp(1)], x.float(), y, recipe, [torch.Generator()])


def test_harness_shadow_models_are_trained_together_and_cached_like_single_ones(tmp_path, monkeypatch):
    """The harness trains the K shadow models of a side in one batch: each lands under the cache
    key, weights and outputs of its own `_cached_fit`, so a later run loads all of them."""
    from mubench.harness.artifacts import ModelCache
    from mubench.harness.runner import Harness, _indices_id, derived_seed

    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    batched = Harness(cache=ModelCache(tmp_path / "batched"), shadow_models=3)
    prepared = batched.prepare("debug", "class_0", 0, "smoke")
    single = Harness(cache=ModelCache(tmp_path / "single"))
    train = single._stored(single.task_data(prepared.task), prepared.split)
    for k in range(3):
        seed = derived_seed("debug", 0, "shadow", k)
        alone = single._cached_fit(prepared.task, "smoke", seed, "shadow_in", _indices_id(prepared.split, "train"),
                                   train, stored=True)
        together = batched._cached_fit(prepared.task, "smoke", seed, "shadow_in",
                                       _indices_id(prepared.split, "train"), train, stored=True)
        assert together.from_cache and together.key == alone.key  # written by the batched training
        for p, q in zip(alone.model.parameters(), together.model.parameters()):
            # 40 epochs of Adam at lr 1e-2 let batched-kernel rounding grow to about 3e-6 (measured)
            assert torch.allclose(p, q, atol=1e-4)
    assert len(prepared.shadow_outputs["in"]) == len(prepared.shadow_outputs["out"]) == 3

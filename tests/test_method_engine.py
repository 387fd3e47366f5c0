"""Unlearning methods run under the task's training engine (Engine.for_method, Engine.hosting):
bf16 autocast where the recipe trains in bf16 and the method allows it, channels_last weights on
CUDA, and every weight back in the contiguous layout afterwards. The GPU options are forced on the
CPU here (autocast and channels_last work there too), so that every baseline is checked to run
under them: a method that flattens a gradient with `.view` or mixes dtypes fails here, not first
on a GPU machine."""

from __future__ import annotations

import contextlib
import copy
from typing import ClassVar

import pytest
import torch
from torch import nn

import baselines  # noqa: F401 - registers every baseline
from mubench.harness.artifacts import ModelCache
from mubench.harness.models import model_factories
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness, supports
from mubench.harness.training import Engine, contiguous, train_model
from mubench.methods import Access, HParams, Method, methods
from mubench.request import Request
from mubench.tasks import tasks
from mubench.tasks.base import Pool, Task, TaskData
from mubench.tasks.spec import ProfileSpec, Recipe, ScenarioSpec, TaskSpec

_FAST = Recipe(optimizer="adam", lr=1e-2, epochs=3, batch_size=64)


def small_bn_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Conv-BatchNorm-ReLU blocks like ResNet-18's, at a size the CPU runs in milliseconds."""
    return nn.Sequential(nn.Conv2d(input_shape[0], 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


if "engine_test_bn_cnn" not in model_factories:
    model_factories.add("engine_test_bn_cnn", small_bn_cnn)


class EngineImages(Task):
    """uint8 3 x 8 x 8 'images' labelled by a fixed linear teacher, with a binary 'colour'
    attribute (so FMD applies); 'smoke' trains in float32, 'standard' in bf16, both a small CNN with BatchNorm."""

    spec = TaskSpec(
        name="engine_test_images", version="1", title="tiny uint8 images", modality="image",
        description="test task", num_classes=4, input_shape=(3, 8, 8), sensitive_attributes=("colour",),
        profiles={profile: ProfileSpec(model="engine_test_bn_cnn",
                                       recipe=_FAST.model_copy(update={"precision": precision}),
                                       train_size=300, val_size=80)
                  for profile, precision in (("smoke", "fp32"), ("standard", "bf16"))},
        scenarios=(ScenarioSpec(name="class_0", kind="class", params={"label": 0}, domain="adaptability",
                                description="every training sample of class 0"),),
        licence="generated", citation="none")

    def load(self) -> TaskData:
        generator = torch.Generator().manual_seed(0)
        teacher = torch.randn(3 * 8 * 8, 4, generator=generator)

        def pool(n: int) -> Pool:
            x = torch.randint(0, 256, (n, 3, 8, 8), generator=generator, dtype=torch.uint8)
            labels = (x.float().flatten(1) / 255 - 0.5).matmul(teacher).argmax(dim=1)
            return Pool(x, labels, {"colour": torch.randint(0, 2, (n,), generator=generator)})

        return TaskData(train=pool(400), test=pool(100))

    def to_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255.0)


if "engine_test_images" not in tasks:
    tasks.add("engine_test_images", EngineImages())


class Probe(Method):
    """Records, inside `unlearn`, whether autocast is on and the first conv weight's layout."""

    access = Access.FORGET
    seen: ClassVar[list[tuple[bool, bool]]] = []

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        Probe.seen.append((torch.is_autocast_enabled("cpu"),
                           conv.weight.is_contiguous(memory_format=torch.channels_last)
                           and not conv.weight.is_contiguous()))
        return model


class FullPrecisionProbe(Probe):
    mixed_precision = False


@pytest.fixture
def probes(monkeypatch):
    monkeypatch.setattr(methods, "_items", dict(methods._items))  # registrations below are undone
    for name, cls in (("engine_probe", Probe), ("engine_probe_fp32", FullPrecisionProbe)):
        cls.name = name
        methods.add(name, cls)
    Probe.seen.clear()
    yield


def _config(method: str, profile: str) -> RunConfig:
    cls = methods.get(method)
    return RunConfig(task="engine_test_images", task_version="1", scenario="class_0", method=method,
                     method_version=cls.version, hparams=dict(cls.resolve()), seed=0, profile=profile)


def _cuda_options_on_cpu(monkeypatch) -> None:
    """Engine.for_device as on a GPU (channels_last), on the CPU device; fused kernels stay off
    (the CPU has no fused SGD)."""
    real = Engine.for_device.__func__

    def as_on_cuda(cls, device, recipe, compile=None):
        return Engine(channels_last=True, autocast=real(cls, device, recipe, compile).autocast)

    monkeypatch.setattr(Engine, "for_device", classmethod(as_on_cuda))


def test_for_method_follows_the_recipe_and_the_method(monkeypatch):
    bf16, fp32 = _FAST.model_copy(update={"precision": "bf16"}), _FAST
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert Engine.for_method(cpu, bf16) == Engine(autocast=torch.bfloat16)
    assert Engine.for_method(cpu, fp32) == Engine()
    assert Engine.for_method(cpu, bf16, mixed_precision=False) == Engine()
    monkeypatch.setenv("MUBENCH_COMPILE", "1")  # compiles trainings from scratch, never a method's loop
    assert Engine.for_method(cuda, bf16) == Engine(channels_last=True, autocast=torch.bfloat16, fused=True)
    assert Engine.for_method(cuda, bf16, mixed_precision=False) == Engine(channels_last=True, fused=True)


def test_hosting_sets_layout_and_autocast_and_contiguous_undoes_the_layout():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    x = torch.randn(5, 3, 8, 8)
    with Engine(channels_last=True, autocast=torch.bfloat16).hosting(model, torch.device("cpu")):
        assert model[0].weight.is_contiguous(memory_format=torch.channels_last) and not model[0].weight.is_contiguous()
        assert model(x).dtype == torch.bfloat16
        assert model[0].weight.dtype == torch.float32  # autocast casts copies; the weights stay float32
    assert model(x).dtype == torch.float32  # autocast ends with the block
    assert contiguous(model) is model and all(p.is_contiguous() for p in model.parameters())
    with Engine().hosting(model, torch.device("cpu")):
        assert model(x).dtype == torch.float32


@pytest.mark.parametrize(("method", "profile", "autocast"), [
    ("engine_probe", "standard", True),  # bf16 recipe: the method runs under autocast
    ("engine_probe", "smoke", False),  # fp32 recipe: it does not
    ("engine_probe_fp32", "standard", False),  # the method opted out (Method.mixed_precision)
])
def test_the_harness_runs_a_method_under_the_tasks_precision(probes, tmp_path, monkeypatch, method, profile, autocast):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path))
    record = Harness("cpu").run(_config(method, profile))
    assert record.status == "ok", record.error
    assert Probe.seen == [(autocast, False)]  # channels_last only on CUDA
    assert record.method_precision == ("bf16" if autocast else "fp32")  # and the record says which


def test_the_harness_hands_back_contiguous_weights_after_a_channels_last_run(probes, tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path))
    _cuda_options_on_cpu(monkeypatch)
    harness = Harness("cpu")
    config = _config("engine_probe", "standard")
    model, _, _, _ = harness.unlearn(config, harness.prepare(config.task, config.scenario, config.seed, config.profile))
    assert Probe.seen == [(True, True)]
    assert all(p.is_contiguous() for p in model.parameters())


APPLICABLE = [name for name in methods.names()
              if not name.startswith("engine_probe") and supports(methods.get(name), tasks.get("engine_test_images"))]


@pytest.fixture(scope="module")
def shared_harness(tmp_path_factory):
    """One harness for the module's runs (the split's models are prepared once) and its home."""
    home = tmp_path_factory.mktemp("engine-home")
    return Harness("cpu", cache=ModelCache(home / "models")), home


@pytest.fixture
def gpu_like_harness(shared_harness, monkeypatch):
    harness, home = shared_harness
    monkeypatch.setenv("MUBENCH_HOME", str(home))
    _cuda_options_on_cpu(monkeypatch)
    return harness


@pytest.mark.parametrize("method", APPLICABLE)
def test_every_baseline_runs_under_channels_last_and_bf16(gpu_like_harness, method):
    """The GPU path of the standard profile, on the CPU: no method may fail for the layout or the
    precision, and every metric stays finite (the harness refuses non-finite ones)."""
    record = gpu_like_harness.run(_config(method, "standard"))
    assert record.status == "ok", record.error
    assert 0.0 <= record.metrics["retain/acc"] <= 1.0


def test_method_precision_fp32_turns_autocast_off_for_every_method(monkeypatch):
    monkeypatch.setenv("MUBENCH_METHOD_PRECISION", "fp32")
    bf16 = _FAST.model_copy(update={"precision": "bf16"})
    assert Engine.for_method(torch.device("cpu"), bf16) == Engine()
    assert Engine.for_method(torch.device("cuda"), bf16) == Engine(channels_last=True, fused=True)
    assert Engine.for_device(torch.device("cpu"), bf16).autocast == torch.bfloat16  # trainings keep the recipe's


def _sgd_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, autocast_each_forward: bool) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(5):
        region = torch.autocast("cpu", dtype=torch.bfloat16) if autocast_each_forward else contextlib.nullcontext()
        with region:
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_a_hosted_loop_trains_exactly_like_autocast_around_each_forward_pass():
    """The hosting region spans every step, so autocast must not cache the bf16 casts of the
    weights (it would keep the first step's copies until the region ends and train on them)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 3, 8, 8, generator=g), torch.randint(0, 2, (32,), generator=g)
    torch.manual_seed(0)
    hosted = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    reference = copy.deepcopy(hosted)
    with Engine(autocast=torch.bfloat16).hosting(hosted, torch.device("cpu")):
        _sgd_steps(hosted, x, y, autocast_each_forward=False)
    _sgd_steps(reference, x, y, autocast_each_forward=True)
    assert all(torch.equal(a, b) for a, b in zip(hosted.parameters(), reference.parameters()))


def test_a_training_from_scratch_inside_a_hosted_method_is_the_same_training():
    """`Request.train_from_scratch` on another subset trains inside the method's autocast region;
    its per-step regions inherit the disabled cache, so it trains as it would on its own."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, 8, 8, generator=g), torch.randint(0, 2, (40,), generator=g)
    recipe = Recipe(optimizer="sgd", lr=0.5, epochs=2, batch_size=8, precision="bf16")
    models = []
    for hosted in (True, False):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
        region = Engine(autocast=torch.bfloat16).hosting(nn.Linear(1, 1), torch.device("cpu")) if hosted \
            else contextlib.nullcontext()
        with region:
            train_model(model, x, y, recipe, torch.Generator().manual_seed(1))
        models.append(model)
    assert all(torch.equal(a, b) for a, b in zip(models[0].parameters(), models[1].parameters()))

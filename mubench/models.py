"""Model factories, registered by name and built with an explicit seed.

Factories take the task's input shape and class count plus the profile's `model_args`. Models
have no dropout and no other forward-pass randomness, so evaluation is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from mubench.registry import Registry
from mubench.tasks.spec import TaskSpec

ModelFactory = Callable[..., nn.Module]
model_factories: Registry[ModelFactory] = Registry("model")


@model_factories.register("mlp")
def mlp(input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (256, 256)) -> nn.Module:
    """Fully connected ReLU network on flattened inputs (the Colored MNIST model of FMD, Chen et al. 2023)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(torch.tensor(input_shape).prod())
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@model_factories.register("small_cnn")
def small_cnn(input_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (32, 64),
              hidden: int = 128) -> nn.Module:
    """Conv(3x3)-ReLU-MaxPool blocks, then one hidden linear layer: a LeNet-sized image model."""
    layers: list[nn.Module] = []
    in_channels, side = input_shape[0], input_shape[1]
    for out_channels in channels:
        layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        in_channels, side = out_channels, side // 2
    layers += [nn.Flatten(), nn.Linear(in_channels * side * side, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)


def build_model(spec: TaskSpec, profile: str, seed: int) -> nn.Module:
    """The task's untrained model for `profile`, initialised from `seed`.

    PyTorch's layer initialisers draw from the global generator, so construction runs inside
    `torch.random.fork_rng`, which restores the caller's global state afterwards: the seed is
    explicit and nothing outside this call is affected.
    """
    profile_spec = spec.profile(profile)
    factory = model_factories.get(profile_spec.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(spec.input_shape, spec.num_classes, **profile_spec.model_args)

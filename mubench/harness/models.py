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


@model_factories.register("logistic")
def logistic(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """Multinomial logistic regression: one linear layer on flattened inputs (the softmax is in the
    loss). Its loss is convex, so every retraining approaches the same optimal predictions, against
    which exact or certified removal (Guo et al. 2020; FMD's linear experiments, Chen et al. 2023)
    can be checked."""
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(input_shape).prod()), num_classes))


@model_factories.register("cnn1d")
def cnn1d(input_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (16, 32, 64, 64, 64),
          first_kernel: int = 64, first_stride: int = 16, hidden: int = 100) -> nn.Module:
    """WDCNN (Zhang, Peng, Li, Chen & Zhang 2017, Sensors 17(2):425) for raw vibration windows
    (channels, length): a wide first convolution (kernel 64, stride 16: a learned filter bank that
    also shortens the signal), then 3-tap convolutions, each followed by BatchNorm, ReLU and max
    pooling by 2; the last convolution is unpadded, as in the paper. Then a hidden layer of 100 and
    the classes. One deviation: no BatchNorm after the hidden layer, since a training batch of one
    sample (a remainder, or a method's step) cannot be normalised there. No dropout."""
    in_channels, length = int(input_shape[0]), int(input_shape[1])
    layers: list[nn.Module] = []
    for index, out_channels in enumerate(channels):
        kernel, stride = (first_kernel, first_stride) if index == 0 else (3, 1)
        padding = (first_kernel - first_stride) // 2 if index == 0 else int(index < len(channels) - 1)
        layers += [nn.Conv1d(in_channels, out_channels, kernel, stride, padding), nn.BatchNorm1d(out_channels),
                   nn.ReLU(), nn.MaxPool1d(2)]
        length = ((length + 2 * padding - kernel) // stride + 1) // 2
        if length < 1:
            raise ValueError(f"cnn1d: input length {input_shape[1]} is too short for {len(channels)} blocks")
        in_channels = out_channels
    layers += [nn.Flatten(), nn.Linear(in_channels * length, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)


@model_factories.register("resnet18_cifar")
def resnet18_cifar(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """ResNet-18 (He et al. 2016) in its CIFAR form: torchvision's resnet18 with a 3x3 stride-1
    first convolution and no max-pool, so 32x32 inputs keep their resolution into the first stage
    (as in kuangliu/pytorch-cifar and the unlearning papers' CIFAR models: SalUn, L2UL, LoTUS).
    BatchNorm uses batch statistics in training and running statistics in eval mode, which every
    evaluation uses; no dropout."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(int(input_shape[0]), 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision inits convs
    model.maxpool = nn.Identity()
    return model


@model_factories.register("resnet18")
def resnet18_imagenet(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """ResNet-18 (He et al. 2016) in its ImageNet form, torchvision's resnet18 from scratch (no
    pretrained weights): 7x7 stride-2 first convolution and max-pool, for 224x224 inputs such as
    CUB-200-2011. BatchNorm uses running statistics in eval mode, which every evaluation uses; no
    dropout."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    if int(input_shape[0]) != 3:
        model.conv1 = nn.Conv2d(int(input_shape[0]), 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


class Resize(nn.Module):
    """Resize image batches (N, C, H, W) to side x side: bilinear with antialiasing, a fixed,
    parameter-free and deterministic input stage."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.side = int(side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.side, self.side):
            return x
        return nn.functional.interpolate(x, size=(self.side, self.side), mode="bilinear", antialias=True,
                                         align_corners=False)


@model_factories.register("resized")
def resized(input_shape: Sequence[int], num_classes: int, side: int, model: str,
            model_args: dict | None = None) -> nn.Module:
    """A registered `model` that sees the task's images at side x side: a task stores one
    resolution (its spec's input shape; CUB-200-2011 stores 224x224 for the standard profile),
    and a CPU profile shrinks it here to train a small model fast. The layers are flattened into
    one Sequential (Resize first), so the last module is still the inner model's head."""
    inner = model_factories.get(model)((input_shape[0], side, side), num_classes, **(model_args or {}))
    layers = list(inner) if isinstance(inner, nn.Sequential) else [inner]
    return nn.Sequential(Resize(side), *layers)


class SpeedScale(nn.Module):
    """Fixed affine scaling of speeds (no parameters): (v - offset) / scale in, the inverse out.

    Traffic models take and predict speeds in mph; the scaling only conditions the optimisation.
    The constants are fixed in the task's spec (close to METR-LA's mean and spread), not fitted
    on any split, so every model of a task is the same function class."""

    def __init__(self, offset: float, scale: float, inverse: bool = False) -> None:
        super().__init__()
        self.offset, self.scale, self.inverse = float(offset), float(scale), inverse

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return v * self.scale + self.offset if self.inverse else (v - self.offset) / self.scale


@model_factories.register("speed_mlp")
def speed_mlp(input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (64, 64),
              offset: float = 55.0, scale: float = 20.0) -> nn.Module:
    """An MLP over a sensor's graph-diffusion input window (channels x past steps) to its next
    `num_classes` speeds: the CPU-sized traffic forecaster of the smoke profile."""
    return nn.Sequential(SpeedScale(offset, scale), mlp(input_shape, num_classes, hidden),
                         SpeedScale(offset, scale, inverse=True))


class DiffusionGRU(nn.Module):
    """A GRU over the past steps, each step's input the sensor's speed and its graph-diffused
    neighbourhood speeds (channels), then a linear read-out of all future steps at once.

    The diffusion channels are DCRNN's bidirectional random-walk powers (Li et al. 2018) applied
    to the inputs; unlike DCRNN, the recurrent cell itself is not a graph convolution, which keeps
    a sample to one sensor (the unit of a forget request) and the model small."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, hidden: int, layers: int,
                 offset: float, scale: float) -> None:
        super().__init__()
        self.scale_in, self.scale_out = SpeedScale(offset, scale), SpeedScale(offset, scale, inverse=True)
        self.gru = nn.GRU(input_shape[0], hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence = self.scale_in(x).transpose(1, 2)  # (N, channels, steps) -> (N, steps, channels)
        _, last = self.gru(sequence)
        return self.scale_out(self.head(last[-1]))


@model_factories.register("speed_gru")
def speed_gru(input_shape: Sequence[int], num_classes: int, hidden: int = 64, layers: int = 2,
              offset: float = 55.0, scale: float = 20.0) -> nn.Module:
    """DiffusionGRU: the standard profile's traffic forecaster."""
    return DiffusionGRU(input_shape, num_classes, hidden, layers, offset, scale)


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

"""A tiny synthetic task of random tensors, for contract tests of methods and the harness.

Inputs are 16-dimensional Gaussian vectors; labels come from a fixed random linear teacher, with
a fifth of them replaced by random labels. The task trains in a second and needs no files, and
the noisy labels can only be memorised, which gives the original model a strong, known
membership signal (members' losses far below non-members'), unlike Colored MNIST's smoke models.
"""

from __future__ import annotations

import torch

from mubench.tasks.base import Pool, Task, TaskData, tasks
from mubench.tasks.spec import ProfileSpec, Recipe, ScenarioSpec, TaskSpec

_DIM, _CLASSES, _LABEL_NOISE = 16, 4, 0.2

SPEC = TaskSpec(
    name="debug",
    version="1.1",
    title="Debug (random tensors)",
    modality="vector",
    description="Random Gaussian vectors labelled by a fixed linear teacher, 20 % label noise; for contract tests.",
    num_classes=_CLASSES,
    input_shape=(_DIM,),
    profiles={
        profile: ProfileSpec(model="mlp", model_args={"hidden": [128]},
                             recipe=Recipe(optimizer="adam", lr=1e-2, epochs=40, batch_size=64),
                             train_size=None, val_size=200, test_size=None)
        for profile in ("smoke", "standard")
    },
    scenarios=(
        ScenarioSpec(name="random_10", kind="random", params={"fraction": 0.1}, domain="privacy",
                     description="10 % of the training samples at random"),
        ScenarioSpec(name="class_0", kind="class", params={"label": 0}, domain="adaptability",
                     description="every training sample of class 0"),
    ),
    licence="generated data, no licence needed",
    citation="none",
)


class DebugTask(Task):
    spec = SPEC

    def load(self) -> TaskData:
        generator = torch.Generator().manual_seed(0)
        teacher = torch.randn(_DIM, _CLASSES, generator=generator)

        def pool(n: int) -> Pool:
            x = torch.randn(n, _DIM, generator=generator)
            labels = (x @ teacher).argmax(dim=1)
            noisy = torch.rand(n, generator=generator) < _LABEL_NOISE
            labels[noisy] = torch.randint(0, _CLASSES, (int(noisy.sum()),), generator=generator)
            return Pool(x, labels)

        return TaskData(train=pool(1200), test=pool(400))


tasks.add("debug", DebugTask())

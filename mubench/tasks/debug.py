"""A tiny synthetic task of random tensors, for contract tests of methods and the harness.

Inputs are 16-dimensional Gaussian vectors; labels come from a fixed random linear teacher, so
the task is learnable in a second and needs no files.
"""

from __future__ import annotations

import torch

from mubench.tasks.base import Pool, Task, TaskData, tasks
from mubench.tasks.spec import ProfileSpec, Recipe, ScenarioSpec, TaskSpec

_DIM, _CLASSES = 16, 4

SPEC = TaskSpec(
    name="debug",
    version="1.0",
    title="Debug (random tensors)",
    modality="vector",
    description="Random Gaussian vectors labelled by a fixed linear teacher; for contract tests.",
    num_classes=_CLASSES,
    input_shape=(_DIM,),
    profiles={
        profile: ProfileSpec(model="mlp", model_args={"hidden": [32]},
                             recipe=Recipe(optimizer="adam", lr=1e-2, epochs=5, batch_size=32),
                             train_size=None, val_size=64, test_size=None)
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
            return Pool(x, (x @ teacher).argmax(dim=1))

        return TaskData(train=pool(320), test=pool(128))


tasks.add("debug", DebugTask())

"""Split-MNIST: MNIST's ten digits as five tasks of two, {0,1}, {2,3}, {4,5}, {6,7}, {8,9}
(Zenke, Poole & Ganguli 2017; task-incremental as in van de Ven & Tolias 2019, "Three scenarios
for continual learning").

The images are the four official IDX files (mubench.data.mnist: pinned sha256, mirror or
download), grey levels scaled to [0, 1]; no colouring, no resizing. The streams are UnCLe's three
five-task sequences (Adhikari, Kumaravelu & Srijith 2025; visprasadh/uncle,
config/main/5d_5{a,b,c}_s*.yaml, written there for Five-datasets, whose five tasks have the same
shape).
"""

from __future__ import annotations

import torch

from mubench.continual.spec import ContinualProfile, ContinualSpec, StreamSpec
from mubench.continual.task import ContinualTask, continual_tasks
from mubench.data.files import DataFile
from mubench.data.mnist import OFFICIAL, MnistSource, load_mnist
from mubench.tasks.base import Pool, TaskData
from mubench.tasks.spec import DataFileSpec, Recipe

TASK_CLASSES = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
_UNCLE = "UnCLe (Adhikari et al. 2025), visprasadh/uncle config/main/5d_5{}_s5.yaml"

STREAMS = (
    StreamSpec(name="uncle_5a", steps="L0,L1,U0,L2,L3,L4,U1", source=_UNCLE.format("a"),
               description="unlearn task 0 early, then learn three more tasks (shows relapse), unlearn task 1 last"),
    StreamSpec(name="uncle_5b", steps="L3,L4,L2,L0,L1,U3,U0", source=_UNCLE.format("b"),
               description="learn all five tasks, then unlearn the first and the fourth learned"),
    StreamSpec(name="uncle_5c", steps="L0,L2,U0,L4,L3,U2,U4", source=_UNCLE.format("c"),
               description="learning and unlearning interleaved: unlearn 0 before two more learns, then 2 and 4"),
)

SPEC = ContinualSpec(
    name="split_mnist",
    version="1.0",
    title="Split-MNIST (5 tasks of 2 digits)",
    modality="image",
    description=__doc__.split("\n\n")[0].strip(),
    num_classes=10,
    input_shape=(1, 28, 28),
    task_classes=TASK_CLASSES,
    source=tuple(DataFileSpec(name=form.name, sha256=form.sha256)
                 for data_file in OFFICIAL.data_files() for form in data_file.forms[:1]),
    source_folder=OFFICIAL.folder,
    profiles={
        "smoke": ContinualProfile(model="mlp", model_args={"hidden": [256, 256]},
                                  recipe=Recipe(optimizer="adam", lr=1e-3, epochs=3, batch_size=64),
                                  train_per_task=1_000, test_per_task=500),
        # van de Ven & Tolias 2019 (split MNIST): an MLP of two hidden layers of 400 units, Adam at
        # lr 1e-3, 2,000 iterations of batch 128 per task: about 20 epochs of a task's ~12,000 images.
        "standard": ContinualProfile(model="mlp", model_args={"hidden": [400, 400]},
                                     recipe=Recipe(optimizer="adam", lr=1e-3, epochs=20, batch_size=128)),
    },
    streams=STREAMS,
    notes=(
        "Task-incremental: one 10-unit output layer, and a sample of task t is classified among the two "
        "digits of t (the other eight logits are masked), so chance is 0.5 on every task.",
        "The output layer starts at zero, so a task the model never learned (the oracle's unlearned "
        "tasks) has equal logits and scores exactly chance on its balanced test set; with PyTorch's default "
        "initialisation the smoke oracle's never-learned tasks scored anywhere from 0.15 to 0.79 (seeds 0-3). "
        "The price: plain fine-tuning forgets more (no_unlearn on uncle_5c, seed 0: task 0 at 0.53 after "
        "learning task 2, against 0.77 with the default initialisation).",
        "Training samples of a task: smoke 500 per digit, drawn once per (task version, profile); "
        "standard: every training image of its two digits. No validation split: methods run at their "
        "default hyper-parameters.",
        "Test samples of a task: balanced, the same number per digit (smoke 250; standard as many as the "
        "task's rarer digit has, e.g. 980 zeros and 980 ones), drawn from the official test set.",
    ),
    licence="MNIST: Yann LeCun and Corinna Cortes, no formal licence",
    citation="LeCun et al. 1998 (MNIST); Zenke et al. 2017 (split MNIST); van de Ven & Tolias 2019; "
             "Adhikari et al. 2025 (UnCLe, streams and task relapse)",
)


class SplitMnist(ContinualTask):
    spec = SPEC

    def __init__(self, source: MnistSource = OFFICIAL) -> None:
        self.source = source

    def data_files(self) -> list[DataFile]:
        return self.source.data_files()

    def load(self) -> TaskData:
        """MNIST's pools as (N, 1, 28, 28) uint8 images; load_mnist caches the parsed arrays."""
        arrays = load_mnist(self.source)

        def pool(part: str) -> Pool:
            images = torch.from_numpy(arrays[f"{part}_images"]).unsqueeze(1)
            return Pool(images, torch.from_numpy(arrays[f"{part}_labels"].astype("int64")))

        return TaskData(train=pool("train"), test=pool("test"))

    def to_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255.0)


continual_tasks.add("split_mnist", SplitMnist())

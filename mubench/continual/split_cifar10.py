"""Split-CIFAR-10: CIFAR-10's ten classes as five tasks of two, {airplane, automobile}, {bird,
cat}, {deer, dog}, {frog, horse}, {ship, truck} (the usual split, e.g. Zenke, Poole & Ganguli
2017; task-incremental, as UnCLe evaluates, Adhikari et al. 2025).

The images come from CIFAR-10's loader (mubench.data.cifar10: the official pickle batches, or the
lossy JPEG image-folder copy when only that is present, as on the shared mirror; every record's
data_source names the copy used). Unlike the `cifar10` task, no patch bias is pasted: the images
are as loaded, normalised per channel by the official training mean and deviation. The streams
are split-MNIST's (UnCLe's five-task sequences).
"""

from __future__ import annotations

import torch

from mubench.continual.spec import ContinualProfile, ContinualSpec
from mubench.continual.split_mnist import STREAMS
from mubench.continual.task import ContinualTask, continual_tasks
from mubench.data.cifar10 import CLASSES, OFFICIAL, OFFICIAL_SOURCE, Cifar10Arrays, Cifar10Source
from mubench.data.files import DataFile
from mubench.tasks.base import DataStatus, Pool, TaskData
from mubench.tasks.cifar10 import load_cached, source_files, source_status
from mubench.tasks.spec import DataFileSpec, Recipe

# The official training set's channel means and deviations in [0, 1], as the cifar10 task uses.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
TASK_CLASSES = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))

SPEC = ContinualSpec(
    name="split_cifar10",
    version="1.0",
    title="Split-CIFAR-10 (5 tasks of 2 classes)",
    modality="image",
    description=__doc__.split("\n\n")[0].strip(),
    num_classes=len(CLASSES),
    input_shape=(3, 32, 32),
    task_classes=TASK_CLASSES,
    source=(DataFileSpec(name=OFFICIAL.archive.name, sha256=OFFICIAL.archive.sha256),
            DataFileSpec(name=OFFICIAL.copy.name, sha256=OFFICIAL.copy.sha256)),
    source_folder=OFFICIAL.folder,
    profiles={
        "smoke": ContinualProfile(model="small_cnn", model_args={"channels": [16, 32], "hidden": 64},
                                  recipe=Recipe(optimizer="adam", lr=1e-3, epochs=3, batch_size=64),
                                  train_per_task=600, test_per_task=400),
        # UnCLe's main-network recipe on Split-CIFAR-100 (config/main/c100_*.yaml): Adam at lr 1e-3,
        # batch 512, 50 epochs per task; with ResNet-18 here and the usual crop-and-flip augmentation.
        "standard": ContinualProfile(model="resnet18_cifar",
                                     recipe=Recipe(optimizer="adam", lr=1e-3, epochs=50, batch_size=512,
                                                   augment="crop_flip")),
    },
    streams=STREAMS,
    notes=(
        "Task-incremental: one 10-unit output layer, and a sample of task t is classified among the two "
        "classes of t (the other logits are masked), so chance is 0.5 on every task.",
        "The output layer starts at zero, so a task the model never learned scores exactly chance on its "
        "balanced test set.",
        "The shared mirror holds only the lossy JPEG copy (cifar10-jpeg.tar.gz); results on it are not "
        "comparable with numbers on the official batches, and its sample order differs from theirs.",
        "Training samples of a task: smoke 300 per class, drawn once per (task version, profile); standard: "
        "all 10,000. Test: smoke 200 per class; standard all 1,000 per class. No validation split.",
        "Inputs are scaled to [0, 1] and normalised per channel by the official training mean and standard "
        "deviation; 32x32, no patch bias.",
    ),
    licence="CIFAR-10: Alex Krizhevsky, no formal licence (cite the technical report)",
    citation="Krizhevsky 2009 (CIFAR-10); Zenke et al. 2017 (split benchmarks); Adhikari et al. 2025 (UnCLe)",
)


class SplitCifar10(ContinualTask):
    spec = SPEC

    def __init__(self, source: Cifar10Source = OFFICIAL) -> None:
        self.source = source
        self._loaded_from = ""

    def data_files(self) -> list[DataFile]:
        return source_files(self.source)

    def data_status(self) -> DataStatus:
        return source_status(self.spec.name, self.source)

    def load(self) -> TaskData:
        """The images as loaded by mubench.data.cifar10, cached as tensors (no patch)."""

        def build(arrays: Cifar10Arrays) -> TaskData:
            pools = {part: Pool(torch.from_numpy(getattr(arrays, f"{part}_images")),
                                torch.from_numpy(getattr(arrays, f"{part}_labels").astype("int64")))
                     for part in ("train", "test")}
            return TaskData(**pools)

        data, self._loaded_from = load_cached(SPEC.name, self.source, [SPEC.name, SPEC.version], build)
        return data

    def data_source(self) -> str:
        return "" if self._loaded_from == OFFICIAL_SOURCE else self._loaded_from

    def to_inputs(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
        return x.float().div_(255.0).sub_(mean).div_(std)


continual_tasks.add("split_cifar10", SplitCifar10())

"""Random labels (RL; "amnesiac" unlearning, Graves et al. 2021): relabel each forget sample
with a random wrong class, then train; each epoch makes a pass over the relabelled forget set
followed by a pass over the retain set, as in SalUn's RL baseline (Fan et al. 2024, lr 0.013,
SGD momentum 0.9, weight decay 5e-4). Labels are drawn once from the request's generator,
uniformly among the classes other than the true one (as in the SSD repository)."""

from __future__ import annotations

import torch
from torch import nn

from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request, Subset
from mubench.toolkit.optim import sgd, step
from mubench.transfer import to_device


def random_wrong_labels(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """For each label y, a class drawn uniformly from the other num_classes - 1."""
    offsets = to_device(torch.randint(1, num_classes, labels.shape, generator=generator), labels.device)
    return (labels + offsets) % num_classes


@register_method("random_label")
class RandomLabel(Method):
    access = Access.RETAIN
    paper = "Graves et al. 2021 (Amnesiac ML); settings of Fan et al. 2024 (SalUn)"
    authors_code = "OPTML-Group/Unlearn-Saliency@a6e89fd Classification/unlearn/RL.py; if-loops/selective-synaptic-dampening@cdfdc0e src/forget_random_strategies.py"
    targets = frozenset({"class"})  # "a wrong class" has no regression counterpart
    space = {"lr": (0.01, [0.001, 0.003, 0.01, 0.03]),
             "epochs": (3, [1, 3, 5]),
             "batch_size": (128, [128]),
             "weight_decay": (5e-4, [5e-4])}
    intensity = "epochs"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        forget = request.forget
        relabelled = Subset(forget.x, random_wrong_labels(forget.y, request.num_classes, request.generator))
        model.train()
        optimizer = sgd(model, hp.lr, weight_decay=hp.weight_decay)
        for _ in range(hp.epochs):
            for subset in (relabelled, request.retain):
                for x, y in request.batches_of(subset, batch_size=hp.batch_size):
                    step(optimizer, request.loss(model(x), y))
        return model

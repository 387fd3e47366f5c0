"""SCRUB (Kurmanji et al. 2023, "Towards Unbounded Machine Unlearning", NeurIPS): the original,
frozen, is the teacher; the student starts from the original and alternates two steps per epoch.

- max-step (only in the first `msteps` epochs): one pass over the forget set minimising
  -KL_T(teacher || student), i.e. moving away from the teacher on the forget data;
- min-step (every epoch): one pass over the retain set minimising
  gamma * CE(student, y) + alpha * KL_T(teacher || student), i.e. staying close to the teacher
  and to the labels on the retain data.

KL_T is RepDistiller's `DistillKL`, which SCRUB uses (meghdadk/SCRUB, `helper/KD.py`):
KL(softmax(t/T) || softmax(s/T)) summed over classes, averaged over the batch, times T^2.
Both steps share one optimiser, as in the repository's `train_distill` loops.

Settings: the repository's small-scale notebooks (methods.md section 11): Adam, gamma 1,
alpha 0.5, T 2, msteps 3 of 10 epochs, lr 5e-4 decayed x0.1 after epochs 5, 8 and 9, weight
decay 0.1 (Adam's coupled L2). Scaled to the smoke profile (originals train about 5 epochs):
5 epochs with msteps 2, and the decay points kept as fractions (0.5, 0.8, 0.9) of the epochs,
which gives exactly [5, 8, 9] at 10 epochs. Choices where the sources are silent or unverified:
batch sizes 128 (retain) and 32 (forget) are the large-scale config's (`sgda_batch_size`,
`del_batch_size`); the smoothed-SGDA model averaging (`smoothing`) of some notebooks is left out,
as in the repository's own `scrub.py`, which returns the plain student. "First msteps epochs"
follows the notebooks' 1-based `epoch <= msteps` (the repository's `scrub.py` loops from 0 and so
makes msteps + 1 max-steps). Intensity: msteps (more max-steps, more forgetting, less utility).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mubench.errors import MubenchError
from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.distill import distill_kl, frozen_copy
from mubench.toolkit.optim import step

DECAY_POINTS = (0.5, 0.8, 0.9)  # the notebooks' lr_decay_epochs [5, 8, 9] of 10 epochs, as fractions
DECAY_RATE = 0.1


def scrub_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """The learning rate of 1-based `epoch`: x0.1 for every decay point (a fraction of `epochs`)
    it is past, as the repository's `sgda_adjust_learning_rate` does with [5, 8, 9] of 10."""
    passed = sum(epoch > fraction * epochs for fraction in DECAY_POINTS)
    return base_lr * DECAY_RATE**passed


def _check(hp: HParams) -> None:
    if hp.epochs < 1:
        raise MubenchError(f"scrub.epochs must be >= 1, got {hp.epochs}")
    if not 0 <= hp.msteps <= hp.epochs:
        raise MubenchError(f"scrub.msteps must be between 0 and epochs ({hp.epochs}), got {hp.msteps}")
    if not (math.isfinite(hp.temperature) and hp.temperature > 0):
        raise MubenchError(f"scrub.temperature must be > 0, got {hp.temperature}")


@register_method("scrub")
class Scrub(Method):
    access = Access.RETAIN
    paper = "Kurmanji et al. 2023 (NeurIPS), settings of the meghdadk/SCRUB small-scale notebooks"
    targets = frozenset({"class"})  # a KL between class distributions
    space = {"lr": (5e-4, [1e-4, 5e-4, 1e-3]),
             "epochs": (5, [3, 5, 10]),
             "msteps": (2, [0, 1, 2, 3, 5]),
             "gamma": (1.0, [0.99, 1.0]),
             "alpha": (0.5, [0.001, 0.1, 0.5, 1.0]),
             "temperature": (2.0, [1.0, 2.0, 4.0]),
             "weight_decay": (0.1, [0.0, 5e-4, 0.1]),
             "batch_size": (128, [128]),
             "forget_batch_size": (32, [32])}
    intensity = "msteps"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        _check(hp)
        teacher = frozen_copy(model)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        for epoch in range(1, hp.epochs + 1):
            for group in optimizer.param_groups:
                group["lr"] = scrub_lr(hp.lr, epoch, hp.epochs)
            if epoch <= hp.msteps:
                for ((x, _),) in request.batches("forget", batch_size=hp.forget_batch_size):
                    with torch.no_grad():
                        target = teacher(x)
                    step(optimizer, -distill_kl(model(x), target, hp.temperature))
            for ((x, y),) in request.batches("retain", batch_size=hp.batch_size):
                with torch.no_grad():
                    target = teacher(x)
                output = model(x)
                loss = hp.gamma * request.loss(output, y) + hp.alpha * distill_kl(output, target, hp.temperature)
                step(optimizer, loss)
        return model

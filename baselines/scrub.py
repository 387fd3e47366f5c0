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

Settings, by profile (see docs/methods.md, scrub):
- smoke: the repository's small-scale notebooks, Adam, gamma 1, alpha 0.5, T 2, msteps 3 of 10
  epochs, lr 5e-4 decayed x0.1 after epochs 5, 8 and 9, weight decay 0.1 (Adam's coupled L2),
  scaled to the smoke originals (about 5 epochs of training): 5 epochs with msteps 2, and the
  decay points kept as fractions (0.5, 0.8, 0.9) of the epochs (`decay_epochs` "scaled"), which
  gives exactly [5, 8, 9] at 10 epochs.
- standard: the repository's large-scale (ResNet / CIFAR) configuration, the one LoTUS's SCRUB
  row also follows (Spartalis et al. 2025): SGD lr 5e-4, momentum 0.9, weight decay 5e-4, T 4,
  gamma 0.99, alpha 0.001, msteps 2 of 3 epochs, decay epochs [3, 5, 9] (none is passed within 3
  epochs). The small-scale setting does not transfer: Adam's coupled weight decay of 0.1 moves
  every weight towards zero by about lr per step, and over the standard profiles' thousand-odd
  steps that wrecked the standard models (Colored MNIST's test accuracy fell from 0.80 to 0.61).
  The large-scale setting assumes a normalised network: on Colored MNIST's standard model, a
  small CNN without BatchNorm, its max-steps (an unbounded ascent, 172 SGD steps in a row) blow
  the weights up to non-finite values within the first epoch (measured on the CPU, fp32 and bf16
  alike), and the run fails with that reason. That failure is the setting's, reported as such;
  `--hparam scrub.optimizer=adam` with the smoke values runs there (and wrecks the model).
Batch sizes, chosen here: 128 (retain) and 32 (forget). The notebooks differ: the small-scale
notebook's loaders use 32 (retain, `retain_bs`) and 64 (forget, `forget_bs`); the large-scale
notebook sets `sgda_batch_size` 128 and `del_batch_size` 32, but never uses them: its loaders
were built before, with 256 (retain) and 512 (forget). The smoothed-SGDA model averaging
(`smoothing`) of the older notebooks is left out, as the repository did in its commit 812dd5d
("sgda smoothhing removed") and in the stand-alone `scrub.py`, which lives on the repository's
`barebones` branch (commit 4ccce66; main has no such file) and returns the plain student (that
file builds its optimiser on `model.parameters()` but trains `model_s`, a deep copy, so as written
its student never moves; the notebooks optimise the student, and they are followed here).
"First msteps epochs" follows the notebooks' 1-based `epoch <= msteps` (that `scrub.py` loops
from 0 and so makes msteps + 1 max-steps).
Intensity: msteps (more max-steps, more forgetting, less utility).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mubench.errors import MubenchError
from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.distill import distill_kl, frozen_copy
from mubench.toolkit.optim import sgd, step

DECAY_POINTS = (0.5, 0.8, 0.9)  # the notebooks' lr_decay_epochs [5, 8, 9] of 10 epochs, as fractions
DECAY_RATE = 0.1
SCALED = "scaled"
OPTIMIZERS = ("adam", "sgd")


def decay_points(decay_epochs: str, epochs: int) -> tuple[float, ...]:
    """The epochs after which the rate decays: "scaled" places DECAY_POINTS' fractions on `epochs`;
    otherwise a comma-separated list of epochs, as the repository's `lr_decay_epochs`."""
    if decay_epochs == SCALED:
        return tuple(fraction * epochs for fraction in DECAY_POINTS)
    try:
        return tuple(float(int(part)) for part in decay_epochs.split(","))
    except ValueError:
        raise MubenchError(f"scrub.decay_epochs must be {SCALED!r} or comma-separated epochs such as '3,5,9', "
                           f"got {decay_epochs!r}") from None


def scrub_lr(base_lr: float, epoch: int, epochs: int, decay_epochs: str = SCALED) -> float:
    """The learning rate of 1-based `epoch`: x0.1 for every decay point it is past, as the
    repository's `sgda_adjust_learning_rate` does (`epoch > lr_decay_epochs`, counted)."""
    passed = sum(epoch > point for point in decay_points(decay_epochs, epochs))
    return base_lr * DECAY_RATE**passed


def _check(hp: HParams) -> None:
    if hp.epochs < 1:
        raise MubenchError(f"scrub.epochs must be >= 1, got {hp.epochs}")
    if not 0 <= hp.msteps <= hp.epochs:
        raise MubenchError(f"scrub.msteps must be between 0 and epochs ({hp.epochs}), got {hp.msteps}")
    if not (math.isfinite(hp.temperature) and hp.temperature > 0):
        raise MubenchError(f"scrub.temperature must be > 0, got {hp.temperature}")
    if hp.optimizer not in OPTIMIZERS:
        raise MubenchError(f"scrub.optimizer must be one of {', '.join(OPTIMIZERS)}, got {hp.optimizer!r}")
    decay_points(hp.decay_epochs, hp.epochs)


def make_optimizer(model: nn.Module, hp: HParams) -> torch.optim.Optimizer:
    """Adam (the small-scale notebooks; `momentum` unused) or SGD with momentum (the large-scale
    configuration); both with coupled L2 weight decay, as the repository's."""
    if hp.optimizer == "sgd":
        return sgd(model, hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)


@register_method("scrub")
class Scrub(Method):
    access = Access.RETAIN
    paper = "Kurmanji et al. 2023 (NeurIPS), meghdadk/SCRUB settings (smoke: small-scale notebooks; standard: large-scale)"
    authors_code = "meghdadk/SCRUB@98ffb11 small_scale_unlearning.ipynb, large_scale_unlearning.ipynb; branch barebones@4ccce66 scrub.py, helper/loops.py"
    targets = frozenset({"class"})  # a KL between class distributions
    space = {"lr": (5e-4, [1e-4, 5e-4, 1e-3]),
             "epochs": (5, [3, 5, 10]),
             "msteps": (2, [0, 1, 2, 3, 5]),
             "gamma": (1.0, [0.99, 1.0]),
             "alpha": (0.5, [0.001, 0.1, 0.5, 1.0]),
             "temperature": (2.0, [1.0, 2.0, 4.0]),
             "weight_decay": (0.1, [0.0, 5e-4, 0.1]),
             "optimizer": ("adam", ["adam", "sgd"]),
             "momentum": (0.9, [0.9]),
             "decay_epochs": (SCALED, [SCALED]),
             "batch_size": (128, [128]),
             "forget_batch_size": (32, [32])}
    intensity = "msteps"
    profile_defaults = {"standard": {"optimizer": "sgd", "lr": 5e-4, "momentum": 0.9, "weight_decay": 5e-4,
                                     "temperature": 4.0, "gamma": 0.99, "alpha": 0.001, "msteps": 2, "epochs": 3,
                                     "decay_epochs": "3,5,9"}}
    version = "2"  # 2: the optimizer, momentum and decay_epochs hyper-parameters; standard's large-scale setting

    @classmethod
    def check(cls, hp: HParams) -> None:
        _check(hp)  # its epochs bound another hyper-parameter: the tuning draws only settings it runs

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        _check(hp)
        teacher = frozen_copy(model)
        model.train()
        optimizer = make_optimizer(model, hp)
        for epoch in range(1, hp.epochs + 1):
            for group in optimizer.param_groups:
                group["lr"] = scrub_lr(hp.lr, epoch, hp.epochs, hp.decay_epochs)
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

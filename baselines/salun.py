"""SalUn, saliency unlearning (Fan et al. 2024, ICLR, "SalUn: Empowering Machine Unlearning via
Gradient-based Weight Saliency"), as in OPTML-Group/Unlearn-Saliency (`Classification/
generate_mask.py`, `unlearn/RL.py`).

1. Saliency mask, one pass over the forget set with the model in eval mode: g = sum over forget
   batches of the gradient of the batch-mean loss (the repository takes -CE; the sign is lost in
   the absolute value); m = 1 for the k = int(N * mask_ratio) entries of |g| that are largest over
   all N parameter entries of the model (one global threshold, not per layer). Exactly k entries
   are kept: ties at the threshold go to the entry that comes first in `named_parameters` order
   (a stable sort; the repository's argsort breaks them arbitrarily). The batches are taken in
   the forget set's order (the repository shuffles; only the weighting of the last, smaller batch
   depends on it).
2. Random-label unlearning with the mask (the repository's CIFAR-10 branch of RL): each epoch, a
   pass over the forget set with labels drawn uniformly from all classes afresh for every batch
   (so a label may equal the true one: `torch.randint(0, num_classes)` as in RL.py, unlike
   baselines/random_label.py's wrong labels), then a pass over the retain set with true labels.
   Before every SGD step each gradient is multiplied by m; after it, masked-out entries are reset
   to the original's values and their momentum is zeroed (as RL.py's `_restore_masked_params`),
   since weight decay and momentum would otherwise move them. Masked-out weights therefore stay
   bit-identical to the original; BatchNorm running statistics are buffers, not weights, and
   update as in the repository.

Settings (SalUn README, CIFAR-10 random 10 %): SGD lr 0.013, momentum 0.9, weight decay 5e-4,
mask ratio 0.5, 10 epochs, batch 256: the `standard` profile's defaults. The smoke profile
runs 5 epochs of batch 128, to match the smoke originals' training length (as
baselines/finetune.py halves FT's 10). Intensity: `mask_ratio` (the share of
weights allowed to move; 1.0 is plain RL)."""

from __future__ import annotations

import torch
from torch import nn

from mubench.errors import MubenchError
from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.optim import Mask, MaskedSGD, top_share_mask
from mubench.transfer import to_device


def forget_gradient_magnitude(model: nn.Module, request: Request, batch_size: int) -> dict[str, torch.Tensor]:
    """|sum over forget batches of the gradient of the batch-mean loss|, per parameter, in eval mode
    (generate_mask.py's `save_gradient_ratio`). The model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    params = dict(model.named_parameters())
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    forget = request.forget
    for start in range(0, len(forget), batch_size):
        loss = request.loss(model(forget.x[start:start + batch_size]), forget.y[start:start + batch_size])
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for name, grad in zip(params, grads):
            if grad is not None:
                total[name] += grad
    model.train(was_training)
    return {name: g.abs() for name, g in total.items()}


def saliency_mask(model: nn.Module, request: Request, ratio: float, batch_size: int) -> Mask:
    return top_share_mask(forget_gradient_magnitude(model, request, batch_size), ratio)


@register_method("salun")
class SalUn(Method):
    access = Access.RETAIN
    paper = "Fan et al. 2024 (ICLR), OPTML-Group/Unlearn-Saliency"
    authors_code = "OPTML-Group/Unlearn-Saliency@a6e89fd Classification/generate_mask.py, Classification/unlearn/RL.py"
    targets = frozenset({"class"})  # random class labels have no regression counterpart
    space = {"mask_ratio": (0.5, [0.1, 0.3, 0.5, 0.7, 0.9]),
             "lr": (0.013, [0.003, 0.013, 0.03]),
             "epochs": (5, [1, 3, 5, 10]),
             "batch_size": (128, [128]),
             "weight_decay": (5e-4, [5e-4])}
    intensity = "mask_ratio"
    profile_defaults = {"standard": {"epochs": 10, "batch_size": 256}}

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        if not 0.0 < hp.mask_ratio <= 1.0:
            raise MubenchError(f"salun.mask_ratio must be in (0, 1], got {hp.mask_ratio}")
        if hp.epochs < 1 or hp.batch_size < 1:
            raise MubenchError(f"salun: epochs and batch_size must be >= 1, got {hp.epochs}, {hp.batch_size}")
        mask = saliency_mask(model, request, hp.mask_ratio, hp.batch_size)
        optimizer = MaskedSGD(model, mask, hp.lr, hp.weight_decay)
        model.train()
        for _ in range(hp.epochs):
            for x, _ in request.batches_of(request.forget, batch_size=hp.batch_size):
                optimizer.step(request.loss(model(x), self.random_labels(len(x), request)))
            for x, y in request.batches_of(request.retain, batch_size=hp.batch_size):
                optimizer.step(request.loss(model(x), y))
        return model

    @staticmethod
    def random_labels(n: int, request: Request) -> torch.Tensor:
        """Uniform labels over all classes (RL.py: `torch.randint(0, num_classes, target.shape)`)."""
        return to_device(torch.randint(0, request.num_classes, (n,), generator=request.generator), request.device)


"""Bias-aware LoRA unlearning (Aylapuram et al. 2025, arXiv 2509.07456, the "LoRA" variant;
see docs/methods.md, bias_lora): the backbone is frozen, rank-r LoRA adapters (Hu et al. 2022) on every
Linear and convolution layer (mubench.toolkit.lora) are trained with the unlearning objective,
then merged into the base weights, so the returned model has the original's exact architecture.

Objective [UNVERIFIED: the paper says only "LoRA trained with the unlearning objective"]: on each
forget batch paired with a retain batch (retain cycled, request.batches("forget", "retain")),
    loss = CE(retain) - forget_weight * CE(forget),
i.e. gradient ascent on the bias-aligned forget set anchored by descent on a retain sample, as in
NegGrad+ (Kurmanji et al. 2023). Access is therefore RETAIN: pure ascent through low-rank
adapters alone still destroys the model, and the retain term is what keeps utility. One epoch is
one pass over the forget set. Adam on the adapters only; the model is kept in eval mode while
training, so a frozen backbone's BatchNorm statistics do not move either.

Defaults [UNVERIFIED, chosen on the cmnist smoke profile]: rank 8 (the summary's r of 4 to 16),
alpha = rank (scale 1), Adam lr 1e-3, 3 epochs, forget_weight 1.0 (0.5 leaves bias/gap unchanged
on cmnist bias_aligned, 2.0 lowers it further at a little more test accuracy). A is drawn from
request.generator (loralib's init), B starts at zero. Intensity: forget_weight.
"""

from __future__ import annotations

import torch
from torch import nn

from mubench.errors import MubenchError
from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.lora import add_lora, merge_lora
from mubench.toolkit.optim import step


@register_method("bias_lora")
class BiasLoRA(Method):
    access = Access.RETAIN
    paper = "Aylapuram et al. 2025 (arXiv 2509.07456), LoRA variant; LoRA of Hu et al. 2022"
    space = {"rank": (8, [4, 8, 16]),
             "alpha": (8.0, [4.0, 8.0, 16.0]),
             "lr": (1e-3, [3e-4, 1e-3, 3e-3]),
             "epochs": (3, [1, 3, 5]),
             "forget_weight": (1.0, [0.25, 0.5, 1.0, 2.0]),
             "batch_size": (128, [128])}
    intensity = "forget_weight"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        if hp.rank < 1:
            raise MubenchError(f"bias_lora.rank must be >= 1, got {hp.rank}")
        if hp.forget_weight < 0:
            raise MubenchError(f"bias_lora.forget_weight must be >= 0, got {hp.forget_weight}")
        adapters = add_lora(model, hp.rank, hp.alpha, request.generator)
        model.eval()
        optimizer = torch.optim.Adam(adapters, lr=hp.lr)
        for (xf, yf), (xr, yr) in request.batches("forget", "retain", batch_size=hp.batch_size, epochs=hp.epochs):
            step(optimizer, request.loss(model(xr), yr) - hp.forget_weight * request.loss(model(xf), yf))
        return merge_lora(model)

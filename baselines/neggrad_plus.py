"""NegGrad+ (Kurmanji et al. 2023, "Towards Unbounded Machine Unlearning"): descend on the
retain set while ascending on the forget set, loss = alpha * CE(retain) - (1 - alpha) * CE(forget)
on paired batches (each retain batch with a forget batch, the forget set cycled).
Setting of the SCRUB repository's small-scale notebook: alpha 0.95, SGD lr 0.01, weight decay 0,
10 epochs (the `standard` profile's default); 5 epochs in the smoke profile, to match the smoke
originals' training length. Unlike LoTUS's copy, whose gradient flip happens before `backward`
and so never ascends, the sign here is in the loss."""

from __future__ import annotations

from torch import nn

from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.optim import sgd, step


@register_method("neggrad_plus")
class NegGradPlus(Method):
    access = Access.RETAIN
    paper = "Kurmanji et al. 2023 (NeurIPS), SCRUB repository settings"
    space = {"lr": (0.01, [0.001, 0.003, 0.01, 0.03]),
             "epochs": (5, [1, 3, 5, 10]),
             "alpha": (0.95, [0.8, 0.9, 0.95, 0.99]),
             "batch_size": (128, [128])}
    intensity = "alpha"
    profile_defaults = {"standard": {"epochs": 10}}

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        model.train()
        optimizer = sgd(model, hp.lr)
        for (xr, yr), (xf, yf) in request.batches("retain", "forget", batch_size=hp.batch_size, epochs=hp.epochs):
            loss = hp.alpha * request.loss(model(xr), yr) - (1 - hp.alpha) * request.loss(model(xf), yf)
            step(optimizer, loss)
        return model

"""Fine-tune (FT): keep training the original on the retain set only, relying on catastrophic
forgetting to erase the forget set (Warnecke et al. 2023; Golatkar et al. 2020 use it as a
baseline). Canonical setting (SalUn / Unlearn-Sparse, Fan et al. 2024, Jia et al. 2023): SGD,
lr 0.01, momentum 0.9, weight decay 5e-4, 10 epochs: the `standard` profile's default. The
smoke default is 5 epochs, because the smoke profile's originals train for 5."""

from __future__ import annotations

from torch import nn

from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.optim import sgd, step


@register_method("finetune")
class Finetune(Method):
    access = Access.RETAIN
    paper = "Warnecke et al. 2023; settings of Fan et al. 2024 (SalUn)"
    authors_code = "OPTML-Group/Unlearn-Sparse@80ba55d unlearn/FT.py; OPTML-Group/Unlearn-Saliency@a6e89fd Classification/unlearn/FT.py"
    space = {"lr": (0.01, [0.001, 0.003, 0.01, 0.03]),
             "epochs": (5, [1, 2, 5, 10]),
             "batch_size": (128, [128]),
             "weight_decay": (5e-4, [5e-4])}
    intensity = "epochs"
    profile_defaults = {"standard": {"epochs": 10}}

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        model.train()
        optimizer = sgd(model, hp.lr, weight_decay=hp.weight_decay)
        for ((x, y),) in request.batches("retain", batch_size=hp.batch_size, epochs=hp.epochs):
            step(optimizer, request.loss(model(x), y))
        return model

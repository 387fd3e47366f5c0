"""Gradient ascent (GA, "NegGrad"): maximise the cross-entropy on the forget set (Golatkar et
al. 2020; Thudi et al. 2022). Forget-set only. Canonical setting (Unlearn-Sparse / SalUn
READMEs): 5 epochs, SGD, lr 1e-4; unbounded ascent destroys the model, so the learning rate is
the intensity knob. The optimiser is the repositories' `iterative_unlearn` one (Unlearn-Sparse
`unlearn/impl.py`, SalUn `Classification/unlearn/impl.py`): SGD with momentum 0.9 and weight
decay 5e-4 (`arg_parser.py`'s defaults, which the README's GA command does not override)."""

from __future__ import annotations

from torch import nn

from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.optim import sgd, step


@register_method("grad_ascent")
class GradAscent(Method):
    access = Access.FORGET
    paper = "Golatkar et al. 2020; Thudi et al. 2022; settings of Jia et al. 2023"
    authors_code = "OPTML-Group/Unlearn-Sparse@80ba55d unlearn/GA.py, README.MD"
    space = {"lr": (1e-4, [1e-5, 1e-4, 1e-3, 1e-2]),
             "epochs": (5, [1, 5, 10]),
             "batch_size": (128, [128]),
             "weight_decay": (5e-4, [5e-4])}
    intensity = "lr"
    version = "2"  # 2: weight decay 5e-4, as the repositories' optimiser

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        model.train()
        optimizer = sgd(model, hp.lr, weight_decay=hp.weight_decay)
        for ((x, y),) in request.batches("forget", batch_size=hp.batch_size, epochs=hp.epochs):
            step(optimizer, -request.loss(model(x), y))
        return model

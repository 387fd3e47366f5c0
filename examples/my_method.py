"""An example submission: `mubench submit examples/my_method.py:MyMethod --suite quick`."""

from __future__ import annotations

from torch.nn import functional as F

from mubench.methods import Access, Method, register_method
from mubench.toolkit.optim import sgd, step


@register_method("my_method")
class MyMethod(Method):
    """NegGrad+ (Kurmanji et al. 2023, "Towards Unbounded Machine Unlearning"): descend on the retain
    set and ascend on the forget set, weighted by alpha (the intensity: lower alpha forgets harder)."""

    access = Access.RETAIN
    space = {"lr": (0.01, [0.003, 0.01, 0.03]),
             "alpha": (0.95, [0.9, 0.95, 0.99]),
             "epochs": (3, [1, 3])}
    intensity = "alpha"
    targets = frozenset({"class"})                # cross-entropy: classification tasks only
    version = "1"
    paper = "Kurmanji et al. 2023, https://arxiv.org/abs/2302.09880"
    authors = ("mubench developers",)

    def unlearn(self, model, request, hp):
        optimizer = sgd(model, hp.lr)
        model.train()
        for (xr, yr), (xf, yf) in request.batches("retain", "forget", batch_size=128, epochs=hp.epochs):
            retain_loss = F.cross_entropy(model(xr), yr)
            forget_loss = F.cross_entropy(model(xf), yf)
            step(optimizer, hp.alpha * retain_loss - (1 - hp.alpha) * forget_loss)
        return model

"""Selective Synaptic Dampening (SSD; Foster, Schoepf & Brintrup 2024, AAAI): no training, one
multiplicative edit of the parameters that matter far more to the forget set than to the data
as a whole.

Importance of a parameter on a dataset = the diagonal of the empirical Fisher as the SSD code
computes it (if-loops/selective-synaptic-dampening, `ssd.py: calc_importance`): the squared
gradient of the *batch-mean* loss, summed over mini-batches and divided by the number of
batches. It is taken on the full training data D = retain + forget ([]_D) and on the forget set
([]_f), with the model in eval mode. Then, for every parameter with []_f > alpha * []_D,

    theta <- theta * min(lambda * []_D / []_f, 1)

and every other parameter is left as it is (`modify_weight`, exponent 1, upper bound 1).
Canonical setting (`forget_random_main.py`, also used for ViT): lambda 1, alpha 10, batch 128
for both loaders. Smaller alpha selects more parameters and forgets more, so alpha is the
intensity; values below lambda add nothing (a parameter with []_f <= lambda []_D gets factor 1).
When the forget set is a large share of D (a whole class of a 4-class task) []_f / []_D rarely
reaches 10, and the canonical setting barely changes the model: sweep alpha down for such cases.

Choices (the rule and lambda/alpha leave the loader details open; these are read from the
repository): batches of 128 in the stored order, unshuffled, as the repository's `full_train_dl`
(a ConcatDataset of retain then forget, no shuffle) and `forget_train_dl` are, so the method
uses no randomness (one batch of D straddles the end of the retain set and the start of the
forget set, as in the repository). The loss is `request.loss`, the task's own training loss (cross-entropy for
classifiers, as in the repository), so the method also applies to regression tasks.
"""

from __future__ import annotations

import torch
from torch import nn

from mubench.errors import MubenchError
from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.importance import ordered_batches, squared_gradient_importance


def dampening_factors(full: torch.Tensor, forget: torch.Tensor, alpha: float, lam: float) -> torch.Tensor:
    """SSD's multiplier per parameter: min(lambda * []_D / []_f, 1) where []_f > alpha * []_D, else 1."""
    selected = forget > alpha * full
    factor = torch.clamp(lam * full / torch.where(selected, forget, torch.ones_like(forget)), max=1.0)
    return torch.where(selected, factor, torch.ones_like(forget))


@register_method("ssd")
class SelectiveSynapticDampening(Method):
    access = Access.RETAIN  # D = retain + forget
    paper = "Foster, Schoepf & Brintrup 2024 (AAAI); settings of if-loops/selective-synaptic-dampening"
    authors_code = "if-loops/selective-synaptic-dampening@cdfdc0e src/ssd.py, src/forget_random_main.py"
    space = {"alpha": (10.0, [1.0, 2.0, 5.0, 10.0, 30.0]),
             "dampening": (1.0, [0.1, 0.5, 1.0, 2.0, 5.0]),
             "batch_size": (128, [128])}
    intensity = "alpha"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        if not (hp.alpha > 0 and hp.dampening > 0 and hp.batch_size >= 1):
            raise MubenchError(f"ssd: alpha and dampening must be > 0 and batch_size >= 1 (got {dict(hp)})")
        was_training = model.training
        model.eval()
        forget, retain = request.forget, request.retain
        forget_imp = squared_gradient_importance(model, ordered_batches([forget], hp.batch_size), request.loss)
        full_imp = squared_gradient_importance(model, ordered_batches([retain, forget], hp.batch_size), request.loss)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.mul_(dampening_factors(full_imp[name], forget_imp[name], hp.alpha, hp.dampening))
        model.train(was_training)
        return model

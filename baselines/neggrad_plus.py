"""NegGrad+ (Kurmanji et al. 2023, "Towards Unbounded Machine Unlearning"): descend on the
retain set while ascending on the forget set, loss = alpha * CE(retain) - (1 - alpha) * CE(forget)
on paired batches (each retain batch with a forget batch, the forget set cycled).
Setting of the SCRUB repository's small-scale notebook (meghdadk/SCRUB at 98ffb11,
`small_scale_unlearning.ipynb`, `negative_grad` and `run_neggrad_epoch`): alpha 0.95, plain SGD
(no momentum, `torch.optim.SGD(lr=0.01, weight_decay=0.0)`), the model in eval mode while it
trains (the notebook calls `model.eval()` before the loop: BatchNorm keeps its running
statistics, dropout is off), 10 epochs (the `standard` profile's default); 5 epochs in the smoke
profile, to match the smoke originals' training length. Momentum matters: with 0.9 the ascent
term compounds, and at these defaults it wrecked the cmnist smoke model on class_0 (retain
accuracy 0.12) where the notebook's plain SGD keeps it (0.999).

The retain term carries the notebook's `l2_penalty` towards the original weights,
(init_penalty / 2) ||theta - theta_0||^2, where the notebook's coefficient is `args.weight_decay`,
0.1 in its `%run main.py ... --weight-decay 0.1` line:

    loss = alpha * (CE(retain) + init_penalty / 2 * ||theta - theta_0||^2) - (1 - alpha) * CE(forget)

Batches as the notebook pairs them: retain batches of 32 (`retain_bs`) each with a forget batch of
64 (`forget_bs`), the forget set reshuffled and cycled. At these defaults the cmnist smoke model
keeps class_0 and its utility (forget / retain / test 0.997 / 0.999 / 0.387; CWRU 1.00 / 1.00 /
0.98): the authors' setting forgets little at this scale, and stronger ascent (alpha 0.8) diverges.
Unlike LoTUS's copy, whose gradient flip happens
before `backward` and so never ascends, the sign here is in the loss."""

from __future__ import annotations

from torch import nn

from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.optim import sgd, step


@register_method("neggrad_plus")
class NegGradPlus(Method):
    access = Access.RETAIN
    paper = "Kurmanji et al. 2023 (NeurIPS), SCRUB repository settings"
    authors_code = "meghdadk/SCRUB@98ffb11 small_scale_unlearning.ipynb (negative_grad, run_neggrad_epoch)"
    space = {"lr": (0.01, [0.001, 0.003, 0.01, 0.03]),
             "epochs": (5, [1, 3, 5, 10]),
             "alpha": (0.95, [0.8, 0.9, 0.95, 0.99]),
             "init_penalty": (0.1, [0.0, 0.1]),
             "batch_size": (32, [32]),
             "forget_batch_size": (64, [64])}
    intensity = "alpha"
    profile_defaults = {"standard": {"epochs": 10}}
    version = "2"  # 2: the notebook's plain SGD (momentum 0) in eval mode, pull to the original, batches 32 / 64

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        model.eval()
        original = [p.detach().clone() for p in model.parameters()]
        optimizer = sgd(model, hp.lr, momentum=0.0)
        sizes = (hp.batch_size, hp.forget_batch_size)
        for (xr, yr), (xf, yf) in request.batches("retain", "forget", batch_size=sizes, epochs=hp.epochs):
            pull = hp.init_penalty / 2 * sum(((p - p0) ** 2).sum() for p, p0 in zip(model.parameters(), original))
            loss = hp.alpha * (request.loss(model(xr), yr) + pull) - (1 - hp.alpha) * request.loss(model(xf), yf)
            step(optimizer, loss)
        return model

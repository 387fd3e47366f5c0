"""Fisher forgetting (Golatkar, Achille & Soatto 2020, "Eternal Sunshine of the Spotless Net",
CVPR): add Gaussian noise shaped by the inverse Fisher information of the retain set, so that
directions the retain set does not pin down (those that may hold the forget set) are scrambled.

Fisher diagonal on the retain set D_r, with the expectation over the model's own predictive
distribution (not the true labels), model in eval mode:

    F = 1/|D_r| sum_x sum_y p(y|x) (d log p(y|x) / d theta)^2

then, per parameter tensor, as in the SSD repository's `FisherForgetting` (if-loops/
selective-synaptic-dampening, `forget_random_strategies.py`; the same code is in the SCRUB
notebook):

    var = 1 / (F + 1e-8), clamped to <= 1e3 (<= 1e2 for a tensor whose first dimension is the
          number of classes: the classifier's weight and bias)
    var = alpha * var
    var = var averaged over dim 1 (and broadcast back) for tensors with 2+ dims (conv / linear)
    var = 10 * var for 1-dim tensors (the code's comment says "BatchNorm"; it applies to every
          bias and norm parameter)
    theta <- theta + sqrt(var) * N(0, I)

alpha = 1e-6 (the value the SSD repository and the SCRUB notebook call it with); alpha is the
intensity. Summaries of the method write `var = alpha / (F + 1e-8)` clamped to <= 1e3; the code clamps
*before* multiplying by alpha (so with alpha 1e-6 the noise std is at most ~0.03, 0.01 for the
classifier), and that is what is implemented: clamping after alpha would let a parameter with
zero Fisher (a dead unit) receive noise of std 10 and would make the clamps idle otherwise.

The exact sum over y is computed with per-sample gradients (torch.func.vmap over (sample,
class) pairs, in chunks that hold about 2^25 gradient entries), which equals the repository's batch-size-1 loop with one
backward pass per class. For many classes set `label_samples` = k > 0: the sum over y is then
replaced by the mean over k labels drawn from p(y|x) with the request's generator, an unbiased
estimate of the same F. Classification only (the predictive distribution is over classes).

Cost. The exact Fisher over a whole retain set costs one backward pass per (sample, class):
about three minutes for Colored MNIST's 9,000 smoke samples on two CPU cores. By default F is
therefore estimated on `fisher_samples` = 1,000 retain samples drawn with the request's
generator, with one label per sample drawn from p(y|x) (`label_samples` = 1): an unbiased
Monte Carlo estimate of the same F at about 1/90 of the cost. `fisher_samples` = 0 and
`label_samples` = 0 give the exact computation of the repositories.

Two strategies, as the SSD repository has two files (commit cdfdc0e):
- random (`forget_random_strategies.py`): the variance above, the mean the original weights.
- full class (`forget_full_class_strategies.py`, also Golatkar et al.'s own notebook for a whole
  class, AdityaGolatkar/SelectiveForgetting at 4c02825): for the classifier's weight and bias (the
  code finds them as the tensors whose first dimension is the number of classes; here they are the
  head layer's, `head_layer`) the forgotten class's row gets mean 0
  and variance 1e-4 before the scaling, so its logit is pinned near 0 whatever the input, and the
  whole classifier's variance is multiplied by 10 (not only its bias). This is what makes the
  method forget a class: with the random strategy the noise alone leaves a well-trained class in
  place (cmnist smoke, class_0: forget accuracy 0.999 to 1.000 over noise seeds, against 0.001 to
  0.866 for the full-class code).
`strategy="auto"` picks the full-class strategy when no forget label occurs in the retain set
(every forgotten class is wholly forgotten), the random one otherwise; "class" and "random" force
one. The forgotten classes are the labels of the forget set.
"""

from __future__ import annotations

import torch
from torch import nn

from mubench.errors import MubenchError
from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.heads import head_layer
from mubench.toolkit.importance import fisher_diagonal
from mubench.transfer import to_device

STRATEGIES = ("auto", "class", "random")
FORGOTTEN_ROW_VARIANCE = 1e-4  # the full-class code's var[forget_class] = 0.0001, before the x10


def noise_variance(fisher: torch.Tensor, alpha: float, num_classes: int) -> torch.Tensor:
    """The random strategy's `get_mean_var` (SSD repository): clamp 1/(F + 1e-8) (1e3, or 1e2 for
    the classifier), scale by alpha, average over dim 1 for 2+-dim tensors, multiply 1-dim tensors
    by 10."""
    var = _scaled_variance(fisher, alpha, num_classes)
    if var.dim() == 1:
        var = var * 10
    return var


def full_class_noise(weights: torch.Tensor, fisher: torch.Tensor, alpha: float, num_classes: int,
                     forgotten: torch.Tensor, classifier: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The full-class strategy's `get_mean_var` (SSD repository, `forget_full_class_strategies.py`;
    Golatkar et al.'s notebook): (mean, variance). For the classifier's weight and bias the
    forgotten rows get mean 0 and variance 1e-4, then the whole tensor's variance is multiplied by
    10; other tensors are treated as in the random strategy. The code recognises the classifier by
    a first dimension equal to the number of classes; here it is the head layer itself
    (`head_layer`), so that a hidden layer that happens to have that many units keeps its rows."""
    var = _scaled_variance(fisher, alpha, num_classes)
    mean = weights.detach().clone()
    if classifier:
        mean[forgotten] = 0.0
        var[forgotten] = FORGOTTEN_ROW_VARIANCE
        var = var * 10
    elif var.dim() == 1:
        var = var * 10
    return mean, var


def _scaled_variance(fisher: torch.Tensor, alpha: float, num_classes: int) -> torch.Tensor:
    var = (1.0 / (fisher + 1e-8)).clamp(max=1e3)
    if fisher.dim() > 0 and fisher.size(0) == num_classes:
        var = var.clamp(max=1e2)
    var = alpha * var
    if var.dim() > 1:
        var = var.mean(dim=1, keepdim=True).expand_as(fisher).clone()
    return var


def is_full_class(request: Request, strategy: str) -> bool:
    """"auto": every forgotten label is absent from the retain set (a whole class is forgotten)."""
    if strategy != "auto":
        return strategy == "class"
    return request.forgets_whole_classes()


@register_method("fisher")
class FisherForgetting(Method):
    access = Access.RETAIN
    paper = "Golatkar, Achille & Soatto 2020 (CVPR); code of if-loops/selective-synaptic-dampening and SCRUB"
    authors_code = "if-loops/selective-synaptic-dampening@cdfdc0e src/forget_full_class_strategies.py, src/forget_random_strategies.py; AdityaGolatkar/SelectiveForgetting@4c02825"
    targets = frozenset({"class"})  # the expectation runs over the model's class distribution
    space = {"alpha": (1e-6, [1e-7, 1e-6, 1e-5, 1e-4, 1e-3]),
             "label_samples": (1, [1]),
             "fisher_samples": (1000, [1000]),
             "strategy": ("auto", list(STRATEGIES))}
    intensity = "alpha"
    version = "2"  # 2: the full-class strategy (forgotten rows zeroed, classifier noise x10) on class scenarios

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        if not (hp.alpha >= 0 and hp.label_samples >= 0 and hp.fisher_samples >= 0):
            raise MubenchError(f"fisher: alpha, label_samples and fisher_samples must be >= 0 (got {dict(hp)})")
        if hp.strategy not in STRATEGIES:
            raise MubenchError(f"fisher.strategy must be one of {STRATEGIES}, got {hp.strategy!r}")
        was_training = model.training
        model.eval()
        x = request.retain.x
        if 0 < hp.fisher_samples < len(x):
            chosen = to_device(torch.randperm(len(x), generator=request.generator)[:hp.fisher_samples], x.device)
            x = x[chosen]
        fisher = fisher_diagonal(model, x, hp.label_samples, request.generator)
        full_class = is_full_class(request, hp.strategy)
        forgotten = request.forget.y.unique().cpu()
        head = head_layer(model, request.num_classes) if full_class else None
        classifier = {id(p) for p in head.parameters()} if head is not None else set()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if full_class:
                    mean, var = full_class_noise(p, fisher[name], hp.alpha, request.num_classes,
                                                 to_device(forgotten, p.device), id(p) in classifier)
                else:
                    mean, var = p.detach().clone(), noise_variance(fisher[name], hp.alpha, request.num_classes)
                noise = to_device(torch.randn(p.shape, generator=request.generator), p.device, p.dtype)
                p.copy_(mean + var.sqrt() * noise)
        model.train(was_training)
        return model

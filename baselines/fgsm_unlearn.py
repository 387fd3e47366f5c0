"""FGSM unlearning, after Khorasani, Jahanian & Rastgarpour 2025 ("Protecting the Neural Networks
against FGSM Attack Using Machine Unlearning", arXiv 2511.01377). No code is published and the
update rule, eps and number of iterations are not given in what could be read (the abstract and
third-party summaries; [UNVERIFIED], see docs/methods.md, fgsm_unlearn): this is a
reconstruction of the described loop "attack, then unlearn, repeated", for the fgsm_poison
resilience scenarios, where the forget set is the FGSM-perturbed, mislabelled samples mixed into
training.

Each of `rounds` rounds (the intensity) is one pass over the retain set in mini-batches, each
retain batch (x_r, y_r) paired with a forget batch (x_f, y_f) (the forget set cycled), with

    x_adv = x_r + eps * sign(grad_x CE(f(x_r), y_r))   (FGSM against the current model, in eval mode)
    loss  = (1 - beta) * ((1 - gamma) CE(f(x_r), y_r) + gamma CE(f(x_adv), y_r))
            - beta * sum_i [argmax f(x_f,i) = y_f,i] CE(f(x_f,i), y_f,i) / |batch|

and one SGD step (momentum 0.9): gradient ascent on the poisoned samples (forgetting them) while
descending on clean retain data and on its adversarial versions with their true labels (the
"unlearn the vulnerability" step). Choices of ours, where the paper is unverified: the NegGrad+
form and weight (beta = 0.05, i.e. alpha = 0.95 as in the SCRUB repository's NegGrad+ setting);
the ascent stops per sample once it no longer predicts its poisoned label (an unbounded ascent
cost Colored MNIST's smoke model about 3 more points of test accuracy at the same forgetting); equal weights for
clean and adversarial retain batches (gamma 0.5); SGD lr 0.01 (the fine-tune baselines' rate);
eps 0.1 on the model-input scale (25/255 on [0, 1] inputs such as Colored MNIST's; Goodfellow et
al.'s MNIST budgets are 0.1-0.3); 2 rounds (the smoke originals train for 5 epochs, and a round
costs about three retain epochs)."""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.adversarial import fgsm_perturb
from mubench.toolkit.optim import sgd, step


@register_method("fgsm_unlearn")
class FgsmUnlearn(Method):
    access = Access.RETAIN
    targets = frozenset({"class"})
    paper = "Khorasani, Jahanian & Rastgarpour 2025 (arXiv 2511.01377); reconstruction, no code"
    space = {"lr": (0.01, [0.003, 0.01, 0.03]),
             "rounds": (2, [1, 2, 3, 5]),
             "beta": (0.05, [0.01, 0.05, 0.1, 0.2]),
             "eps": (0.1, [0.03, 0.1, 0.2]),
             "gamma": (0.5, [0.1, 0.25, 0.5]),
             "batch_size": (128, [128])}
    intensity = "rounds"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        if not 0 <= hp.beta < 1:
            raise ValueError(f"fgsm_unlearn: beta must be in [0, 1), got {hp.beta}")
        if not 0 <= hp.gamma <= 1:
            raise ValueError(f"fgsm_unlearn: gamma must be in [0, 1], got {hp.gamma}")
        if hp.eps < 0:
            raise ValueError(f"fgsm_unlearn: eps must be >= 0, got {hp.eps}")
        optimizer = sgd(model, hp.lr)
        for (xr, yr), (xf, yf) in request.batches("retain", "forget", batch_size=hp.batch_size, epochs=hp.rounds):
            model.eval()  # attack the current model without touching batch-norm statistics
            x_adv = fgsm_perturb(model, xr, yr, hp.eps, request.loss)
            model.train()
            loss = fgsm_unlearn_loss(model, request, xr, yr, x_adv, xf, yf, hp.beta, hp.gamma)
            step(optimizer, loss)
        return model


def fgsm_unlearn_loss(model: nn.Module, request: Request, xr, yr, x_adv, xf, yf, beta: float,  # type: ignore[no-untyped-def]
                      gamma: float = 0.5):
    """(1 - beta) * ((1 - gamma) CE(retain) + gamma CE(adversarial retain)) - beta * CE(forget on the
    samples still predicted as their poisoned label) (summed over those, divided by the forget batch size)."""
    descend = (1 - gamma) * request.loss(model(xr), yr) + gamma * request.loss(model(x_adv), yr)
    logits = model(xf)
    still = (logits.argmax(dim=1) == yf).float()
    ascend = (F.cross_entropy(logits, yf, reduction="none") * still).sum() / len(yf)
    return (1 - beta) * descend - beta * ascend

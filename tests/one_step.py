"""Hand-derived first updates for the one-step faithfulness tests (tests/test_one_step_*.py).

A method's first update is pinned on softmax regression, a single `nn.Linear`, because its
gradients have closed forms: for logits z = x W^T + b and a loss whose gradient with respect to
the logits is G (one row per sample), dL/dW = G^T x and dL/db = sum of G's rows. For the mean
cross-entropy G = (softmax(z) - onehot(y)) / n; for RepDistiller's KL at temperature T (as SCRUB
and Bad Teacher use it), T^2 * KL(softmax(t/T) || softmax(s/T)) averaged over the batch,
G = T (softmax(s/T) - softmax(t/T)) / n. The tests write the authors' update with these formulas,
never with autograd, so that a change to a method's loss terms, data, optimiser or masks moves its
first step away from the hand value and fails.

Each one-step test is named `test_one_step_<method>`; tests/test_provenance.py checks that
every method that declares the authors' code it follows (`Method.authors_code`) has one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mubench.access import Access
from mubench.request import Request, Subset


def linear(n_in: int = 3, n_out: int = 3, seed: int = 0) -> nn.Linear:
    """A softmax-regression model with weights drawn from `seed` (not nn.Linear's init)."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Linear(n_in, n_out)
    with torch.no_grad():
        model.weight.copy_(torch.randn(n_out, n_in, generator=generator))
        model.bias.copy_(torch.randn(n_out, generator=generator) * 0.1)
    return model


def data(n: int, labels: list[int] | None = None, n_in: int = 3, seed: int = 1) -> Subset:
    """n inputs drawn from `seed` with the given labels (default: 0, 1, 2, 0, ...)."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.tensor(labels if labels is not None else [i % 3 for i in range(n)])
    return Subset(torch.randn(len(y), n_in, generator=generator), y)


def request(access: Access = Access.RETAIN, num_classes: int = 3, seed: int = 0, **subsets: Subset) -> Request:
    return Request(dict(subsets), access, num_classes, torch.device("cpu"), seed=seed)


def logits(model: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return (x @ model.weight.T + model.bias).detach()


def ce_logit_grad(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d mean CE / d logits = (softmax(z) - onehot(y)) / n."""
    return (F.softmax(z, dim=1) - F.one_hot(y, z.shape[1]).to(z.dtype)) / len(y)


def kl_logit_grad(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """d [T^2 KL(softmax(t/T) || softmax(s/T)) averaged over the batch] / d s = T (p_s - p_t) / n."""
    p_s = F.softmax(student / temperature, dim=1)
    p_t = F.softmax(teacher / temperature, dim=1)
    return temperature * (p_s - p_t) / len(student)


def soft_ce_logit_grad(z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """d [mean_i -sum_c t_ic log softmax(z_i)_c] / d z = (softmax(z) - t) / n, for rows of t summing to 1."""
    return (F.softmax(z, dim=1) - targets) / len(z)


def param_grads(g: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL/dW, dL/db) of a linear layer from the logits' gradient G: (G^T x, sum_i G_i)."""
    return g.T @ x, g.sum(dim=0)


def ce_grads(model: nn.Linear, subset: Subset) -> tuple[torch.Tensor, torch.Tensor]:
    """(dW, db) of the mean cross-entropy of `model` on `subset`."""
    return param_grads(ce_logit_grad(logits(model, subset.x), subset.y), subset.x)


def sgd_first_step(weights: torch.Tensor, grad: torch.Tensor, lr: float, weight_decay: float = 0.0) -> torch.Tensor:
    """torch.optim.SGD's first step, with or without momentum (the first buffer is the gradient
    itself): w - lr (g + wd w)."""
    return weights.detach() - lr * (grad + weight_decay * weights.detach())


def adam_first_step(weights: torch.Tensor, grad: torch.Tensor, lr: float, weight_decay: float = 0.0,
                    eps: float = 1e-8, decoupled: bool = False) -> torch.Tensor:
    """Adam's (coupled L2) or AdamW's (decoupled) first step: with bias correction m_hat = g',
    v_hat = g'^2, so w - lr g' / (|g'| + eps), g' = g + wd w for Adam; AdamW first shrinks
    w by (1 - lr wd) and uses g' = g."""
    w = weights.detach()
    if decoupled:
        return w * (1 - lr * weight_decay) - lr * grad / (grad.abs() + eps)
    g = grad + weight_decay * w
    return w - lr * g / (g.abs() + eps)

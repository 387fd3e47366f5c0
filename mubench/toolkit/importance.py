"""Per-parameter importance estimates: the squared-gradient (empirical Fisher) importance of SSD
(Foster et al. 2024), the Fisher diagonal under the model's own predictive distribution
(Golatkar et al. 2020), and Memory Aware Synapses (MAS, Aljundi et al. 2018) with the inverted,
min-max normalised anchor weights L2UL (Cha et al. 2024) derives from it."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from mubench.request import Subset
from mubench.toolkit.optim import train_mode

Importances = dict[str, torch.Tensor]

_CHUNK_FLOATS = 1 << 25  # per-sample gradients held at once: chunk size x parameter count

def ordered_batches(subsets: list[Subset], batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Unshuffled batches of the concatenation of `subsets` (a batch may straddle two of them),
    built batch by batch so the whole concatenation is never copied."""
    sizes = [len(s) for s in subsets]
    starts = torch.tensor([0, *sizes]).cumsum(0).tolist()
    total = starts[-1]
    for begin in range(0, total, batch_size):
        end = min(begin + batch_size, total)
        xs, ys = [], []
        for subset, lo, hi in zip(subsets, starts[:-1], starts[1:]):
            a, b = max(begin, lo), min(end, hi)
            if a < b:
                xs.append(subset.x[a - lo:b - lo])
                ys.append(subset.y[a - lo:b - lo])
        yield torch.cat(xs), torch.cat(ys)


def squared_gradient_importance(model: nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
                                loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Importances:
    """Mean over batches of the squared gradient of the batch loss (SSD's `calc_importance`);
    parameters without a gradient get zero importance."""
    importances = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    count = 0
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                importances[name] += p.grad.detach() ** 2
        count += 1
    model.zero_grad(set_to_none=True)
    return {name: imp / max(count, 1) for name, imp in importances.items()}


def fisher_diagonal(model: nn.Module, x: torch.Tensor, label_samples: int = 0,
                    generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """E_x sum_y p(y|x) (d log p(y|x)/d theta)^2 over the rows of x, exactly (label_samples 0)
    or with label_samples draws of y ~ p(y|x) per x. The model is evaluated as it is (eval mode).

    Always in float32, also inside a method hosted under bf16 autocast (Engine.hosting): a
    curvature estimate, and vmap's BatchNorm rule refuses bf16 inputs with float32 weights."""
    with torch.autocast(x.device.type, enabled=False):
        return _fisher_diagonal(model, x, label_samples, generator)


def _fisher_diagonal(model: nn.Module, x: torch.Tensor, label_samples: int,
                     generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def log_prob(theta: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (theta, buffers), (xi.unsqueeze(0),))
        return F.log_softmax(logits, dim=-1)[0].gather(0, yi.reshape(1)).squeeze(0)

    per_sample = vmap(grad(log_prob), in_dims=(None, 0, 0))
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    chunk = max(1, _CHUNK_FLOATS // max(1, sum(p.numel() for p in params.values())))
    for xs in x.split(chunk):
        with torch.no_grad():
            probs = F.softmax(functional_call(model, (params, buffers), (xs,)), dim=-1)
        rows, labels, weights = _label_draws(probs, label_samples, generator)
        for r, y, w in zip(rows.split(chunk), labels.split(chunk), weights.split(chunk)):
            for name, g in per_sample(params, xs[r], y).items():
                fisher[name] += torch.einsum("n,n...->...", w, g ** 2)
    return {name: f / max(len(x), 1) for name, f in fisher.items()}


def _label_draws(probs: torch.Tensor, label_samples: int,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, label, weight) triples whose weighted sum of g(x_row, label) is, for each row x,
    sum_y p(y|x) g(x, y): every class weighted by its probability (label_samples 0), or
    label_samples draws y ~ p(y|x) weighted 1/label_samples each."""
    n, classes = probs.shape
    if label_samples == 0:
        labels = torch.arange(classes, device=probs.device).repeat(n)
        return torch.arange(n, device=probs.device).repeat_interleave(classes), labels, probs.reshape(-1)
    drawn = torch.multinomial(probs.float().cpu(), label_samples, replacement=True, generator=generator)
    rows = torch.arange(n, device=probs.device).repeat_interleave(label_samples)
    weights = torch.full((n * label_samples,), 1.0 / label_samples, device=probs.device, dtype=probs.dtype)
    return rows, drawn.reshape(-1).to(probs.device), weights


def mas_importance(model: nn.Module, x: torch.Tensor, batch_size: int,
                   batchnorm: str = "train") -> Importances:
    """MAS (Aljundi et al. 2018) as L2UL's estimate_parameter_importance (the FACIL MAS code): the
    sum over batches of |grad of mean_x ||f(x)||_2| * |batch|, divided by the number of samples
    (with batch 1, mean_x |d ||f(x)||_2 / d theta|); on a copy in train mode (BatchNorm as
    `batchnorm`, see optim.train_mode), so the model's own running statistics are untouched."""
    copy_ = train_mode(copy.deepcopy(model), batchnorm)
    importance = {name: torch.zeros_like(p) for name, p in copy_.named_parameters()}
    for batch in x.split(batch_size):
        copy_.zero_grad(set_to_none=True)
        copy_(batch).norm(p=2, dim=1).mean().backward()
        for name, p in copy_.named_parameters():
            if p.grad is not None:
                importance[name] += p.grad.abs() * len(batch)
    return {name: value / len(x) for name, value in importance.items()}


def anchor_weights(importance: Importances) -> Importances:
    """Omega' = 1 - (Omega - min) / (max - min) per tensor; a constant tensor gets 1 (anchored).
    L2UL (Cha et al. 2024): weights important for the forget set are free to move, the others are
    anchored to the original by a penalty sum_i Omega'_i (theta_i - theta0_i)^2 / 2."""
    weights = {}
    for name, value in importance.items():
        span = value.max() - value.min()
        normalised = (value - value.min()) / span if span > 0 else torch.zeros_like(value)
        weights[name] = 1.0 - normalised
    return weights

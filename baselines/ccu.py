"""CCU (Xu et al. 2025, "Preserving Cross-Modal Stability for Visual Unlearning in Multimodal
Scenarios", arXiv 2509.23895), reduced to one modality.

No public code was found and only the abstract was read (see docs/methods.md, ccu): the paper names
three loss terms, (a) selective unlearning by inverse contrastive learning, (b) cross-modal
knowledge retention, (c) dual-set contrastive separation, with weights, temperatures and
architectures unverified. What follows is a RECONSTRUCTION, not the paper's algorithm.

Per step, on a forget batch paired with a retain batch (the retain set cycled, epochs over the
forget set), with z the L2-normalised penultimate embeddings (the inputs of the classifier head,
read with gradients by a forward hook: mubench.toolkit.heads.logits_and_features) and
s(i, j) = <z_i, z_j> / tau:

    loss = CE(retain) + lambda_a * L_inverse + lambda_c * L_separation

- L_inverse, term (a): supervised contrastive loss (Khosla et al. 2020, the "L_out" form;
  mubench.toolkit.contrastive.contrastive_loss) with the roles inverted. Each forget sample is
  an anchor; its contrast set is the retain batch and the other forget samples; positives are
  the samples of OTHER classes, negatives those of its own class. Loss of anchor i:
  -mean_{p in P(i)} log(exp s(i,p) / sum_{a in A(i)} exp s(i,a)); mean over anchors with a
  positive. The other forget samples are in the contrast set (a reconstruction
  choice) because when a whole class is forgotten they are the only same-class samples, and
  without them the inversion would have no original positive to turn into a negative. The retain
  embeddings enter this term detached: (a) moves the forget representations only.
- L_separation, term (c): supervised contrastive loss with each retain sample as anchor, its
  contrast set the other retain samples and the forget batch; positives are the retain samples of
  its class, every forget sample is a negative (whatever its label), so retain classes stay
  compact and apart from the forget embeddings. Gradients flow through both sets.
- Term (b) keeps a second modality's (e.g. audio) embeddings discriminative while the visual one
  is unlearned. Our tasks have a single modality, so there is nothing for it to act on, and it is
  omitted; the retain set's fidelity, which is what (b) protects indirectly, is already the job of
  CE(retain) and (c). (A KL to the frozen original on retain logits would be a single-modality
  stand-in, but it would be a second, invented retention term, so it is left out.)

Settings ([UNVERIFIED], chosen for the smoke profile): tau 0.2, lambda_a 1, lambda_c 1, SGD
lr 0.01 momentum 0.9 (the classic fine-tuning setting of SalUn / Unlearn-Sparse, as
baselines/finetune.py), 5 epochs over
the forget set, batch 128 for both sets (a forget set of one batch, e.g. cwru's class_0 with 34
samples, makes only 5 steps and needs about 30 epochs; 30 is in the epochs sweep). Intensity: lambda_a, the weight of the forgetting term.
Classification only (class labels define the contrastive positives).

tau 0.2 was measured (smoke, class_0, seed 0; forget / retain / test accuracy; the oracle forgets
fully): at the earlier 0.5 the defaults did nothing on CWRU (1.00 / 1.00 / 0.98) and half forgot
cmnist (0.42 / 1.00 / 0.36); at 0.2, CWRU 0.25 / 1.00 / 0.94 and cmnist 0.00 / 1.00 / 0.34
(0.1: CWRU 0.15 / 0.95 / 0.84; 0.2 with 10 epochs: 0.03 / 0.97 / 0.91). A lower temperature
sharpens the similarities, so the inverted positives of the forget set weigh more in each anchor's
softmax.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mubench.errors import MubenchError
from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.contrastive import contrastive_loss
from mubench.toolkit.heads import find_head, logits_and_features
from mubench.toolkit.optim import sgd, step


def inverse_contrastive_loss(z_forget: torch.Tensor, y_forget: torch.Tensor, z_retain: torch.Tensor,
                             y_retain: torch.Tensor, tau: float) -> torch.Tensor:
    """Term (a): forget anchors; contrast set = retain batch (detached) then the other forget
    samples; positives = other classes, negatives = the anchor's class."""
    contrast = torch.cat([z_retain.detach(), z_forget])
    labels = torch.cat([y_retain, y_forget])
    n = len(y_forget)
    valid = torch.ones(n, len(labels), dtype=torch.bool, device=z_forget.device)
    valid[:, len(y_retain):] &= ~torch.eye(n, dtype=torch.bool, device=z_forget.device)
    positive = y_forget[:, None] != labels[None, :]
    return contrastive_loss(z_forget, contrast, positive, valid, tau)


def separation_loss(z_retain: torch.Tensor, y_retain: torch.Tensor, z_forget: torch.Tensor, tau: float) -> torch.Tensor:
    """Term (c): retain anchors; contrast set = the other retain samples then the forget batch;
    positives = retain samples of the anchor's class; every forget sample is a negative."""
    m, n = len(y_retain), len(z_forget)
    contrast = torch.cat([z_retain, z_forget])
    valid = torch.ones(m, m + n, dtype=torch.bool, device=z_retain.device)
    valid[:, :m] &= ~torch.eye(m, dtype=torch.bool, device=z_retain.device)
    positive = torch.zeros_like(valid)
    positive[:, :m] = y_retain[:, None] == y_retain[None, :]
    return contrastive_loss(z_retain, contrast, positive, valid, tau)


def _check(hp: HParams) -> None:
    for name in ("lambda_a", "lambda_c"):
        if not (math.isfinite(hp[name]) and hp[name] >= 0):
            raise MubenchError(f"ccu.{name} must be >= 0, got {hp[name]}")
    if not (math.isfinite(hp.tau) and hp.tau > 0):
        raise MubenchError(f"ccu.tau must be > 0, got {hp.tau}")
    if not (math.isfinite(hp.lr) and hp.lr > 0):
        raise MubenchError(f"ccu.lr must be > 0, got {hp.lr}")
    if hp.epochs < 1:
        raise MubenchError(f"ccu.epochs must be >= 1, got {hp.epochs}")


@register_method("ccu")
class CCU(Method):
    access = Access.RETAIN
    paper = "Xu et al. 2025 (arXiv 2509.23895); single-modality reconstruction, no public code"
    targets = frozenset({"class"})  # class labels define the contrastive positives
    space = {"lambda_a": (1.0, [0.1, 0.3, 1.0, 3.0]),
             "lambda_c": (1.0, [0.0, 0.3, 1.0]),
             "tau": (0.2, [0.1, 0.2, 0.5, 1.0]),
             "lr": (0.01, [0.003, 0.01, 0.03]),
             "epochs": (5, [1, 3, 5, 10, 30]),
             "batch_size": (128, [128])}
    intensity = "lambda_a"
    version = "2"  # 2: tau 0.2, measured to forget on CWRU and cmnist class_0

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        _check(hp)
        _, _, head = find_head(model, request.num_classes)
        model.train()
        optimizer = sgd(model, hp.lr)
        for (xf, yf), (xr, yr) in request.batches("forget", "retain", batch_size=hp.batch_size, epochs=hp.epochs):
            output, features = logits_and_features(model, head, torch.cat([xf, xr]))
            z = F.normalize(features, dim=1)
            zf, zr = z[:len(yf)], z[len(yf):]
            loss = (request.loss(output[len(yf):], yr)
                    + hp.lambda_a * inverse_contrastive_loss(zf, yf, zr, yr, hp.tau)
                    + hp.lambda_c * separation_loss(zr, yr, zf, hp.tau))
            step(optimizer, loss)
        return model

"""The supervised contrastive loss (SupCon, Khosla et al. 2020, "Supervised Contrastive
Learning", the L_out form of eq. 2) with the positives and the contrast set given as masks, so
that a method can invert or restrict them (CCU, Xu et al. 2025, baselines/ccu.py)."""

from __future__ import annotations

import torch


def contrastive_loss(anchors: torch.Tensor, contrast: torch.Tensor, positive: torch.Tensor,
                     valid: torch.Tensor, tau: float) -> torch.Tensor:
    """SupCon's L_out (Khosla et al. 2020) for given masks: anchors (n, d) and contrast (m, d) are
    L2-normalised, positive and valid are (n, m) booleans (valid excludes e.g. the anchor itself);
    loss of anchor i = -mean_{p: positive} log softmax_{a: valid}(<z_i, z_a> / tau)_p, averaged over
    the anchors with at least one positive (0 if none has, with a gradient path to the anchors).
    Masked sums rather than boolean indexing or a branch on `has.any()`: both would make the host
    wait for the GPU every step (mubench.transfer)."""
    positive = positive & valid
    logits = (anchors @ contrast.T / tau).masked_fill(~valid, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    counts = positive.sum(dim=1)
    has = counts > 0
    per_anchor = -log_prob.masked_fill(~positive, 0.0).sum(dim=1) / counts.clamp(min=1)
    return torch.where(has, per_anchor, 0.0).sum() / has.sum().clamp(min=1)

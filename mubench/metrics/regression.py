"""Regression errors with missing values masked, for forecasting tasks (traffic speed on METR-LA).

As in DCRNN (Li et al. 2018) and the traffic-forecasting literature after it, a target equal to
the missing-value marker (0 mph in METR-LA) is excluded from every error; MAPE is a fraction
(multiply by 100 for percent). They are plain functions until a regression task is registered:
the harness's outputs are classification logits today.
"""

from __future__ import annotations

import torch


def _masked(prediction: torch.Tensor, target: torch.Tensor, missing: float) -> tuple[torch.Tensor, torch.Tensor]:
    if prediction.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(prediction.shape)} != target shape {tuple(target.shape)}")
    keep = ~torch.isnan(target) if missing != missing else target != missing
    return prediction[keep].double(), target[keep].double()


def masked_mae(prediction: torch.Tensor, target: torch.Tensor, missing: float = 0.0) -> float:
    p, t = _masked(prediction, target, missing)
    return float((p - t).abs().mean()) if len(t) else float("nan")


def masked_rmse(prediction: torch.Tensor, target: torch.Tensor, missing: float = 0.0) -> float:
    p, t = _masked(prediction, target, missing)
    return float(((p - t) ** 2).mean().sqrt()) if len(t) else float("nan")


def masked_mape(prediction: torch.Tensor, target: torch.Tensor, missing: float = 0.0) -> float:
    """Mean of |prediction - target| / |target| over present targets (targets of 0 are never present
    when 0 marks missing values; with another marker, zero targets are excluded as well)."""
    p, t = _masked(prediction, target, missing)
    nonzero = t != 0
    p, t = p[nonzero], t[nonzero]
    return float(((p - t).abs() / t.abs()).mean()) if len(t) else float("nan")

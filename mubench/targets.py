"""What a task predicts and how a prediction is scored: classes or real values.

Classification tasks train and are probed with cross-entropy. Regression tasks (traffic speed
forecasting on METR-LA) train with the masked mean absolute error of DCRNN (Li et al. 2018):
targets equal to the task's missing-value marker (0 mph for METR-LA's failed sensors) are left
out of the loss, so a model is never taught to predict an outage. The per-sample loss of a
regression sample, the signal of loss-based membership inference, is its own masked MAE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch.nn import functional as F

TargetKind = Literal["class", "regression"]


@dataclass(frozen=True)
class Target:
    """A task's target kind and, for regression, the value that marks a missing target."""

    kind: TargetKind = "class"
    missing_value: float | None = None

    @property
    def regression(self) -> bool:
        return self.kind == "regression"

    def present(self, y: torch.Tensor) -> torch.Tensor:
        """Mask of the targets that count (regression): not the missing marker, not NaN."""
        keep = ~torch.isnan(y)
        if self.missing_value is not None:
            keep &= y != self.missing_value
        return keep

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss over a batch: mean cross-entropy, or the MAE over present targets."""
        if not self.regression:
            return F.cross_entropy(output, y)
        keep = self.present(y)
        error = torch.where(keep, (output - torch.nan_to_num(y)).abs(), torch.zeros_like(output))
        return error.sum() / keep.sum().clamp(min=1)

    def sample_losses(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample loss: cross-entropy, or each sample's MAE over its present targets (0 when a
        sample has none, so that it never dominates an attack)."""
        if not self.regression:
            return F.cross_entropy(output, y, reduction="none")
        keep = self.present(y)
        error = torch.where(keep, (output - torch.nan_to_num(y)).abs(), torch.zeros_like(output))
        dims = tuple(range(1, output.dim()))
        return error.sum(dim=dims) / keep.sum(dim=dims).clamp(min=1)


CLASSIFICATION = Target()

"""Regression errors with missing values masked, for forecasting tasks (traffic speed on METR-LA).

As in DCRNN (Li et al. 2018) and the traffic-forecasting literature after it, a target equal to
the missing-value marker (0 mph in METR-LA) is excluded from every error; MAPE is a fraction
(multiply by 100 for percent). Registered for regression tasks: `<part>/{mae,rmse,mape}` on each
evaluated part, per forecast horizon on forget and test (`<part>/mae_h3`: the 3rd step ahead, i.e.
15 minutes at METR-LA's 5-minute steps; DCRNN reports horizons 3, 6 and 12), their gaps to the
oracle (`gap/<part>_mae`, ...), and how much there is to forget (`signal/forget_mae`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mubench.evaluation import EvaluationContext, Outputs
from mubench.metrics.core import REGRESSION_ONLY, Direction, Metric, metrics


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


ERRORS: dict[str, Callable[[torch.Tensor, torch.Tensor, float], float]] = {
    "mae": masked_mae, "rmse": masked_rmse, "mape": masked_mape}
PART_DIRECTIONS: dict[str, Direction] = {"forget": "oracle", "retain": "lower", "val": "lower", "test": "lower"}
HORIZONS = (3, 6, 12)
HORIZON_PARTS = ("forget", "test")
GAP_PARTS = ("forget", "retain", "test")


def regression_error(outputs: Outputs, error: str, horizon: int | None = None) -> float | None:
    """`error` ("mae", "rmse", "mape") of regression outputs, over every predicted value or over one
    horizon (1-based column of (N, H) outputs); None when nothing is present to score."""
    prediction, target = outputs.logits, outputs.labels
    if horizon is not None:
        if prediction.dim() != 2 or prediction.shape[1] < horizon:
            return None
        prediction, target = prediction[:, horizon - 1], target[:, horizon - 1]
    missing = outputs.target.missing_value
    value = ERRORS[error](prediction, target, float("nan") if missing is None else missing)
    return None if value != value else value


def error_gap(ctx: EvaluationContext, part: str, error: str) -> float | None:
    """|error of the unlearned model - the oracle's| on one part of the same split and seed."""
    ours, oracle = regression_error(ctx.unlearned[part], error), regression_error(ctx.oracle[part], error)
    return None if ours is None or oracle is None else abs(ours - oracle)


def _register() -> None:
    for part, direction in PART_DIRECTIONS.items():
        for error in ERRORS:
            metrics.add(f"{part}/{error}", Metric(
                f"{part}/{error}", direction,
                lambda ctx, part=part, error=error: regression_error(ctx.unlearned[part], error),
                f"{error.upper()} on the {part} set, missing targets masked", REGRESSION_ONLY, outputs_only=True))
            if part in HORIZON_PARTS:
                for h in HORIZONS:
                    metrics.add(f"{part}/{error}_h{h}", Metric(
                        f"{part}/{error}_h{h}", direction,
                        lambda ctx, part=part, error=error, h=h: regression_error(ctx.unlearned[part], error, h),
                        f"{error.upper()} on the {part} set at horizon {h} (the {h}th step ahead)", REGRESSION_ONLY, outputs_only=True))
            if part in GAP_PARTS:
                metrics.add(f"gap/{part}_{error}", Metric(
                    f"gap/{part}_{error}", "lower", lambda ctx, part=part, error=error: error_gap(ctx, part, error),
                    f"|{part} {error.upper()} - the oracle's| (same split and seed)", REGRESSION_ONLY, outputs_only=True))
    metrics.add("signal/forget_mae", Metric(
        "signal/forget_mae", "info",
        lambda ctx: relative_improvement(regression_error(ctx.original["forget"], "mae"),
                                         regression_error(ctx.oracle["forget"], "mae")),
        "(oracle's - original's forget MAE) / oracle's: how much there is to forget, relative and signed "
        "(positive where the original fits the forget set better)", REGRESSION_ONLY, outputs_only=True))


def relative_improvement(original: float | None, oracle: float | None) -> float | None:
    """(oracle - original) / oracle for an error; None where either is missing or the oracle's is 0."""
    return None if original is None or oracle is None or oracle <= 0 else (oracle - original) / oracle


_register()

"""Relearn time: how quickly fine-tuning on the forget set brings its accuracy back.

Knowledge that was only hidden (e.g. suppressed logits) returns in a few steps, while knowledge
that is gone must be learned again (the "relearn time" of Golatkar et al. 2020, sec. 6, and
of Chundawat et al. 2023). A copy of the unlearned model is trained with Adam at the task's
learning rate on shuffled forget batches (fixed generator, so the number is reproducible); after
each step the forget accuracy is measured, and the count stops when it is within `TOLERANCE` of
the original model's. The count is capped at `MAX_STEPS` (a capped value means "not within the
budget"); an unlearned model already at the original's accuracy scores 0. Regression tasks train
with their masked MAE and stop when the forget MAE is within `RELATIVE_TOLERANCE` (1 %) of the
original's.

The accuracy checked after each step is that of the first `CHECK_SAMPLES` forget samples (in
split order; the original's accuracy is taken on the same samples), while the training batches
are drawn from the whole forget set. Checking the whole set made this metric the costliest of a
run on a GPU (up to 100 evaluations of a CIFAR-10 forget set of 4,500 images); 1,024 samples
bound that at an accuracy resolution of 0.001 (metrics version 3; before, the whole set).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from mubench.evaluation import EvaluationContext, Outputs, compute_outputs
from mubench.metrics.core import ANY_TARGET, add_metric
from mubench.metrics.regression import regression_error
from mubench.request import Subset
from mubench.targets import CLASSIFICATION, Target

MAX_STEPS = 100
BATCH_SIZE = 128
CHECK_SAMPLES = 1024
TOLERANCE = 0.01
RELATIVE_TOLERANCE = 0.01


def relearn_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, target_accuracy: float, lr: float,
                  eval_batch_size: int, max_steps: int = MAX_STEPS) -> int:
    """Steps until the forget accuracy reaches `target_accuracy` (classification)."""
    return relearn_until(model, x, y, lambda outputs: outputs.accuracy >= target_accuracy, lr, eval_batch_size,
                         CLASSIFICATION, max_steps)


def relearn_until(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, recovered: Callable[[Outputs], bool],
                  lr: float, eval_batch_size: int, target: Target, max_steps: int = MAX_STEPS,
                  check: Subset | None = None) -> int:
    """Adam steps on batches of (x, y), minimising the task's loss, until `recovered` holds for the
    model's outputs on `check` (default: all of x, y)."""
    check = check if check is not None else Subset(x, y)
    if recovered(compute_outputs(model, check, eval_batch_size, target)):
        return 0
    model = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    for step in range(1, max_steps + 1):
        index = torch.randint(0, len(y), (min(BATCH_SIZE, len(y)),), generator=generator).to(y.device)
        model.train()
        loss = target.loss(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if recovered(compute_outputs(model, check, eval_batch_size, target)):
            return step
    return max_steps


def first(outputs: Outputs, n: int) -> Outputs:
    """The outputs of the first `n` samples."""
    return Outputs(outputs.logits[:n], outputs.labels[:n], outputs.target)


@add_metric("relearn/steps", "higher", f"fine-tuning steps on the forget set until its accuracy (on its first "
            f"{CHECK_SAMPLES} samples) is back within {TOLERANCE} of the original's (regression: its MAE within "
            f"{RELATIVE_TOLERANCE:.0%}; capped at {MAX_STEPS})", ANY_TARGET)
def relearn(ctx: EvaluationContext) -> float | None:
    if "unlearned" not in ctx.models or "forget" not in ctx.subsets:
        return None
    forget = ctx.subsets["forget"]
    check = Subset(forget.x[:CHECK_SAMPLES], forget.y[:CHECK_SAMPLES])
    original_outputs = first(ctx.original["forget"], CHECK_SAMPLES)
    if ctx.regression:
        original = regression_error(original_outputs, "mae")
        if original is None:
            return None
        limit = original * (1 + RELATIVE_TOLERANCE)

        def recovered(outputs: Outputs) -> bool:
            mae = regression_error(outputs, "mae")
            return mae is not None and mae <= limit
    else:
        goal = original_outputs.accuracy - TOLERANCE

        def recovered(outputs: Outputs) -> bool:
            return outputs.accuracy >= goal
    return float(relearn_until(ctx.models["unlearned"], forget.x, forget.y, recovered, ctx.relearn_lr,
                               ctx.eval_batch_size, ctx.target, check=check))

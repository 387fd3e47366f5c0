"""Relearn time: how quickly fine-tuning on the forget set brings its accuracy back.

Knowledge that was only hidden (e.g. suppressed logits) returns in a few steps, while knowledge
that is gone must be learned again (the "relearn time" of Golatkar et al. 2020, sec. 6, and
of Chundawat et al. 2023). A copy of the unlearned model is trained with Adam at the task's
learning rate on shuffled forget batches (fixed generator, so the number is reproducible); after
each step the forget accuracy is measured, and the count stops when it is within `TOLERANCE` of
the original model's. The count is capped at `MAX_STEPS` (a capped value means "not within the
budget"); an unlearned model already at the original's accuracy scores 0.
"""

from __future__ import annotations

import copy

import torch
from torch.nn import functional as F

from mubench.evaluation import EvaluationContext, compute_outputs
from mubench.metrics.core import add_metric
from mubench.request import Subset

MAX_STEPS = 100
BATCH_SIZE = 128
TOLERANCE = 0.01


def relearn_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, target_accuracy: float, lr: float,
                  eval_batch_size: int, max_steps: int = MAX_STEPS) -> int:
    forget = Subset(x, y)
    if compute_outputs(model, forget, eval_batch_size).accuracy >= target_accuracy:
        return 0
    model = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    for step in range(1, max_steps + 1):
        index = torch.randint(0, len(y), (min(BATCH_SIZE, len(y)),), generator=generator).to(y.device)
        model.train()
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if compute_outputs(model, forget, eval_batch_size).accuracy >= target_accuracy:
            return step
    return max_steps


@add_metric("relearn/steps", "higher", f"fine-tuning steps on the forget set until its accuracy is back within "
            f"{TOLERANCE} of the original's (capped at {MAX_STEPS})")
def relearn(ctx: EvaluationContext) -> float | None:
    if "unlearned" not in ctx.models or "forget" not in ctx.subsets:
        return None
    forget = ctx.subsets["forget"]
    target = ctx.original["forget"].accuracy - TOLERANCE
    return float(relearn_steps(ctx.models["unlearned"], forget.x, forget.y, target, ctx.relearn_lr, ctx.eval_batch_size))

"""Efficiency: wall time and work, each relative to retraining, peak memory, and how much of the model changed."""

from __future__ import annotations

from mubench.evaluation import EvaluationContext
from mubench.metrics.core import ANY_TARGET, add_metric


@add_metric("cost/seconds", "lower", "wall-clock seconds of the method's unlearn call", ANY_TARGET, outputs_only=True)
def cost_seconds(ctx: EvaluationContext) -> float:
    return ctx.method_seconds


@add_metric("cost/rte", "lower", "method seconds over retraining's seconds timed on the same machine just before "
            "(run-time efficiency; 1 for retrain)", ANY_TARGET, outputs_only=True)
def cost_rte(ctx: EvaluationContext) -> float | None:
    """Seconds relative to a reference timed in the same conditions (Harness.reference_seconds), so
    that load and hardware cancel; the oracle's own training seconds, read back from the model
    cache, may come from another machine."""
    return ctx.method_seconds / ctx.oracle_seconds if ctx.oracle_seconds > 0 else None


@add_metric("cost/work", "lower", "sample passes through the task's model (a forward 1, with gradients 3) over "
            "retraining's (3 x epochs x retain samples): hardware-independent cost, 1 for retrain", ANY_TARGET,
            outputs_only=True)
def cost_work(ctx: EvaluationContext) -> float | None:
    """Work relative to retraining (mubench.harness.work): the same on every machine and under any load."""
    return ctx.method_work / ctx.oracle_work if ctx.oracle_work > 0 else None


@add_metric("cost/peak_mem_mb", "lower", "memory the unlearn call allocated at its peak, MiB (CUDA allocator; on CPU the sampled C heap)", ANY_TARGET, outputs_only=True)
def cost_peak_memory(ctx: EvaluationContext) -> float | None:
    return ctx.method_peak_memory_mb


@add_metric("cost/params_changed", "info", "share of the model's parameters (scalars) that differ from the original's", ANY_TARGET)
def params_changed(ctx: EvaluationContext) -> float | None:
    """How local the edit is: 0 for `identity`, near 1 for retraining or fine-tuning everything;
    sparse methods (SSD, SalUn's masked updates, FMD's last layer) sit in between."""
    if "unlearned" not in ctx.models or "original" not in ctx.models:
        return None
    original = dict(ctx.models["original"].named_parameters())
    changed = total = 0
    for name, tensor in ctx.models["unlearned"].named_parameters():
        changed += int((tensor.detach() != original[name].detach()).sum())
        total += tensor.numel()
    return changed / total if total else None

"""Group fairness and counterfactual bias of the unlearned model on the test split, for tasks that
declare a sensitive attribute (spec.sensitive_attributes; Colored MNIST: the digit's colour).

Binary definitions as in fairlearn (Agarwal et al. 2018; Hardt et al. 2016), groups being the
values of the attribute present in the test split, a difference being the largest minus the
smallest group rate:
- demographic parity (`fair/dp`): difference of P(ŷ = 1 | g);
- equalised odds (`fair/eod`): the larger of the true-positive-rate and false-positive-rate
  differences, TPR = P(ŷ = 1 | y = 1, g), FPR = P(ŷ = 1 | y = 0, g);
- equal opportunity (`fair/eopp`): the TPR difference.
With more than two classes each is the mean over classes c of the binary quantity for
"prediction == c" against "label == c" (one-vs-rest). For two classes the class mean equals the
binary value for DP and EO (class 0's rates are one minus class 1's, or swap TPR and FPR), but
not for equal opportunity (class 0's TPR is one minus class 1's FPR, so the mean would be the
mean of the TPR and FPR differences): two-class tasks therefore use class 1 as the positive
class for all three, as fairlearn does.

A rate that is undefined in a group (TPR for c in a group with no sample of class c, FPR in a
group with only class c) leaves that group out of that difference; fairlearn counts it as 0,
which would report a disparity that is an artefact of an empty cell. A class whose rate is
undefined in every group leaves the class out of the mean.

`fair/worst_group_acc` is the lowest accuracy over the groups (label, attribute value) with at
least one test sample (Sagawa et al. 2020, group DRO).

`fair/counterfactual_bias` is FMD's counterfactual bias (Chen et al. 2023):
B = mean_i |P(ŷ = y_i | x_i) - P(ŷ = y_i | x̄_i)| over the test split, x̄_i differing from x_i
only in the sensitive attribute, built by the task (Task.counterfactual) with a fixed generator,
so that every method and seed is probed with the same counterfactuals.

Several sensitive attributes: the group metrics use the first one the task declares (its primary
attribute). Metric keys are fixed in the registry, with one direction and description each, so
that records, aggregates and trade-off plots compare like with like across tasks; per-attribute
keys (`fair/dp/<attribute>`) would make the set of keys depend on the task. The functions below
take any grouping, for analyses of the other attributes.
"""

from __future__ import annotations

import torch

from mubench.evaluation import EvaluationContext, Outputs
from mubench.metrics.core import add_metric

COUNTERFACTUAL_SEED = 0


def _as_groups(groups: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Dense group indices 0..G-1 over the values present, and G."""
    values, index = torch.unique(groups.cpu(), return_inverse=True)
    return index, len(values)


def _spread(rates: torch.Tensor, defined: torch.Tensor) -> torch.Tensor:
    """Per class (column): max minus min of `rates` over the groups (rows) where it is defined;
    NaN where no group defines it."""
    high = torch.where(defined, rates, torch.full_like(rates, -torch.inf)).max(dim=0).values
    low = torch.where(defined, rates, torch.full_like(rates, torch.inf)).min(dim=0).values
    return torch.where(defined.any(dim=0), high - low, torch.full_like(high, torch.nan))


def one_vs_rest_differences(predictions: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
                            classes: list[int]) -> dict[str, torch.Tensor]:
    """Per class c in `classes` (one-vs-rest: prediction == c, label == c) the group differences
    of the selection rate ("dp"), TPR ("tpr") and FPR ("fpr"), float64, NaN where undefined."""
    index, n_groups = _as_groups(groups)
    predictions, labels = predictions.cpu().long(), labels.cpu().long()
    cls = torch.tensor(classes, dtype=torch.long)
    predicted = (predictions[:, None] == cls[None, :]).double()  # (N, C)
    positive = (labels[:, None] == cls[None, :]).double()

    def per_group(values: torch.Tensor) -> torch.Tensor:  # (N, C) -> (G, C) sums
        return torch.zeros(n_groups, len(classes), dtype=torch.float64).index_add_(0, index, values)

    size = torch.bincount(index, minlength=n_groups).double()[:, None].expand(-1, len(classes))
    selected, positives = per_group(predicted), per_group(positive)
    true_pos, false_pos = per_group(predicted * positive), per_group(predicted * (1 - positive))
    negatives = size - positives
    return {
        "dp": _spread(selected / size, size > 0),
        "tpr": _spread(true_pos / positives.clamp(min=1), positives > 0),
        "fpr": _spread(false_pos / negatives.clamp(min=1), negatives > 0),
    }


def _classes(num_classes: int) -> list[int]:
    return [1] if num_classes == 2 else list(range(num_classes))


def _mean(values: torch.Tensor) -> float | None:
    defined = values[~torch.isnan(values)]
    return float(defined.mean()) if len(defined) else None


def demographic_parity_difference(predictions: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
                                  num_classes: int) -> float | None:
    return _mean(one_vs_rest_differences(predictions, labels, groups, _classes(num_classes))["dp"])


def equalized_odds_difference(predictions: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
                              num_classes: int) -> float | None:
    d = one_vs_rest_differences(predictions, labels, groups, _classes(num_classes))
    return _mean(torch.fmax(d["tpr"], d["fpr"]))  # fmax: the defined one where the other is NaN


def equal_opportunity_difference(predictions: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
                                 num_classes: int) -> float | None:
    return _mean(one_vs_rest_differences(predictions, labels, groups, _classes(num_classes))["tpr"])


def worst_group_accuracy(predictions: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor) -> float | None:
    """The lowest accuracy over the non-empty groups (label, attribute value)."""
    labels = labels.cpu().long()
    if not len(labels):
        return None
    pairs = torch.stack([labels, groups.cpu().long()], dim=1)
    _, index = torch.unique(pairs, dim=0, return_inverse=True)
    n_groups = int(index.max()) + 1
    correct = (predictions.cpu().long() == labels).double()
    hits = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, index, correct)
    return float((hits / torch.bincount(index, minlength=n_groups)).min())


def _test_groups(ctx: EvaluationContext) -> tuple[Outputs, torch.Tensor] | None:
    """The unlearned model's test outputs and the primary sensitive attribute, if the task has one."""
    if not ctx.sensitive_attributes or "test" not in ctx.unlearned:
        return None
    name = ctx.sensitive_attributes[0]
    if name not in ctx.test_attributes:
        raise KeyError(f"the task declares the sensitive attribute {name!r} but its test pool has none "
                       f"(it has: {', '.join(sorted(ctx.test_attributes)) or 'no attributes'})")
    outputs = ctx.unlearned["test"]
    return (outputs, ctx.test_attributes[name]) if len(outputs.labels) else None


def _group_metric(ctx: EvaluationContext, fn) -> float | None:
    found = _test_groups(ctx)
    if found is None:
        return None
    outputs, groups = found
    return fn(outputs.logits.argmax(dim=1), outputs.labels, groups, outputs.logits.shape[1])


@add_metric("fair/dp", "lower", "demographic parity difference over the first sensitive attribute "
            "(test; multiclass: mean over classes, one-vs-rest)", outputs_only=True)
def fair_dp(ctx: EvaluationContext) -> float | None:
    return _group_metric(ctx, demographic_parity_difference)


@add_metric("fair/eod", "lower", "equalised odds difference, max(TPR, FPR difference), over the first "
            "sensitive attribute (test; multiclass: mean over classes, one-vs-rest)", outputs_only=True)
def fair_eod(ctx: EvaluationContext) -> float | None:
    return _group_metric(ctx, equalized_odds_difference)


@add_metric("fair/eopp", "lower", "equal opportunity (TPR) difference over the first sensitive attribute "
            "(test; multiclass: mean over classes, one-vs-rest)", outputs_only=True)
def fair_eopp(ctx: EvaluationContext) -> float | None:
    return _group_metric(ctx, equal_opportunity_difference)


@add_metric("fair/worst_group_acc", "higher", "lowest test accuracy over groups (label x first sensitive "
            "attribute) with a sample (Sagawa et al. 2020)", outputs_only=True)
def fair_worst_group_acc(ctx: EvaluationContext) -> float | None:
    return _group_metric(ctx, lambda predictions, labels, groups, _: worst_group_accuracy(predictions, labels, groups))


@torch.no_grad()
def counterfactual_bias(ctx: EvaluationContext, seed: int = COUNTERFACTUAL_SEED) -> float | None:
    """FMD's B on the test split for the unlearned model; None without counterfactuals. P(y|x)
    comes from the unlearned model's test outputs when the context has them (computed once per
    run), so only the counterfactual inputs go through the model here."""
    if ctx.counterfactual is None or "unlearned" not in ctx.models or "test" not in ctx.subsets:
        return None
    model, subset = ctx.models["unlearned"], ctx.subsets["test"]
    if not len(subset):
        return None
    known = ctx.unlearned.get("test")
    known_logits = known.logits if known is not None and len(known.labels) == len(subset) else None
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    total = 0.0
    for start in range(0, len(subset), ctx.eval_batch_size):
        stop = start + ctx.eval_batch_size
        x, y = subset.x[start:stop], subset.y[start:stop].long().cpu()
        flipped = ctx.counterfactual(x, {k: v[start:stop] for k, v in ctx.test_attributes.items()}, generator)
        if flipped is None:
            return None
        logits = known_logits[start:stop] if known_logits is not None else model(x).float().cpu()
        p = logits.double().softmax(dim=1).gather(1, y[:, None])
        p_flipped = model(flipped).float().cpu().double().softmax(dim=1).gather(1, y[:, None])
        total += float((p - p_flipped).abs().sum())
    return total / len(subset)


@add_metric("fair/counterfactual_bias", "lower", "FMD's counterfactual bias: mean |P(y|x) - P(y|x̄)| over the "
            "test split, x̄ = x with another sensitive attribute (Chen et al. 2023)")
def fair_counterfactual_bias(ctx: EvaluationContext) -> float | None:
    return counterfactual_bias(ctx)

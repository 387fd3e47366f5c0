"""Model outputs, computed once per model and split and shared by every metric."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import nn

from mubench.request import Subset
from mubench.targets import CLASSIFICATION, Target

EVALUATED_PARTS = ("forget", "retain", "val", "heldout", "test")
# At most this many samples of a part are evaluated: an evenly spaced sample in split order, the
# same for every model of a split. The retain set is 90 % of the training data (40,500 CIFAR-10
# images), and its outputs were the largest evaluation cost of a run; 10,000 samples measure
# retain accuracy to a standard error of at most 0.005 (0.001 at 99 %), and every model of a split
# (unlearned, oracle, original) is measured on the same ones (metrics version 3).
EVALUATION_CAPS = {"retain": 10_000}

# A task's counterfactual builder (Task.counterfactual): model-ready inputs, their attributes and a
# generator -> the same inputs with only the sensitive attribute changed, or None if the task cannot.
Counterfactual = Callable[[torch.Tensor, dict[str, torch.Tensor], torch.Generator], torch.Tensor | None]


@dataclass(frozen=True)
class Outputs:
    """A model's outputs and the labels on one split part (on the CPU, float32): logits of a
    classifier, or predicted values of a regression model (`target.regression`)."""

    logits: torch.Tensor
    labels: torch.Tensor
    target: Target = CLASSIFICATION

    @cached_property
    def probs(self) -> torch.Tensor:
        self._classification_only("probabilities")
        return self.logits.softmax(dim=1)

    @cached_property
    def losses(self) -> torch.Tensor:
        """Per-sample loss (cross-entropy, or masked MAE): the signal of loss-based membership inference."""
        return self.target.sample_losses(self.logits, self.labels)

    @cached_property
    def correct(self) -> torch.Tensor:
        self._classification_only("correctness")
        return self.logits.argmax(dim=1) == self.labels

    @property
    def accuracy(self) -> float:
        return float(self.correct.float().mean()) if len(self.labels) else float("nan")

    def _classification_only(self, what: str) -> None:
        if self.target.regression:
            raise TypeError(f"{what} is defined for classifiers only; these are regression outputs")


@torch.no_grad()
def compute_outputs(model: nn.Module, subset: Subset, batch_size: int, target: Target = CLASSIFICATION) -> Outputs:
    model.eval()
    logits = [model(subset.x[i:i + batch_size]).float().cpu() for i in range(0, len(subset), batch_size)]
    return Outputs(torch.cat(logits) if logits else torch.empty(0), subset.y.cpu(), target)


def evaluated_sample(subset: Subset, cap: int | None) -> Subset:
    """`subset` itself when it holds at most `cap` samples, else `cap` evenly spaced samples of it."""
    if cap is None or len(subset) <= cap:
        return subset
    # positions floor(i (n - 1) / (cap - 1)), in integers: distinct (a step of at least 1), first and last kept
    index = torch.arange(cap, device=subset.y.device) * (len(subset) - 1) // max(cap - 1, 1)
    return Subset(subset.x[index], subset.y[index])


def outputs_on(model: nn.Module, subsets: dict[str, Subset], batch_size: int,
               target: Target = CLASSIFICATION) -> dict[str, Outputs]:
    """Outputs on every evaluated part (capped parts on their evenly spaced sample, EVALUATION_CAPS),
    and on `unseen` where the subsets hold it: RMIA's population samples z (mia/rmia)."""
    parts = EVALUATED_PARTS + (("unseen",) if "unseen" in subsets else ())
    return {part: compute_outputs(model, evaluated_sample(subsets[part], EVALUATION_CAPS.get(part)), batch_size, target)
            for part in parts}


@dataclass(frozen=True)
class PopulationOutputs:
    """The outputs of a run's model population (mubench.harness.population): member k's unlearned
    model and its oracle, each on every audited part ("forget", "heldout", "unseen", "retain",
    "val"). `cache` holds the attacks' shared intermediate results (mubench.metrics.audit)."""

    unlearned: list[dict[str, Outputs]]
    oracle: list[dict[str, Outputs]]
    cache: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.unlearned) != len(self.oracle):
            raise ValueError(f"a population pairs each unlearned member with an oracle: {len(self.unlearned)} "
                             f"unlearned, {len(self.oracle)} oracles")


@dataclass(frozen=True)
class AttackBudget:
    """An L-inf budget on the model-input scale for robustness metrics: `eps` per input element
    (broadcasting over a batch, e.g. eps / std per channel when inputs are normalised), and the
    model-ready images of the pixel range [`low`, `high`] that adversarial inputs are clamped to
    (None: no clamp, for float pools)."""

    eps: torch.Tensor
    low: torch.Tensor | None = None
    high: torch.Tensor | None = None


@dataclass(frozen=True)
class EvaluationContext:
    """Everything metrics may read: outputs of the unlearned, oracle and original models per part
    (computed once, shared by all metrics), the models themselves and the model-ready subsets (for
    metrics that probe a model further: representations, relearning), the test pool's attributes,
    and the run's costs. Metrics must not modify the models."""

    unlearned: dict[str, Outputs]
    oracle: dict[str, Outputs]
    original: dict[str, Outputs]
    test_attributes: dict[str, torch.Tensor] = field(default_factory=dict)
    method_seconds: float = 0.0
    oracle_seconds: float = 0.0  # retraining's seconds on this machine, now (Harness.reference_seconds)
    method_work: float = 0.0  # work units (mubench.harness.work): sample passes through the task's model
    oracle_work: float = 0.0  # retraining's work units: 3 x epochs x retain samples
    models: dict[str, nn.Module] = field(default_factory=dict)  # "unlearned", "oracle", "original"
    subsets: dict[str, Subset] = field(default_factory=dict)
    method_peak_memory_mb: float | None = None
    relearn_lr: float = 1e-3
    eval_batch_size: int = 1024
    sensitive_attributes: tuple[str, ...] = ()  # the task's spec.sensitive_attributes (fairness metrics)
    counterfactual: Counterfactual | None = None  # the task's counterfactual builder (fair/counterfactual_bias)
    # outputs of shadow models (Harness(shadow_models=K), for mia/ulira and mia/rmia) on "forget",
    # "heldout" and "unseen": "in" = originals trained with the forget set, "out" = oracles trained
    # without it, seeds other than the run's
    shadow_outputs: dict[str, list[dict[str, Outputs]]] = field(default_factory=dict)
    # the run's population (RunConfig.population > 0; mubench.metrics.audit), None otherwise
    population: PopulationOutputs | None = None
    target: Target = CLASSIFICATION  # the task's target kind: classification metrics skip regression tasks
    # the scenario's FGSM budget (fgsm_poison scenarios; robust/fgsm_acc), None elsewhere
    attack: AttackBudget | None = None

    @property
    def regression(self) -> bool:
        return self.target.regression

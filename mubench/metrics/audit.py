"""The privacy audit: attacks over a population of unlearned and retrained models.

One unlearned model's attack value cannot say whether unlearning worked: an attack on one model
is one draw of the training randomness, and at the scales a CPU affords its membership signal
is smaller than its own sampling noise. The strongest evaluations compare *populations*: N
originals trained with the forget set (the training seed differing), each unlearned by the
method under test, beside N oracles retrained without it (`Harness` with
`RunConfig.population = N`, mubench.harness.population). Member k's original and oracle share
their initialisation and batch order (the seed), as an unlearned model and its retrained twin
would. The forget set is the scenario's, the same for every member: every forget example is
unlearned in every member, so each example has N unlearned and N retrained observations.

Three attacks read the population (keys `audit/*`), each with a percentile-bootstrap 95 %
interval over members and examples (mubench.metrics.intervals):

- **U-LiRA** (Hayes et al. 2024, "Inexact unlearning needs more careful evaluations to avoid a
  false sense of privacy"): per forget example, Gaussians of the logit-scaled confidence under
  the unlearned members and under the retrained members; a target model's score on the example
  is the log likelihood ratio. The game of the paper: given a target model that is unlearned or
  retrained (each with probability 1/2) and a forget example, say which. Target models are held
  out: member k is scored against Gaussians fitted on the other N - 1 (leave-one-out, so every
  member is a target once). `audit/ulira_acc` is the attack's accuracy at likelihood ratio 1
  (the Bayes decision between the two Gaussians), `audit/ulira_auc` its ROC AUC, over every
  (target model, forget example) pair; 0.5 = unlearned models are indistinguishable from
  retrained ones, as for `retrain` exactly. The paper's shadow models train on random halves
  and draw forget sets at random; here the forget set is fixed and the members differ by seed,
  which gives every forget example N observations per side at the cost of 2N trainings.
- **KLOM** (Georgiev et al. 2024, "Attribute-to-delete: machine unlearning via datamodel
  matching", appendix E.1): per example, the KL divergence from the distribution of the
  unlearned members' margins to that of the oracles' margins, both histogrammed in 20 bins over
  their common range (margins clipped to [-100, 100]; 1e-5 in place of an empty oracle bin),
  as the authors' code computes it (data-unlearning-bench, `compute_binned_KL_div`; a value equal
  to the common maximum falls outside numpy's last bin there, and here, except where that would
  leave an example's unlearned margins no bin at all: see `_bin_probabilities`). Summarised per group as
  the 95th percentile over the examples (`audit/klom_<part>`) and the mean
  (`audit/klom_<part>_mean`), on the forget, retain and validation samples as the paper does.
  0 = the unlearned margins are distributed as retraining's. The interval resamples examples
  only (see `klom_summary`).
- **RMIA** (Zarifzadeh et al. 2024, "Low-cost high-power membership inference attacks"): a
  target model's likelihood ratio of x, Pr(x | target) / Pr(x), against those of population
  samples z; the score of x is the fraction of z it beats. Pr(x) comes from reference models
  that never trained on x, the oracles (the paper's offline attack, with its linear correction
  for the missing "in" references: Pr(x) = ((1 + a) Pr_out(x) + (1 - a)) / 2). Here Pr(x | model)
  is the softmax probability of the true label, z ranges over the validation samples outside
  the held-out non-members (`unseen`), and the attack's ROC AUC separates the forget set from
  the held-out samples. On a population every member is a target with the other members'
  oracles as references: `audit/rmia_auc` is the mean over unlearned members,
  `audit/rmia_auc_oracle` over oracles (about 0.5: neither forget nor held-out samples are
  members of an oracle), `gap/audit_rmia_auc` the absolute difference. On an ordinary run with shadow
  oracles (`Harness(shadow_models=K)`), `mia/rmia` attacks the unlearned model with the K shadow
  oracles as references (registered in mubench.metrics.membership).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mubench.evaluation import EvaluationContext, Outputs, PopulationOutputs
from mubench.metrics.core import add_metric
from mubench.metrics.intervals import (
    BOOTSTRAP_SEED,
    Estimate,
    auc_rows,
    percentile_interval,
    resample_indices,
)
from mubench.metrics.membership import likelihood_ratio, logit_confidence
from mubench.metrics.rmia import rmia_scores, stacked, true_label_probability

KLOM_BINS, KLOM_EPS, KLOM_CLIP = 20, 1e-5, 100.0  # data-unlearning-bench compute_binned_KL_div defaults
KLOM_PERCENTILE = 95
KLOM_PARTS = ("forget", "retain", "val")
ACC_RESAMPLES = 1000  # bootstrap resamples for accuracies (closed-form per resample: cheap)
RESAMPLES = 200  # for statistics that rank or histogram anew per resample
MIN_MEMBERS = 3  # leave-one-out needs at least two shadows per side for a variance


# ---- per-example model outputs ----------------------------------------------------------------

def margins(outputs: Outputs) -> np.ndarray:
    """z_y - logsumexp_{j != y} z_j (float64): KLOM's margin, which is LiRA's logit-scaled
    confidence log(p_y / (1 - p_y)) computed without cancellation."""
    return logit_confidence(outputs)


# ---- U-LiRA -----------------------------------------------------------------------------------

def ulira_scores(unlearned_phi: np.ndarray, oracle_phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out U-LiRA scores: for each member k, the log likelihood ratio (unlearned vs
    retrained Gaussians fitted on the other members, mubench.metrics.membership.likelihood_ratio)
    of its unlearned model's and its oracle's phi on every forget example: two (N, E) arrays."""
    n = len(unlearned_phi)
    if n < MIN_MEMBERS or oracle_phi.shape != unlearned_phi.shape:
        raise ValueError(f"U-LiRA needs two (N >= {MIN_MEMBERS}, E) arrays of the same shape, got "
                         f"{unlearned_phi.shape} and {oracle_phi.shape}")
    positive, negative = np.empty_like(unlearned_phi), np.empty_like(oracle_phi)
    for k in range(n):
        others = np.arange(n) != k
        shadows_u, shadows_r = unlearned_phi[others], oracle_phi[others]
        positive[k] = likelihood_ratio(unlearned_phi[k], shadows_u, shadows_r)
        negative[k] = likelihood_ratio(oracle_phi[k], shadows_u, shadows_r)
    return positive, negative


def ulira_accuracy(positive: np.ndarray, negative: np.ndarray) -> Estimate:
    """Accuracy of "unlearned iff log LR > 0" over the balanced game (every target model and forget
    example, unlearned and retrained), with a two-way bootstrap (members and examples resampled)."""
    said_unlearned, said_retrained = (positive > 0).astype(float), (negative <= 0).astype(float)
    n, e = positive.shape
    value = float((said_unlearned.mean() + said_retrained.mean()) / 2)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    member_counts = _counts(resample_indices(rng, n, ACC_RESAMPLES), n)
    example_counts = _counts(resample_indices(rng, e, ACC_RESAMPLES), e)
    correct = ((member_counts @ said_unlearned) * example_counts).sum(1) + \
              ((member_counts @ said_retrained) * example_counts).sum(1)
    low, high = percentile_interval(correct / (2 * n * e))
    return Estimate(value, low, high, f"percentile bootstrap over members and forget examples, {ACC_RESAMPLES} "
                    "resamples", {"models": n, "forget": e})


def ulira_auc(positive: np.ndarray, negative: np.ndarray) -> Estimate:
    """ROC AUC of the unlearned targets' scores over the retrained targets', two-way bootstrap."""
    n, e = positive.shape
    value = float(auc_rows(positive.reshape(1, -1), negative.reshape(1, -1))[0])
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    members, examples = resample_indices(rng, n, RESAMPLES), resample_indices(rng, e, RESAMPLES)
    rows = [(positive[m][:, x].ravel(), negative[m][:, x].ravel()) for m, x in zip(members, examples)]
    replicates = auc_rows(np.stack([p for p, _ in rows]), np.stack([q for _, q in rows]))
    low, high = percentile_interval(replicates)
    return Estimate(value, low, high, f"percentile bootstrap over members and forget examples, {RESAMPLES} "
                    "resamples", {"models": n, "forget": e})


def _counts(indices: np.ndarray, size: int) -> np.ndarray:
    """(resamples, size) multiplicities of each index in each resample."""
    rows = np.repeat(np.arange(len(indices)), indices.shape[1])
    counts = np.zeros((len(indices), size))
    np.add.at(counts, (rows, indices.ravel()), 1.0)
    return counts


# ---- KLOM -------------------------------------------------------------------------------------

def klom_per_example(unlearned: np.ndarray, oracle: np.ndarray) -> np.ndarray:
    """KL(unlearned margins || oracle margins) of every example, from (N, E) margin arrays.

    Per example, as data-unlearning-bench's `compute_binned_KL_div`: clip to [-100, 100]; 20 equal
    bins over the two samples' common [min, max] (max = min + 1 when they coincide); numpy
    `digitize` bin membership, so a value equal to the maximum is in no bin; probabilities from
    the counts; the oracle's probability raised to 1e-5 where the unlearned one is > 0; then
    scipy's `entropy(p, q)`, which renormalises q. Vectorised over the examples here.
    """
    p_arr = np.clip(unlearned, -KLOM_CLIP, KLOM_CLIP)
    q_arr = np.clip(oracle, -KLOM_CLIP, KLOM_CLIP)
    start = np.minimum(p_arr.min(axis=0), q_arr.min(axis=0))
    end = np.maximum(p_arr.max(axis=0), q_arr.max(axis=0))
    end = np.where(start >= end, start + 1, end)
    edges = np.linspace(start, end, KLOM_BINS + 1, axis=-1)  # (E, bins + 1)
    p = _bin_probabilities(p_arr, edges, keep_lost=True)
    q = _bin_probabilities(q_arr, edges, keep_lost=False)
    q_safe = np.where(p > 0, np.maximum(q, KLOM_EPS), q)
    p = p / p.sum(axis=1, keepdims=True)  # scipy.stats.entropy normalises both
    q_safe = q_safe / q_safe.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q_safe), 0.0)
    return terms.sum(axis=1)


def _bin_probabilities(samples: np.ndarray, edges: np.ndarray, keep_lost: bool) -> np.ndarray:
    """(E, bins) shares of each example's samples in bins 1..bins of `digitize` (index = how many
    edges are <= the value); all 0 where every sample equals the maximum and so fell in no bin.
    `keep_lost` (the unlearned side): such samples count in the last bin instead, as np.histogram's
    closed last bin would count them, where the reference's entropy would be NaN."""
    index = (samples.T[:, :, None] >= edges[:, None, :]).sum(axis=2)  # (E, N): digitize, right=False
    counts = np.stack([(index == b).sum(axis=1) for b in range(1, KLOM_BINS + 1)], axis=1).astype(float)
    lost = counts.sum(axis=1) == 0
    if keep_lost:
        counts[lost, -1] = samples.shape[0]
    total = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


@dataclass(frozen=True)
class KlomSummary:
    percentile: Estimate
    mean: Estimate


def klom_summary(unlearned: np.ndarray, oracle: np.ndarray) -> KlomSummary:
    """The 95th percentile and the mean of KLOM over the examples, with a bootstrap over the
    examples. The members are not resampled: a histogram of a resample drawn with replacement
    holds repeated margins, and the binned KL estimate of such a sample is biased upwards (the
    interval would then miss the value it surrounds). The members' randomness is inside each
    example's value; its size at N models is the same for every method of the population."""
    n, e = unlearned.shape
    values = klom_per_example(unlearned, oracle)
    examples = resample_indices(np.random.default_rng(BOOTSTRAP_SEED), e, ACC_RESAMPLES)
    replicates = values[examples]
    how = f"percentile bootstrap over examples, {ACC_RESAMPLES} resamples"
    sizes = {"models": n, "examples": e}
    return KlomSummary(Estimate(float(np.percentile(values, KLOM_PERCENTILE)),
                                *percentile_interval(np.percentile(replicates, KLOM_PERCENTILE, axis=1)), how, sizes),
                       Estimate(float(values.mean()), *percentile_interval(replicates.mean(axis=1)), how, sizes))


# ---- RMIA -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RmiaScores:
    """Per target model: RMIA scores of the forget (members) and held-out (non-members) examples."""

    forget: np.ndarray  # (targets, F)
    heldout: np.ndarray  # (targets, H)


def population_rmia_scores(targets: list[dict[str, Outputs]], oracles: list[dict[str, Outputs]]) -> RmiaScores:
    """Target k is attacked with the oracles other than k as references (none of them trained on
    the forget, held-out or unseen samples); z = the `unseen` samples."""
    ref = {part: stacked(oracles, part, true_label_probability) for part in ("forget", "heldout", "unseen")}
    forget, heldout = [], []
    for k, target in enumerate(targets):
        others = np.arange(len(oracles)) != k
        z = true_label_probability(target["unseen"])
        for part, into in (("forget", forget), ("heldout", heldout)):
            into.append(rmia_scores(true_label_probability(target[part]), ref[part][others], z, ref["unseen"][others]))
    return RmiaScores(np.stack(forget), np.stack(heldout))


@dataclass(frozen=True)
class RmiaSummary:
    unlearned: Estimate
    oracle: Estimate
    gap: Estimate


def rmia_summary(unlearned: RmiaScores, oracle: RmiaScores) -> RmiaSummary:
    """Mean AUC (forget over held-out) over target members, for unlearned and oracle targets, and
    their difference, with one two-way bootstrap (members, forget and held-out examples)."""
    n, f = unlearned.forget.shape
    h = unlearned.heldout.shape[1]

    def mean_auc(scores: RmiaScores, m: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        return float(auc_rows(scores.forget[m][:, x], scores.heldout[m][:, y]).mean())

    everything = (np.arange(n), np.arange(f), np.arange(h))
    value_u, value_o = mean_auc(unlearned, *everything), mean_auc(oracle, *everything)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = zip(resample_indices(rng, n, RESAMPLES), resample_indices(rng, f, RESAMPLES),
                resample_indices(rng, h, RESAMPLES))
    replicates = np.array([(mean_auc(unlearned, *d), mean_auc(oracle, *d)) for d in draws])
    how = f"percentile bootstrap over members, forget and held-out examples, {RESAMPLES} resamples"
    sizes = {"models": n, "forget": f, "heldout": h}
    return RmiaSummary(Estimate(value_u, *percentile_interval(replicates[:, 0]), how, sizes),
                       Estimate(value_o, *percentile_interval(replicates[:, 1]), how, sizes),
                       Estimate(abs(value_u - value_o),
                                *percentile_interval(np.abs(replicates[:, 0] - replicates[:, 1])), how, sizes))


# ---- registration -----------------------------------------------------------------------------

def _on_population(ctx: EvaluationContext, parts: tuple[str, ...], name: str,
                   compute: Callable[[PopulationOutputs], object]) -> object:
    """`compute(population)`, once per population (kept in its cache under `name`), or None where
    the run has no population of at least MIN_MEMBERS with outputs on every one of `parts`."""
    population = ctx.population
    if population is None or len(population.unlearned) < MIN_MEMBERS:
        return None
    members = population.unlearned + population.oracle
    if not all(part in m and len(m[part].labels) > 0 for m in members for part in parts):
        return None
    if name not in population.cache:
        population.cache[name] = compute(population)
    return population.cache[name]


def _ulira_scores(population: PopulationOutputs) -> tuple[np.ndarray, np.ndarray]:
    return ulira_scores(stacked(population.unlearned, "forget", margins), stacked(population.oracle, "forget", margins))


@add_metric("audit/population", "info", "N: unlearned members (and as many oracles) behind the audit/* metrics",
            outputs_only=True)
def population_size(ctx: EvaluationContext) -> float | None:
    return None if ctx.population is None else float(len(ctx.population.unlearned))


@add_metric("audit/ulira_acc", "lower", "U-LiRA (Hayes et al. 2024) accuracy telling unlearned from retrained "
            "members on forget examples; 0.5 = indistinguishable", outputs_only=True)
def audit_ulira_acc(ctx: EvaluationContext) -> Estimate | None:
    scores = _on_population(ctx, ("forget",), "ulira", _ulira_scores)
    return None if scores is None else ulira_accuracy(*scores)


@add_metric("audit/ulira_auc", "lower", "U-LiRA ROC AUC of unlearned over retrained members' forget-example "
            "scores; 0.5 = indistinguishable", outputs_only=True)
def audit_ulira_auc(ctx: EvaluationContext) -> Estimate | None:
    scores = _on_population(ctx, ("forget",), "ulira", _ulira_scores)
    return None if scores is None else ulira_auc(*scores)


def _register_klom(part: str) -> None:
    def summary(ctx: EvaluationContext) -> KlomSummary | None:
        return _on_population(ctx, (part,), f"klom_{part}", lambda p: klom_summary(
            stacked(p.unlearned, part, margins), stacked(p.oracle, part, margins)))

    def upper(ctx: EvaluationContext) -> Estimate | None:
        found = summary(ctx)
        return None if found is None else found.percentile

    def mean(ctx: EvaluationContext) -> Estimate | None:
        found = summary(ctx)
        return None if found is None else found.mean

    add_metric(f"audit/klom_{part}", "lower", f"KLOM (Georgiev et al. 2024) on the {part} samples: 95th percentile "
               "over examples of KL(unlearned || oracle margins); 0 = as retrained", outputs_only=True)(upper)
    add_metric(f"audit/klom_{part}_mean", "lower", f"KLOM on the {part} samples: mean over examples",
               outputs_only=True)(mean)


for _part in KLOM_PARTS:
    _register_klom(_part)


def _rmia(ctx: EvaluationContext) -> RmiaSummary | None:
    return _on_population(ctx, ("forget", "heldout", "unseen"), "rmia", lambda p: rmia_summary(
        population_rmia_scores(p.unlearned, p.oracle), population_rmia_scores(p.oracle, p.oracle)))


@add_metric("audit/rmia_auc", "oracle", "RMIA (Zarifzadeh et al. 2024) AUC, forget vs held-out, mean over "
            "unlearned members with the other members' oracles as references", outputs_only=True)
def audit_rmia_auc(ctx: EvaluationContext) -> Estimate | None:
    found = _rmia(ctx)
    return None if found is None else found.unlearned


@add_metric("audit/rmia_auc_oracle", "info", "RMIA AUC of the oracle members themselves (the value to match)",
            outputs_only=True)
def audit_rmia_auc_oracle(ctx: EvaluationContext) -> Estimate | None:
    found = _rmia(ctx)
    return None if found is None else found.oracle


@add_metric("gap/audit_rmia_auc", "lower", "|audit/rmia_auc - the oracle members' value| (0 = as retrained)",
            outputs_only=True)
def audit_rmia_gap(ctx: EvaluationContext) -> Estimate | None:
    found = _rmia(ctx)
    return None if found is None else found.gap

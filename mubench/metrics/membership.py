"""Membership inference: does the unlearned model still treat the forget set as members?

Non-members are held-out samples of the forget set's own population (`heldout`: validation
samples; for a class or subgroup scenario, those of the class or subgroup) or of the training
distribution (`val`), never the test split, which may be shifted (Colored MNIST's is) and would be
told apart for reasons unrelated to membership. Every record carries `MIA_SPEC_VERSION`; changing
an attack bumps it.

Spec versions:

- "1": `mia/loss_auc` (+ `gap/mia_loss_auc`, `signal/mia_loss_auc`): the population loss attack's
  AUC, forget vs heldout.
- "2": everything of "1", unchanged, plus
  `mia/svc` (+ `gap/mia_svc`): the SVC confidence attack of Unlearn-Sparse and SalUn
  ("MIA-efficacy"), shadow members = retain, shadow non-members = val;
  `mia/lr_auc` (+ `gap/mia_lr_auc`): the NeurIPS 2023 unlearning challenge starting kit's
  logistic-regression loss attack, forget vs heldout, as a cross-validated ROC AUC;
  `mia/ulira`: a per-example likelihood-ratio attack in the style of U-LiRA against K shadow
  originals and K shadow oracles (present only when the harness trains shadow models).
- "3": everything of "2", unchanged, plus
  `mia/entropy_lr` (+ `gap/mia_entropy_lr`): the entropy attack of Bad Teacher, SSD and LoTUS
  (a logistic regression on prediction entropy, retain vs val, applied to the forget set; the
  fraction called member), the MIA column of LoTUS's Table 1.
  Later under the same spec, because no record without shadow models or a population changes:
  `mia/rmia` (+ `gap/mia_rmia`), RMIA against the unlearned model with the shadow oracles as
  references (present only with shadow models), and the population attacks `audit/*` of
  mubench.metrics.audit (present only in population runs).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import binom, mannwhitneyu
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.svm import SVC

from mubench.evaluation import EvaluationContext, Outputs
from mubench.metrics.core import ANY_TARGET, CLASS_ONLY, Metric, add_metric, metrics
from mubench.metrics.intervals import (
    BOOTSTRAP_SEED,
    LEVEL,
    Estimate,
    auc_estimate,
    auc_rows,
    percentile_interval,
    resample_indices,
)
from mubench.metrics.rmia import rmia_scores, stacked, true_label_probability

MIA_SPEC_VERSION = "3"

BALANCE_SEED = 0  # the fixed numpy generator that subsamples the larger group to the smaller's size
SVC_SETTINGS = {"C": 3, "gamma": "auto", "kernel": "rbf"}  # Unlearn-Sparse evaluation/SVC_MIA.py
LR_CV_SPLITS, LR_CV_SEED = 10, 0  # starting kit simple_mia: StratifiedShuffleSplit(n_splits=10, random_state=0)
LR_MIN_PER_GROUP = 10  # a 10 % test fold of fewer than 20 samples cannot hold both groups reliably
LIRA_PER_EXAMPLE_VARIANCE_FROM = 64  # fewer shadow models per side: one pooled variance (Carlini et al. 2022)
VARIANCE_FLOOR = 1e-12


# ---- shared helpers ---------------------------------------------------------------------------

def auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """P(positive score > negative score) + P(tie) / 2: the ROC AUC, via the Mann-Whitney U statistic."""
    statistic = mannwhitneyu(positive_scores, negative_scores, alternative="two-sided", method="asymptotic").statistic
    return float(statistic) / (len(positive_scores) * len(negative_scores))


def membership_auc(member_losses: torch.Tensor, nonmember_losses: torch.Tensor) -> float:
    """Area under the ROC curve of the loss attack: members are predicted by low loss.

    Population loss attack (Yeom et al. 2018; Shokri et al. 2017): score = -loss. The AUC
    equals the Mann-Whitney U statistic of the member scores over n_members * n_nonmembers
    (ties count one half), which is how it is computed here; 0.5 means members and non-members
    are indistinguishable.
    """
    return auc(-member_losses.double().numpy(), -nonmember_losses.double().numpy())


def balanced(first: np.ndarray, second: np.ndarray, seed: int = BALANCE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Subsample the larger of two groups, without replacement, to the smaller's size.

    Both reference attacks balance their two groups this way (the starting kit shuffles the forget
    losses and keeps as many as there are held-out ones; Unlearn-Sparse keeps as many retain
    samples as there are test samples); here the draw comes from a fresh generator seeded with
    `seed`, so the same inputs always give the same subsample.
    """
    size = min(len(first), len(second))
    rng = np.random.default_rng(seed)
    if len(first) > size:
        first = first[rng.choice(len(first), size=size, replace=False)]
    elif len(second) > size:
        second = second[rng.choice(len(second), size=size, replace=False)]
    return first, second


def true_class_confidence(outputs: Outputs) -> np.ndarray:
    """p_y, the softmax probability of the true class (float64)."""
    probs = outputs.logits.double().softmax(dim=1)
    return probs.gather(1, outputs.labels.view(-1, 1)).squeeze(1).numpy()


def _usable(outputs: dict[str, Outputs], *parts: str) -> bool:
    return all(part in outputs and len(outputs[part].labels) > 0 for part in parts)


# ---- v1: population loss attack ---------------------------------------------------------------

def per_model(attack: Callable[[dict[str, Outputs]], float | None]) -> Callable[[dict[str, Outputs]], float | None]:
    """Compute an attack once per model: the value is kept on that model's forget-set Outputs.

    The oracle's and the original's outputs are shared by every run of a split, so their attack
    values (fitted classifiers, cross-validation) are computed for the first run only, and a
    metric and its gap share the unlearned model's value.
    """

    @functools.wraps(attack)
    def cached(outputs: dict[str, Outputs]) -> float | None:
        values = outputs["forget"].__dict__.setdefault("_attack_values", {})
        if attack.__name__ not in values:
            values[attack.__name__] = attack(outputs)
        return values[attack.__name__]

    return cached


@per_model
def loss_auc(outputs: dict[str, Outputs]) -> float:
    return membership_auc(outputs["forget"].losses, outputs["heldout"].losses)


@add_metric("signal/mia_loss_auc", "info", "original's mia/loss_auc minus the oracle's: membership signal to remove",
            ANY_TARGET, outputs_only=True)
def signal_mia(ctx: EvaluationContext) -> float:
    return loss_auc(ctx.original) - loss_auc(ctx.oracle)


# ---- v2: SVC confidence attack (Unlearn-Sparse, SalUn) ----------------------------------------

def svc_forget_efficacy(members: np.ndarray, nonmembers: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of `targets` that an RBF SVC, fit on members (1) vs non-members (0), calls non-members.

    The "MIA-efficacy" of Jia et al. 2023 ("Model sparsity can simplify machine unlearning";
    OPTML-Group/Unlearn-Sparse, evaluation/SVC_MIA.py, `SVC_fit_predict` with target_train=None,
    i.e. `1 - clf.predict(forget).mean()`) and Fan et al. 2024 (SalUn; OPTML-Group/Unlearn-Saliency,
    Classification/README.md: the reported MIA is `SVC_MIA_forget_efficacy['confidence']`).
    Settings as there: sklearn `SVC(C=3, gamma="auto", kernel="rbf")`, one feature per sample,
    the two shadow groups balanced to the same size. Higher = more samples look unseen.
    """
    return float(1.0 - svc_member_predictions(members, nonmembers, targets).mean())


def svc_member_predictions(members: np.ndarray, nonmembers: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The fitted SVC's prediction per target of `svc_forget_efficacy`: 1 = member, 0 = non-member."""
    members, nonmembers = balanced(members, nonmembers)
    features = np.concatenate([members, nonmembers]).reshape(len(members) + len(nonmembers), -1)
    membership = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    classifier = SVC(**SVC_SETTINGS).fit(features, membership)
    return classifier.predict(targets.reshape(len(targets), -1))


@per_model
def svc_predictions(outputs: dict[str, Outputs]) -> np.ndarray | None:
    """The SVC attack on the true-class confidence: shadow members = retain, non-members = val;
    its member (1) / non-member (0) prediction per forget sample.

    Feature: `confidence` (p_y), the one SalUn reports (of the five Unlearn-Sparse computes:
    correctness, confidence, entropy, m_entropy, prob). Unlearn-Sparse's non-members are the
    test split; ours are the validation samples, the held-out part of the training distribution,
    because the test split may be shifted (see the module docstring).
    """
    if not _usable(outputs, "retain", "val", "forget"):
        return None
    return svc_member_predictions(true_class_confidence(outputs["retain"]), true_class_confidence(outputs["val"]),
                                  true_class_confidence(outputs["forget"]))


def svc_efficacy(outputs: dict[str, Outputs]) -> float | None:
    """`mia/svc`: the fraction of the forget set the SVC calls non-member (`svc_forget_efficacy`)."""
    predictions = svc_predictions(outputs)
    return None if predictions is None else float(1.0 - predictions.mean())


# ---- v2: logistic-regression loss attack (NeurIPS 2023 unlearning challenge) ------------------

def lr_cv_auc(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> float | None:
    """Mean cross-validated ROC AUC of a logistic regression that tells members from non-members by loss.

    The starting kit of the NeurIPS 2023 Machine Unlearning Challenge (Triantafillou et al. 2023;
    unlearning-challenge/starting-kit, unlearning-CIFAR10.ipynb, `simple_mia`): sklearn
    `LogisticRegression()` with its defaults on the per-sample loss, `StratifiedShuffleSplit(
    n_splits=10, random_state=0)` (default 10 % test folds), `cross_val_score`; members = 1,
    the larger group subsampled to the smaller's size. The kit scores accuracy; here the score is
    `scoring="roc_auc"`, threshold-free, 0.5 = indistinguishable. None with fewer than
    `LR_MIN_PER_GROUP` samples in a group.
    """
    members, nonmembers = balanced(member_losses, nonmember_losses)
    if len(members) < LR_MIN_PER_GROUP:
        return None
    features = np.concatenate([nonmembers, members]).reshape(-1, 1)
    membership = np.concatenate([np.zeros(len(nonmembers)), np.ones(len(members))])
    folds = StratifiedShuffleSplit(n_splits=LR_CV_SPLITS, random_state=LR_CV_SEED)
    return float(cross_val_score(LogisticRegression(), features, membership, cv=folds, scoring="roc_auc").mean())


@per_model
def lr_auc(outputs: dict[str, Outputs]) -> float | None:
    if not _usable(outputs, "forget", "heldout"):
        return None
    return lr_cv_auc(outputs["forget"].losses.double().numpy(), outputs["heldout"].losses.double().numpy())


# ---- v3: logistic-regression entropy attack (Bad Teacher, SSD, LoTUS) --------------------------

def prediction_entropy(outputs: Outputs) -> np.ndarray:
    """-sum_c p_c log p_c of the softmax (float64, 0 log 0 = 0): low for confident predictions."""
    probs = outputs.logits.double().softmax(dim=1)
    return -torch.where(probs > 0, probs * probs.log(), probs.new_zeros(())).sum(dim=1).numpy()


def entropy_lr_member_rate(members: np.ndarray, nonmembers: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of `targets` that a logistic regression on entropy, fit on members (1) vs
    non-members (0), calls members.

    The attack of Chundawat et al. 2023 ("Can bad teaching induce forgetting?"), reused by Foster
    et al. 2024 (SSD) and Spartalis et al. 2025 (LoTUS; cspartalis/LoTUS, src/helpers/eval.py,
    `log_mia`): sklearn `LogisticRegression(class_weight="balanced")` (lbfgs) on one feature, the
    prediction entropy; members = the retain set, non-members = unseen samples; the score is
    `clf.predict(forget).mean()`. LoTUS's non-members are its val and test halves of the CIFAR
    test split; ours are the val part, as for `mia/svc` (the test split may be shifted). Unlike
    `mia/svc` (the fraction called non-member) this is the fraction called member: LoTUS reports
    0.76 for retraining and 0.94 for the original on CIFAR-10.
    """
    return float(entropy_member_predictions(members, nonmembers, targets).mean())


def entropy_member_predictions(members: np.ndarray, nonmembers: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The fitted regression's prediction per target of `entropy_lr_member_rate`: 1 = member."""
    features = np.concatenate([members, nonmembers]).reshape(-1, 1)
    membership = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    classifier = LogisticRegression(class_weight="balanced").fit(features, membership)
    return classifier.predict(targets.reshape(-1, 1))


@per_model
def entropy_predictions(outputs: dict[str, Outputs]) -> np.ndarray | None:
    if not _usable(outputs, "retain", "val", "forget"):
        return None
    return entropy_member_predictions(prediction_entropy(outputs["retain"]), prediction_entropy(outputs["val"]),
                                      prediction_entropy(outputs["forget"]))


def entropy_lr(outputs: dict[str, Outputs]) -> float | None:
    """`mia/entropy_lr`: the fraction of the forget set called member (`entropy_lr_member_rate`)."""
    predictions = entropy_predictions(outputs)
    return None if predictions is None else float(predictions.mean())


# ---- intervals: each attack's value on the unlearned model with its 95 % interval --------------
#
# The value is the attack's own (unchanged); the interval describes its sampling noise, and the
# record says how many samples each side had (mubench.metrics.intervals). Only the unlearned
# model's value gets one: it is the value the record holds.

LR_RESAMPLES = 200  # lr_auc's bootstrap replicates (each a balanced subsample and ten folds)


@per_model
def loss_auc_estimate(outputs: dict[str, Outputs]) -> Estimate:
    """`mia/loss_auc` with a stratified bootstrap over the forget and held-out samples."""
    estimate = auc_estimate(-outputs["forget"].losses.double().numpy(), -outputs["heldout"].losses.double().numpy(),
                            names=("forget", "heldout"))
    return dataclasses.replace(estimate, value=loss_auc(outputs))


def lr_cv_auc_by_slope_sign(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> float | None:
    """`lr_cv_auc` with each fold's logistic regression replaced by the sign of its slope.

    On one feature the fitted model is monotone in the loss, so a fold's ROC AUC is that of the
    loss times the sign of the slope; and the sign of the (L2-penalised) maximum-likelihood slope
    is the sign of the members' minus the non-members' mean on the training folds (the penalised
    profile likelihood is convex in the slope, and its derivative at 0 is proportional to that
    difference). The same balancing and folds as `lr_cv_auc`; agrees with scikit-learn's fits
    except where a slope is within the solver's tolerance of 0 (measured: at most 0.015 on random
    data). Cheap enough to bootstrap: `lr_auc_replicates` computes it for many resamples at once.
    """
    values = lr_auc_replicates(member_losses[None], nonmember_losses[None])
    return None if values is None else float(values[0])


def lr_auc_replicates(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> np.ndarray | None:
    """`lr_cv_auc_by_slope_sign` of each row of (R, n_members) and (R, n_non-members) arrays. The
    rows share their sizes, so the balancing keeps the same positions in every row (`balanced`
    draws from a generator seeded alike) and the folds are the same (`_folds`)."""
    n_members, n_nonmembers = member_losses.shape[1], nonmember_losses.shape[1]
    per_side = min(n_members, n_nonmembers)
    if per_side < LR_MIN_PER_GROUP:
        return None
    keep_members, keep_nonmembers = balanced(np.arange(n_members), np.arange(n_nonmembers))
    features = np.concatenate([nonmember_losses[:, keep_nonmembers], member_losses[:, keep_members]], axis=1)
    membership = np.concatenate([np.zeros(per_side), np.ones(per_side)])
    values = np.zeros(len(features))
    for train, test in _folds(per_side):
        is_member = membership[train] == 1
        trained = features[:, train]
        sign = np.sign(trained[:, is_member].mean(axis=1) - trained[:, ~is_member].mean(axis=1))[:, None]
        scores, tested = features[:, test] * sign, membership[test] == 1
        values += np.where(sign[:, 0] == 0, 0.5, auc_rows(scores[:, tested], scores[:, ~tested]))
    return values / LR_CV_SPLITS


@functools.lru_cache(maxsize=8)
def _folds(per_side: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """`lr_cv_auc`'s folds of `per_side` non-members then as many members: they depend on the group
    sizes only, so every bootstrap replicate of one attack shares them."""
    membership = np.concatenate([np.zeros(per_side), np.ones(per_side)])
    splitter = StratifiedShuffleSplit(n_splits=LR_CV_SPLITS, random_state=LR_CV_SEED)
    return tuple(splitter.split(np.zeros((2 * per_side, 1)), membership))


@per_model
def lr_auc_estimate(outputs: dict[str, Outputs]) -> Estimate | None:
    """`mia/lr_auc` with a stratified bootstrap of the whole attack (balancing and folds
    included), each replicate computed by `lr_cv_auc_by_slope_sign`."""
    value = lr_auc(outputs)
    if value is None:
        return None
    forget, heldout = outputs["forget"].losses.double().numpy(), outputs["heldout"].losses.double().numpy()
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    replicates = lr_auc_replicates(forget[resample_indices(rng, len(forget), LR_RESAMPLES)],
                                   heldout[resample_indices(rng, len(heldout), LR_RESAMPLES)])
    return Estimate(value, *percentile_interval(replicates),
                    f"percentile bootstrap of forget and held-out samples, {LR_RESAMPLES} resamples, each fold's "
                    "regression replaced by the sign of its slope", {"forget": len(forget), "heldout": len(heldout),
                                                                     "per_side": min(len(forget), len(heldout))})


def proportion_estimate(calls: np.ndarray, sizes: dict[str, int]) -> Estimate:
    """The fraction of 1s in `calls` with the percentile bootstrap interval over the targets, which
    for a proportion is exact: a resample's count is Binomial(n, p) (the fitted classifier fixed)."""
    n, value = len(calls), float(calls.mean())
    low, high = binom.ppf([(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2], n, value) / n
    return Estimate(value, float(low), float(high), "percentile bootstrap over the forget samples (binomial, "
                    "exact), the fitted classifier fixed", sizes)


@per_model
def svc_estimate(outputs: dict[str, Outputs]) -> Estimate | None:
    """`mia/svc` with its interval over the forget samples (the shadow fit's own noise not included)."""
    predictions = svc_predictions(outputs)
    if predictions is None:
        return None
    per_side = min(len(outputs["retain"].labels), len(outputs["val"].labels))
    estimate = proportion_estimate(1.0 - predictions, {"forget": len(predictions), "retain": per_side,
                                                       "val": per_side})
    return dataclasses.replace(estimate, value=svc_efficacy(outputs))


@per_model
def entropy_lr_estimate(outputs: dict[str, Outputs]) -> Estimate | None:
    """`mia/entropy_lr` with its interval over the forget samples (the fit's own noise not included)."""
    predictions = entropy_predictions(outputs)
    if predictions is None:
        return None
    estimate = proportion_estimate(predictions.astype(float), {"forget": len(predictions), "retain":
                                                               len(outputs["retain"].labels),
                                                               "val": len(outputs["val"].labels)})
    return dataclasses.replace(estimate, value=entropy_lr(outputs))


# ---- registration: each population attack as `mia/<name>` and `gap/mia_<name>` ----------------

Attack = Callable[[dict[str, Outputs]], float | None]
AttackEstimate = Callable[[dict[str, Outputs]], Estimate | None]


def register_attack(name: str, attack: Attack, description: str, targets: frozenset[str] = CLASS_ONLY,
                    estimate: AttackEstimate | None = None) -> None:
    """Register an attack's value on the unlearned model (best: the oracle's) and its gap to the oracle's.
    Attacks on per-sample losses apply to regression too (`targets`); those on class confidences do not.
    `estimate`: the same value on the unlearned model with its interval, for the record."""

    def value(ctx: EvaluationContext) -> float | Estimate | None:
        return (estimate or attack)(ctx.unlearned)

    def gap(ctx: EvaluationContext) -> float | None:
        unlearned, oracle = attack(ctx.unlearned), attack(ctx.oracle)
        return None if unlearned is None or oracle is None else abs(unlearned - oracle)

    metrics.add(f"mia/{name}", Metric(f"mia/{name}", "oracle", value, description, targets, outputs_only=True))
    metrics.add(f"gap/mia_{name}", Metric(f"gap/mia_{name}", "lower", gap, f"|mia/{name} - the oracle's|", targets,
                                          outputs_only=True))


register_attack("loss_auc", loss_auc, "loss-attack AUC, forget set vs held-out samples of the same population",
                ANY_TARGET, loss_auc_estimate)
register_attack("svc", svc_efficacy, "SVC confidence attack (SalUn MIA-efficacy): fraction of the forget set called "
                "non-member", estimate=svc_estimate)
register_attack("lr_auc", lr_auc, "logistic-regression loss attack (NeurIPS 2023 challenge kit), cross-validated AUC, "
                "forget vs held-out", ANY_TARGET, lr_auc_estimate)
register_attack("entropy_lr", entropy_lr, "entropy attack of Bad Teacher, SSD and LoTUS: logistic regression on "
                "prediction entropy, retain vs val, applied to the forget set; fraction called member",
                estimate=entropy_lr_estimate)


# ---- v2: per-example likelihood-ratio attack (U-LiRA style) -----------------------------------

def logit_confidence(outputs: Outputs) -> np.ndarray:
    """phi = log(p_y / (1 - p_y)), LiRA's logit-scaled true-class confidence (Carlini et al. 2022).

    Computed as z_y - logsumexp_{j != y} z_j, the same quantity without the cancellation of
    1 - p_y when p_y rounds to 1.
    """
    logits = outputs.logits.double()
    index = outputs.labels.view(-1, 1)
    true = logits.gather(1, index).squeeze(1)
    others = logits.scatter(1, index, -math.inf).logsumexp(dim=1)
    return (true - others).numpy()


def _gaussian_log_pdf(x: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    return -0.5 * np.log(2 * math.pi * variance) - (x - mean) ** 2 / (2 * variance)


def likelihood_ratio(phi: np.ndarray, in_phi: np.ndarray, out_phi: np.ndarray,
                     pooled_variance: bool | None = None) -> np.ndarray:
    """Per-example log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2).

    `in_phi` and `out_phi` are (models, examples) arrays of phi under the shadow models that saw
    the examples and those that did not; means and variances are per example, as in LiRA's online
    attack (Carlini et al. 2022), the variances maximum-likelihood (ddof 0). With fewer than
    `LIRA_PER_EXAMPLE_VARIANCE_FROM` models on a side (`pooled_variance=None`), each side uses
    one variance, the mean over examples of the per-example variances: Carlini et al. found a
    global variance better when shadow models are few, and two models cannot estimate one
    example's spread. A floor of 1e-12 keeps identical shadow outputs finite.
    """
    if pooled_variance is None:
        pooled_variance = min(len(in_phi), len(out_phi)) < LIRA_PER_EXAMPLE_VARIANCE_FROM

    def variance(samples: np.ndarray) -> np.ndarray:
        per_example = samples.var(axis=0)
        spread = np.full_like(per_example, per_example.mean()) if pooled_variance else per_example
        return np.maximum(spread, VARIANCE_FLOOR)

    return (_gaussian_log_pdf(phi, in_phi.mean(axis=0), variance(in_phi))
            - _gaussian_log_pdf(phi, out_phi.mean(axis=0), variance(out_phi)))


def ulira_auc(unlearned: Outputs, oracle: Outputs, shadow_in: list[Outputs], shadow_out: list[Outputs]) -> float:
    """AUC of the likelihood-ratio scores of the unlearned model over the oracle's, on the forget set.

    In the style of U-LiRA (Hayes et al. 2024, "Inexact unlearning needs more careful evaluations
    to avoid a false sense of privacy"): per-example Gaussians of phi under "in" models (originals
    trained with the forget set, other seeds) and "out" models (oracles trained without it); each
    forget example's score under a target model is the log likelihood ratio. The AUC pits the
    unlearned model's scores (positives) against the run's oracle's (negatives): 0.5 = as
    membership-free as retraining, above = the forget set still looks seen. Simplification: the
    "in" models are not themselves unlearned, and one target pair is scored, not many.
    """
    in_phi = np.stack([logit_confidence(o) for o in shadow_in])
    out_phi = np.stack([logit_confidence(o) for o in shadow_out])
    return auc(likelihood_ratio(logit_confidence(unlearned), in_phi, out_phi),
               likelihood_ratio(logit_confidence(oracle), in_phi, out_phi))


@add_metric("mia/ulira", "oracle", "likelihood-ratio attack in the style of U-LiRA with shadow models (a "
                                   "simplification: shadow originals, not unlearned shadows, and one target pair; the "
                                   "published protocol is audit/ulira_acc): AUC of the unlearned model's forget-set "
                                   "scores over the oracle's (the oracle: 0.5)",
            outputs_only=True)
def mia_ulira(ctx: EvaluationContext) -> float | None:
    shadow_in = [member["forget"] for member in ctx.shadow_outputs.get("in", [])]
    shadow_out = [member["forget"] for member in ctx.shadow_outputs.get("out", [])]
    if not (shadow_in and shadow_out and _usable(ctx.unlearned, "forget") and _usable(ctx.oracle, "forget")):
        return None
    return ulira_auc(ctx.unlearned["forget"], ctx.oracle["forget"], shadow_in, shadow_out)


@add_metric("gap/mia_ulira", "lower", "|mia/ulira - 0.5|: the oracle's own value is 0.5 by construction",
            outputs_only=True)
def mia_ulira_gap(ctx: EvaluationContext) -> float | None:
    value = mia_ulira(ctx)
    return None if value is None else abs(value - 0.5)


# ---- v4 (with shadow models): RMIA on the run's single unlearned model -------------------------

def rmia_auc(target: dict[str, Outputs], references: list[dict[str, Outputs]]) -> Estimate:
    """RMIA (Zarifzadeh et al. 2024, offline; mubench.metrics.audit.rmia_scores) against `target`
    with `references` (shadow oracles, which trained on none of the forget, held-out or unseen
    samples): ROC AUC of the forget set's scores over the held-out samples', z = the unseen
    samples, with a stratified bootstrap interval over forget and held-out examples."""
    z_target, z_refs = true_label_probability(target["unseen"]), stacked(references, "unseen", true_label_probability)
    scores = {part: rmia_scores(true_label_probability(target[part]), stacked(references, part, true_label_probability),
                                z_target, z_refs) for part in ("forget", "heldout")}
    estimate = auc_estimate(scores["forget"], scores["heldout"], names=("forget", "heldout"))
    return dataclasses.replace(estimate, sizes={**estimate.sizes, "references": len(references),
                                                "unseen": len(z_target)})


def _rmia_value(ctx: EvaluationContext, model: dict[str, Outputs]) -> Estimate | None:
    references = ctx.shadow_outputs.get("out", [])
    if not references or not _usable(model, "forget", "heldout", "unseen"):
        return None
    values = model["forget"].__dict__.setdefault("_attack_values", {})
    if "rmia" not in values:
        values["rmia"] = rmia_auc(model, references)
    return values["rmia"]


@add_metric("mia/rmia", "oracle", "RMIA (Zarifzadeh et al. 2024, offline) AUC, forget vs held-out, with the shadow "
            "oracles as references (present only with shadow models)", CLASS_ONLY, outputs_only=True)
def mia_rmia(ctx: EvaluationContext) -> Estimate | None:
    return _rmia_value(ctx, ctx.unlearned)


@add_metric("gap/mia_rmia", "lower", "|mia/rmia - the oracle's|", CLASS_ONLY, outputs_only=True)
def mia_rmia_gap(ctx: EvaluationContext) -> float | None:
    unlearned, oracle = _rmia_value(ctx, ctx.unlearned), _rmia_value(ctx, ctx.oracle)
    return None if unlearned is None or oracle is None else abs(unlearned.value - oracle.value)

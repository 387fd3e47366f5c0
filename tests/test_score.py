"""The board's objectives and headline score (mubench.metrics.objectives) against hand computations:
the oracle scores 1, doing nothing 0 where there is signal, a wrecked model badly everywhere."""

from __future__ import annotations

import math

import pytest
import torch

from mubench.evaluation import EvaluationContext, Outputs
from mubench.metrics.objectives import (
    closed_share,
    forgetting,
    forgetting_components,
    forgotten_classes,
    kept_accuracy,
    score,
    utility,
)
from mubench.targets import Target


def outputs(labels: list[int], predicted: list[int], margin: float | list[float] = 4.0, classes: int = 3) -> Outputs:
    """Logits putting `margin` on the predicted class (0 elsewhere): per-sample loss
    log(1 + (classes - 1) e^-margin) when right, and larger when wrong."""
    margins = [margin] * len(labels) if isinstance(margin, float) else margin
    logits = torch.zeros(len(labels), classes)
    for row, (guess, m) in enumerate(zip(predicted, margins)):
        logits[row, guess] = m
    return Outputs(logits, torch.tensor(labels))


def model(forget_right: int, *, member_margin: float = 6.0, retain_right: int = 10, test_right: int = 10,
          val_right: int = 10) -> dict[str, Outputs]:
    """One model's outputs on a class-forgetting split: forget = 10 samples of class 2 (`forget_right`
    of them right, at `member_margin`), retain = classes 0 and 1, test and val = 10 of each class
    (the last `10 - *_right` samples of classes 0/1 wrong), heldout = 10 samples of classes 0/1 at margin 1."""
    def part(labels: list[int], right: int, margin: float = 1.0) -> Outputs:
        predicted = [y if i < right else (y + 1) % 3 for i, y in enumerate(labels)]
        return outputs(labels, predicted, margin)

    kept = [0, 1] * 5
    return {"forget": part([2] * 10, forget_right, member_margin), "retain": part(kept, retain_right),
            "test": part(kept + [2] * 10, test_right), "val": part(kept + [2] * 10, val_right),
            "heldout": part(kept, 10)}


def context(unlearned: dict[str, Outputs], oracle: dict[str, Outputs], original: dict[str, Outputs]) -> EvaluationContext:
    return EvaluationContext(unlearned=unlearned, oracle=oracle, original=original)


ORIGINAL = dict(forget_right=10, member_margin=6.0, test_right=20)  # knows class 2, and its forget set is memorised
ORACLE = dict(forget_right=0, member_margin=1.0, test_right=10)      # never saw class 2


def test_closed_share_by_hand():
    assert closed_share(0.7, original=0.9, oracle=0.5, floor=0.01) == pytest.approx(1 - 0.2 / 0.4)
    assert closed_share(0.5, 0.9, 0.5, 0.01) == 1.0  # the oracle's value
    assert closed_share(0.9, 0.9, 0.5, 0.01) == 0.0  # the original's: nothing forgotten
    assert closed_share(0.1, 0.9, 0.5, 0.01) == 0.0  # overshooting by the whole signal is as bad
    assert closed_share(0.3, 0.9, 0.5, 0.01) == pytest.approx(0.5)  # overshooting by half of it
    assert closed_share(0.2, 0.505, 0.5, 0.01) is None  # no signal: left out, not divided by noise


def test_the_oracle_scores_one_and_doing_nothing_zero():
    oracle, original = model(**ORACLE), model(**ORIGINAL)
    retrained = context(model(**ORACLE), oracle, original)
    assert forgetting(retrained) == 1.0 and utility(retrained) == 1.0 and score(retrained) == 1.0
    nothing = context(model(**ORIGINAL), oracle, original)
    assert set(forgetting_components(nothing)) == {"acc", "auc"}  # both have signal here
    assert forgetting(nothing) == 0.0 and score(nothing) == 0.0
    # utility counts only the kept classes: the original is as good as the oracle on them
    assert utility(nothing) == 1.0


def test_half_forgotten_by_hand():
    # forget accuracy 0.5 closes half of the 1.0 signal. Membership (loss attack, forget vs held-out,
    # whose losses are log(1 + 2/e) = 0.55): the original's forget losses (0.005) are all below the
    # held-out ones, AUC 1; the oracle's (wrong at margin 1: log(2 + e) = 1.55) all above, AUC 0;
    # here 5 are right at margin 6 (below) and 5 wrong at margin 6 (above): AUC 0.5, half closed
    oracle, original = model(**ORACLE), model(**ORIGINAL)
    half = context(model(forget_right=5, member_margin=6.0, test_right=15), oracle, original)
    assert forgetting_components(half) == pytest.approx({"acc": 0.5, "auc": 0.5})
    assert forgetting(half) == pytest.approx(0.5)
    assert utility(half) == 1.0
    assert score(half) == pytest.approx(0.5)


def test_a_wrecked_model_scores_badly():
    # it forgets class 2 (forget accuracy 0, like the oracle) but keeps 2 of 10 retain and 2 of
    # 10 kept test samples: utility (0.2 / 1.0) x (0.2 / 1.0) = 0.04
    oracle, original = model(**ORACLE), model(**ORIGINAL)
    wrecked = context(model(forget_right=0, member_margin=1.0, retain_right=2, test_right=2), oracle, original)
    assert utility(wrecked) == pytest.approx(0.2 * 0.2)
    assert score(wrecked) == pytest.approx(0.04)  # it forgot everything, and kept little else


def test_kept_accuracy_leaves_out_the_forgotten_classes():
    oracle = model(**ORACLE)
    ctx = context(oracle, oracle, model(**ORIGINAL))
    assert forgotten_classes(ctx).tolist() == [2]
    assert kept_accuracy(oracle["test"], forgotten_classes(ctx)) == 1.0
    assert oracle["test"].accuracy == 0.5  # what capping at the oracle's all-class accuracy would have used
    assert kept_accuracy(oracle["test"], torch.tensor([0, 1, 2])) is None


def test_random_forgetting_keeps_every_class():
    labels = [0, 1, 2] * 4
    parts = {p: outputs(labels, labels) for p in ("forget", "retain", "test", "heldout")}
    assert forgotten_classes(context(parts, parts, parts)).numel() == 0


def test_no_signal_leaves_forgetting_and_the_score_undefined():
    same = model(**ORACLE)
    ctx = context(model(**ORIGINAL), same, same)  # the original is the oracle: nothing to forget
    assert forgetting_components(ctx) == {} and forgetting(ctx) is None and score(ctx) is None


def regression_outputs(errors: list[float]) -> Outputs:
    labels = torch.full((len(errors), 1), 50.0)
    return Outputs(labels + torch.tensor(errors).unsqueeze(1), labels, Target("regression", missing_value=0.0))


def test_regression_objectives_by_hand():
    def forecaster(forget: float, retain: float, test: float) -> dict[str, Outputs]:
        return {"forget": regression_outputs([forget] * 8), "retain": regression_outputs([retain] * 8),
                "test": regression_outputs([test] * 8), "heldout": regression_outputs([4.0] * 8),
                "val": regression_outputs([4.0] * 8)}

    target = Target("regression", missing_value=0.0)
    oracle, original = forecaster(4.0, 2.0, 4.0), forecaster(2.0, 2.0, 4.0)
    ctx = EvaluationContext(unlearned=forecaster(3.0, 2.5, 5.0), oracle=oracle, original=original, target=target)
    # forget MAE relative to the oracle's 4: original 0.5, unlearned 0.75, oracle 1 -> closed 0.5;
    # loss AUC: every unlearned forget loss (3) is below every held-out one (4), as the original's
    # (2) are; the oracle's tie at 0.5, so the AUC component closes nothing
    assert forgetting_components(ctx) == pytest.approx({"mae": 0.5, "auc": 0.0})
    assert utility(ctx) == pytest.approx((2.0 / 2.5) * (4.0 / 5.0))
    assert score(ctx) == pytest.approx(0.25 * 0.8 * 0.8)
    assert math.isclose(forgetting(EvaluationContext(unlearned=oracle, oracle=oracle, original=original,
                                                     target=target)), 1.0)

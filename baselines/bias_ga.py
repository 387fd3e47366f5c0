"""Bias-aware gradient ascent (Aylapuram et al. 2025, arXiv 2509.07456, the "GA" variant;
see docs/methods.md, bias_ga): maximise the task's loss on the forget set, which in the bias scenarios
is the bias-aligned subgroup (e.g. cmnist `bias_aligned`: digit 0 in its stereotyped colour),
with SGD, few epochs and a small learning rate. Forget-set only.

The update rule is exactly baselines/grad_ascent.py's (step on -request.loss(model(x), y) over
shuffled forget batches, SGD with momentum 0.9), so this is a subclass that differs only in its
defaults and sweep grid; it is registered separately because the paper evaluates it as a bias
mitigation method with its own (unpublished) settings. The paper's settings are unknown
[UNVERIFIED]: "few epochs, small lr" is all the summary says. Defaults chosen on the cmnist smoke
profile (MLP, forget set of ~1,000 red zeros, 24 SGD steps): lr 8e-3 for 3 epochs. Ascent on the
unbounded cross-entropy has a cliff there: lr <= 7.5e-3 (and grad_ascent's canonical 1e-4 x 5
epochs) leaves the forget accuracy near 1 and the bias unchanged, 8e-3 lowers bias/gap and
fair/dp with test accuracy near the oracle's, 9e-3 already costs a third of test accuracy and
1e-2 (or 4 epochs at 8e-3) collapses the model to one class. This matches the paper's summary
("GA: the biggest fairness gains but an accuracy decline"); on other tasks re-tune the lr.
Intensity: lr.
"""

from __future__ import annotations

from baselines.grad_ascent import GradAscent
from mubench.methods import register_method


@register_method("bias_ga")
class BiasGradAscent(GradAscent):
    paper = "Aylapuram et al. 2025 (arXiv 2509.07456), GA variant; update rule of grad_ascent"
    authors_code = ""  # built from the abstract; grad_ascent's code provenance does not carry over
    space = {"lr": (8e-3, [2e-3, 5e-3, 8e-3, 1e-2]),
             "epochs": (3, [1, 3, 5]),
             "batch_size": (128, [128]),
             "weight_decay": (0.0, [0.0])}  # as before grad_ascent took the repositories' 5e-4
    intensity = "lr"
    version = "1"  # unchanged update (weight decay 0); not grad_ascent's version

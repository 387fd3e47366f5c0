"""Bias-aware teacher-student unlearning (Aylapuram et al. 2025, arXiv 2509.07456, the
"Teacher-Student distillation" variant; see docs/methods.md, bias_distill): the student starts from the
original; the teacher is the frozen original on retain samples and a neutral target, the uniform
distribution over classes, on forget (bias-aligned) samples. Per sample,
    target = 1/C for forget samples, softmax(original(x)/T) for retain samples,
    loss = KL(target || softmax(student(x)/T)), averaged over the batch.

The target is mubench.toolkit.distill.neutral_targets.

This is Bad Teacher (Chundawat et al. 2023; baselines/bad_teacher.py) with the incompetent
(randomly initialised) teacher replaced by the constant uniform distribution, which is what a
random teacher's softmax tends to as its logits shrink; it needs no extra model and no random
draw for the teacher. Data and loss are Bad Teacher's (its `unlearning_data` and
`bad_teacher_loss`): the whole forget set plus a random `retain_fraction` of the retain set drawn
with request.rng, shuffled together, Adam. Everything beyond "distil the original on retain and a
neutral target on forget" is [UNVERIFIED] (the paper has no public code). Defaults: Bad Teacher's
retain_fraction 0.3 and batch 256; lr 1e-3, 5 epochs and T 4 instead of 1e-4, 1 and 1, chosen on
the cmnist smoke profile, where Bad Teacher's canonical setting is only a handful of steps that do
not move the forget outputs, and 3 epochs at T 1 move them without lowering bias/gap. The KL is
not multiplied by T^2 (Bad Teacher's loss; Adam's normalisation absorbs the factor).
Classification only. Intensity: epochs.
"""

from __future__ import annotations

import torch
from torch import nn

from mubench.errors import MubenchError
from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.distill import bad_teacher_loss, frozen_copy, neutral_targets, unlearning_data
from mubench.toolkit.optim import step


@register_method("bias_distill")
class BiasDistill(Method):
    access = Access.RETAIN
    paper = "Aylapuram et al. 2025 (arXiv 2509.07456), teacher-student variant; data and loss of Bad Teacher"
    targets = frozenset({"class"})  # a KL between class distributions
    space = {"lr": (1e-3, [1e-4, 3e-4, 1e-3, 3e-3]),
             "epochs": (5, [1, 3, 5, 10]),
             "retain_fraction": (0.3, [0.1, 0.3, 0.5, 1.0]),
             "temperature": (4.0, [1.0, 2.0, 4.0]),
             "batch_size": (256, [256])}
    intensity = "epochs"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        if not 0.0 <= hp.retain_fraction <= 1.0:
            raise MubenchError(f"bias_distill.retain_fraction must be in [0, 1], got {hp.retain_fraction}")
        if not hp.temperature > 0:
            raise MubenchError(f"bias_distill.temperature must be > 0, got {hp.temperature}")
        teacher = frozen_copy(model)
        data = unlearning_data(request, hp.retain_fraction)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr)
        for x, is_forget in request.batches_of(data, batch_size=hp.batch_size, epochs=hp.epochs):
            with torch.no_grad():
                targets = neutral_targets(teacher(x), is_forget, hp.temperature)
            step(optimizer, bad_teacher_loss(model(x), targets, hp.temperature))
        return model

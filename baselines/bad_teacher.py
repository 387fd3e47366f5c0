"""Bad Teacher (Chundawat et al. 2023, "Can bad teaching induce forgetting? Unlearning in deep
networks using an incompetent teacher", AAAI): the student starts from the original and is
distilled from two teachers at once: the incompetent teacher (a randomly initialised model of
the same architecture) on forget samples, the competent teacher (the frozen original) on retain
samples. Per sample, target = softmax(incompetent(x)/T) if x is a forget sample else
softmax(competent(x)/T); loss = KL(target || softmax(student(x)/T)), averaged over the batch.
Labels are never used: only the forget/retain flag.

Settings from the SSD repository's `blindspot` (if-loops/selective-synaptic-dampening, which
imports the authors' `UnlearnerLoss`; see docs/methods.md, bad_teacher): T 1, Adam lr 1e-4, 1 epoch,
batch 256, over the whole forget set plus a random 30 % of the retain set, shuffled together.
Choices: the 30 % subset is drawn without replacement with `request.rng`; the incompetent
teacher is the original deep-copied with every module's `reset_parameters` re-run under
`torch.random.fork_rng` seeded from `request.generator` (the repository builds a fresh model of the
same class, which is the same thing for the harness's factories); the KL is averaged over the
batch ("batchmean", the true per-sample KL) where the authors' `F.kl_div` default also divides by
the class count, a constant factor that Adam's normalisation all but cancels. The defaults are
the canonical ones; on tiny data sets one epoch of batch 256 is only a few steps, so expect
little forgetting there. Intensity: epochs (more passes pull the forget outputs further towards
the random teacher's, and cost more utility).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mubench.errors import MubenchError
from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.distill import bad_teacher_loss, frozen_copy, incompetent_teacher, unlearning_data
from mubench.toolkit.optim import step


def mixed_targets(competent_logits: torch.Tensor, incompetent_logits: torch.Tensor, is_forget: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """Per sample: softmax(incompetent/T) for forget samples, softmax(competent/T) for retain ones."""
    flag = is_forget.to(competent_logits.dtype).unsqueeze(1)
    return (flag * F.softmax(incompetent_logits / temperature, dim=1)
            + (1 - flag) * F.softmax(competent_logits / temperature, dim=1))


@register_method("bad_teacher")
class BadTeacher(Method):
    access = Access.RETAIN
    paper = "Chundawat et al. 2023 (AAAI); settings of the SSD repository's blindspot (Foster et al. 2024)"
    authors_code = "if-loops/selective-synaptic-dampening@cdfdc0e src/forget_random_strategies.py (blindspot), src/unlearn.py"
    targets = frozenset({"class"})  # a KL between class distributions
    space = {"lr": (1e-4, [1e-5, 1e-4, 1e-3]),
             "epochs": (1, [1, 2, 5, 10]),
             "retain_fraction": (0.3, [0.1, 0.3, 0.5, 1.0]),
             "temperature": (1.0, [1.0, 2.0, 4.0]),
             "batch_size": (256, [256])}
    intensity = "epochs"

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        if not 0.0 <= hp.retain_fraction <= 1.0:
            raise MubenchError(f"bad_teacher.retain_fraction must be in [0, 1], got {hp.retain_fraction}")
        if not hp.temperature > 0:
            raise MubenchError(f"bad_teacher.temperature must be > 0, got {hp.temperature}")
        competent = frozen_copy(model)
        incompetent = incompetent_teacher(model, request.generator)
        data = unlearning_data(request, hp.retain_fraction)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr)
        for x, is_forget in request.batches_of(data, batch_size=hp.batch_size, epochs=hp.epochs):
            with torch.no_grad():
                targets = mixed_targets(competent(x), incompetent(x), is_forget, hp.temperature)
            step(optimizer, bad_teacher_loss(model(x), targets, hp.temperature))
        return model

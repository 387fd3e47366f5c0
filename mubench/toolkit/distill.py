"""Teachers and distillation losses: the frozen original as teacher (SCRUB, Kurmanji et al. 2023;
LoTUS, Spartalis et al. 2025), a randomly re-initialised "incompetent" teacher (Bad Teacher,
Chundawat et al. 2023), the temperature-scaled KL of Hinton et al. (2015) and its variant over the
classes other than the true one (PTE, Chen et al. 2025; cf. DELETE, Zhou et al. 2025), the uniform
"neutral" target on forget samples (Bias-Aware distillation, Aylapuram et al. 2025), and seeded
Gumbel noise for Gumbel-softmax targets (Jang et al. 2017; LoTUS)."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mubench.request import Request, Subset
from mubench.transfer import to_device


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` in eval mode with gradients off: the fixed teacher or reference that
    distillation, FGSM relabelling and anchoring methods compare against."""
    return copy.deepcopy(model).eval().requires_grad_(False)


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL_T(teacher || student) * T^2, summed over classes and averaged over the batch
    (Hinton et al. 2015; RepDistiller's DistillKL, as used by SCRUB)."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    teacher = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_student, teacher, reduction="sum") * temperature**2 / student_logits.shape[0]


def incompetent_teacher(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """A copy of `model` with every module that has `reset_parameters` re-initialised, frozen.

    The draws come from a CPU generator seeded from `generator` (the global RNG is restored
    afterwards); the copy is re-initialised on the CPU and moved back to the model's device, so
    the teacher is the same on every device."""
    device = next(model.parameters()).device
    teacher = copy.deepcopy(model).to("cpu")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        for module in teacher.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    return teacher.to(device).eval().requires_grad_(False)


def masked_distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)) over the classes other than y (y's logit removed
    from both), summed over classes and averaged over the batch; 0 when student == teacher.
    PTE's pull term (Chen, Li & Tang 2025): the teacher's "dark knowledge" over the retained
    classes, without the true class (as DELETE's masked distillation, Zhou et al. 2025). The other
    classes are gathered by index, in order, rather than picked by a boolean mask, whose variable
    size would make the host wait for the GPU every step (mubench.transfer)."""
    others = torch.arange(student_logits.shape[1] - 1, device=y.device)
    index = others + (others >= y[:, None])  # row i: every class but y_i, in increasing order
    student = student_logits.gather(1, index) / temperature
    teacher = teacher_logits.gather(1, index) / temperature
    return distill_kl(student, teacher, 1.0) * temperature**2


def neutral_targets(teacher_logits: torch.Tensor, is_forget: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per sample: the uniform distribution over classes for forget samples, softmax(teacher/T)
    for retain samples (Bias-Aware teacher-student unlearning, Aylapuram et al. 2025)."""
    flag = is_forget.to(teacher_logits.dtype).unsqueeze(1)
    uniform = torch.full_like(teacher_logits, 1.0 / teacher_logits.shape[1])
    return flag * uniform + (1 - flag) * F.softmax(teacher_logits / temperature, dim=1)


def gumbel_noise(shape: torch.Size, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise -log(-log u), u ~ U(0, 1) clamped to [1e-12, 1 - 1e-12], drawn in
    float64 on the CPU from `generator` (so the same on every device), then cast to `like`'s
    device and dtype: the noise of Gumbel-softmax sampling (Jang et al. 2017), as LoTUS
    (Spartalis et al. 2025) uses it for its targets."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    return to_device(-torch.log(-torch.log(u)), like.device, like.dtype)


def bad_teacher_loss(student_logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(targets || softmax(student/T)), summed over classes, averaged over the batch."""
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=1), targets, reduction="batchmean")


def unlearning_data(request: Request, retain_fraction: float) -> Subset:
    """The forget set (flag 1) and a random `retain_fraction` of the retain set (flag 0), drawn
    without replacement from `request.rng`: the data of Bad Teacher (Chundawat et al. 2023),
    LoTUS (Spartalis et al. 2025) and the bias-aware distillation (Aylapuram et al. 2025)."""
    forget, retain = request.forget, request.retain
    chosen = np.sort(request.rng.choice(len(retain), size=int(retain_fraction * len(retain)), replace=False))
    index = torch.from_numpy(chosen).to(retain.x.device)
    x = torch.cat([forget.x, retain.x[index]])
    flags = torch.cat([torch.ones(len(forget), dtype=torch.bool), torch.zeros(len(index), dtype=torch.bool)])
    return Subset(x, flags.to(x.device))

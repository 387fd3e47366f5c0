"""Teachers and distillation losses: the frozen original as teacher (SCRUB, Kurmanji et al. 2023;
LoTUS, Spartalis et al. 2025), a randomly re-initialised "incompetent" teacher (Bad Teacher,
Chundawat et al. 2023), and the temperature-scaled KL of Hinton et al. (2015)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


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

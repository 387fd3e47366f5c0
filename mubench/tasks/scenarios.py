"""Scenario kinds: how a forget set is drawn from the training indices.

A task lists named scenarios (`ScenarioSpec`), each naming a kind registered here with its
parameters. A kind is pure: given the training pool's labels and attributes, candidate indices,
the parameters and an explicit generator, it returns sorted indices. It is applied twice: to the
training indices (the forget set) and to the validation indices (the held-out samples from the
same population, the non-members of membership inference). A random draw's population is the
whole training distribution, so its held-out set is all of validation.

A kind may also corrupt its forget set (`poison`): the harness then replaces those samples in a
per-scenario copy of the training pool before training the original, so the forget set is data
that should never have been learned (resilience scenarios, e.g. `fgsm_poison`). The oracle trains
on the clean retain set either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch.nn import functional as F

from mubench.registry import Registry


class Selector(Protocol):
    def __call__(self, labels: np.ndarray, attributes: dict[str, np.ndarray], candidates: np.ndarray,
                 params: dict[str, Any], rng: np.random.Generator) -> np.ndarray: ...


ToInputs = Callable[[torch.Tensor], torch.Tensor]


class Poisoner(Protocol):
    def __call__(self, x: torch.Tensor, y: torch.Tensor, train: np.ndarray, forget: np.ndarray,
                 to_inputs: ToInputs, num_classes: int, params: dict[str, Any],
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass(frozen=True)
class ScenarioKind:
    """`select` draws the forget set; `population_defined` says whether it is a predicate on samples
    (then the held-out non-members are the validation samples it selects) or a random draw (then
    they are a random half of the validation samples: the other half stays unseen by every model
    and attack, for methods that declare Access.UNSEEN, e.g. LoTUS's temperature).

    `poison`, when set, returns the stored values and labels that replace the forget samples in the
    training pool: given the pool's stored values `x` and labels `y` (never modified), the train
    and forget indices, the task's `to_inputs`, its number of classes, the parameters and a
    generator. None (the default): the forget set is clean data. `poison_target` names the task
    target the poison is defined for: wrong labels need classes, wrong readings need a series."""

    select: Selector
    population_defined: bool
    poison: Poisoner | None = None
    poison_target: str = "class"  # the task target its poison is defined for ("class" or "regression")

    def forget(self, labels: np.ndarray, attributes: dict[str, np.ndarray], train: np.ndarray,
               params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        return np.sort(self.select(labels, attributes, train, params, rng))

    def heldout(self, labels: np.ndarray, attributes: dict[str, np.ndarray], val: np.ndarray,
                params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        if not self.population_defined:
            return np.sort(rng.choice(val, size=max(1, len(val) // 2), replace=False))
        return np.sort(self.select(labels, attributes, val, params, rng))


scenario_kinds: Registry[ScenarioKind] = Registry("scenario kind")


def random_instances(labels: np.ndarray, attributes: dict[str, np.ndarray], candidates: np.ndarray,
                     params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """A uniform random `fraction` of the candidates (at least one), or exactly `count` of them
    (a few individuals' deletion requests)."""
    if "count" in params:
        size = int(params["count"])
        if not 0 < size < len(candidates):
            raise ValueError(f"random scenario: count must be in [1, {len(candidates) - 1}], got {size}")
        return rng.choice(candidates, size=size, replace=False)
    fraction = float(params["fraction"])
    if not 0 < fraction < 1:
        raise ValueError(f"random scenario: fraction must be in (0, 1), got {fraction}")
    size = max(1, round(fraction * len(candidates)))
    return rng.choice(candidates, size=size, replace=False)


def whole_class(labels: np.ndarray, attributes: dict[str, np.ndarray], candidates: np.ndarray,
                params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Every candidate of class `label`."""
    return candidates[labels[candidates] == int(params["label"])]


def attribute_subgroup(labels: np.ndarray, attributes: dict[str, np.ndarray], candidates: np.ndarray,
                       params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Candidates whose `attribute` equals `value`, restricted to classes `labels` when given."""
    name = params["attribute"]
    if name not in attributes:
        raise ValueError(f"subgroup scenario: the task has no attribute {name!r} (it has {sorted(attributes)})")
    mask = attributes[name][candidates] == params["value"]
    if params.get("labels") is not None:
        mask &= np.isin(labels[candidates], np.asarray(params["labels"]))
    return candidates[mask]


def one_group(labels: np.ndarray, attributes: dict[str, np.ndarray], candidates: np.ndarray,
              params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Every candidate of one group of `attribute` (one person, one recording, one sensor): the
    group `value` when given, else the `rank`-th largest group of the whole training pool (rank 0,
    the default, is the largest; ties go to the smaller value). The group is chosen from the pool,
    not from the candidates, so that the forget set and its held-out counterpart are one group."""
    name = params["attribute"]
    if name not in attributes:
        raise ValueError(f"one_group scenario: the task has no attribute {name!r} (it has {sorted(attributes)})")
    column = attributes[name]
    value = params.get("value")
    if value is None:
        values, counts = np.unique(column, return_counts=True)
        order = np.lexsort((values, -counts))  # largest count first, then the smaller value
        rank = int(params.get("rank", 0))
        if not 0 <= rank < len(values):
            raise ValueError(f"one_group scenario: rank {rank} but attribute {name!r} has {len(values)} groups")
        value = values[order[rank]]
    return candidates[column[candidates] == value]


# -- fgsm_poison ---------------------------------------------------------------------------------
SURROGATE_STEPS = 100  # full-batch Adam steps of the surrogate logistic regression
SURROGATE_LR = 0.01
SURROGATE_SAMPLES = 10_000  # at most this many train samples (evenly spaced) fit the surrogate


def pixel_scale(x: torch.Tensor) -> float:
    """Stored units per unit of `eps`: 255 for uint8 images (eps on the [0, 1] pixel scale), 1 for
    float pools (eps on the stored scale). Other dtypes are refused."""
    if x.dtype == torch.uint8:
        return 255.0
    if x.is_floating_point():
        return 1.0
    raise ValueError(f"fgsm_poison scenario: the pool stores {x.dtype}; only uint8 images or floats can be perturbed")


def fit_surrogate(inputs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.nn.Linear:
    """Multinomial logistic regression on flattened model-ready inputs: zero initialisation,
    SURROGATE_STEPS full-batch Adam steps at SURROGATE_LR, in float64, so deterministic without a
    seed (`fgsm_poison` runs it on one CPU thread)."""
    surrogate = torch.nn.Linear(inputs[0].numel(), num_classes, dtype=torch.float64)
    torch.nn.init.zeros_(surrogate.weight)
    torch.nn.init.zeros_(surrogate.bias)
    flat = inputs.reshape(len(inputs), -1).double()
    optimizer = torch.optim.Adam(surrogate.parameters(), lr=SURROGATE_LR)
    for _ in range(SURROGATE_STEPS):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(surrogate(flat), labels).backward()
        optimizer.step()
    return surrogate.requires_grad_(False)


def targeted_fgsm(surrogate: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, eps: float,
                  to_inputs: ToInputs) -> torch.Tensor:
    """Stored values moved one targeted FGSM step toward `target`: p - eps * sign(grad_p CE(f(p), target))
    on the pixel scale p = x / pixel_scale (the gradient flows through `to_inputs`); uint8 pools are
    clamped to [0, 1] and re-quantised, so the result keeps the pool's dtype."""
    scale = pixel_scale(x)
    p = (x.double() / scale).requires_grad_(True)
    inputs = to_inputs(p * scale)  # a non-leaf tensor: to_inputs may work in place
    loss = F.cross_entropy(surrogate(inputs.reshape(len(inputs), -1).double()), target)
    (grad,) = torch.autograd.grad(loss, [p])
    moved = p.detach() - eps * grad.sign()
    if x.dtype == torch.uint8:
        return torch.round(moved.clamp(0.0, 1.0) * scale).to(torch.uint8)
    return moved.to(x.dtype)


def fgsm_poison(x: torch.Tensor, y: torch.Tensor, train: np.ndarray, forget: np.ndarray, to_inputs: ToInputs,
                num_classes: int, params: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """FGSM-perturbed, mislabelled forget samples (the resilience scenario after Khorasani et al. 2025):
    each gets a wrong label y' = (y + k) mod C with k uniform in 1..C-1 from `rng`, and its input moves
    one targeted FGSM step of `eps` toward y' against a surrogate: a logistic regression fitted on the
    clean train part (a transfer attack, so the poison is cheap and independent of the profile's
    model). `eps` is on the pixel scale ([0, 1] for uint8 images, where it must be a multiple of
    1/255 so that re-quantisation keeps every pixel within eps of the clean one). The poison's bytes
    are part of the split's identity, so it is computed in float64 on one CPU thread: the same on
    every run whatever the caller's thread count."""
    eps = float(params["eps"])
    scale = pixel_scale(x)
    if eps <= 0:
        raise ValueError(f"fgsm_poison scenario: eps must be > 0, got {eps}")
    if scale != 1.0 and abs(eps * scale - round(eps * scale)) > 1e-6:
        raise ValueError(f"fgsm_poison scenario: eps {eps} is not a multiple of 1/{scale:g} on a uint8 pool")
    if num_classes < 2:
        raise ValueError("fgsm_poison scenario: needs a classification task (at least 2 classes)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            return _poison(x, y, train, forget, to_inputs, num_classes, eps, rng)
    finally:
        torch.set_num_threads(threads)


def _poison(x: torch.Tensor, y: torch.Tensor, train: np.ndarray, forget: np.ndarray, to_inputs: ToInputs,
            num_classes: int, eps: float, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    step = -(-len(train) // SURROGATE_SAMPLES)  # ceil: at most SURROGATE_SAMPLES evenly spaced samples
    fit_index = torch.from_numpy(np.asarray(train[::step]))
    surrogate = fit_surrogate(to_inputs(x[fit_index].clone()), y[fit_index].long(), num_classes)
    index = torch.from_numpy(np.asarray(forget))
    clean_labels = y[index]
    shift = torch.from_numpy(rng.integers(1, num_classes, size=len(index))).to(clean_labels.dtype)
    wrong = (clean_labels + shift) % num_classes
    return targeted_fgsm(surrogate, x[index], wrong.long(), eps, to_inputs), wrong


# -- stuck_sensor --------------------------------------------------------------------------------
def stuck_readings(x: torch.Tensor, y: torch.Tensor, train: np.ndarray, forget: np.ndarray, to_inputs: ToInputs,
                   num_classes: int, params: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A failed detector's windows on a forecasting task: the sensor's own channel (channel 0 of a
    (channels, steps) input) and every target read the constant `speed`, while the neighbourhood
    channels keep the true traffic. Stuck-at readings are the most common loop-detector fault in
    freeway data (Chen et al. 2003, "Detecting errors and imputing missing data for single-loop
    surveillance systems"); a model that learned them predicts a jam where there is none, so an
    operator asks to remove them: a resilience request. `speed` must differ from the task's missing
    value (0: masked, never learned)."""
    speed = float(params["speed"])
    if speed <= 0:
        raise ValueError(f"stuck_sensor scenario: speed must be > 0 (0 marks a missing reading), got {speed}")
    if x.dim() != 3:
        raise ValueError(f"stuck_sensor scenario: needs (channels, steps) inputs, the pool stores {tuple(x.shape[1:])}")
    index = torch.from_numpy(np.asarray(forget))
    stuck = x[index].clone()
    stuck[:, 0, :] = speed
    return stuck, torch.full_like(y[index], speed)


scenario_kinds.add("random", ScenarioKind(random_instances, population_defined=False))
scenario_kinds.add("class", ScenarioKind(whole_class, population_defined=True))
scenario_kinds.add("subgroup", ScenarioKind(attribute_subgroup, population_defined=True))
scenario_kinds.add("one_group", ScenarioKind(one_group, population_defined=True))
scenario_kinds.add("fgsm_poison", ScenarioKind(random_instances, population_defined=False, poison=fgsm_poison))
scenario_kinds.add("stuck_sensor", ScenarioKind(one_group, population_defined=True, poison=stuck_readings,
                                                poison_target="regression"))

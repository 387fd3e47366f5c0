"""Scenario kinds: how a forget set is drawn from the training indices.

A task lists named scenarios (`ScenarioSpec`), each naming a kind registered here with its
parameters. A kind is pure: given the training pool's labels and attributes, candidate indices,
the parameters and an explicit generator, it returns sorted indices. It is applied twice: to the
training indices (the forget set) and to the validation indices (the held-out samples from the
same population, the non-members of membership inference). A random draw's population is the
whole training distribution, so its held-out set is all of validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mubench.registry import Registry


class Selector(Protocol):
    def __call__(self, labels: np.ndarray, attributes: dict[str, np.ndarray], candidates: np.ndarray,
                 params: dict[str, Any], rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class ScenarioKind:
    """`select` draws the forget set; `population_defined` says whether it is a predicate on samples
    (then the held-out non-members are the validation samples it selects) or a random draw (then
    they are a random half of the validation samples: the other half stays unseen by every model
    and attack, for methods that declare Access.UNSEEN, e.g. LoTUS's temperature)."""

    select: Selector
    population_defined: bool

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


scenario_kinds.add("random", ScenarioKind(random_instances, population_defined=False))
scenario_kinds.add("class", ScenarioKind(whole_class, population_defined=True))
scenario_kinds.add("subgroup", ScenarioKind(attribute_subgroup, population_defined=True))
scenario_kinds.add("one_group", ScenarioKind(one_group, population_defined=True))

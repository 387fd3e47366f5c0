"""A run's model population: N originals and N oracles of one split, for the privacy audit.

The population attacks (mubench.metrics.audit: U-LiRA, KLOM, RMIA) compare N unlearned models
with N retrained ones. Member k is a pair trained on the run's split with a seed of its own
(`member_seeds`): an original on the train part and an oracle on the retain part, sharing their
initialisation and batch order. The harness unlearns each member's original with the run's
method through the same data access as the run itself (`Harness.population_outputs`), so a
method never sees more data than it declared, and evaluates both on the audited parts.

The members are the split's shadow models too: `Harness(shadow_models=K)` uses the first K
(mia/ulira, mia/rmia), so a population and the shadow attacks share their training through
the model cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from mubench.evaluation import Outputs, compute_outputs, evaluated_sample
from mubench.harness.artifacts import CachedModel
from mubench.hashing import sha256_of
from mubench.request import Subset
from mubench.targets import CLASSIFICATION, Target

# What the audit evaluates: KLOM reads forget, retain and val; U-LiRA forget; RMIA forget, heldout
# (non-members) and unseen (its population samples z).
AUDIT_PARTS = ("forget", "heldout", "unseen", "retain", "val")
SHADOW_PARTS = ("forget", "heldout", "unseen")  # what the shadow attacks of an ordinary run read
# KLOM on the retain set: an evenly spaced sample of at most this many (the same for every model),
# as EVALUATION_CAPS does for the ordinary metrics; the percentile over 2,000 examples is stable.
AUDIT_CAPS = {"retain": 2_000}


def member_seeds(task: str, seed: int, n: int) -> list[int]:
    """The training seeds of a split's first n members: a hash of (task, the run's seed, "shadow",
    k), so never the run's own seed, and the same members for every method of the split."""
    return [int(sha256_of([task, seed, "shadow", k])[:15], 16) for k in range(n)]


@dataclass(frozen=True)
class Members:
    """A split's population: member k's seed, original and oracle."""

    seeds: list[int]
    originals: list[CachedModel]
    oracles: list[CachedModel]

    def first(self, n: int) -> Members:
        if n > len(self.seeds):
            raise ValueError(f"{n} members asked of a population of {len(self.seeds)}")
        return Members(self.seeds[:n], self.originals[:n], self.oracles[:n])


def audit_outputs(model: nn.Module, subsets: dict[str, Subset], batch_size: int, target: Target = CLASSIFICATION,
                  parts: tuple[str, ...] = AUDIT_PARTS) -> dict[str, Outputs]:
    """A member's outputs on `parts` (capped parts on their evenly spaced sample, AUDIT_CAPS)."""
    return {part: compute_outputs(model, evaluated_sample(subsets[part], AUDIT_CAPS.get(part)), batch_size, target)
            for part in parts}

"""Profiles: the scale a benchmark runs at. The same code path serves both.

- `smoke`: CPU, small models and subsets; the whole quick suite runs in minutes.
- `standard`: paper scale (full data, full models); meant for a GPU.
- `audit`: CPU, a small training set trained until it is memorised: the scale at which random
  forgetting leaves a membership signal that the population attacks (mubench.metrics.audit) can
  measure on a CPU, chosen by measurement (docs/metrics.md, "The privacy audit"). Only the tasks
  that define it have it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mubench.registry import Registry


@dataclass(frozen=True)
class Profile:
    name: str
    description: str


profiles: Registry[Profile] = Registry("profile")
profiles.add("smoke", Profile("smoke", "CPU, small models and subsets: minutes for the whole quick suite"))
profiles.add("standard", Profile("standard", "paper scale: full data and models, meant for a GPU"))
profiles.add("audit", Profile("audit", "CPU, a small training set trained until memorised: a membership signal the "
                                       "population attacks can measure"))

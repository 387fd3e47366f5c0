"""The data-access levels a method declares (`Method.access`) and the request enforces.

Its own module because both sides need it: `mubench.methods` (what a method declares) and
`mubench.request` (what the harness hands it). Method authors import it from `mubench.methods`.
"""

from __future__ import annotations

from enum import Enum


class Access(str, Enum):
    """The data a method may touch; the runner hands it nothing else. Levels, each a superset of
    the one before (`forget` only, `+retain`, `+unseen`, `+counterfactual`; docs/design.md):

    FORGET: the forget set only.
    RETAIN: the forget set and the retain set (the rest of the training data).
    UNSEEN: also `unseen`, samples of the training distribution the model never saw: the
        validation part of the split minus the held-out samples the membership attacks use as
        non-members (so a method that trains on `unseen` cannot blur the attack). LoTUS
        (Spartalis et al. 2025) reads its temperature from the original's accuracy on such data.
    COUNTERFACTUAL: also the sensitive attributes of the `unseen` samples and the task's
        counterfactual builder (Request.counterfactual): FMD (Chen et al. 2023) debiases with a
        small external counterfactual set.
    """

    FORGET = "forget"
    RETAIN = "retain"
    UNSEEN = "unseen"
    COUNTERFACTUAL = "counterfactual"

    @property
    def subsets(self) -> frozenset[str]:
        return {Access.FORGET: frozenset({"forget"}), Access.RETAIN: frozenset({"forget", "retain"})}.get(
            self, frozenset({"forget", "retain", "unseen"}))

    @property
    def level(self) -> int:
        """0 (forget only) to 3 (+counterfactual): leaderboards compare methods of one level."""
        return list(Access).index(self)

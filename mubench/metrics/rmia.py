"""RMIA's score (Zarifzadeh et al. 2024, "Low-cost high-power membership inference attacks").

A target model's likelihood ratio of x, Pr(x | target) / Pr(x), is compared with those of
population samples z; the score of x is the fraction of z it beats by a factor gamma. Pr(x) is
estimated from reference models that never trained on x (the paper's offline attack, with its
linear correction for the missing "in" references). Shared by `mia/rmia` (one unlearned model,
shadow oracles as references; mubench.metrics.membership) and the population attack
`audit/rmia_auc` (mubench.metrics.audit).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mubench.evaluation import Outputs

RMIA_OFFLINE_A = 0.3  # slope of the offline Pr(x) approximation; the paper tunes it per dataset
RMIA_GAMMA = 1.0  # a z is beaten when Pr(x|t)/Pr(x) >= gamma * Pr(z|t)/Pr(z)


def true_label_probability(outputs: Outputs) -> np.ndarray:
    """p_y from log-softmax in float64 (RMIA's Pr(x | model)), so that tiny probabilities stay > 0."""
    logits = outputs.logits.double()
    return logits.log_softmax(dim=1).gather(1, outputs.labels.view(-1, 1)).squeeze(1).exp().numpy()


def stacked(members: list[dict[str, Outputs]], part: str, read: Callable[[Outputs], np.ndarray]) -> np.ndarray:
    """(members, examples) array of `read` on `part` of every member."""
    return np.stack([read(member[part]) for member in members])


def rmia_scores(target: np.ndarray, references: np.ndarray, target_z: np.ndarray, references_z: np.ndarray,
                a: float = RMIA_OFFLINE_A, gamma: float = RMIA_GAMMA) -> np.ndarray:
    """RMIA's score of each x: the fraction of population samples z with
    (Pr(x|t) / Pr(x)) / (Pr(z|t) / Pr(z)) >= gamma, where Pr(.) is the offline estimate
    ((1 + a) mean over out-references + (1 - a)) / 2. `target` (E,), `references` (R, E) are
    Pr(x | model) of the examples; `target_z` (Z,), `references_z` (R, Z) those of the z."""
    def ratio(p_target: np.ndarray, p_refs: np.ndarray) -> np.ndarray:
        return p_target / (((1 + a) * p_refs.mean(axis=0) + (1 - a)) / 2)

    ratio_z = np.sort(ratio(target_z, references_z))
    return np.searchsorted(ratio_z, ratio(target, references) / gamma, side="right") / len(ratio_z)

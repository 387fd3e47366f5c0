"""The metric suite. Importing this package registers every metric family.

Families, one module each: accuracy (utility, gaps to the oracle, divergence, tug-of-war),
membership (membership inference, versioned), audit (the privacy audit's population attacks),
bias (spurious-attribute reliance), cost (time,
memory, share of parameters changed), representation (CKA to the oracle), relearn (relearn time),
objectives (the three normalised trade-off objectives behind hypervolumes), fairness (group
fairness over a task's sensitive attribute, FMD's counterfactual bias), robustness (accuracy under
FGSM, for the fgsm_poison resilience scenarios).
"""

from mubench.metrics import (  # noqa: F401
           accuracy,
           audit,  # noqa: F401  (the population attacks: U-LiRA, KLOM, RMIA; population runs only)
           bias,
           cost,
           fairness,  # noqa: F401  (group fairness and counterfactual bias, sensitive attributes)
           membership,
           objectives,
           relearn,
           representation,
           robustness,  # noqa: F401  (accuracy under FGSM, fgsm_poison scenarios)
)
from mubench.metrics.accuracy import jensen_shannon, subgroup_accuracy
from mubench.metrics.core import Direction, Metric, add_metric, compute_metrics, is_finite, metrics
from mubench.metrics.membership import MIA_SPEC_VERSION, membership_auc

METRICS_VERSION = "4"  # 4: forgetting and utility relative to the signal and the kept data, score, cost/work, cost/rte on a reference timed here
# 3: relearn/steps checks 1,024 forget samples; retain evaluated on at most 10,000

__all__ = ["METRICS_VERSION", "MIA_SPEC_VERSION", "Direction", "Metric", "add_metric", "compute_metrics",
           "is_finite", "jensen_shannon", "membership_auc", "metrics", "subgroup_accuracy"]

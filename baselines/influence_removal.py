"""Influence-function removal on the last layer: one Newton step (Wang, Rockafellar & Ban 2025).

Wang, Rockafellar & Ban (2025, arXiv 2507.17984, "Machine Unlearning of Traffic State Estimation
and Prediction") unlearn by sensitivity analysis of the trained model's optimality conditions:
the solution's derivative with respect to a sample's weight gives the parameter update that
removes it. Their code is not public and their equations could not be read ([UNVERIFIED]; see
docs/methods.md, influence_removal), so this is the unconstrained form of that analysis, the
influence-function Newton step (Koh & Liang 2017) applied, as certified removal does (Guo et
al. 2020), to the head only, on the frozen penultimate features. For J(theta) = (1/n) sum l + (damping/2)|theta|^2 the
retain objective's minimiser is, to second order (mubench.toolkit.influence.removal_step),

    theta_head <- theta_head + scale * H_r^-1 (1/r) [sum_forget grad l(z_f) + |forget| damping theta_head],

H_r the Hessian of J over the r retain samples at theta. On a convex model (adult_logreg, a
logistic regression) it matches retraining without the forget set up to the Newton step's
second-order error (tests/test_baseline_influence_removal.py). Losses: the exact softmax
cross-entropy for classifiers; for regression (the paper's traffic setting, METR-LA) the task's
masked MAE has no curvature, so gradient and Hessian are those of half the masked squared error
(Gauss-Newton), the least-squares surrogate of the head, a choice of ours. The paper's physical
constraints (KKT terms) are not modelled. Hyper-parameters (ours, no published values): damping
1e-3 (FMD's lambda, the same certified-removal code), scale 1 (the Newton step; intensity),
bias True (the head's bias is part of theta).
"""

from __future__ import annotations

from torch import nn

from mubench.errors import MubenchError
from mubench.methods import Access, HParams, Method, register_method
from mubench.request import Request
from mubench.toolkit.heads import head_layer
from mubench.toolkit.influence import head_data, head_theta, removal_step, set_head_theta


@register_method("influence_removal")
class InfluenceRemoval(Method):
    access = Access.RETAIN
    mixed_precision = False  # an inverse-Hessian solve: float32 throughout
    paper = "Wang, Rockafellar & Ban 2025 (arXiv 2507.17984); Koh & Liang 2017; Guo et al. 2020"
    space = {"damping": (1e-3, [1e-4, 1e-3, 1e-2, 1e-1]),
             "scale": (1.0, [0.5, 1.0, 2.0, 5.0]),
             "bias": (True, [True, False])}
    intensity = "scale"
    version = "2"  # 2: with bias False the head's fixed bias enters its outputs (it was dropped)

    def unlearn(self, model: nn.Module, request: Request, hp: HParams) -> nn.Module:
        if not hp.damping > 0:
            raise MubenchError(f"influence_removal: damping must be > 0, got {hp.damping}")
        if not hp.scale >= 0:
            raise MubenchError(f"influence_removal: scale must be >= 0, got {hp.scale}")
        model.eval()
        head = head_layer(model, request.num_classes)
        bias = bool(hp.bias) and head.bias is not None
        retain = head_data(model, head, request.retain.x, request.retain.y, bias)
        forget = head_data(model, head, request.forget.x, request.forget.y, bias)
        theta = head_theta(head, bias)
        step = removal_step(retain, forget, theta, request.target, float(hp.damping))
        set_head_theta(head, theta + float(hp.scale) * step, bias)
        return model

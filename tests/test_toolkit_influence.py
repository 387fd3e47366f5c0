"""mubench/toolkit/influence.py: per-sample gradients and Hessians of the head's loss against
torch.autograd on a tiny head (cross-entropy and the masked squared error behind an affine output
map), the affine read-out, the Cholesky solve, and the removal step against exact retraining of a
convex problem (the core claim of Koh & Liang 2017 and Guo et al. 2020)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd.functional import hessian as autograd_hessian
from torch.nn import functional as F

import mubench.toolkit.influence as influence
from mubench.errors import MubenchError
from mubench.targets import CLASSIFICATION, Target
from mubench.toolkit.influence import (
    HeadData,
    augment,
    head_data,
    head_theta,
    hessian,
    output_affine,
    per_sample_gradients,
    removal_step,
    sample_losses,
    set_head_theta,
    solve,
)

REGRESSION = Target(kind="regression", missing_value=0.0)




def class_data(n: int = 12, d: int = 3, k: int = 4, seed: int = 0) -> tuple[HeadData, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = augment(torch.randn(n, d, generator=g), bias=True)
    y = torch.randint(0, k, (n,), generator=g)
    theta = torch.randn(k, d + 1, generator=g, dtype=torch.float64)
    return HeadData(x, y, torch.ones(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)), theta


def regression_data(n: int = 10, d: int = 3, k: int = 2) -> tuple[HeadData, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = augment(torch.randn(n, d, generator=g), bias=True)
    y = 50 + 10 * torch.randn(n, k, generator=g, dtype=torch.float64)
    y[0, 1] = 0.0  # a missing target (0 mph)
    y[3, :] = 0.0  # a sample without any present target
    scale, offset = torch.tensor([20.0, 5.0], dtype=torch.float64), torch.tensor([55.0, -1.0], dtype=torch.float64)
    return HeadData(x, y, scale, offset), torch.randn(k, d + 1, generator=g, dtype=torch.float64)


def by_hand_loss(data: HeadData, target: Target):
    def loss(flat: torch.Tensor) -> torch.Tensor:
        theta = flat.view(len(data.scale), -1)
        z = data.features @ theta.T
        if not target.regression:
            return F.cross_entropy(z, data.y, reduction="none")
        out, present = z * data.scale + data.offset, data.y != 0
        squared = torch.where(present, (out - data.y) ** 2, torch.zeros_like(out))
        return 0.5 * squared.sum(1) / present.sum(1).clamp(min=1)
    return loss


@pytest.mark.parametrize("make, target", [(class_data, CLASSIFICATION), (regression_data, REGRESSION)])
def test_gradients_and_hessian_match_autograd(make, target):
    data, theta = make()
    loss = by_hand_loss(data, target)
    flat = theta.flatten()
    assert torch.allclose(sample_losses(data, theta, target), loss(flat), atol=1e-10)
    autograd_grads = torch.stack([torch.func.grad(lambda t, i=i: loss(t)[i])(flat) for i in range(len(data))])
    assert torch.allclose(per_sample_gradients(data, theta, target), autograd_grads, atol=1e-10)
    damping = 0.1
    expected = autograd_hessian(lambda t: loss(t).mean() + damping / 2 * (t**2).sum(), flat)
    assert torch.allclose(hessian(data, theta, target, damping), expected, atol=1e-10)


def test_cross_entropy_hessian_over_several_chunks_is_the_full_sum_and_positive_semidefinite(monkeypatch):
    monkeypatch.setattr(influence, "CHUNK_FLOATS", 410 * 7)  # K D = 410 floats a sample: chunks of 7
    data, theta = class_data(n=2500, d=40, k=10)
    p = torch.softmax(data.features @ theta.T, dim=1)
    curvature = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    expected = torch.einsum("nab,ni,nj->aibj", curvature, data.features, data.features).reshape(410, 410) / 2500
    full = hessian(data, theta, CLASSIFICATION, 0.0)
    assert torch.allclose(full, expected, atol=1e-10)
    assert torch.allclose(full, full.T, atol=1e-12) and torch.linalg.eigvalsh(full).min() > -1e-10


def test_output_affine_reads_identity_and_speed_scaling_and_rejects_nonlinear_maps():
    z = torch.randn(20, 3)
    scale, offset = output_affine(z, z)
    assert torch.equal(scale, torch.ones(3, dtype=torch.float64)) and torch.equal(offset, torch.zeros(3, dtype=torch.float64))
    scale, offset = output_affine(z, z * 20 + 55)
    assert torch.allclose(scale, torch.full((3,), 20.0, dtype=torch.float64)) and torch.allclose(offset, torch.full((3,), 55.0, dtype=torch.float64))
    with pytest.raises(MubenchError, match="affine"):
        output_affine(z, torch.relu(z))


def test_head_data_reads_features_through_a_scaled_model_and_theta_round_trips():
    torch.manual_seed(0)
    head = nn.Linear(4, 2)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), head)

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = model

        def forward(self, x):
            return 20 * self.body(x) + 55

    x = torch.randn(7, 3)
    data = head_data(Scaled(), head, x, torch.zeros(7, 2), bias=True, batch_size=3)
    assert data.features.shape == (7, 5) and torch.equal(data.features[:, -1], torch.ones(7, dtype=torch.float64))
    assert torch.allclose(data.scale, torch.full((2,), 20.0, dtype=torch.float64), atol=1e-5)
    theta = head_theta(head, bias=True)
    assert torch.allclose((data.features @ theta.T).float(), head(torch.relu(model[0](x))), atol=1e-5)
    set_head_theta(head, theta + 1, bias=True)
    assert torch.allclose(head_theta(head, bias=True), theta + 1, atol=1e-6)
    assert head_theta(head, bias=False).shape == (2, 4)


def test_solve_inverts_and_rejects_indefinite_matrices():
    a = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert torch.allclose(a @ solve(a, b), b)
    with pytest.raises(MubenchError, match="damping"):
        solve(-a, b)
    with pytest.raises(MubenchError, match="parameters"):
        data, theta = class_data(n=2, d=3, k=4)
        hessian(data, torch.zeros(100, 100, dtype=torch.float64), CLASSIFICATION, 1.0)


def fit(data: HeadData, damping: float, start: torch.Tensor) -> torch.Tensor:
    """The exact minimiser of (1/n) sum CE + damping/2 |theta|^2: Newton's method to machine precision."""
    theta = start.clone()
    for _ in range(50):
        gradient = per_sample_gradients(data, theta, CLASSIFICATION).mean(0) + damping * theta.flatten()
        theta = theta - solve(hessian(data, theta, CLASSIFICATION, damping), gradient).view_as(theta)
        if gradient.norm() < 1e-13:
            break
    return theta


def subset(data: HeadData, index: torch.Tensor) -> HeadData:
    return HeadData(data.features[index], data.y[index], data.scale, data.offset)


def test_removal_step_matches_retraining_a_logistic_regression():
    """Removing k = 5 of 400 points: the Newton step's error is second order in the shift
    (quadratic convergence of Newton's method on a smooth strongly convex objective; Guo et al.
    2020, Theorem 1 bounds the residual gradient by a constant times |H^-1 Delta|^2), so it must
    close at least 95 % of the distance between the original and the retrained solution, and
    the remaining gradient of the retain objective must be two orders below the one at theta."""
    data, _ = class_data(n=400, d=5, k=3, seed=3)
    damping = 1e-2
    theta = fit(data, damping, torch.zeros(3, 6, dtype=torch.float64))
    forget_index, retain_index = torch.arange(5), torch.arange(5, 400)
    retain, forget = subset(data, retain_index), subset(data, forget_index)
    retrained = fit(retain, damping, theta)
    updated = theta + removal_step(retain, forget, theta, CLASSIFICATION, damping)
    assert (updated - retrained).norm() < 0.05 * (theta - retrained).norm()

    def retain_gradient(t):
        return (per_sample_gradients(retain, t, CLASSIFICATION).mean(0) + damping * t.flatten()).norm()
    assert retain_gradient(updated) < 0.01 * retain_gradient(theta)


def test_removal_step_against_scikit_learn_binary_logistic_regression():
    """The same claim against an independent solver: scikit-learn's LBFGS on the binary logistic
    loss, C = 1 / (n damping), fit with and without the forget points, intercept unpenalised in
    sklearn, so the data's bias column is a penalised feature and fit_intercept is off."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    g = torch.Generator().manual_seed(5)
    x = torch.randn(300, 4, generator=g, dtype=torch.float64)
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.8 * torch.randn(300, generator=g, dtype=torch.float64) > 0).long()
    features = augment(x, bias=True)
    damping = 1e-2

    def sk_fit(rows):
        model = sklearn.LogisticRegression(C=1 / (len(rows) * damping), fit_intercept=False, tol=1e-12, max_iter=10_000)
        model.fit(features[rows].numpy(), y[rows].numpy())
        return torch.from_numpy(model.coef_[0])

    everything, retain_rows, forget_rows = torch.arange(300), torch.arange(8, 300), torch.arange(8)
    w_full, w_retrained = sk_fit(everything), sk_fit(retain_rows)
    ones = torch.ones(2, dtype=torch.float64)
    data = HeadData(features, y, ones, torch.zeros(2, dtype=torch.float64))
    # Softmax rows [-w/2, w/2] give logit difference w.x: the same model; that is the softmax
    # problem's minimiser, whose penalty (damping'/2)|theta|^2 = (damping'/4)|w|^2 equals
    # sklearn's (damping/2)|w|^2 for damping' = 2 damping.
    theta = torch.stack([-w_full / 2, w_full / 2])
    step = removal_step(subset(data, retain_rows), subset(data, forget_rows), theta, CLASSIFICATION, 2 * damping)
    w_updated = (theta + step)[1] - (theta + step)[0]
    assert (w_updated - w_retrained).norm() < 0.05 * (w_full - w_retrained).norm()

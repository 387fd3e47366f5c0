"""Newton steps on a model's last linear layer: Hessians, per-sample gradients and the removal step.

The influence-function view (Koh & Liang 2017, ICML, "Understanding Black-box Predictions via
Influence Functions"): removing (or up-weighting) training points moves the regularised
empirical risk minimiser by one Newton step, theta_new ~ theta + H^-1 g. Certified removal (Guo,
Goldstein, Hannun & van der Maaten 2020, ICML) applies it exactly to a linear model, or to the
last layer of a network on fixed penultimate features; FMD (Chen et al. 2023) reuses that code
(facebookresearch/certified-removal) to debias a head. Here the head's parameters theta are the
(K, D) matrix [W | b] (D = features + 1 with a bias column, or the features alone), flattened row
by row, and the objective on n samples is

    J(theta) = (1/n) sum_i l_i(theta) + (damping / 2) |theta|^2,

with l_i either the softmax cross-entropy of the head's logits (classification; its exact Hessian)
or, for regression, half the masked mean squared error of the model's outputs (the Gauss-Newton
surrogate of the task's masked MAE, whose Hessian is zero almost everywhere). A model may map the
head's outputs through a fixed per-column affine map (the traffic models' speed scaling): it is
read from one forward pass (`head_outputs`, `output_affine`) and enters the chain rule exactly.
Everything is computed in float64 on the features' device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from mubench.errors import MubenchError
from mubench.targets import Target

# A dense (P, P) Hessian of P = K * D parameters: 6,000 of them take 288 MB in float64.
MAX_HEAD_PARAMETERS = 6_000
# Samples are summed into the cross-entropy Hessian in chunks of at most this many floats.
CHUNK_FLOATS = 2**23


@dataclass(frozen=True)
class HeadData:
    """Penultimate features (with a ones column where the head's bias is a parameter of theta),
    labels, the fixed affine map out = scale * head(features) + offset from the head's outputs to
    the model's, and the head's bias where it is held fixed (not in theta): the head's outputs are
    features @ theta^T + fixed, so a step on the weight alone still sees the head's own outputs."""

    features: torch.Tensor  # (n, D) float64
    y: torch.Tensor  # (n,) class indices, or (n, K) regression targets
    scale: torch.Tensor  # (K,) float64
    offset: torch.Tensor  # (K,) float64
    fixed: torch.Tensor | None = None  # (K,) float64: the head's bias when theta leaves it out

    def head_outputs(self, theta: torch.Tensor) -> torch.Tensor:
        """The head's outputs (logits) at theta: features @ theta^T, plus the fixed bias if any."""
        outputs = self.features @ theta.T
        return outputs if self.fixed is None else outputs + self.fixed

    def __len__(self) -> int:
        return len(self.y)


def head_outputs(model: nn.Module, head: nn.Linear, x: torch.Tensor,
                 batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(head inputs, head outputs, model outputs) for `x`, in the model's current mode, no gradient."""
    inputs: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    finals: list[torch.Tensor] = []

    def hook(_module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        inputs.append(args[0].detach())
        outputs.append(out.detach())

    handle = head.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                count = len(inputs)
                finals.append(model(x[start:start + batch_size]))
                if len(inputs) != count + 1:
                    raise MubenchError("the head must be called exactly once per forward pass")
    finally:
        handle.remove()
    if not finals:
        raise MubenchError("no inputs to read the head's features from")
    return torch.cat(inputs), torch.cat(outputs), torch.cat(finals)


def output_affine(z: torch.Tensor, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column (scale, offset) with out = scale * z + offset: ones and zeros when the model
    returns the head's outputs, else a least-squares fit that must reproduce `out`."""
    z, out = z.double(), out.double()
    if z.shape != out.shape:
        raise MubenchError(f"the model's outputs {tuple(out.shape)} are not a map of its head's {tuple(z.shape)}")
    if torch.equal(z, out):
        ones = torch.ones(z.shape[1], dtype=torch.float64, device=z.device)
        return ones, torch.zeros_like(ones)
    zc, oc = z - z.mean(0), out - out.mean(0)
    scale = (zc * oc).sum(0) / (zc * zc).sum(0).clamp(min=1e-300)
    offset = out.mean(0) - scale * z.mean(0)
    tolerance = 1e-4 * (1 + out.abs().max())
    if len(z) < 2 or (scale * z + offset - out).abs().max() > tolerance:
        raise MubenchError("the model's outputs are not a fixed affine map of its head's outputs; "
                           "a Newton step on the head alone is not defined for it")
    return scale, offset


def head_data(model: nn.Module, head: nn.Linear, x: torch.Tensor, y: torch.Tensor, bias: bool,
              batch_size: int = 1024) -> HeadData:
    features, z, out = head_outputs(model, head, x, batch_size)
    scale, offset = output_affine(z, out)
    fixed = head.bias.detach().double().to(z.device) if not bias and head.bias is not None else None
    return HeadData(augment(features, bias), y, scale, offset, fixed)


def augment(features: torch.Tensor, bias: bool) -> torch.Tensor:
    """float64 features, with a ones column appended when the head's bias is a parameter."""
    features = features.double().flatten(1)
    if not bias:
        return features
    return torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype, device=features.device)], dim=1)


def head_theta(head: nn.Linear, bias: bool) -> torch.Tensor:
    """The head's parameters as a (K, D) float64 matrix [W | b] (or W)."""
    weight = head.weight.detach().double()
    if bias and head.bias is not None:
        return torch.cat([weight, head.bias.detach().double()[:, None]], dim=1)
    return weight.clone()


def set_head_theta(head: nn.Linear, theta: torch.Tensor, bias: bool) -> None:
    with torch.no_grad():
        head.weight.copy_(theta[:, :head.in_features].to(head.weight))
        if bias and head.bias is not None:
            head.bias.copy_(theta[:, head.in_features].to(head.bias))


def _residuals(data: HeadData, theta: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression: (masked residuals of the model's outputs, per-target weights 1 / present count)."""
    outputs = data.head_outputs(theta) * data.scale + data.offset
    y = data.y.to(outputs)
    present = target.present(y)
    weights = present.double() / present.sum(dim=1, keepdim=True).clamp(min=1)
    return torch.where(present, outputs - torch.nan_to_num(y), torch.zeros_like(outputs)), weights


def sample_losses(data: HeadData, theta: torch.Tensor, target: Target) -> torch.Tensor:
    """l_i: cross-entropy of the logits, or half the masked mean squared error (regression)."""
    if not target.regression:
        return F.cross_entropy(data.head_outputs(theta), data.y.long(), reduction="none")
    residuals, weights = _residuals(data, theta, target)
    return 0.5 * (weights * residuals**2).sum(dim=1)


def per_sample_gradients(data: HeadData, theta: torch.Tensor, target: Target) -> torch.Tensor:
    """(n, K * D): grad_theta l_i = (p_i - e_{y_i}) x_i^T (cross-entropy), or
    (w_ij r_ij scale_j)_j x_i^T (squared error), flattened row by row."""
    if not target.regression:
        probabilities = torch.softmax(data.head_outputs(theta), dim=1)
        coefficients = probabilities - F.one_hot(data.y.long(), theta.shape[0]).to(probabilities)
    else:
        residuals, weights = _residuals(data, theta, target)
        coefficients = weights * residuals * data.scale
    return (coefficients[:, :, None] * data.features[:, None, :]).flatten(1)


def hessian(data: HeadData, theta: torch.Tensor, target: Target, damping: float) -> torch.Tensor:
    """(P, P) Hessian of J: (1/n) sum_i H_i + damping I, with H_i = (diag p_i - p_i p_i^T) kron x_i x_i^T
    (cross-entropy) or the block diagonal diag_j(w_ij scale_j^2) kron x_i x_i^T (squared error)."""
    classes, width = theta.shape
    if classes * width > MAX_HEAD_PARAMETERS:
        raise MubenchError(f"the head has {classes * width} parameters; a dense Hessian is limited to "
                           f"{MAX_HEAD_PARAMETERS}")
    x = data.features
    total = torch.zeros(classes, width, classes, width, dtype=torch.float64, device=x.device)
    if target.regression:
        _, weights = _residuals(data, theta, target)
        for k in range(classes):
            total[k, :, k, :] = (x * (weights[:, k] * data.scale[k] ** 2)[:, None]).T @ x
    else:  # sum_i diag(p_i) kron x_i x_i^T - (p_i kron x_i)(p_i kron x_i)^T
        probabilities = torch.softmax(data.head_outputs(theta), dim=1)
        for k in range(classes):
            total[k, :, k, :] = (x * probabilities[:, k:k + 1]).T @ x
        flat = total.view(classes * width, classes * width)
        chunk = max(1, CHUNK_FLOATS // (classes * width))
        for start in range(0, len(x), chunk):
            outer = (probabilities[start:start + chunk, :, None] * x[start:start + chunk, None, :]).flatten(1)
            flat -= outer.T @ outer
    size = classes * width
    matrix = total.reshape(size, size) / max(len(x), 1)
    return matrix + damping * torch.eye(size, dtype=torch.float64, device=x.device)


def solve(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """matrix^-1 rhs for a symmetric positive definite matrix (Cholesky); rhs (P,) or (P, m)."""
    factor, info = torch.linalg.cholesky_ex(matrix)
    if int(info) != 0:
        raise MubenchError("the damped Hessian is not positive definite; raise the damping")
    column = rhs.dim() == 1
    result = torch.cholesky_solve(rhs[:, None] if column else rhs, factor)
    return result[:, 0] if column else result


def removal_step(retain: HeadData, forget: HeadData, theta: torch.Tensor, target: Target,
                 damping: float) -> torch.Tensor:
    """The Newton step that removes `forget` from the minimiser of J over retain + forget (Koh &
    Liang 2017; Guo et al. 2020, eq. for Delta and H_Delta): at theta, optimal for the full
    objective, the retain objective's gradient is -(1/r) [sum_f grad l_f + f damping theta], so

        theta_new = theta + H_r^-1 (1/r) [sum_f grad l_f + f * damping * theta],

    H_r the Hessian of J over the r retain samples. Returns the step, shape of theta."""
    r, f = len(retain), len(forget)
    if r == 0:
        raise MubenchError("the Newton removal step needs at least one retain sample")
    gradient = per_sample_gradients(forget, theta, target).sum(0) + f * damping * theta.flatten()
    return solve(hessian(retain, theta, target, damping), gradient / r).view_as(theta)

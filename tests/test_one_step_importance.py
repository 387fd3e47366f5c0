"""One-step faithfulness of the importance, noise and Newton-step baselines (SSD, Fisher forgetting,
FMD, L2UL): what `unlearn` returns for softmax regression on a handful of samples equals the update
written by hand from the authors' algorithm, with the closed-form gradients of tests/one_step.py
(d log p_y / d z = e_y - p for logits z = x W^T + b). Nothing here calls autograd or the methods'
own helpers, so a change to an importance estimate, a selection or dampening rule, the noise's
shape or draws, a Hessian, the optimiser or the data used moves the result and fails.

Random draws are reproduced: the request seeds `request.generator` with
`torch.Generator().manual_seed(seed)`, and each test says which draws it replays. The tests marked
xfail (strict) pin what the authors' code does where a method departs from it on purpose (the
method's docstring and docs/methods.md give the reason); each reason names the difference, and
the test fails as an unexpected pass if the method is ever aligned, so the docs can be updated."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import baselines  # noqa: F401 - registers every baseline
from mubench.access import Access
from mubench.methods import methods
from mubench.request import Request, Subset
from one_step import ce_grads, ce_logit_grad, data, linear, logits, param_grads, request, sgd_first_step


def unlearn(method: str, model: torch.nn.Module, req: Request, **hparams):  # type: ignore[no-untyped-def]
    """The method's `unlearn` on a copy of `model` with its defaults updated by `hparams`."""
    cls = methods.get(method)
    return cls().unlearn(copy.deepcopy(model), req, cls.resolve(hparams))


def rows(subset: Subset, start: int, stop: int) -> Subset:
    """Samples start..stop-1 of `subset`, in order."""
    return Subset(subset.x[start:stop], subset.y[start:stop])


def joined(*subsets: Subset) -> Subset:
    """The subsets one after the other, in order."""
    return Subset(torch.cat([s.x for s in subsets]), torch.cat([s.y for s in subsets]))


# ---- SSD --------------------------------------------------------------------------------------------

def mean_squared_batch_gradient(model: torch.nn.Linear, batches: list[Subset]) -> tuple[torch.Tensor, torch.Tensor]:
    """(dW, db) squared and averaged over `batches`, each the gradient of that batch's mean
    cross-entropy (closed form)."""
    grads = [ce_grads(model, batch) for batch in batches]
    return (sum(gw ** 2 for gw, _ in grads) / len(grads), sum(gb ** 2 for _, gb in grads) / len(grads))


def test_one_step_ssd():
    """Foster, Schoepf & Brintrup 2024, `ssd.py` (`calc_importance`, `modify_weight`): importance
    on a loader = the squared gradient of each batch's mean CE, summed and divided by the number
    of batches; D is retain then forget, unshuffled, and forget alone, with the same batch size
    (so a batch of D straddles the two). Where forget importance > alpha * D importance the weight
    is multiplied by min(lambda * I_D / I_f, 1), elsewhere it is kept. Batches of two over 5 retain
    and 3 forget samples: D = [r0 r1] [r2 r3] [r4 f0] [f1 f2], forget = [f0 f1] [f2]."""
    model, retain, forget = linear(), data(5), data(3, [0, 0, 1], seed=2)
    alpha, lam = 2.0, 3.5  # lam > alpha: some selected weights are capped at factor 1
    out = unlearn("ssd", model, request(Access.RETAIN, forget=forget, retain=retain),
                  alpha=alpha, dampening=lam, batch_size=2)
    full = joined(retain, forget)
    full_w, full_b = mean_squared_batch_gradient(model, [rows(full, i, i + 2) for i in range(0, 8, 2)])
    forget_w, forget_b = mean_squared_batch_gradient(model, [rows(forget, 0, 2), rows(forget, 2, 3)])

    def dampened(weights: torch.Tensor, full_imp: torch.Tensor, forget_imp: torch.Tensor) -> torch.Tensor:
        selected = forget_imp > alpha * full_imp
        factor = torch.where(selected, torch.clamp(lam * full_imp / forget_imp, max=1.0), torch.ones_like(weights))
        return weights.detach() * factor

    expected_w, expected_b = dampened(model.weight, full_w, forget_w), dampened(model.bias, full_b, forget_b)
    # the data make the rule bite: some weights dampened, some selected but capped, some not selected
    selected = torch.cat([(forget_w > alpha * full_w).flatten(), forget_b > alpha * full_b])
    dampened_any = torch.cat([(expected_w != model.weight).flatten(), expected_b != model.bias])
    assert dampened_any.any() and (selected & ~dampened_any).any() and (~selected).any()
    torch.testing.assert_close(out.weight, expected_w)
    torch.testing.assert_close(out.bias, expected_b)


# ---- Fisher forgetting ------------------------------------------------------------------------------

def exact_fisher(model: torch.nn.Linear, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(F_W, F_b) = mean_x sum_y p(y|x) (d log p(y|x) / d theta)^2, with d log p_y / dW = (e_y - p) x^T
    and d log p_y / db = e_y - p."""
    p = F.softmax(logits(model, x), dim=1)
    classes = p.shape[1]
    fisher_w, fisher_b = torch.zeros_like(model.weight), torch.zeros_like(model.bias)
    for y in range(classes):
        g = F.one_hot(torch.full((len(x),), y), classes).to(p) - p  # (n, K): d log p_y / d z, per sample
        fisher_w += (p[:, y, None, None] * (g[:, :, None] * x[:, None, :]) ** 2).sum(0)
        fisher_b += (p[:, y, None] * g ** 2).sum(0)
    return fisher_w.detach() / len(x), fisher_b.detach() / len(x)


@pytest.mark.parametrize("strategy", ["random", "class"])
def test_one_step_fisher(strategy):
    """Golatkar, Achille & Soatto 2020, as the SSD repository runs it (`FisherForgetting` in
    `forget_random_strategies.py` and `forget_full_class_strategies.py`): with the exact Fisher of
    the retain set under the model's own predictions (`hessian`, batch of one, every class y
    weighted by p(y|x)), `get_mean_var` takes var = alpha * clamp(1 / (F + 1e-8), max 1e3 and, for
    a tensor whose first dimension is the number of classes, max 1e2), averages a 2-D tensor's
    variance over dim 1, and then
    - random (a forget label still in the retain set: "auto" picks it): multiplies 1-D tensors by 10;
    - full class (the forget class absent from the retain set): for the classifier's weight and bias
      sets the forgotten class's mean to 0 and variance to 1e-4, then multiplies the classifier's whole
      variance by 10;
    and draws theta = mean + sqrt(var) * N(0, I), parameter by parameter. The draws are reproduced by
    seeding a generator as the request seeds its own and drawing weight then bias: with
    fisher_samples 0 and label_samples 0 nothing else is drawn before them. The retain inputs' last
    coordinate is 0, so that column's Fisher is 0 and its variance is the clamp."""
    model, seed, alpha = linear(), 3, 1e-3
    retain_labels = [0, 1, 2, 0, 1, 2] if strategy == "random" else [1, 2, 1, 2, 1, 2]
    drawn = data(6, retain_labels)
    retain = Subset(drawn.x * torch.tensor([1.0, 1.0, 0.0]), drawn.y)
    forget = data(2, [0, 0], seed=2)
    out = unlearn("fisher", model, request(Access.RETAIN, seed=seed, forget=forget, retain=retain),
                  alpha=alpha, fisher_samples=0, label_samples=0, strategy="auto")

    fisher_w, fisher_b = exact_fisher(model, retain.x)
    assert (fisher_w[:, 2] == 0).all()  # the clamp is reached
    var_w = alpha * (1.0 / (fisher_w + 1e-8)).clamp(max=1e3).clamp(max=1e2)  # the classifier: both clamps
    var_w = var_w.mean(dim=1, keepdim=True).expand(3, 3).clone()
    var_b = alpha * (1.0 / (fisher_b + 1e-8)).clamp(max=1e3).clamp(max=1e2)
    mean_w, mean_b = model.weight.detach().clone(), model.bias.detach().clone()
    if strategy == "random":
        var_b = var_b * 10
    else:  # class 0 forgotten: its row of the classifier re-drawn around 0
        mean_w[0], var_w[0], mean_b[0], var_b[0] = 0.0, 1e-4, 0.0, 1e-4
        var_w, var_b = var_w * 10, var_b * 10
    generator = torch.Generator().manual_seed(seed)
    noise_w, noise_b = torch.randn(3, 3, generator=generator), torch.randn(3, generator=generator)
    torch.testing.assert_close(out.weight, mean_w + var_w.sqrt() * noise_w)
    torch.testing.assert_close(out.bias, mean_b + var_b.sqrt() * noise_b)


# ---- FMD --------------------------------------------------------------------------------------------

def flip_first(x: torch.Tensor, attributes: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """A task's counterfactual builder for the tests: the first input coordinate (the "sensitive"
    one) negated, nothing else changed and nothing drawn."""
    return x * torch.tensor([-1.0, 1.0, 1.0])


def fmd_request(unseen: Subset, seed: int = 0) -> Request:
    """Retain (6) and forget (2) samples for the Hessian, `unseen` for the pairs, `flip_first` as
    the counterfactual builder."""
    subsets = {"retain": data(6), "forget": data(2, [0, 1], seed=2), "unseen": unseen}
    return Request(subsets, Access.COUNTERFACTUAL, 3, torch.device("cpu"), seed=seed, counterfactual=flip_first)


def softmax_hessian(features: torch.Tensor, theta: torch.Tensor, damping: float, offset: torch.Tensor) -> torch.Tensor:
    """Hessian in theta (K, D), flattened row by row, of mean_i CE(theta f_i + offset) + damping / 2
    |theta|^2: mean_i (diag p_i - p_i p_i^T) kron f_i f_i^T + damping I."""
    p = F.softmax(features @ theta.T + offset, dim=1)
    blocks = [torch.kron(torch.diag(pi) - torch.outer(pi, pi), torch.outer(fi, fi)) for pi, fi in zip(p, features)]
    return torch.stack(blocks).mean(0) + damping * torch.eye(theta.numel(), dtype=theta.dtype)


def ce_gradient(feature: torch.Tensor, y: int, theta: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """d CE(theta f + offset, y) / d theta = (p - e_y) f^T, flattened row by row."""
    p = F.softmax(theta @ feature + offset, dim=0)
    return torch.outer(p - F.one_hot(torch.tensor(y), len(p)).to(p), feature).flatten()


def pair_scores(pair: torch.Tensor, y: int, theta: torch.Tensor, offset: torch.Tensor) -> tuple[float, float]:
    """(accuracy on both members of a pair (rows of `pair`), |P(y|x) - P(y|x_bar)|) for logits theta f + offset."""
    z = pair @ theta.T + offset
    p = F.softmax(z, dim=1)[:, y]
    return float((z.argmax(dim=1) == y).double().mean()), float((p[0] - p[1]).abs())


def with_ones(x: torch.Tensor) -> torch.Tensor:
    """float64 features with a ones column (the head's bias as a weight)."""
    return torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)


def fmd_newton_step(theta: torch.Tensor, train: torch.Tensor, pair: torch.Tensor, y: int, scale: float,
                    damping: float, offset: torch.Tensor | None = None) -> torch.Tensor:
    """FMD's step for one pair: scale / n * H^-1 (g(favoured) - g(other)), H the damped softmax
    Hessian over the n training features, the favoured member the one with the larger P(y | .);
    the logits are theta f + offset (offset 0 unless the head's bias stays out of theta)."""
    offset = torch.zeros(len(theta), dtype=theta.dtype) if offset is None else offset
    p = F.softmax(pair @ theta.T + offset, dim=1)[:, y]
    favoured, other = (pair[0], pair[1]) if p[0] >= p[1] else (pair[1], pair[0])
    difference = ce_gradient(favoured, y, theta, offset) - ce_gradient(other, y, theta, offset)
    step = torch.linalg.solve(softmax_hessian(train, theta, damping, offset), difference) * scale / len(train)
    return step.view_as(theta)


def test_one_step_fmd():
    """Chen et al. 2023 (FMD), the Newton step of `cmnist_removal.py` / `celeba_removal.py` with
    mubench's documented choices (softmax cross-entropy instead of one-vs-rest logistic regression,
    the paper's sign, the favoured member removed): for one counterfactual pair (x, x_bar), label y,
    theta <- theta + scale (n H)^-1 (g(x_fav, y) - g(x_other, y)) with n H = sum_i (diag p_i - p_i
    p_i^T) kron f_i f_i^T + damping n I over the n = retain + forget training features, kept because
    the pair's accuracy does not drop and its counterfactual bias |P(y|x) - P(y|x_bar)| does not
    rise. One unseen sample, so one pair whatever the draw; bias=True, so theta = [W | b] and the
    features carry a ones column: the head's logits are exactly theta f."""
    head, y, scale, damping = linear(), 0, 1.0, 0.1
    model = nn.Sequential(head)  # fmd finds the head inside the model
    unseen = data(1, [y], seed=5)
    out = unlearn("fmd", model, fmd_request(unseen), n_pairs=1, scale=scale, damping=damping, bias=True)
    req = fmd_request(unseen)
    train = with_ones(torch.cat([req.retain.x, req.forget.x]))
    pair = with_ones(torch.cat([unseen.x, flip_first(unseen.x, {}, torch.Generator())]))
    theta = torch.cat([head.weight, head.bias[:, None]], dim=1).detach().double()
    zero = torch.zeros(3, dtype=torch.float64)
    candidate = theta + fmd_newton_step(theta, train, pair, y, scale, damping)
    (acc_0, bias_0), (acc_1, bias_1) = pair_scores(pair, y, theta, zero), pair_scores(pair, y, candidate, zero)
    assert acc_1 >= acc_0 and bias_1 < bias_0  # kept: accuracy 0.5 -> 1, bias 0.24 -> 0.08
    torch.testing.assert_close(out[0].weight, candidate[:, :3].float())
    torch.testing.assert_close(out[0].bias, candidate[:, 3].float())

    # eight times the step overshoots: accuracy does not drop but the bias rises (0.24 -> 0.51): not kept
    far = theta + fmd_newton_step(theta, train, pair, y, 8 * scale, damping)
    assert pair_scores(pair, y, far, zero)[1] > bias_0
    rejected = unlearn("fmd", model, fmd_request(unseen), n_pairs=1, scale=8 * scale, damping=damping, bias=True)
    torch.testing.assert_close(rejected[0].weight, head.weight, rtol=0, atol=0)
    torch.testing.assert_close(rejected[0].bias, head.bias, rtol=0, atol=0)


def test_fmd_weight_only_step_uses_the_heads_bias():
    """FMD's default updates only the head's weight (`cmnist_removal.py` edits `classifier.weight`;
    the authors' heads have no bias). With a head that has one, the step on W is the Newton step of
    the head's own loss CE(W f + b, y) with b held fixed, so p, the Hessian, the gradients and the
    pair's accuracy and bias all see W f + b."""
    head, y, scale, damping = linear(), 0, 1.0, 0.1
    model = nn.Sequential(head)  # fmd finds the head inside the model
    with torch.no_grad():
        head.bias.copy_(torch.tensor([1.0, -1.0, 0.5]))
    unseen = data(1, [y], seed=5)
    out = unlearn("fmd", model, fmd_request(unseen), n_pairs=1, scale=scale, damping=damping)
    req = fmd_request(unseen)
    train = torch.cat([req.retain.x, req.forget.x]).double()
    pair = torch.cat([unseen.x, flip_first(unseen.x, {}, torch.Generator())]).double()
    weight, bias = head.weight.detach().double(), head.bias.detach().double()
    candidate = weight + fmd_newton_step(weight, train, pair, y, scale, damping, offset=bias)
    (acc_0, bias_0), (acc_1, bias_1) = pair_scores(pair, y, weight, bias), pair_scores(pair, y, candidate, bias)
    assert acc_1 >= acc_0 and bias_1 < bias_0  # kept (0.17 -> 0.13)
    torch.testing.assert_close(out[0].weight, candidate.float())
    torch.testing.assert_close(out[0].bias, head.bias)


@pytest.mark.xfail(strict=True, reason="deliberate (baselines/fmd.py): fmd computes every pair's Newton step at the "
                   "original head (one Hessian, gradients at theta_0) and only then adds them greedily; "
                   "cmnist_removal.py and celeba_removal.py recompute H_inv and both gradients from the current "
                   "model.state_dict() for each pair, after the previous pair's step was kept")
def test_fmd_second_pair_steps_from_the_updated_head():
    """FMD's loop (`cmnist_removal.py`, `celeba_removal.py`): for each pair in turn, read the current
    classifier weights, compute H^-1 and the pair's gradients there, add the step and keep it or not.
    Two pairs (the request's generator orders the two unseen samples), both steps kept: the second
    step is the Newton step at the head the first one produced."""
    head, scale, damping, seed = linear(), 1.0, 0.1, 0
    model = nn.Sequential(head)
    unseen = data(2, [1, 2], seed=5)
    out = unlearn("fmd", model, fmd_request(unseen, seed), n_pairs=2, scale=scale, damping=damping, bias=True)
    req = fmd_request(unseen, seed)
    train = with_ones(torch.cat([req.retain.x, req.forget.x]))
    order = torch.randperm(2, generator=torch.Generator().manual_seed(seed))  # the request's draw of the pairs
    pairs = [(with_ones(torch.cat([unseen.x[i:i + 1], flip_first(unseen.x[i:i + 1], {}, torch.Generator())])),
              int(unseen.y[i])) for i in order]
    zero = torch.zeros(3, dtype=torch.float64)

    def scores(theta: torch.Tensor) -> tuple[float, float]:
        """Accuracy on all the pairs' inputs and their mean counterfactual bias."""
        each = [pair_scores(pair, y, theta, zero) for pair, y in pairs]
        return sum(a for a, _ in each) / len(each), sum(b for _, b in each) / len(each)

    theta = torch.cat([head.weight, head.bias[:, None]], dim=1).detach().double()
    best = scores(theta)
    for pair, y in pairs:
        candidate = theta + fmd_newton_step(theta, train, pair, y, scale, damping)
        score = scores(candidate)
        assert score[0] >= best[0] and score[1] <= best[1]  # both steps are kept
        theta, best = candidate, score
    torch.testing.assert_close(out[0].weight, theta[:, :3].float())
    torch.testing.assert_close(out[0].bias, theta[:, 3].float())


# ---- L2UL -------------------------------------------------------------------------------------------

def one_step_targeted_l2_pgd(model: torch.nn.Linear, forget: Subset, eps: float, step: float,
                             generator: torch.Generator) -> Subset:
    """One copy of L2UL's adversarial set with one PGD step, drawing from `generator` as the method
    does: a wrong target (y + U{1..K-1}) mod K per sample, then a random start delta_0 = eps * u *
    d / |d| (d ~ N(0, I), u ~ U(0, 1)); one step of `step` along the L2-normalised gradient of
    -CE(W (x + delta) + b, t) in delta, which is (e_t - p) W per sample, and the projection onto
    |delta| <= eps."""
    x, classes = forget.x, model.out_features
    target = (forget.y + torch.randint(1, classes, forget.y.shape, generator=generator)) % classes
    direction = torch.randn(x.shape, generator=generator)
    radius = torch.rand(len(x), generator=generator)
    delta = direction / direction.norm(dim=1, keepdim=True) * eps * radius[:, None]
    p = F.softmax(logits(model, x + delta), dim=1)
    ascent = (F.one_hot(target, classes).to(p) - p) @ model.weight.detach()
    delta = delta + step * ascent / ascent.norm(dim=1, keepdim=True)
    delta = delta * (eps / delta.norm(dim=1, keepdim=True)).clamp(max=1.0)
    return Subset(x + delta, target)


def l2ul_gradient(model: torch.nn.Linear, forget: Subset, adversarial: Subset) -> tuple[torch.Tensor, torch.Tensor]:
    """(dW, db) of -CE(forget) |B_f| / (|B_f| + |B_a|) + CE(adversarial) |B_a| / (|B_f| + |B_a|), each
    batch the whole set."""
    total = len(forget) + len(adversarial)
    g_f = -ce_logit_grad(logits(model, forget.x), forget.y) * len(forget) / total
    g_a = ce_logit_grad(logits(model, adversarial.x), adversarial.y) * len(adversarial) / total
    return param_grads(torch.cat([g_f, g_a]), torch.cat([forget.x, adversarial.x]))


def inverted_min_max(importance: torch.Tensor) -> torch.Tensor:
    """1 - (Omega - min) / (max - min): the anchor weight of each entry of one tensor."""
    return 1 - (importance - importance.min()) / (importance.max() - importance.min())


def test_one_step_l2ul():
    """Cha et al. 2024 (L2UL), `main_unlearn_cifar10_mixed_label_resnet18.py` (baseline 3) and
    `utils.py`: targeted L2-PGD examples of the forget samples made with the original (here two per
    sample, one PGD step, mubench's documented random start and wrong-label draw, reproduced from a
    generator seeded as the request's; the step of 0.8 in a ball of 1 ends outside it for one of the
    eight, which is projected back), then SGD (momentum 0.9, weight decay: the script's 1e-4 raised to
    1e-2 here so that its term is well above the tolerance) on
    -CE(x_f, y_f) |B_f| / T + CE(x_a, y_a) |B_a| / T + reg_lamb sum Omega' (theta - theta_0)^2 / 2,
    T = |B_f| + |B_a|, with Omega the MAS importance of the forget set (`estimate_parameter_importance`:
    |d mean_x ||f(x)||_2 / d theta| over one batch) and Omega' = 1 - its per-tensor min-max
    normalisation. The whole forget set (4) and adversarial set (8) are one batch each. At the first
    step theta = theta_0, so the anchor has no gradient: theta_1 = theta_0 - lr (g + wd theta_0). The
    second step (max_steps 2) carries the momentum and the anchor, which pins Omega'."""
    model, seed, lr, wd, reg, eps, step = linear(), 5, 0.1, 1e-2, 1.0, 1.0, 0.8
    x = data(4).x
    forget = Subset(x, logits(model, x).argmax(dim=1))  # labelled as predicted: forget accuracy 1
    settings = dict(lr=lr, reg_lamb=reg, num_adv_images=2, pgd_eps=eps, pgd_alpha=step, pgd_iter=1,
                    stop_accuracy=0.0, weight_decay=wd, batch_size=32, adv_batch_size=256)
    out = unlearn("l2ul", model, request(Access.FORGET, seed=seed, forget=forget), max_steps=1, **settings)
    assert not out.training

    generator = torch.Generator().manual_seed(seed)
    copies = [one_step_targeted_l2_pgd(model, forget, eps, step, generator) for _ in range(2)]
    adversarial = joined(*copies)
    gw, gb = l2ul_gradient(model, forget, adversarial)
    w1, b1 = sgd_first_step(model.weight, gw, lr, wd), sgd_first_step(model.bias, gb, lr, wd)
    torch.testing.assert_close(out.weight, w1)
    torch.testing.assert_close(out.bias, b1)

    # the second step: momentum (buffer = first gradient with weight decay) and the MAS anchor
    two = unlearn("l2ul", model, request(Access.FORGET, seed=seed, forget=forget), max_steps=2, **settings)
    z = logits(model, forget.x)
    mas_w, mas_b = param_grads(z / z.norm(dim=1, keepdim=True) / len(forget), forget.x)  # d mean ||z|| / d theta
    anchor_w, anchor_b = inverted_min_max(mas_w.abs()), inverted_min_max(mas_b.abs())
    after = torch.nn.Linear(3, 3)
    with torch.no_grad():
        after.weight.copy_(w1)
        after.bias.copy_(b1)
    gw1, gb1 = l2ul_gradient(after, forget, adversarial)
    w0, b0 = model.weight.detach(), model.bias.detach()
    w2 = w1 - lr * (0.9 * (gw + wd * w0) + gw1 + reg * anchor_w * (w1 - w0) + wd * w1)
    b2 = b1 - lr * (0.9 * (gb + wd * b0) + gb1 + reg * anchor_b * (b1 - b0) + wd * b1)
    torch.testing.assert_close(two.weight, w2)
    torch.testing.assert_close(two.bias, b2)


@pytest.mark.xfail(strict=True, reason="deliberate (baselines/l2ul.py): l2ul draws its forget (and adversarial) batches "
                   "shuffled (request.batches_of); "
                   "the script's loaders are unshuffled (DataLoader(unlearn_dataset, batch_size=32), adv_loader with "
                   "shuffle False), so its first step uses the first 32 forget samples in order")
def test_l2ul_first_forget_batch_is_the_first_32_samples():
    """Cha et al. 2024, `main_unlearn_cifar10_mixed_label_resnet18.py`: `unlearn_loader` and
    `adv_loader` are not shuffled, so with 40 forget samples the first step pairs the whole
    adversarial set with forget samples 0..31. Two classes (the wrong label is the other one) and
    pgd_eps 0 (the adversarial examples are the inputs themselves) make the adversarial set
    (x, 1 - y) without depending on any draw."""
    model, lr = linear(n_out=2), 0.1
    forget = data(40, [i % 2 for i in range(40)])
    out = unlearn("l2ul", model, request(Access.FORGET, num_classes=2, forget=forget), lr=lr, max_steps=1,
                  num_adv_images=1, pgd_eps=0.0, pgd_iter=0, stop_accuracy=0.0, weight_decay=0.0)
    gw, gb = l2ul_gradient(model, rows(forget, 0, 32), Subset(forget.x, 1 - forget.y))
    torch.testing.assert_close(out.weight, sgd_first_step(model.weight, gw, lr))
    torch.testing.assert_close(out.bias, sgd_first_step(model.bias, gb, lr))

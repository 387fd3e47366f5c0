"""One-step faithfulness of the distillation and boundary baselines (SCRUB, Bad Teacher, LoTUS, UNSIR,
Boundary Shrink and Boundary Expanding): their first updates on softmax regression, with every batch
covering its whole set so that an epoch is one step per set, equal the updates written by hand from
the authors' code with the closed-form gradients of tests/one_step.py. Where Adam's first step only
sees the gradient's signs, or momentum carries a step into the next, the first two (or four) steps
are pinned, with Adam's and SGD's updates written out below. A change to a loss term, a target, the
data a step uses or the optimiser and its settings moves these steps and fails here.

Random draws are either made irrelevant (LoTUS's softmax targets, a retain fraction of 1, enough
retain samples per class) or reproduced: the request seeds `request.generator` with
`torch.Generator().manual_seed(seed)`, and each test says which of its draws it replays."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

import baselines  # noqa: F401 - registers every baseline
from mubench.access import Access
from mubench.methods import methods
from mubench.request import Subset
from one_step import (
    adam_first_step,
    ce_logit_grad,
    data,
    kl_logit_grad,
    linear,
    logits,
    param_grads,
    request,
    sgd_first_step,
    soft_ce_logit_grad,
)

Params = tuple[torch.Tensor, torch.Tensor]  # (weight, bias) of a linear layer, followed by hand


def unlearn(method: str, model: nn.Module, req, **hparams):  # type: ignore[no-untyped-def]
    """The method's output on a deep copy of `model`, with the given hyper-parameters over its defaults."""
    cls = methods.get(method)
    return cls().unlearn(copy.deepcopy(model), req, cls.resolve(hparams))


def params(model: nn.Linear) -> Params:
    """A detached copy of the layer's (W, b): the starting point of an update followed by hand."""
    return model.weight.detach().clone(), model.bias.detach().clone()


def affine(theta: Params, x: torch.Tensor) -> torch.Tensor:
    """The logits x W^T + b of the linear layer theta = (W, b)."""
    return x @ theta[0].T + theta[1]


def assert_params(model: nn.Linear, theta: Params) -> None:
    """The layer's weight and bias equal theta = (W, b) written by hand."""
    torch.testing.assert_close(model.weight.detach(), theta[0])
    torch.testing.assert_close(model.bias.detach(), theta[1])


class HandAdam:
    """torch.optim.Adam (L2 weight decay added to the gradient) or AdamW (`decoupled`: the weights first
    shrink by 1 - lr wd), written out step after step for one (W, b) pair (Kingma & Ba 2015; Loshchilov &
    Hutter 2019), for any tuple of tensors (a layer's (W, b), or UNSIR's noise alone):
    m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2 and, at step t,
    w <- w - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""

    def __init__(self, lr: float, weight_decay: float = 0.0, decoupled: bool = False,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.lr, self.weight_decay, self.decoupled, self.betas, self.eps = lr, weight_decay, decoupled, betas, eps
        self.t = 0
        self.m: list[torch.Tensor] | None = None
        self.v: list[torch.Tensor] | None = None

    def step(self, theta: tuple[torch.Tensor, ...], grads: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        b1, b2 = self.betas
        self.t += 1
        weights = [w.detach() for w in theta]
        if self.decoupled:
            weights = [w * (1 - self.lr * self.weight_decay) for w in weights]
            gs = list(grads)
        else:
            gs = [g + self.weight_decay * w for g, w in zip(grads, weights)]
        self.m = [b1 * m + (1 - b1) * g for m, g in zip(self.m or [0.0 * g for g in gs], gs)]
        self.v = [b2 * v + (1 - b2) * g * g for v, g in zip(self.v or [0.0 * g for g in gs], gs)]
        return tuple(w - self.lr * (m / (1 - b1**self.t)) / ((v / (1 - b2**self.t)).sqrt() + self.eps)
                     for w, m, v in zip(weights, self.m, self.v))


class HandSGD:
    """torch.optim.SGD with momentum mu and coupled weight decay, written out: d = g + wd w; the buffer is d
    at the first step and mu buf + d after; w <- w - lr buf."""

    def __init__(self, lr: float, momentum: float, weight_decay: float) -> None:
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.buffers: list[torch.Tensor] | None = None

    def step(self, theta: Params, grads: Params) -> Params:
        ds = [g + self.weight_decay * w.detach() for g, w in zip(grads, theta)]
        self.buffers = ds if self.buffers is None else [self.momentum * buf + d for buf, d in zip(self.buffers, ds)]
        w, b = (w.detach() - self.lr * buf for w, buf in zip(theta, self.buffers))
        return w, b


def accuracy(theta: Params, subset: Subset) -> float:
    """The share of `subset` that the linear layer theta classifies right, as correct / total."""
    return int((affine(theta, subset.x).argmax(dim=1) == subset.y).sum()) / len(subset)


# --------------------------------------------------------------------------------------------- SCRUB


def scrub_by_hand(theta0: Params, forget: Subset, retain: Subset, steps: str, optimizer: HandAdam | HandSGD,
                  gamma: float, alpha: float, temperature: float) -> Params:
    """SCRUB's steps in order, "x" a max-step on the forget set (loss -KL_T(teacher || student)), "n" a
    min-step on the retain set (gamma CE + alpha KL_T); KL_T is RepDistiller's DistillKL and the teacher
    is the original theta0."""
    teacher_f, teacher_r = affine(theta0, forget.x), affine(theta0, retain.x)
    theta = theta0
    for kind in steps:
        if kind == "x":
            g = -kl_logit_grad(affine(theta, forget.x), teacher_f, temperature)
            theta = optimizer.step(theta, param_grads(g, forget.x))
        else:
            z = affine(theta, retain.x)
            g = gamma * ce_logit_grad(z, retain.y) + alpha * kl_logit_grad(z, teacher_r, temperature)
            theta = optimizer.step(theta, param_grads(g, retain.x))
    return theta


def test_one_step_scrub():
    """SCRUB (Kurmanji et al. 2023), the small-scale notebook's loop (`small_scale_unlearning.ipynb`,
    with RepDistiller's `train_distill` and `DistillKL` from the repository's `helper/loops.py` and
    `KD.py`): for epoch = 1..E, a max-step on the forget set (loss -KL_T) while epoch <= msteps, then a
    min-step on the retain set (gamma CE + alpha KL_T), both through one Adam with coupled weight decay.
    At the original the KL and its gradient vanish, so a first max-step is weight decay alone and a
    first min-step (msteps 0) is gamma CE's: the first update is pinned alone (msteps 0) and then the
    sequences max-min, max-min-min (the notebooks' 1-based `epoch <= msteps`, not `scrub.py`'s 0-based
    loop that makes msteps + 1 max-steps) and max-min-max-min, where Adam's moments carry from the
    forget steps into the retain steps. Last, the large-scale configuration's SGD with momentum
    (`large_scale_unlearning.ipynb`) over max-min-max-min. Learning-rate decay points past the epochs
    run ("5,8,9", the notebook's), so every step has the base rate."""
    model, forget, retain = linear(), data(4, seed=2), data(9)
    theta0 = params(model)
    gamma, alpha, temperature, lr, wd = 1.0, 0.5, 2.0, 0.05, 0.1
    common = dict(optimizer="adam", lr=lr, weight_decay=wd, gamma=gamma, alpha=alpha, temperature=temperature,
                  decay_epochs="5,8,9", batch_size=64, forget_batch_size=64)

    def run(**hp):  # type: ignore[no-untyped-def]
        return unlearn("scrub", model, request(Access.RETAIN, forget=forget, retain=retain), **{**common, **hp})

    # the first update alone: one min-step, where only gamma CE has a gradient
    g_w, g_b = param_grads(gamma * ce_logit_grad(logits(model, retain.x), retain.y), retain.x)
    first = run(epochs=1, msteps=0)
    torch.testing.assert_close(first.weight, adam_first_step(model.weight, g_w, lr, wd))
    torch.testing.assert_close(first.bias, adam_first_step(model.bias, g_b, lr, wd))

    for epochs, msteps, steps in ((1, 1, "xn"), (2, 1, "xnn"), (2, 2, "xnxn")):
        expected = scrub_by_hand(theta0, forget, retain, steps, HandAdam(lr, wd), gamma, alpha, temperature)
        assert_params(run(epochs=epochs, msteps=msteps), expected)

    # the large-scale configuration: SGD with momentum and coupled weight decay, the same alternation
    sgd = dict(optimizer="sgd", lr=0.5, momentum=0.9, weight_decay=0.01, gamma=0.99, alpha=0.5, temperature=4.0)
    expected = scrub_by_hand(theta0, forget, retain, "xnxn", HandSGD(0.5, 0.9, 0.01), 0.99, 0.5, 4.0)
    assert_params(run(epochs=2, msteps=2, **sgd), expected)


# --------------------------------------------------------------------------------------- Bad Teacher


def incompetent_by_hand(seed: int, n_in: int = 3, n_out: int = 3) -> Params:
    """The random teacher the request's generator makes: a 62-bit seed drawn from
    torch.Generator().manual_seed(seed) (as the request seeds its generator), then nn.Linear's
    reset_parameters under that seed: weight and bias uniform in +-1/sqrt(fan_in), in that order."""
    drawn = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(seed)))
    generator = torch.Generator().manual_seed(drawn)
    bound = 1 / math.sqrt(n_in)
    weight = torch.empty(n_out, n_in).uniform_(-bound, bound, generator=generator)
    bias = torch.empty(n_out).uniform_(-bound, bound, generator=generator)
    return weight, bias


def test_one_step_bad_teacher():
    """Bad Teacher (Chundawat et al. 2023), the SSD repository's `blindspot` with the authors'
    `UnlearnerLoss` and `blindspot_unlearner` (`forget_random_strategies.py`, `unlearn.py`): forget and
    retain samples shuffled together, target softmax(incompetent(x)/T) on forget samples and
    softmax(original(x)/T) on retain samples, loss KL(target || softmax(student(x)/T)), Adam without weight
    decay. Its gradient in the logits is (softmax(s/T) - target) / (T n): averaged over the batch as the
    method's docstring says, where the authors' `F.kl_div` default also divides by the class count (a
    constant factor Adam's normalisation cancels). The 30 % retain subset is forced to the whole retain
    set (retain_fraction 1; one batch, so the order does not matter); the incompetent teacher is
    replayed from the request's seed (`incompetent_by_hand`). T = 2 so that the temperature's place shows;
    one epoch pins the first step, two pin Adam's second."""
    model, forget, retain = linear(), data(3, seed=2), data(6)
    lr, temperature = 0.05, 2.0
    x = torch.cat([forget.x, retain.x])
    competent, incompetent = params(model), incompetent_by_hand(seed=0)
    targets = torch.cat([F.softmax(affine(incompetent, forget.x) / temperature, dim=1),
                         F.softmax(affine(competent, retain.x) / temperature, dim=1)])

    def grads(theta: Params) -> Params:
        return param_grads(soft_ce_logit_grad(affine(theta, x) / temperature, targets) / temperature, x)

    def run(epochs: int) -> nn.Linear:
        return unlearn("bad_teacher", model, request(Access.RETAIN, forget=forget, retain=retain), lr=lr,
                       epochs=epochs, retain_fraction=1.0, temperature=temperature, batch_size=64)

    g_w, g_b = grads(competent)
    first = run(epochs=1)
    torch.testing.assert_close(first.weight, adam_first_step(model.weight, g_w, lr))
    torch.testing.assert_close(first.bias, adam_first_step(model.bias, g_b, lr))

    adam = HandAdam(lr)
    theta1 = adam.step(competent, (g_w, g_b))
    assert_params(run(epochs=2), adam.step(theta1, grads(theta1)))


# --------------------------------------------------------------------------------------------- LoTUS


def test_one_step_lotus():
    """LoTUS (Spartalis et al. 2025), `lotus_class.py` with `--probTransformer softmax` (no Gumbel noise, so
    no draw): before each epoch delta = acc_forget(student) - acc_val(teacher); the run stops if
    delta <= -0.01, else tau = exp(alpha delta); then the forget set plus the retain subset (forced to the
    whole retain set, retain_fraction 1) in one batch, target softmax(teacher/tau) on forget samples and
    one-hot argmax(teacher) on retain samples (the teacher's prediction, not the label), loss
    mean_i -sum_c t_ic log softmax(student)_c, AdamW with decoupled weight decay. Not class unlearning, so
    acc_val is the original's accuracy on `unseen` (4 of 6). Pinned: the first step and AdamW's second for
    a forget set the original gets right (tau = e^(2/3)), where the student after one step gets 3 of 4
    right, so the second tau is e^(1/6) (the student's accuracy, not the teacher's); the first step at
    delta = 0 (2 of 3 right: tau = 1, no stop); no step at delta = -1/6 (2 of 4 right)."""
    model = linear()
    theta0 = params(model)
    retain, unseen = data(6), data(6, seed=3)
    alpha, lr, wd = 2.0, 0.1, 0.1
    acc_val = accuracy(theta0, unseen)
    assert acc_val == 4 / 6

    def by_hand(forget: Subset, epochs: int) -> Params:
        x = torch.cat([forget.x, retain.x])
        is_forget = torch.arange(len(x)) < len(forget)
        teacher = affine(theta0, x)
        adam, theta = HandAdam(lr, wd, decoupled=True), theta0
        for _ in range(epochs):
            delta = accuracy(theta, forget) - acc_val
            if delta <= -0.01:
                break
            targets = torch.where(is_forget[:, None], F.softmax(teacher / math.exp(alpha * delta), dim=1),
                                  F.one_hot(teacher.argmax(dim=1), 3).to(teacher.dtype))
            theta = adam.step(theta, param_grads(soft_ce_logit_grad(affine(theta, x), targets), x))
        return theta

    def run(forget: Subset, epochs: int) -> nn.Linear:
        req = request(Access.UNSEEN, forget=forget, retain=retain, unseen=unseen)
        return unlearn("lotus", model, req, alpha=str(alpha), epochs=epochs, lr=lr, weight_decay=wd,
                       retain_fraction=1.0, prob_transformer="softmax", class_unlearning="false", batch_size=64)

    forget_x = data(4, seed=6).x
    predicted = affine(theta0, forget_x).argmax(dim=1)
    right = Subset(forget_x, predicted)
    first = run(right, epochs=1)
    x = torch.cat([right.x, retain.x])
    teacher = affine(theta0, x)
    soft = F.softmax(teacher[:4] / math.exp(alpha * (1 - 4 / 6)), dim=1)  # every forget sample right: delta 1/3
    targets = torch.cat([soft, F.one_hot(teacher[4:].argmax(dim=1), 3).to(teacher.dtype)])
    g_w, g_b = param_grads(soft_ce_logit_grad(teacher, targets), x)
    torch.testing.assert_close(first.weight, adam_first_step(model.weight, g_w, lr, wd, decoupled=True))
    torch.testing.assert_close(first.bias, adam_first_step(model.bias, g_b, lr, wd, decoupled=True))
    assert accuracy(by_hand(right, epochs=1), right) == 3 / 4
    assert_params(run(right, epochs=2), by_hand(right, epochs=2))

    even = Subset(forget_x[:3], torch.cat([predicted[:2], (predicted[2:3] + 1) % 3]))  # delta = 2/3 - 4/6 = 0
    assert_params(run(even, epochs=1), by_hand(even, epochs=1))
    below = Subset(forget_x, torch.cat([predicted[:2], (predicted[2:] + 1) % 3]))  # delta = 1/2 - 4/6 = -1/6
    assert_params(run(below, epochs=2), theta0)


# --------------------------------------------------------------------------------------------- UNSIR


def test_one_step_unsir(monkeypatch):
    """UNSIR (Tarun et al. 2023), the SSD repository's `UNSIR` with `UNSIR_noise_train` and
    `fit_one_unlearning_cycle` (`forget_full_class_strategies.py`, `unlearn.py`): noise N ~ N(0, I) for the
    forget class c, trained by Adam (lr 0.1, the model fixed) on -CE(f(N), c) + 0.1 mean_i ||N_i||^2, whose
    gradient for a linear model is -(softmax(z) - onehot(c)) W / n + 0.2 N / n; then one impair epoch
    (a fresh Adam, CE over the noise labelled c together with the retain samples) and one repair epoch
    (another fresh Adam, CE over the retain samples). The starting noise is replayed: it is the first draw
    from the request's generator, torch.randn((noise_batch, 3)) from torch.Generator().manual_seed(seed).
    Two noise steps (Adam's second sees the gradient's size), two copies of the noise (the method's
    whole-batch copies; its docstring explains the repository's loop), and enough retain samples per class
    that the subset is the whole retain set, in order. The noise and the impair data are read off the
    data handed to the impair epoch; the model's impair and repair steps are Adam first steps."""
    import baselines.unsir as unsir

    model, forget, retain = linear(), data(3, [0, 0, 0], seed=2), data(6, [1, 2, 1, 2, 1, 2])
    theta0 = params(model)
    lr, noise_lr, penalty, copies, batch = 0.05, 0.1, 0.1, 2, 2

    noise = torch.randn((batch, 3), generator=torch.Generator().manual_seed(0))
    label = torch.zeros(batch, dtype=torch.long)
    adam = HandAdam(noise_lr)
    for _ in range(2):
        g = -ce_logit_grad(affine(theta0, noise), label) @ theta0[0] + 2 * penalty * noise / batch
        (noise,) = adam.step((noise,), (g,))
    impair = Subset(torch.cat([noise.repeat(copies, 1), retain.x]),
                    torch.cat([torch.zeros(batch * copies, dtype=torch.long), retain.y]))

    seen: list[Subset] = []
    real = unsir.train_epoch

    def spy(model, data, request, lr, batch_size):  # type: ignore[no-untyped-def]
        seen.append(data)
        real(model, data, request, lr, batch_size)

    monkeypatch.setattr(unsir, "train_epoch", spy)
    out = unlearn("unsir", model, request(Access.RETAIN, forget=forget, retain=retain), noise_batch=batch,
                  noise_steps=2, noise_lr=noise_lr, noise_penalty=penalty, noise_copies=copies, lr=lr,
                  retain_per_class=64, impair_batch_size=64, repair_batch_size=64)

    (impaired, repaired) = seen
    torch.testing.assert_close(impaired.x, impair.x)
    torch.testing.assert_close(impaired.y, impair.y)
    torch.testing.assert_close(repaired.x, retain.x)
    torch.testing.assert_close(repaired.y, retain.y)

    g_w, g_b = param_grads(ce_logit_grad(affine(theta0, impair.x), impair.y), impair.x)
    theta1 = adam_first_step(theta0[0], g_w, lr), adam_first_step(theta0[1], g_b, lr)
    g_w, g_b = param_grads(ce_logit_grad(affine(theta1, retain.x), retain.y), retain.x)
    assert_params(out, (adam_first_step(theta1[0], g_w, lr), adam_first_step(theta1[1], g_b, lr)))


# ------------------------------------------------------------------------------------ Boundary shrink


def test_one_step_boundary_shrink():
    """Boundary Shrink (Chen et al. 2023) as SalUn re-implements it (Fan et al. 2024, `boundary_sh.py`):
    each forget batch is relabelled with the frozen original's prediction at its FGSM point
    x + eps sign(grad_x CE(f0(x), y)), computed by hand (for a linear model grad_x CE = G W with
    G = (softmax(z) - onehot(y)) / n), and the model takes a step on CE(f(x), y_adv) with SGD, momentum 0.9,
    coupled weight decay. No clamp to [0, 1] or rounding to 1/255: the method's docstring says why (inputs
    on the model's scale). The data and eps are such that some labels move to another class than both
    the label and the original's prediction; two epochs pin the momentum and that the second step's labels
    are still the frozen original's (an FGSM step through the model being unlearned would relabel a sample
    there)."""
    model, forget = linear(), data(6, seed=5)
    theta0 = params(model)
    lr, wd, eps = 0.1, 0.01, 0.5
    grad_x = ce_logit_grad(affine(theta0, forget.x), forget.y) @ theta0[0]
    adv = affine(theta0, forget.x + eps * grad_x.sign()).argmax(dim=1)
    assert (adv != forget.y).any() and (adv != affine(theta0, forget.x).argmax(dim=1)).any()  # informative

    def grads(theta: Params) -> Params:
        return param_grads(ce_logit_grad(affine(theta, forget.x), adv), forget.x)

    def run(epochs: int) -> nn.Linear:
        return unlearn("boundary_shrink", model, request(Access.FORGET, forget=forget), lr=lr, epochs=epochs,
                       batch_size=64, weight_decay=wd, eps=eps)

    g_w, g_b = grads(theta0)
    first = run(epochs=1)
    torch.testing.assert_close(first.weight, sgd_first_step(model.weight, g_w, lr, wd))
    torch.testing.assert_close(first.bias, sgd_first_step(model.bias, g_b, lr, wd))

    sgd = HandSGD(lr, 0.9, wd)
    theta1 = sgd.step(theta0, (g_w, g_b))
    assert_params(run(epochs=2), sgd.step(theta1, grads(theta1)))


# --------------------------------------------------------------------------------- Boundary expanding


def test_one_step_boundary_expand():
    """Boundary Expanding (Chen et al. 2023) as SalUn re-implements it (Fan et al. 2024, `boundary_ex.py`):
    the head widened by a shadow class K, every forget label set to K, CE steps with SGD, momentum 0.9,
    coupled weight decay, over the widened head; the method then drops the shadow row (the paper's
    pruning; SalUn keeps it) and the pinned quantity is the K original rows. Their gradient depends on the
    shadow logit through the softmax, so the shadow row is replayed: nn.Linear's default range
    +-1/sqrt(fan_in), weight then bias, from torch.Generator().manual_seed(seed), the request's generator
    before any shuffle. The model is nn.Sequential(linear) because the method finds the head inside the
    model. Two epochs pin the momentum."""
    inner, forget = linear(), data(4, seed=2)
    model = nn.Sequential(inner)
    lr, wd = 0.1, 0.01
    generator = torch.Generator().manual_seed(0)
    bound = 1 / math.sqrt(3)
    shadow_w = (torch.rand(3, generator=generator) * 2 - 1) * bound
    shadow_b = (torch.rand(1, generator=generator) * 2 - 1) * bound
    theta0 = torch.cat([inner.weight.detach(), shadow_w[None]]), torch.cat([inner.bias.detach(), shadow_b])
    shadow = torch.full((len(forget),), 3)

    def grads(theta: Params) -> Params:
        return param_grads(ce_logit_grad(affine(theta, forget.x), shadow), forget.x)

    def run(epochs: int) -> nn.Linear:
        out = unlearn("boundary_expand", model, request(Access.FORGET, forget=forget), lr=lr, epochs=epochs,
                      batch_size=64, weight_decay=wd)
        assert isinstance(out[0], nn.Linear) and out[0].out_features == 3  # the original head, K rows
        return out[0]

    g_w, g_b = grads(theta0)
    first = run(epochs=1)
    torch.testing.assert_close(first.weight, sgd_first_step(theta0[0], g_w, lr, wd)[:3])
    torch.testing.assert_close(first.bias, sgd_first_step(theta0[1], g_b, lr, wd)[:3])

    sgd = HandSGD(lr, 0.9, wd)
    theta1 = sgd.step(theta0, (g_w, g_b))
    w2, b2 = sgd.step(theta1, grads(theta1))
    assert_params(run(epochs=2), (w2[:3], b2[:3]))

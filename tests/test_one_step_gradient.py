"""One-step faithfulness of the gradient baselines: the first update of each, on softmax regression
with every batch covering its whole set, equals the update written by hand from the authors' code
(tests/one_step.py has the closed-form gradients). A change to a loss term, the data used, the
optimiser or its settings moves the first step and fails here."""

from __future__ import annotations

import copy
import itertools

import torch

import baselines  # noqa: F401 - registers every baseline
from mubench.access import Access
from mubench.methods import methods
from mubench.request import Subset
from one_step import ce_grads, ce_logit_grad, data, linear, param_grads, request, sgd_first_step


def unlearn_once(method: str, model: torch.nn.Module, req, **hparams):  # type: ignore[no-untyped-def]
    cls = methods.get(method)
    return cls().unlearn(copy.deepcopy(model), req, cls.resolve({"epochs": 1, **hparams}))


def test_one_step_neggrad_plus():
    """SCRUB's small-scale notebook (`run_neggrad_epoch`): loss = alpha (CE_r + wd/2 ||theta -
    theta_0||^2) - (1 - alpha) CE_f on one retain batch paired with one forget batch, plain SGD
    without momentum or weight decay, the model in eval mode. At the first step theta = theta_0, so
    the pull has no gradient: theta_1 = theta_0 - lr (alpha g_r - (1 - alpha) g_f). The second step
    carries momentum 0 and the pull: checked with two epochs below."""
    model, retain, forget = linear(), data(9), data(3, [0, 0, 0], seed=2)
    alpha, lr, pull = 0.9, 0.05, 0.1
    req = request(Access.RETAIN, forget=forget, retain=retain)
    out = unlearn_once("neggrad_plus", model, req, alpha=alpha, lr=lr, batch_size=64, init_penalty=pull)
    (gw_r, gb_r), (gw_f, gb_f) = ce_grads(model, retain), ce_grads(model, forget)
    torch.testing.assert_close(out.weight, sgd_first_step(model.weight, alpha * gw_r - (1 - alpha) * gw_f, lr))
    torch.testing.assert_close(out.bias, sgd_first_step(model.bias, alpha * gb_r - (1 - alpha) * gb_f, lr))
    assert not out.training  # the notebook trains in eval mode

    # two steps: no momentum (theta_2 depends on the gradient at theta_1 only) and the pull term
    two = unlearn_once("neggrad_plus", model, request(Access.RETAIN, forget=forget, retain=retain), alpha=alpha,
                       lr=lr, batch_size=64, init_penalty=pull, epochs=2)
    (gw_r1, gb_r1), (gw_f1, gb_f1) = ce_grads(out, retain), ce_grads(out, forget)
    w2 = out.weight - lr * (alpha * (gw_r1 + pull * (out.weight - model.weight)) - (1 - alpha) * gw_f1)
    b2 = out.bias - lr * (alpha * (gb_r1 + pull * (out.bias - model.bias)) - (1 - alpha) * gb_f1)
    torch.testing.assert_close(two.weight, w2.detach())
    torch.testing.assert_close(two.bias, b2.detach())


def test_neggrad_plus_optimiser_has_no_momentum(monkeypatch):
    """The optimiser NegGrad+ builds is plain SGD: momentum 0, weight decay 0 (the notebook's
    `torch.optim.SGD(model.parameters(), lr=lr, weight_decay=0.0)`)."""
    import baselines.neggrad_plus as neggrad_plus

    built = []
    real = neggrad_plus.sgd

    def spy(model, lr, momentum=0.9, weight_decay=0.0):  # type: ignore[no-untyped-def]
        optimizer = real(model, lr, momentum=momentum, weight_decay=weight_decay)
        built.append(optimizer)
        return optimizer

    monkeypatch.setattr(neggrad_plus, "sgd", spy)
    unlearn_once("neggrad_plus", linear(), request(Access.RETAIN, forget=data(3), retain=data(6)))
    (optimizer,) = built
    assert optimizer.defaults["momentum"] == 0.0 and optimizer.defaults["weight_decay"] == 0.0


MOMENTUM, WEIGHT_DECAY = 0.9, 5e-4  # the OPTML-Group repositories' arg_parser.py defaults


def ce_grads_at(weight: torch.Tensor, bias: torch.Tensor, subset: Subset) -> tuple[torch.Tensor, torch.Tensor]:
    """(dW, db) of the mean cross-entropy on `subset` of a linear layer with hand-computed
    parameters (weight, bias): the closed form of tests/one_step.py, away from any nn.Module."""
    return param_grads(ce_logit_grad(subset.x @ weight.T + bias, subset.y), subset.x)


def sgd_second_step(w1: torch.Tensor, buf1: torch.Tensor, g2: torch.Tensor, lr: float,
                    weight_decay: float = WEIGHT_DECAY) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.optim.SGD's second step with momentum 0.9 (no dampening, no Nesterov): the buffer
    buf2 = 0.9 buf1 + (g2 + wd w1), then w2 = w1 - lr buf2. Returns (w2, buf2)."""
    buf2 = MOMENTUM * buf1 + g2 + weight_decay * w1
    return w1 - lr * buf2, buf2


def test_one_step_finetune():
    """Fine-tuning as Jia et al. 2023 and Fan et al. 2024 run it (`unlearn/FT.py` in both OPTML-Group
    repositories, `FT_iter` without the l1 term): mean cross-entropy on retain batches only, SGD with
    momentum 0.9 and weight decay 5e-4 (`unlearn/impl.py`, arg_parser defaults), so
    theta_1 = theta_0 - lr (g_r + wd theta_0); the forget set plays no part. The second step shows
    the momentum buffer: buf_2 = 0.9 buf_1 + g_r(theta_1) + wd theta_1."""
    model, retain, forget = linear(), data(9), data(3, [0, 0, 0], seed=2)
    lr = 0.3  # large enough that the weight decay's lr * wd * theta is far above the tolerance
    req = request(Access.RETAIN, forget=forget, retain=retain)
    out = unlearn_once("finetune", model, req, lr=lr, batch_size=64)
    w0, b0 = model.weight.detach(), model.bias.detach()
    gw, gb = ce_grads(model, retain)
    w1, b1 = sgd_first_step(w0, gw, lr, WEIGHT_DECAY), sgd_first_step(b0, gb, lr, WEIGHT_DECAY)
    torch.testing.assert_close(out.weight.detach(), w1)
    torch.testing.assert_close(out.bias.detach(), b1)

    two = unlearn_once("finetune", model, request(Access.RETAIN, forget=forget, retain=retain), lr=lr,
                       batch_size=64, epochs=2)
    gw1, gb1 = ce_grads_at(w1, b1, retain)
    w2, _ = sgd_second_step(w1, gw + WEIGHT_DECAY * w0, gw1, lr)
    b2, _ = sgd_second_step(b1, gb + WEIGHT_DECAY * b0, gb1, lr)
    torch.testing.assert_close(two.weight.detach(), w2)
    torch.testing.assert_close(two.bias.detach(), b2)


Pair = tuple[torch.Tensor, torch.Tensor]


def grad_ascent_steps(model: torch.nn.Linear, forget: Subset, lr: float, weight_decay: float) -> tuple[Pair, Pair]:
    """The first two SGD steps (momentum 0.9) of ascent on the mean cross-entropy of `forget`,
    by hand: ((w1, b1), (w2, b2))."""
    w0, b0 = model.weight.detach(), model.bias.detach()
    gw, gb = ce_grads(model, forget)
    w1, b1 = sgd_first_step(w0, -gw, lr, weight_decay), sgd_first_step(b0, -gb, lr, weight_decay)
    gw1, gb1 = ce_grads_at(w1, b1, forget)
    w2, _ = sgd_second_step(w1, -gw + weight_decay * w0, -gw1, lr, weight_decay)
    b2, _ = sgd_second_step(b1, -gb + weight_decay * b0, -gb1, lr, weight_decay)
    return (w1, b1), (w2, b2)


def assert_two_ascent_steps(method: str, weight_decay: float) -> None:
    """`method`'s first two steps on a three-sample forget set equal grad_ascent_steps' hand values
    (lr 0.3: large enough that lr * wd * theta is far above the tolerance)."""
    model, forget, lr = linear(), data(3, [0, 1, 1], seed=2), 0.3
    (w1, b1), (w2, b2) = grad_ascent_steps(model, forget, lr, weight_decay)
    for epochs, (weight, bias) in ((1, (w1, b1)), (2, (w2, b2))):
        out = unlearn_once(method, model, request(Access.FORGET, forget=forget), lr=lr, batch_size=64, epochs=epochs)
        torch.testing.assert_close(out.weight.detach(), weight)
        torch.testing.assert_close(out.bias.detach(), bias)


def test_one_step_grad_ascent():
    """Gradient ascent as Jia et al. 2023 run it (`unlearn/GA.py`, `GA`): loss = -CE on forget batches,
    stepped by the optimiser that `unlearn/impl.py` builds for every method, SGD with momentum 0.9
    and weight decay 5e-4 (arg_parser defaults; the README's GA line sets only lr and epochs), so
    theta_1 = theta_0 - lr (-g_f + wd theta_0), and buf_2 = 0.9 buf_1 - g_f(theta_1) + wd theta_1."""
    assert_two_ascent_steps("grad_ascent", WEIGHT_DECAY)


def test_bias_ga_steps_without_weight_decay():
    """bias_ga (a reconstruction of Aylapuram et al. 2025 from its abstract) shares grad_ascent's
    update but keeps weight decay 0, as it did before grad_ascent took the repositories' 5e-4: its
    first two steps are the ascent steps above with wd = 0."""
    assert_two_ascent_steps("bias_ga", 0.0)


def test_one_step_random_label():
    """Random labels as Fan et al. 2024 run it (`Classification/unlearn/RL.py`, the CIFAR-10 branch):
    each epoch one pass over the relabelled forget set, then one over the retain set, every batch an
    SGD step (momentum 0.9, weight decay 5e-4) on the mean cross-entropy. The label draw follows the
    method's docstring instead (a wrong class, as the SSD repository draws it, not RL.py's
    `torch.randint(0, num_classes)`): with two classes the only wrong class is 1 - y, so the draw is
    forced. Step 1: theta_1 = theta_0 - lr (g_f(1 - y) + wd theta_0); step 2 on the retain set
    carries the momentum: buf_2 = 0.9 buf_1 + g_r(theta_1) + wd theta_1."""
    model = linear(n_out=2)
    forget, retain = data(3, [0, 1, 0], seed=2), data(8, [0, 1] * 4)
    lr = 0.3
    req = request(Access.RETAIN, num_classes=2, forget=forget, retain=retain)
    out = unlearn_once("random_label", model, req, lr=lr, batch_size=64)

    w0, b0 = model.weight.detach(), model.bias.detach()
    gw, gb = ce_grads(model, Subset(forget.x, 1 - forget.y))
    w1, b1 = sgd_first_step(w0, gw, lr, WEIGHT_DECAY), sgd_first_step(b0, gb, lr, WEIGHT_DECAY)
    gw1, gb1 = ce_grads_at(w1, b1, retain)
    w2, _ = sgd_second_step(w1, gw + WEIGHT_DECAY * w0, gw1, lr)
    b2, _ = sgd_second_step(b1, gb + WEIGHT_DECAY * b0, gb1, lr)
    torch.testing.assert_close(out.weight.detach(), w2)
    torch.testing.assert_close(out.bias.detach(), b2)


def test_one_step_l1_sparse():
    """l1-sparse fine-tuning as Jia et al. 2023 write it (`unlearn/FT.py`, `FT_l1`): on retain batches,
    CE + gamma_e ||theta||_1 over every parameter (biases included), gamma_e = alpha (1 - e / (T -
    no_l1_epochs)), SGD with momentum 0.9 and weight decay 5e-4. The l1 term's gradient is
    gamma_e sign(theta), so theta_1 = theta_0 - lr (g_r + alpha sign(theta_0) + wd theta_0). With
    T = 2 epochs the second step has gamma_1 = alpha / 2 and the momentum buffer:
    buf_2 = 0.9 buf_1 + g_r(theta_1) + alpha / 2 sign(theta_1) + wd theta_1."""
    model, retain, forget = linear(), data(9), data(3, [0, 0, 0], seed=2)
    lr, alpha = 0.3, 0.05
    out = unlearn_once("l1_sparse", model, request(Access.RETAIN, forget=forget, retain=retain), lr=lr,
                       alpha=alpha, batch_size=64)
    w0, b0 = model.weight.detach(), model.bias.detach()
    gw, gb = ce_grads(model, retain)
    gw, gb = gw + alpha * w0.sign(), gb + alpha * b0.sign()
    w1, b1 = sgd_first_step(w0, gw, lr, WEIGHT_DECAY), sgd_first_step(b0, gb, lr, WEIGHT_DECAY)
    torch.testing.assert_close(out.weight.detach(), w1)
    torch.testing.assert_close(out.bias.detach(), b1)

    two = unlearn_once("l1_sparse", model, request(Access.RETAIN, forget=forget, retain=retain), lr=lr,
                       alpha=alpha, batch_size=64, epochs=2)
    gw1, gb1 = ce_grads_at(w1, b1, retain)
    w2, _ = sgd_second_step(w1, gw + WEIGHT_DECAY * w0, gw1 + alpha / 2 * w1.sign(), lr)
    b2, _ = sgd_second_step(b1, gb + WEIGHT_DECAY * b0, gb1 + alpha / 2 * b1.sign(), lr)
    torch.testing.assert_close(two.weight.detach(), w2)
    torch.testing.assert_close(two.bias.detach(), b2)


def salun_epoch(w0: torch.Tensor, b0: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor], forget: Subset,
                retain: Subset, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SalUn's first epoch on a one-batch forget set (labels as given) and a one-batch retain set, by
    hand: each step masks the gradient, takes SGD's step (momentum 0.9, weight decay 5e-4), then puts
    masked-out weights back to theta_0 and zeroes their momentum. Returns (w2, b2)."""
    out = []
    grads_0 = ce_grads_at(w0, b0, forget)
    firsts = [(torch.where(m, sgd_first_step(p, m * g, lr, WEIGHT_DECAY), p), m * (m * g + WEIGHT_DECAY * p))
              for p, g, m in zip((w0, b0), grads_0, masks)]
    grads_1 = ce_grads_at(firsts[0][0], firsts[1][0], retain)
    for p, (p1, buf1), g1, m in zip((w0, b0), firsts, grads_1, masks):
        p2, _ = sgd_second_step(p1, buf1, m * g1, lr)
        out.append(torch.where(m, p2, p))
    return out[0], out[1]


def test_one_step_salun():
    """SalUn (Fan et al. 2024). The mask as `Classification/generate_mask.py` builds it: the forget
    set's cross-entropy gradient in eval mode, and the top half (mask_ratio 0.5) of its absolute
    values over all parameters under one threshold. Then `Classification/unlearn/RL.py`'s CIFAR-10
    branch with that mask: a forget pass with labels drawn uniformly from all classes, then a retain
    pass; every step multiplies the gradient by the mask, takes SGD's step (momentum 0.9, weight decay
    5e-4), and resets masked-out weights to theta_0 with their momentum zeroed. Masked-out weights
    stay bit-identical; the masked-in ones follow the two hand steps for the labels drawn, found
    among all 3^2 labellings of the two forget samples (across seeds, a drawn label equals the true
    one, which RL.py allows)."""
    model, forget, retain = linear(), data(2, [0, 1], seed=2), data(9)
    lr = 0.3
    w0, b0 = model.weight.detach(), model.bias.detach()

    gw, gb = ce_grads(model, forget)  # the sign (RL.py takes -CE) is lost in the absolute value
    scores = torch.cat([gw.abs().flatten(), gb.abs()])
    keep = torch.zeros(len(scores), dtype=torch.bool)
    keep[scores.argsort(descending=True)[:len(scores) // 2]] = True
    masks = (keep[:w0.numel()].view_as(w0), keep[w0.numel():])

    candidates = {labels: salun_epoch(w0, b0, masks, Subset(forget.x, torch.tensor(labels)), retain, lr)
                  for labels in itertools.product(range(3), repeat=2)}
    drawn = set()
    for seed in range(4):
        req = request(Access.RETAIN, forget=forget, retain=retain, seed=seed)
        out = unlearn_once("salun", model, req, lr=lr, batch_size=64)
        w, b = out.weight.detach(), out.bias.detach()
        assert torch.equal(w[~masks[0]], w0[~masks[0]]) and torch.equal(b[~masks[1]], b0[~masks[1]])
        assert (w[masks[0]] != w0[masks[0]]).all() and (b[masks[1]] != b0[masks[1]]).all()
        matches = [labels for labels, (w2, b2) in candidates.items()
                   if torch.allclose(w, w2, rtol=1.3e-6, atol=1e-5) and torch.allclose(b, b2, rtol=1.3e-6, atol=1e-5)]
        assert len(matches) == 1, matches
        torch.testing.assert_close((w, b), candidates[matches[0]])
        drawn.add(matches[0])
    assert any(label == true for labels in drawn for label, true in zip(labels, forget.y.tolist()))

"""One-step faithfulness of the gradient baselines: the first update of each, on softmax regression
with every batch covering its whole set, equals the update written by hand from the authors' code
(tests/one_step.py has the closed-form gradients). A change to a loss term, the data used, the
optimiser or its settings moves the first step and fails here."""

from __future__ import annotations

import copy

import torch

import baselines  # noqa: F401 - registers every baseline
from mubench.access import Access
from mubench.methods import methods
from one_step import ce_grads, data, linear, request, sgd_first_step


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

"""One-step faithfulness of the continual (learn/unlearn stream) methods: UnCLe (Adhikari,
Kumaravelu & Srijith 2025; the authors' `main.py` with its `train` and `forget` loops,
`toolbox/regularisation.py` for `output_reg`, `remember_reg` and `noisy_forget`, and
`hypernet/hnet/layer_chunked_hypernet_yaml.py` for the chunked hypernetwork).

The target network is a softmax regression (`nn.Linear(3, 4)`, 16 parameters) on two tasks of two
classes each, and the hypernetwork has 3 chunks of 6 outputs (the last chunk is cut at the 16th).
Everything the method computes is written out here with plain tensor ops in float64, without
autograd and without the method's helpers: the chunked MLP's forward pass (two ReLU layers), its
backward pass layer by layer (dL/dW = G^T A for a layer's output gradient G and input A, the ReLU
gate where the pre-activation is positive), the gradient-norm clip (every gradient times
min(1, 1 / (||g|| + 1e-6))) and Adam's first and second steps. A change to a loss term, its weight,
the noise drawn, the parameters stepped or clipped, or the optimiser's settings moves a step away
from the hand value and fails.

Random draws are replayed: a request seeds `request.generator` with
`torch.Generator().manual_seed(seed)`, and the unlearn loop draws its noise from it, one
(S, n_params) block per step. Two learning-step tests pin what an earlier version got wrong against
the authors' code (it froze e_t and moved the other tasks' embeddings, and trained the chunk
embeddings on the first task)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

import baselines  # noqa: F401 - registers every baseline
from mubench.continual.methods import ContinualMethod, StreamRequest, continual_methods
from mubench.continual.training import StreamSubset
from mubench.tasks.spec import Recipe
from one_step import adam_first_step, ce_logit_grad, param_grads

N_IN, N_CLASSES = 3, 4
N_PARAMS = N_CLASSES * N_IN + N_CLASSES  # the target's weight, then its bias
N_CHUNKS, CHUNK = 3, 6  # ceil(16 / 3) outputs per chunk; 18 generated, the last two cut
MASK = torch.tensor([[True, True, False, False], [False, False, True, True]])  # task 0: classes 0, 1
RECIPE = Recipe(optimizer="adam", lr=1e-3, epochs=1, batch_size=64)  # one batch holds a whole task
MLP = ("mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias", "mlp.4.weight", "mlp.4.bias")
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, which main.py keeps

Params = dict[str, torch.Tensor]


# ---- the request and the method -----------------------------------------------------------------

def stream_request(op: str, task: int, subsets: dict[int, StreamSubset], retained: tuple[int, ...],
                   seed: int) -> StreamRequest:
    return StreamRequest(op, task, subsets, False, retained, MASK, RECIPE, torch.device("cpu"), seed)


def task_data(task: int, n: int = 6) -> StreamSubset:
    """n inputs of task `task`, its two classes in turn."""
    generator = torch.Generator().manual_seed(10 + task)
    y = torch.tensor([2 * task, 2 * task + 1])[torch.arange(n) % 2]
    return StreamSubset(torch.randn(n, N_IN, generator=generator), y, torch.full((n,), task))


def uncle(**hparams: object) -> ContinualMethod:
    cls = continual_methods.get("uncle")
    return cls(cls.resolve({"epochs": 1, "n_chunks": N_CHUNKS, **hparams}))


def state(method: ContinualMethod) -> Params:
    """The hypernetwork's parameters (embeddings and MLP) as float64 copies."""
    return {name: p.detach().double().clone() for name, p in method.hnet.named_parameters()}


# ---- the chunked hypernetwork by hand -------------------------------------------------------------

def forward(p: Params, task: int) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """h(e_task): each chunk j is MLP([e_task, c_j]); the chunks concatenated and cut to N_PARAMS.
    Returns h and the activations the backward pass needs."""
    x = torch.cat([p["task_embeddings"][task].expand(N_CHUNKS, -1), p["chunk_embeddings"]], dim=1)
    z1 = x @ p["mlp.0.weight"].T + p["mlp.0.bias"]
    a1 = z1.clamp(min=0)
    z2 = a1 @ p["mlp.2.weight"].T + p["mlp.2.bias"]
    a2 = z2.clamp(min=0)
    out = a2 @ p["mlp.4.weight"].T + p["mlp.4.bias"]
    return out.reshape(-1)[:N_PARAMS], (x, z1, a1, z2, a2)


def backward(p: Params, task: int, grad_h: torch.Tensor) -> Params:
    """The gradients of a loss whose gradient with respect to h(e_task) is `grad_h`: the two cut
    outputs get none, then layer by layer back to the inputs [e_task, c_j]; the task embedding's
    gradient sums its rows over the chunks. Keys: the MLP's names, "task" (e_task) and "chunks"."""
    _, (x, z1, a1, z2, a2) = forward(p, task)
    g3 = F.pad(grad_h, (0, N_CHUNKS * CHUNK - N_PARAMS)).view(N_CHUNKS, CHUNK)
    d2 = (g3 @ p["mlp.4.weight"]) * (z2 > 0)
    d1 = (d2 @ p["mlp.2.weight"]) * (z1 > 0)
    dx = d1 @ p["mlp.0.weight"]
    dim = p["task_embeddings"].shape[1]
    return {"mlp.4.weight": g3.T @ a2, "mlp.4.bias": g3.sum(0), "mlp.2.weight": d2.T @ a1, "mlp.2.bias": d2.sum(0),
            "mlp.0.weight": d1.T @ x, "mlp.0.bias": d1.sum(0), "task": dx[:, :dim].sum(0), "chunks": dx[:, dim:]}


def added(a: Params, b: Params) -> Params:
    return {name: a[name] + b[name] for name in a}


def clip_coefficient(grads: list[torch.Tensor], max_norm: float = 1.0) -> float:
    """torch.nn.utils.clip_grad_norm_'s factor: min(1, max_norm / (||all the grads|| + 1e-6))."""
    norm = torch.cat([g.flatten() for g in grads]).pow(2).sum().sqrt().item()
    return min(1.0, max_norm / (norm + 1e-6))


def adam_second_step(w1: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, lr: float) -> torch.Tensor:
    """Adam's second step from w1 after the gradients g1, g2: m = b1 (1 - b1) g1 + (1 - b1) g2,
    v = b2 (1 - b2) g1^2 + (1 - b2) g2^2, w2 = w1 - lr (m / (1 - b1^2)) / (sqrt(v / (1 - b2^2)) + eps)."""
    m = BETA1 * (1 - BETA1) * g1 + (1 - BETA1) * g2
    v = BETA2 * (1 - BETA2) * g1 ** 2 + (1 - BETA2) * g2 ** 2
    return w1 - lr * (m / (1 - BETA1 ** 2)) / ((v / (1 - BETA2 ** 2)).sqrt() + EPS)


def close(actual: torch.Tensor, expected: torch.Tensor, start: torch.Tensor, grads: list[torch.Tensor],
          lr: float) -> None:
    """The step the method took (actual - start) equals the hand step (expected - start). Where every
    clipped gradient of the steps so far is at least 1e-6 (100 times Adam's eps), a step depends on
    the gradients' ratios only, which float32 gets right to about 1e-4: there it must match to 1e-3
    of lr. Elsewhere (dead ReLU units give exact zeros, which both sides keep at zero) a gradient
    near eps moves its step with its last float32 bits, by up to a few per cent of lr: 5 % there."""
    step, hand = actual.double() - start, expected - start
    sharp = torch.stack([g.abs() >= 1e-6 for g in grads]).all(dim=0)
    torch.testing.assert_close(step[sharp], hand[sharp], rtol=0, atol=1e-3 * lr)
    torch.testing.assert_close(step, hand, rtol=0, atol=5e-2 * lr)


# ---- UnCLe: unlearning ----------------------------------------------------------------------------

def test_one_step_uncle():
    """UnCLe's unlearning, as the `forget` loop of the authors' `main.py` runs it: no data; a fresh
    Adam (lr = ulr) on the hypernetwork's own parameters only (`hnet.parameters()`: the MLP, not the
    task or chunk embeddings); each step the loss `remember_reg + gamma * noisy_forget` of
    `toolbox/regularisation.py`, the gradient clipped to norm 1 over those same parameters.
    remember_reg = sum over the other occupied tasks t of ||h(e_t) - h*(e_t)||^2 / (occupied - 1),
    h* the hypernetwork frozen after the last request; noisy_forget = (1/S) sum_s ||h(e_u) - eps_s||^2,
    fresh eps_s ~ N(0, I) each step.

    Step 1: h = h*, so only the noise term has a gradient, dL/dh(e_u) = gamma (2/S) sum_s (h - eps_s),
    and phi_1 = phi_0 - ulr g' / (|g'| + eps), g' the clipped gradient. Step 2 pins what Adam's first
    step cannot see (it is nearly blind to the gradient's scale): the retained task's pull
    2 (h_1(e_1) - h*(e_1)) against gamma times the noise term, and the clip, through Adam's moments:
    here the first gradient's norm is below 1 and the second's above, so the clip's threshold and
    scope change the ratio of the two clipped gradients. Then the step count shrinks to int(0.9 n),
    the forgotten task leaves the list, and the model returned holds the retained task's network."""
    gamma, ulr, samples, seed = 0.05, 1e-3, 4, 7

    def learned(n_forget_epochs: int) -> tuple[ContinualMethod, nn.Module]:
        method = uncle(gamma=gamma, ulr=ulr, n_sampling=samples, n_forget_epochs=n_forget_epochs)
        model = method.learn(nn.Linear(N_IN, N_CLASSES), 0, stream_request("learn", 0, {0: task_data(0)}, (0,), 1))
        return method, method.learn(model, 1, stream_request("learn", 1, {1: task_data(1)}, (0, 1), 2))

    one, model_one = learned(1)
    two, model_two = learned(2)
    p0 = state(one)
    assert all(torch.equal(p0[name], q) for name, q in state(two).items())  # the same learning

    out_one = one.unlearn(model_one, 0, stream_request("unlearn", 0, {}, (1,), seed))
    two.unlearn(model_two, 0, stream_request("unlearn", 0, {}, (1,), seed))
    after_one, after_two = state(one), state(two)

    generator = torch.Generator().manual_seed(seed)  # the request's generator: one block per step
    noise = [torch.randn(samples, N_PARAMS, generator=generator).double() for _ in range(2)]

    # step 1: the noise term alone
    h0, _ = forward(p0, 0)
    g1 = backward(p0, 0, gamma * 2 / samples * (h0 - noise[0]).sum(0))
    c1 = clip_coefficient([g1[name] for name in MLP])
    assert c1 == 1.0  # below the threshold: the clip acts on the second step only
    p1 = dict(p0, **{name: adam_first_step(p0[name], c1 * g1[name], ulr) for name in MLP})
    for name in MLP:
        close(after_one[name], p1[name], p0[name], [c1 * g1[name]], ulr)
    for name in ("task_embeddings", "chunk_embeddings"):  # not stepped: outside hnet.parameters()
        assert torch.equal(after_one[name], p0[name]) and torch.equal(after_two[name], p0[name])

    # step 2: the noise term at phi_1 with the second block, plus the pull on the retained task 1
    h1_forgotten, _ = forward(p1, 0)
    h1_retained, h0_retained = forward(p1, 1)[0], forward(p0, 1)[0]
    forget_grads = backward(p1, 0, gamma * 2 / samples * (h1_forgotten - noise[1]).sum(0))
    remember_grads = backward(p1, 1, 2 * (h1_retained - h0_retained) / 1)  # one retained task
    g2 = added(forget_grads, remember_grads)
    c2 = clip_coefficient([g2[name] for name in MLP])
    assert c2 < 1.0
    for name in MLP:
        expected = adam_second_step(p1[name], c1 * g1[name], c2 * g2[name], ulr)
        close(after_two[name], expected, p1[name], [c1 * g1[name], c2 * g2[name]], ulr)

    # bookkeeping: int(0.9 n) steps next time; task 0 forgotten; the model holds task 1's network
    assert (one.n_forget_epochs, two.n_forget_epochs) == (0, 1)
    assert one.learned == [1] and two.learned == [1]
    h_out = forward(after_one, 1)[0].float()
    torch.testing.assert_close(out_one.weight.detach(), h_out[:N_CLASSES * N_IN].view(N_CLASSES, N_IN))
    torch.testing.assert_close(out_one.bias.detach(), h_out[N_CLASSES * N_IN:])


# ---- UnCLe: learning ------------------------------------------------------------------------------

def first_learn() -> tuple[Params, Params, StreamSubset, float]:
    """The stream's first request, learn task 0, run for one step; returns (phi_0, phi_1, data, lr).
    phi_0 is read after the method's own set-up builds the hypernetwork, which `learn` then keeps."""
    lr = 1e-3
    method, model, data = uncle(lr=lr), nn.Linear(N_IN, N_CLASSES), task_data(0)
    request = stream_request("learn", 0, {0: data}, (0,), 1)
    method._setup(model, request)
    p0 = state(method)
    method.learn(model, 0, request)
    return p0, state(method), data, lr


def learn_grads(p: Params, task: int, data: StreamSubset) -> Params:
    """The mean cross-entropy of the target network h(e_task) on `data`, each sample scored among
    its task's classes only (the masked head), back-propagated by hand to the hypernetwork."""
    h, _ = forward(p, task)
    weight, bias = h[:N_CLASSES * N_IN].view(N_CLASSES, N_IN), h[N_CLASSES * N_IN:]
    logits = (data.x.double() @ weight.T + bias).masked_fill(~MASK[data.task], float("-inf"))
    grad_w, grad_b = param_grads(ce_logit_grad(logits, data.y), data.x.double())
    return backward(p, task, torch.cat([grad_w.flatten(), grad_b]))


def test_uncle_first_learn_step():
    """UnCLe's first learning step on the hypernetwork's MLP, as the `train` loop of the authors'
    `main.py` runs it on the first task: the cross-entropy of the network generated from e_0 (the
    output regulariser of `toolbox/regularisation.py` is zero: no task is occupied yet), a fresh Adam
    (lr) on `hnet.parameters()` and e_0, the MLP's gradient clipped to norm 1. Adam's first step is
    w - lr g' / (|g'| + eps), which the clip factor c moves by lr eps / (c |g|) at most, so this step
    pins the loss, the data, the masks and lr, and the clip hardly at all (the unlearning test pins
    it). Task 1's embedding stays. The steps of e_0 and of the chunk embeddings are the two tests
    below."""
    p0, p1, data, lr = first_learn()
    g = learn_grads(p0, 0, data)
    c = clip_coefficient([g[name] for name in MLP])
    assert c < 1.0  # the clip acts, though the first step cannot show it
    for name in MLP:
        close(p1[name], adam_first_step(p0[name], c * g[name], lr), p0[name], [c * g[name]], lr)
    assert torch.equal(p1["task_embeddings"][1], p0["task_embeddings"][1])


def test_uncle_first_learn_step_moves_the_task_embedding():
    """The authors' first learning step (`main.py`, `train`) moves e_0 by Adam's first step on the
    cross-entropy's gradient, dL/de_0 = the sum over chunks of the MLP's input gradient in e_0's
    coordinates; the authors clip `hnet.parameters()` only, so e_0's gradient is unclipped."""
    p0, p1, data, lr = first_learn()
    g = learn_grads(p0, 0, data)
    e0, e1 = p0["task_embeddings"][0], p1["task_embeddings"][0]
    close(e1, adam_first_step(e0, g["task"], lr), e0, [g["task"]], lr)


def test_uncle_first_learn_step_leaves_the_chunk_embeddings():
    """The authors' first learning step (`main.py`, `train`, on the first task) leaves the chunk
    embeddings as they are: built by `init_embeddings` as a list of tensors that
    `hnet.parameters()` does not see, they are in no optimiser, so they keep their initial values
    through the whole run (`freeze_chunk_embeddings` after the first task changes nothing)."""
    p0, p1, _, _ = first_learn()
    assert torch.equal(p1["chunk_embeddings"], p0["chunk_embeddings"])

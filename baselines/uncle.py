"""UnCLe: a hypernetwork that owns every task's weights, and data-free unlearning by aligning the
unlearned task's generated weights with Gaussian noise (Adhikari, Kumaravelu & Srijith 2025, "An
Unlearning Framework for Continual Learning", arXiv 2509.17530; settings read from the code,
visprasadh/uncle: main.py, toolbox/regularisation.py, hypernet/hnet/layer_chunked_hypernet_yaml.py,
config/main/*.yaml; see docs/methods.md, uncle).

Model: a chunked hypernetwork h_phi(e_t, c_j), an MLP with ReLU on the task embedding e_t joined
to the chunk embedding c_j, emits chunk j of the flat parameter vector of the target network (the
stream task's own model); the chunks of one task, concatenated and cut to the target's parameter
count, are that task's whole network, head included.

- learn t: Adam (lr) on phi and e_t (the code's `Adam(list(hnet.parameters()) +
  [task_embeddings[task]])`; the chunk embeddings stay at their random start, as in the code,
  where they are a plain list outside every optimiser), StepLR(25 epochs, 0.5), gradient-norm
  clip 1.0 on phi's parameters only (`clip_grad_norm_(hnet.parameters(), 1)`: e_t is not clipped),
  loss
  CE(f_{h(e_t)}(x), y) + beta * (1/T) * sum_{t' retained, t' != t} ||h_phi(e_t') - h_phi*(e_t')||^2
  (squared L2 summed over every generated parameter; T = number of tasks; phi* the hypernet
  frozen at the start of the request), as `output_reg` in the code.
- unlearn u (no data at all): Adam (ulr) on phi only, n_forget_epochs full-batch steps of
  R_remember + gamma * R_forget, R_remember = mean over the retained tasks of
  ||h_phi(e_t) - h_phi*(e_t)||^2 (the code's sum / (active - 1); zero when nothing is retained,
  where the code divides 0 by 0), R_forget = (1/S) sum_s ||h_phi(e_u) - eps_s||^2 with eps_s ~
  N(0, I) drawn afresh per sample and step (from the request's generator); clip 1.0; afterwards
  n_forget_epochs <- int(0.9 * n_forget_epochs) and u leaves every later regulariser.

Defaults: beta 0.1, gamma 0.01, lr = ulr = 1e-3, S 10, n_forget_epochs 100 (the Split-CIFAR-100 /
Permuted-MNIST configs; Permuted-MNIST is the one MNIST stream). Scaled to the smoke target (an MLP
784-256-256-10, 269,322 parameters, against a ResNet-18's ~11 M): embeddings 32 + 32 and 200
chunks as in the code, hidden widths (128, 256) instead of (128, 256, 512), so each chunk is
ceil(269,322 / 200) = 1,347 outputs of one linear layer (about 0.4 M hypernet parameters). Epochs
and batch size per task are the stream profile's recipe (smoke: 3 epochs of batch 64), so every
method learns from the same budget; `epochs` overrides the count (0 = the recipe's).

Deliberate difference: the hypernetwork's layers start from nn.Linear's default initialisation;
the code initialises its output heads with a "hyperfan" uniform scheme
(`layer_chunked_hypernet_yaml.py`) that scales them to the target's fan-in.

Evaluation: UnCLe scores task t on the network h(e_t). The harness asks every continual method
for the network of each task (ContinualMethod.task_model), so here task t is scored on the target
architecture holding h(e_t), as in the code; the model a request returns holds the network of
the latest retained task. The code's multi-head setting is the harness's masked shared head;
each task's head rows come from its own generated weights, so it is exactly multi-headed. Not
implemented: `partial` (last layer only), BatchNorm parameters (the smoke MLP has none).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from mubench.continual.methods import ContinualMethod, StreamRequest, register_continual_method
from mubench.continual.training import masked_logits
from mubench.transfer import to_device


class ChunkedHypernet(nn.Module):
    """h(e_t, c_j) for every chunk j at once; `forward(t)` is task t's flat parameter vector."""

    def __init__(self, n_tasks: int, n_params: int, task_dim: int = 32, chunk_dim: int = 32,
                 n_chunks: int = 200, hidden: tuple[int, ...] = (128, 256)) -> None:
        super().__init__()
        self.n_params, self.chunk_size = n_params, math.ceil(n_params / n_chunks)
        self.task_embeddings = nn.Parameter(torch.randn(n_tasks, task_dim))
        self.chunk_embeddings = nn.Parameter(torch.randn(n_chunks, chunk_dim))
        layers: list[nn.Module] = []
        width = task_dim + chunk_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, self.chunk_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, task: int) -> torch.Tensor:
        e = self.task_embeddings[task].expand(len(self.chunk_embeddings), -1)
        chunks = self.mlp(torch.cat([e, self.chunk_embeddings], dim=1))
        return chunks.reshape(-1)[: self.n_params]


def output_regulariser(hnet: nn.Module, targets: dict[int, torch.Tensor]) -> torch.Tensor:
    """sum over tasks of ||h(e_t) - target_t||^2 (targets: the frozen hypernet's outputs)."""
    total = torch.zeros((), device=next(hnet.parameters()).device)
    for task, target in targets.items():
        total = total + (hnet(task) - target).pow(2).sum()
    return total


def noise_alignment(generated: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """R_forget = (1/S) sum_s ||generated - noise_s||^2 for noise of shape (S, n_params)."""
    return (generated.unsqueeze(0) - noise).pow(2).sum(dim=1).mean()


def unflatten(model: nn.Module, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """A flat parameter vector as {name: tensor} in the order of model.named_parameters()."""
    params, start = {}, 0
    for name, p in model.named_parameters():
        params[name] = flat[start:start + p.numel()].view_as(p)
        start += p.numel()
    return params


@register_continual_method("uncle")
class UnCLe(ContinualMethod):
    keeps_data = False
    paper = "UnCLe (Adhikari, Kumaravelu & Srijith 2025, arXiv 2509.17530; visprasadh/uncle)"
    authors_code = ("visprasadh/uncle@f9f1e21 main.py, toolbox/regularisation.py, "
                    "hypernet/hnet/layer_chunked_hypernet_yaml.py, config/main/*.yaml")
    version = "2"  # 2: learning moves e_t (it froze e_t and moved the others), chunk embeddings fixed, clip on phi
    space = {
        "beta": (0.1, [0.001, 0.01, 0.1, 1.0]),
        "gamma": (0.01, [0.001, 0.01, 0.1]),  # the intensity: weight of the noise alignment
        "lr": (1e-3, [1e-4, 1e-3]),
        "ulr": (1e-3, [1e-4, 1e-3, 1e-2]),
        "n_sampling": (10, [1, 10]),
        "n_forget_epochs": (100, [50, 100, 200]),
        "epochs": (0, [0, 5, 10]),
        "n_chunks": (200, [100, 200]),
    }

    def __init__(self, hp) -> None:  # type: ignore[no-untyped-def]
        super().__init__(hp)
        for key in ("beta", "gamma", "lr", "ulr"):
            if hp[key] < 0 or (key in ("lr", "ulr") and hp[key] == 0):
                raise ValueError(f"uncle: {key} must be {'positive' if 'lr' in key else 'non-negative'}, got {hp[key]}")
        for key in ("n_sampling", "n_forget_epochs", "n_chunks"):
            if hp[key] < 1:
                raise ValueError(f"uncle: {key} must be at least 1, got {hp[key]}")
        self.hnet: ChunkedHypernet | None = None
        self.template: nn.Module | None = None
        self.n_forget_epochs = int(hp.n_forget_epochs)
        self.learned: list[int] = []  # in order; unlearned tasks are removed

    # -- the hypernetwork's networks --------------------------------------------------------------
    def _setup(self, model: nn.Module, request: StreamRequest) -> None:
        if self.hnet is not None:
            return
        n_params = sum(p.numel() for p in model.parameters())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(request.seed)
            self.hnet = ChunkedHypernet(request.mask.shape[0], n_params, n_chunks=int(self.hp.n_chunks))
        self.hnet.to(request.device)
        self.template = copy.deepcopy(model)

    def task_model(self, model: nn.Module, task_id: int) -> nn.Module:
        """Task t's network, scored by the harness: the target architecture holding h(e_t)."""
        return self.network(task_id) if self.hnet is not None else model

    def network(self, task: int) -> nn.Module:
        """Task t's network: the target architecture holding h(e_t)."""
        model = copy.deepcopy(self.template)
        self._write(model, task)
        return model

    @torch.no_grad()
    def _write(self, model: nn.Module, task: int) -> None:
        for name, value in unflatten(model, self.hnet(task)).items():
            model.get_parameter(name).copy_(value)

    def _returned(self, model: nn.Module, fallback: int) -> nn.Module:
        """The harness's single model: the weights of the latest retained task (see the docstring)."""
        self._write(model, self.learned[-1] if self.learned else fallback)
        model.eval()
        return model

    def _frozen_targets(self, tasks) -> dict[int, torch.Tensor]:  # type: ignore[no-untyped-def]
        with torch.no_grad():
            return {t: self.hnet(t).detach().clone() for t in tasks}

    # -- requests ---------------------------------------------------------------------------------
    def learn(self, model: nn.Module, task_id: int, request: StreamRequest) -> nn.Module:
        self._setup(model, request)
        hnet, data = self.hnet, request.data(task_id)
        n_tasks = request.mask.shape[0]
        targets = self._frozen_targets([t for t in request.retained if t != task_id])
        mlp_params = list(hnet.mlp.parameters())
        groups = [{"params": mlp_params}, {"params": [hnet.task_embeddings]}]
        hnet.task_embeddings.requires_grad_(True)
        hnet.chunk_embeddings.requires_grad_(False)
        optimizer = torch.optim.Adam(groups, lr=self.hp.lr)
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=25, gamma=0.5)
        epochs = int(self.hp.epochs) or request.recipe.epochs
        current_row = torch.zeros(n_tasks, 1, device=request.device)
        current_row[task_id] = 1.0  # only e_t of the current task moves (Adam leaves zero-gradient rows still)
        hnet.train()
        for _ in range(epochs):
            for x, y, task in request.batches_of(data, request.recipe.batch_size):
                logits = functional_call(model, unflatten(model, hnet(task_id)), (x,))
                loss = F.cross_entropy(masked_logits(logits, task, request.mask), y)
                if targets:
                    loss = loss + self.hp.beta / n_tasks * output_regulariser(hnet, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                hnet.task_embeddings.grad.mul_(current_row)
                nn.utils.clip_grad_norm_(mlp_params, 1.0)
                optimizer.step()
            schedule.step()
        hnet.eval()
        self.learned.append(task_id)
        return self._returned(model, task_id)

    def unlearn(self, model: nn.Module, task_id: int, request: StreamRequest) -> nn.Module:
        """Data-free: touches neither request.data nor any stored sample."""
        self._setup(model, request)
        hnet = self.hnet
        remember = [t for t in request.retained if t != task_id]
        targets = self._frozen_targets(remember)
        params = list(hnet.mlp.parameters())
        hnet.task_embeddings.requires_grad_(False)
        hnet.chunk_embeddings.requires_grad_(False)
        optimizer = torch.optim.Adam(params, lr=self.hp.ulr)
        hnet.train()
        for _ in range(self.n_forget_epochs):
            noise = to_device(torch.randn(int(self.hp.n_sampling), hnet.n_params, generator=request.generator), request.device)
            loss = self.hp.gamma * noise_alignment(hnet(task_id), noise)
            if remember:
                loss = loss + output_regulariser(hnet, targets) / len(remember)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        hnet.eval()
        hnet.task_embeddings.requires_grad_(True)
        self.n_forget_epochs = int(0.9 * self.n_forget_epochs)
        if task_id in self.learned:
            self.learned.remove(task_id)
        return self._returned(model, task_id)


__all__ = ["ChunkedHypernet", "UnCLe", "noise_alignment",
           "output_regulariser", "unflatten"]

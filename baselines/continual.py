"""Baseline methods for continual learn/unlearn streams (mubench.continual).

- `retrain`: exact unlearning, the oracle every stream is measured against: after every request,
  train from scratch on the tasks retained then (e.g. Bourtoule et al. 2021, SISA, as the gold
  standard). It keeps every retained task's data and uses the harness's own seeds and recipe, so
  on the CPU it reproduces the oracle bit for bit: its gaps are zero and its cost is the cost to beat.
- `sequential`: plain continual learning with gradient-ascent unlearning, the data-based
  baseline UnCLe argues against (Adhikari et al. 2025: conventional unlearning inside a CL
  pipeline harms retained tasks and relapses). Learn = fine-tune the current model on the new
  task with the profile's recipe (sequential fine-tuning, "None" in van de Ven & Tolias 2019);
  unlearn = gradient ascent (NegGrad; Golatkar et al. 2020, Thudi et al. 2022) on the unlearned
  task's training data, which it must therefore keep (keeps_data = True; the harness drops that
  data after the unlearn request). The ascent uses the offline GA baseline's canonical setting
  (baselines/grad_ascent.py: SGD with momentum 0.9, lr 1e-4, 5 epochs, batch 128; Jia et al.
  2023) on the task-incremental loss. Unbounded ascent on a shared body harms the retained tasks
  too, which is the point UnCLe makes about such baselines.
- `no_unlearn`: learns like `sequential` and ignores every unlearn request: the lower bound on
  forgetting. It keeps no data.
"""

from __future__ import annotations

import torch
from torch import nn

from mubench.continual.methods import ContinualMethod, StreamRequest, register_continual_method


def _fine_tune(model: nn.Module, task_id: int, request: StreamRequest) -> nn.Module:
    return request.fit(model, request.data(task_id))


@register_continual_method("retrain")
class Retrain(ContinualMethod):
    keeps_data = True
    paper = "exact unlearning by retraining from scratch on the retained tasks (Bourtoule et al. 2021)"

    def learn(self, model: nn.Module, task_id: int, request: StreamRequest) -> nn.Module:
        return self._retrain(request)

    def unlearn(self, model: nn.Module, task_id: int, request: StreamRequest) -> nn.Module:
        return self._retrain(request)

    @staticmethod
    def _retrain(request: StreamRequest) -> nn.Module:
        retained = sorted(request.retained)  # the oracle's order, so the models coincide
        return request.train_from_scratch(request.union(retained) if retained else None)


@register_continual_method("sequential")
class Sequential(ContinualMethod):
    keeps_data = True
    paper = ("sequential fine-tuning (van de Ven & Tolias 2019) + gradient ascent (Golatkar et al. 2020; "
             "Thudi et al. 2022) on the kept data of the unlearned task")
    space = {"unlearn_lr": (1e-4, [1e-5, 1e-4, 1e-3]),
             "unlearn_epochs": (5, [1, 5, 10]),
             "batch_size": (128, [128])}

    def learn(self, model: nn.Module, task_id: int, request: StreamRequest) -> nn.Module:
        return _fine_tune(model, task_id, request)

    def unlearn(self, model: nn.Module, task_id: int, request: StreamRequest) -> nn.Module:
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=self.hp.unlearn_lr, momentum=0.9)
        for x, y, task in request.batches_of(request.data(task_id), self.hp.batch_size, self.hp.unlearn_epochs):
            loss = -request.loss(model, x, y, task)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        return model


@register_continual_method("no_unlearn")
class NoUnlearn(ContinualMethod):
    keeps_data = False
    paper = "sequential fine-tuning that ignores unlearn requests: the lower bound on forgetting"

    def learn(self, model: nn.Module, task_id: int, request: StreamRequest) -> nn.Module:
        return _fine_tune(model, task_id, request)

    def unlearn(self, model: nn.Module, task_id: int, request: StreamRequest) -> nn.Module:
        return model

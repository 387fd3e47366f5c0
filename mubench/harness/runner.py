"""From a run config to a record: the harness computes every number.

For one (task, scenario, seed, profile) the harness prepares, once, what every method shares:
the split, the model-ready subsets, the original model and the oracle (both from the model
cache) and their outputs. Each method then gets a copy of the original and a Request holding
only the data it declared; its output is checked (same architecture, finite weights) and
evaluated. A method that fails yields a failed record with the reason; the sweep goes on.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import math
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mubench.errors import MethodOutputError, MubenchError
from mubench.evaluation import (
    EVALUATED_PARTS,
    AttackBudget,
    EvaluationContext,
    Outputs,
    PopulationOutputs,
    outputs_on,
)
from mubench.harness import provenance
from mubench.harness.artifacts import CachedModel, ModelCache
from mubench.harness.memory import PeakMemory
from mubench.harness.models import build_model
from mubench.harness.population import SHADOW_PARTS, Members, audit_outputs, member_seeds
from mubench.harness.record import Interval, Record, RunConfig
from mubench.harness.splits import Poison, Split, load_or_make_poisoned_split
from mubench.harness.training import (
    TRAINER_VERSION,
    Engine,
    can_train_batched,
    contiguous,
    train_model,
    train_models_batched,
)
from mubench.harness.work import counting_work, training_work
from mubench.hashing import sha256_arrays, sha256_of, sha256_tensors
from mubench.methods import methods
from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION, compute_metrics
from mubench.metrics.intervals import Estimate
from mubench.metrics.robustness import fgsm_budget
from mubench.request import Request, Subset
from mubench.tasks.base import Task, TaskData, tasks
from mubench.tasks.scenarios import pixel_scale, scenario_kinds
from mubench.transfer import synchronize

CALIBRATION_SECONDS = 0.5  # how long Harness.reference_seconds times training steps (at most the whole training)


def derived_seed(*names: object) -> int:
    """A 63-bit seed from a hash of `names`: independent streams for init, training, methods."""
    return int(sha256_of(list(names))[:15], 16)


@dataclass
class Prepared:
    """What all methods of one (task, scenario, seed, profile) share."""

    task: Task
    profile: str
    seed: int
    split: Split
    subsets: dict[str, Subset]
    test_attributes: dict[str, torch.Tensor]
    original: CachedModel
    oracle: CachedModel
    original_outputs: dict[str, Outputs]
    oracle_outputs: dict[str, Outputs]
    # "in"/"out": shadow originals' and oracles' outputs on SHADOW_PARTS (mia/ulira, mia/rmia)
    shadow_outputs: dict[str, list[dict[str, Outputs]]] = field(default_factory=dict)
    members: Members | None = None  # the population's originals and oracles, once a run asked for them
    poison: Poison | None = None  # the scenario's poison (poisoning scenarios): the population's originals train on it
    attack: AttackBudget | None = None  # the scenario's FGSM budget (fgsm_poison), for robust/fgsm_acc
    reference_seconds: float | None = None  # retraining's seconds on this machine now (Harness.reference_seconds)

    @property
    def oracle_work(self) -> float:
        """Retraining's work units (mubench.harness.work): the recipe's epochs over the retain set."""
        return training_work(self.task.spec.profile(self.profile).recipe.epochs, len(self.subsets["retain"]))


@dataclass
class PendingRun:
    """A run whose device phase is done (`Harness.begin`); `Harness.finish` makes its record.
    `context` holds the unlearned, oracle and original outputs without models or subsets (None
    when the run failed: `error` says why); `values` are the device phase's metrics."""

    config: RunConfig
    split_id: str
    data_source: str
    precision: str
    context: EvaluationContext | None
    values: dict[str, float]
    error: str | None
    device_seconds: float
    weights_sha256: str = ""


class Harness:
    def __init__(self, device: str = "cpu", cache: ModelCache | None = None, shadow_models: int = 0,
                 compile: bool | None = None) -> None:
        if shadow_models < 0:
            raise ValueError(f"shadow_models must be >= 0, got {shadow_models}")
        self.shadow_models = shadow_models  # K shadow originals + K shadow oracles per prepare (mia/ulira)
        self.device = torch.device(resolve_device(device))
        self.compile = compile  # torch.compile while training from scratch (None: MUBENCH_COMPILE=1)
        self.cache = cache or ModelCache()
        # torch imports its compiler stack on a process's first optimizer step or torch.func call
        # (about 2 s on a CPU): do it here, so that no method's measured seconds include it.
        importlib.import_module("torch._dynamo")
        # when a dict, every run adds its seconds to it: "method", "outputs" (the unlearned model's
        # outputs on every part) and one entry per metric (bench_training's profile of a run)
        self.run_seconds: dict[str, float] | None = None
        self._data: dict[str, TaskData] = {}
        self._prepared: dict[tuple[str, str, int, str], Prepared] = {}

    # -- training ---------------------------------------------------------------------------------
    def fresh_model(self, task: Task, profile: str, seed: int) -> nn.Module:
        return build_model(task.spec, profile, derived_seed(task.spec.name, seed, "init")).to(self.device)

    def fit_from_scratch(self, task: Task, profile: str, seed: int, subset: Subset) -> nn.Module:
        """Train the task's model on `subset` with its recipe: the original, oracle and `retrain`."""
        model = self.fresh_model(task, profile, seed)
        self._train(model, task, profile, seed, subset)
        return model

    def _train(self, model: nn.Module, task: Task, profile: str, seed: int, subset: Subset,
               stored: bool = False) -> float:
        """Train with the task's recipe. `stored`: `subset.x` holds stored samples (`_stored`),
        turned into model inputs batch by batch on the device by `task.to_inputs`."""
        recipe = task.spec.profile(profile).recipe
        generator = torch.Generator().manual_seed(derived_seed(task.spec.name, seed, "train"))
        return train_model(model, subset.x, subset.y, recipe, generator, task.spec.target_spec,
                           transform=task.to_inputs if stored else None,
                           engine=Engine.for_device(self.device, recipe, self.compile)).seconds

    def _cached_fit(self, task: Task, profile: str, seed: int, role: str, indices_id: str, subset: Subset,
                    poison: str = "", stored: bool = False) -> CachedModel:
        """Through the model cache. `poison` (the split's poison checksum, when the training part
        holds poisoned samples) is part of the description, so a model trained on poisoned data is
        never reused for clean data with the same indices, nor the other way round."""
        return self.cache.get_or_train(_description(task, profile, seed, role, indices_id, poison),
                                       lambda: self.fresh_model(task, profile, seed),
                                       lambda model: self._train(model, task, profile, seed, subset, stored))

    def _cached_fits(self, task: Task, profile: str, seeds: list[int], role: str, indices_id: str,
                     subset: Subset, poison: str = "", stored: bool = False) -> list[CachedModel]:
        """`_cached_fit` for several seeds on the same data: the models not in the cache are
        trained together (`train_models_batched`) when the architecture allows it, else one by one.
        Either way each gets the cache entry, initialisation and batches of its own seed."""
        recipe = task.spec.profile(profile).recipe

        def train_many(models: list[nn.Module], indices: list[int]) -> float:
            chosen = [seeds[i] for i in indices]
            if len(models) > 1 and can_train_batched(models[0]):
                generators = [torch.Generator().manual_seed(derived_seed(task.spec.name, s, "train")) for s in chosen]
                return train_models_batched(models, subset.x, subset.y, recipe, generators, task.spec.target_spec,
                                            transform=task.to_inputs if stored else None,
                                            engine=Engine.for_device(self.device, recipe, False)).seconds
            return sum(self._train(m, task, profile, s, subset, stored) for m, s in zip(models, chosen))

        return self.cache.get_or_train_many(
            [_description(task, profile, s, role, indices_id, poison) for s in seeds],
            lambda i: self.fresh_model(task, profile, seeds[i]), train_many)

    # -- preparation ------------------------------------------------------------------------------
    def task_data(self, task: Task) -> TaskData:
        if task.spec.name not in self._data:
            self._data[task.spec.name] = task.load()
        return self._data[task.spec.name]

    def prepare(self, task_name: str, scenario: str, seed: int, profile: str) -> Prepared:
        key = (task_name, scenario, seed, profile)
        if key not in self._prepared:
            self._prepared.clear()  # grids run grouped by scenario: keep only the current one
            self._prepared[key] = self._prepare(tasks.get(task_name), scenario, seed, profile)
        return self._prepared[key]

    def _prepare(self, task: Task, scenario: str, seed: int, profile: str) -> Prepared:
        clean = self.task_data(task)
        split, poison = load_or_make_poisoned_split(task, clean, scenario, seed, profile)
        # a poisoning scenario trains its original (and reads its forget set) from a copy of the
        # training pool holding the poisoned samples; the cached task data stays clean
        data = poison.apply(clean) if poison is not None else clean
        subsets = {part: self._subset(task, data, split, part) for part in EVALUATED_PARTS}
        train_subset = self._stored(data, split)  # only trained on: kept as stored, a quarter of float32 for images
        subsets["unseen"] = self._unseen(task, data, split)
        original = self._cached_fit(task, profile, seed, "original", _indices_id(split, "train"), train_subset,
                                    split.poison, stored=True)
        oracle = self._cached_fit(task, profile, seed, "oracle", _indices_id(split, "retain"), subsets["retain"])
        batch, target = task.spec.profile(profile).eval_batch_size, task.spec.target_spec
        return Prepared(task, profile, seed, split, subsets,
                        {k: v[split.test] for k, v in data.test.attributes.items()},
                        original, oracle, outputs_on(original.model, subsets, batch, target),
                        outputs_on(oracle.model, subsets, batch, target),
                        self._shadow_outputs(task, split, seed, profile, train_subset, subsets),
                        attack=self._attack(task, clean, scenario), poison=poison)

    def _attack(self, task: Task, data: TaskData, scenario: str) -> AttackBudget | None:
        """The FGSM budget of a poisoning scenario (its `eps`, on the pixel scale of the stored
        pool) on the model-input scale; None for other scenarios and for regression tasks."""
        spec = task.spec.scenario(scenario)
        if scenario_kinds.get(spec.kind).poison is None or task.spec.target != "class":
            return None
        return fgsm_budget(task.to_inputs, task.spec.input_shape, pixel_scale(data.train.x),
                           float(spec.params["eps"]), self.device)

    def _shadow_outputs(self, task: Task, split: Split, seed: int, profile: str, train: Subset,
                        subsets: dict[str, Subset]) -> dict[str, list[dict[str, Outputs]]]:
        """Outputs on SHADOW_PARTS of K shadow originals ("in": trained on the train part) and K
        shadow oracles ("out": trained on retain): the first K members of the split's population
        (`_members`), so never the run's own models. Empty when K = 0."""
        if not self.shadow_models:
            return {}
        members = self._members(task, split, seed, profile, train, subsets, self.shadow_models)
        batch, target = task.spec.profile(profile).eval_batch_size, task.spec.target_spec
        return {side: [audit_outputs(f.model, subsets, batch, target, SHADOW_PARTS) for f in fitted]
                for side, fitted in (("in", members.originals), ("out", members.oracles))}

    def _members(self, task: Task, split: Split, seed: int, profile: str, train: Subset,
                 subsets: dict[str, Subset], n: int) -> Members:
        """N originals (trained on the train part) and N oracles (on retain) of the split, through the
        model cache, with seeds derived from the run's (`member_seeds`): member k's original and
        oracle share their initialisation and batch order. The N models of a side share their data,
        so they are trained together where the architecture allows (`_cached_fits`)."""
        seeds = member_seeds(task.spec.name, seed, n)
        originals = self._cached_fits(task, profile, seeds, "shadow_in", _indices_id(split, "train"), train,
                                      split.poison, stored=True)
        oracles = self._cached_fits(task, profile, seeds, "shadow_out", _indices_id(split, "retain"), subsets["retain"])
        return Members(seeds, originals, oracles)

    def population_members(self, prepared: Prepared, n: int) -> Members:
        """The prepared split's first `n` members, trained (or read from the cache) on first use."""
        if prepared.members is None or len(prepared.members.seeds) < n:
            clean = self.task_data(prepared.task)
            train = self._stored(prepared.poison.apply(clean) if prepared.poison is not None else clean, prepared.split)
            prepared.members = self._members(prepared.task, prepared.split, prepared.seed, prepared.profile, train,
                                             prepared.subsets, n)
        return prepared.members.first(n)

    def population_outputs(self, config: RunConfig, prepared: Prepared) -> PopulationOutputs:
        """Member k's original unlearned by the run's method (its declared data only, a request seed
        of its own, retraining served by member k's oracle) and member k's oracle, each evaluated on
        AUDIT_PARTS: the population behind the audit/* metrics."""
        members = self.population_members(prepared, config.population)
        batch, target = prepared.task.spec.profile(prepared.profile).eval_batch_size, prepared.task.spec.target_spec
        unlearned, oracles = [], []
        for k in range(config.population):
            try:
                model, *_ = self.unlearn(config, prepared, member=k)
            except Exception as exc:
                raise MethodOutputError(f"population member {k} of {config.population}: {_reason(exc)}") from exc
            unlearned.append(audit_outputs(model, prepared.subsets, batch, target))
            oracles.append(audit_outputs(members.oracles[k].model, prepared.subsets, batch, target))
            check_outputs(unlearned[-1])
            del model
        return PopulationOutputs(unlearned, oracles)

    def _subset(self, task: Task, data: TaskData, split: Split, part: str) -> Subset:
        pool = data.test if part == "test" else data.train
        index = torch.from_numpy(getattr(split, part))
        return Subset(task.to_inputs(pool.x[index].to(self.device)), pool.y[index].to(self.device))

    def _stored(self, data: TaskData, split: Split) -> Subset:
        """The train part as stored samples (e.g. uint8 images) on the device: the data of the
        original and shadow models, which `_train(stored=True)` turns into inputs batch by batch
        (airbench, Jordan 2024, keeps CIFAR-10 on the GPU the same way)."""
        index = torch.from_numpy(split.train)
        return Subset(data.train.x[index].to(self.device), data.train.y[index].to(self.device))

    def _unseen(self, task: Task, data: TaskData, split: Split) -> Subset:
        """The val part minus the membership attacks' held-out non-members, with its attributes:
        training-distribution data no model saw, for methods of access UNSEEN and above."""
        index = torch.from_numpy(np.setdiff1d(split.val, split.heldout))
        return Subset(task.to_inputs(data.train.x[index].to(self.device)), data.train.y[index].to(self.device),
                      {k: v[index] for k, v in data.train.attributes.items()})

    # -- one run ----------------------------------------------------------------------------------
    def run(self, config: RunConfig) -> Record:
        """The record of one run: its device phase, then its host phase (`begin`, `finish`)."""
        return self.finish(self.begin(config))

    def begin(self, config: RunConfig) -> PendingRun:
        """A run's device phase: prepare the split (once per split), unlearn, compute the unlearned
        model's outputs and the metrics that read a model. What is left, the outputs-only metrics
        (the attacks' scikit-learn fits on the CPU), is `finish`'s; the local executor runs it in a
        thread while the next run's device phase goes on (`LocalExecutor(overlap=True)`). An error
        outside the method (data missing, a bad config) is raised here, as by `run`."""
        start = time.perf_counter()
        prepared = self.prepare(config.task, config.scenario, config.seed, config.profile)
        precision, context, values, error, digest = "", None, {}, None, ""
        try:
            precision = "fp32" if self.method_engine(config, prepared.task).autocast is None else "bf16"
            context, values, digest = self._unlearn_and_evaluate(config, prepared)
            if config.population:
                context = dataclasses.replace(context, population=self.population_outputs(config, prepared))
        except Exception as exc:  # noqa: BLE001 - a method's failure is recorded, the sweep goes on
            error = _reason(exc)
        return PendingRun(config, prepared.split.id, prepared.task.data_source(), precision, context, values, error,
                          time.perf_counter() - start, digest)

    def finish(self, pending: PendingRun) -> Record:
        """A run's host phase and its record: the outputs-only metrics, computed from the outputs,
        attributes and costs alone (no model, no device), then the check that every value is finite."""
        start = time.perf_counter()
        metrics, status, error = {}, "failed", pending.error
        estimates: dict[str, Estimate] = {}
        if pending.context is not None:
            try:
                values = {**pending.values, **compute_metrics(pending.context, self.run_seconds, "host", estimates)}
                bad = sorted(k for k, v in values.items() if not math.isfinite(v))
                if bad:
                    raise MethodOutputError(f"the unlearned model gives non-finite metrics {bad}")
                metrics, status = in_registry_order(values), "ok"
            except Exception as exc:  # noqa: BLE001 - as in the device phase: recorded, the sweep goes on
                error = _reason(exc)
        return Record(
            id=pending.config.id, config=pending.config, status=status, error=error, metrics=metrics,
            split_id=pending.split_id, data_source=pending.data_source, metrics_version=METRICS_VERSION,
            mia_spec_version=MIA_SPEC_VERSION, mubench_version=provenance.mubench_version(),
            git_commit=provenance.git_commit(), hardware=provenance.hardware(str(self.device)),
            device=str(self.device), method_precision=pending.precision,
            weights_sha256=pending.weights_sha256 if status == "ok" else "",
            intervals={key: Interval(low=e.low, high=e.high, method=e.method, sizes=e.sizes)
                       for key, e in estimates.items()} if status == "ok" else {},
            seconds=pending.device_seconds + time.perf_counter() - start, peak_rss_mb=provenance.peak_rss_mb())

    def _unlearn_and_evaluate(self, config: RunConfig,
                              prepared: Prepared) -> tuple[EvaluationContext, dict[str, float], str]:
        """The device phase's work: the unlearned model, its outputs, the model-reading metrics; and
        the context the host phase reads, without the models and subsets (their memory is free
        once this returns, and no outputs-only metric can reach the device); and the sha256 of
        the unlearned weights."""
        started = time.perf_counter()
        unlearned, method_seconds, peak_mb, work = self.unlearn(config, prepared)
        return self._evaluate_unlearned(prepared, unlearned, method_seconds, peak_mb, work, started)

    def _evaluate_unlearned(self, prepared: Prepared, unlearned: nn.Module, method_seconds: float,
                            peak_mb: float | None, work: float,
                            started: float | None = None) -> tuple[EvaluationContext, dict[str, float], str]:
        unlearned_at = time.perf_counter()  # the breakdown takes wall time: a reused oracle is charged, not spent
        digest = sha256_tensors(unlearned.state_dict())
        context = self.evaluation_context(prepared, unlearned, method_seconds, peak_mb, work)
        check_outputs(context.unlearned)
        if self.run_seconds is not None:
            spent = {"outputs": time.perf_counter() - unlearned_at}
            if started is not None:
                spent["method"] = unlearned_at - started
            for key, seconds in spent.items():
                self.run_seconds[key] = self.run_seconds.get(key, 0.0) + seconds
        values = compute_metrics(context, self.run_seconds, "device")
        return dataclasses.replace(context, models={}, subsets={}, counterfactual=None), values, digest

    def evaluate(self, config: RunConfig, unlearned: nn.Module, method_seconds: float, peak_mb: float | None,
                 work: float, precision: str) -> Record:
        """The record of a model `config`'s method unlearned elsewhere (in the sandbox's jail,
        mubench.orchestration.sandbox), measured exactly as `run` measures its own: the same
        architecture check, outputs, metrics and record. `method_seconds` is the driver's clock."""
        start = time.perf_counter()
        prepared = self.prepare(config.task, config.scenario, config.seed, config.profile)
        context, values, error, digest = None, {}, None, ""
        try:
            check_architecture(unlearned, prepared.original.model)
            context, values, digest = self._evaluate_unlearned(prepared, contiguous(unlearned), method_seconds,
                                                               peak_mb, work)
        except Exception as exc:  # noqa: BLE001 - as in `begin`: a bad result is a failed record
            error = _reason(exc)
        return self.finish(PendingRun(config, prepared.split.id, prepared.task.data_source(), precision, context,
                                      values, error, method_seconds + time.perf_counter() - start, digest))

    def reference_seconds(self, prepared: Prepared) -> float:
        """Retraining's seconds on this machine, measured now rather than read from the model
        cache (whose oracle may have been trained elsewhere or under other load): the recipe's
        training steps on a copy of the original over the retain set, timed until they take
        `CALIBRATION_SECONDS` (or the whole training is done), scaled to the recipe's samples.
        Measured once per prepared split, just before its first method runs; `cost/rte` divides
        by it, and `retrain` is charged it, so that retraining costs 1."""
        if prepared.reference_seconds is None:
            recipe = prepared.task.spec.profile(prepared.profile).recipe
            retain = prepared.subsets["retain"]
            total_steps = recipe.epochs * math.ceil(len(retain) / recipe.batch_size)
            generator = torch.Generator().manual_seed(derived_seed(prepared.task.spec.name, prepared.seed, "calibrate"))
            engine = Engine.for_device(self.device, recipe, False)
            model = copy.deepcopy(prepared.original.model)
            train_model(model, retain.x, retain.y, recipe, generator, prepared.task.spec.target_spec,
                        engine=engine, max_steps=1)  # warm-up: first-call allocations are not training
            steps = 2
            while True:
                stats = train_model(model, retain.x, retain.y, recipe, generator, prepared.task.spec.target_spec,
                                    engine=engine, max_steps=min(steps, total_steps))
                if stats.seconds >= CALIBRATION_SECONDS or steps >= total_steps:
                    break
                steps *= 2
            prepared.reference_seconds = stats.seconds / stats.samples_seen * recipe.epochs * len(retain)
        return prepared.reference_seconds

    def unlearn(self, config: RunConfig, prepared: Prepared,
                member: int | None = None) -> tuple[nn.Module, float, float | None, float]:
        """The method of `config` on a copy of the prepared original, given only the data it
        declared: (the checked unlearned model, its seconds, its peak device memory in MB, its
        work units: mubench.harness.work). With `member`, on a copy of that population member's
        original instead (`population_members`), with a request seed of its own and that member's
        oracle serving `train_from_scratch` on retain."""
        method_cls = methods.get(config.method)
        task, hp = prepared.task, method_cls.resolve(config.hparams, config.profile)
        check_target(method_cls, task)
        method_seed = derived_seed(config.task, config.scenario, config.method, config.seed, "method")
        original, twin = prepared.original.model, _Twin(prepared.oracle.model, config.seed)
        if member is not None:
            members = prepared.members
            if members is None or member >= len(members.seeds):
                raise ValueError(f"population member {member} was not prepared (population_members first)")
            original, twin = members.originals[member].model, _Twin(members.oracles[member].model, members.seeds[member])
            method_seed = derived_seed(method_seed, "member", member)
        charged: list[tuple[float, float]] = []  # (seconds, work) of trainings reused rather than repeated
        request = Request({name: prepared.subsets[name] for name in method_cls.access.subsets}, method_cls.access,
                          task.spec.num_classes, self.device, seed=method_seed,
                          trainer=lambda subset: self._from_scratch(prepared, config, subset, charged, twin),
                          target=task.spec.target_spec, counterfactual=task.counterfactual,
                          sensitive_attributes=task.spec.sensitive_attributes)
        model = copy.deepcopy(original)
        self.reference_seconds(prepared)  # before the method: neither its clock nor its work include this
        unlearned, seconds, peak_mb, units = apply_method(method_cls, model, request, hp,
                                                          self.method_engine(config, task), task.spec.input_shape)
        method_seconds = seconds + sum(seconds for seconds, _ in charged)
        check_architecture(unlearned, original)  # first: it names a result that is no model
        units += sum(units for _, units in charged)
        return contiguous(unlearned), method_seconds, None if charged else peak_mb, units

    def method_engine(self, config: RunConfig, task: Task) -> Engine:
        """The engine the method of `config` runs under (Engine.for_method: the task's recipe,
        this device, the method's `mixed_precision`)."""
        recipe = task.spec.profile(config.profile).recipe
        return Engine.for_method(self.device, recipe, methods.get(config.method).mixed_precision)

    def _from_scratch(self, prepared: Prepared, config: RunConfig, subset: Subset,
                      charged: list[tuple[float, float]], twin: _Twin) -> nn.Module:
        """`Request.train_from_scratch` of one run. On the split's retain part it is exactly the
        oracle's training (the task's recipe, the seed, the same samples), so it returns a copy of
        the oracle (`twin`: the prepared one, or a population member's) and charges retraining's
        seconds on this machine (`reference_seconds`) and work to the method (appended to
        `charged`): `retrain` costs exactly 1 in `cost/rte` and `cost/work`, its gaps are zero on
        every device (a GPU's non-deterministic kernels would otherwise make a second training
        differ slightly), and the leaderboard pays for each oracle once. Its peak memory is then
        not measured (None). Any other subset is trained afresh with the twin's seed."""
        retain = prepared.subsets["retain"]
        if subset.x is retain.x and subset.y is retain.y:
            charged.append((self.reference_seconds(prepared), prepared.oracle_work))
            return copy.deepcopy(twin.oracle)
        return self.fit_from_scratch(prepared.task, config.profile, twin.seed, subset)

    def evaluation_context(self, prepared: Prepared, unlearned: nn.Module, method_seconds: float,
                           peak_memory_mb: float | None = None, method_work: float = 0.0) -> EvaluationContext:
        """Outputs of the unlearned model on every part, beside the prepared oracle and original.
        Costs are relative to retraining's on this machine (`reference_seconds`, when measured)."""
        profile_spec = prepared.task.spec.profile(prepared.profile)
        batch = profile_spec.eval_batch_size
        target = prepared.task.spec.target_spec
        return EvaluationContext(
            unlearned=outputs_on(unlearned, prepared.subsets, batch, target), oracle=prepared.oracle_outputs,
            original=prepared.original_outputs, test_attributes=prepared.test_attributes,
            method_seconds=method_seconds, oracle_seconds=prepared.reference_seconds or 0.0,
            method_work=method_work, oracle_work=prepared.oracle_work,
            models={"unlearned": unlearned, "oracle": prepared.oracle.model, "original": prepared.original.model},
            subsets=prepared.subsets, method_peak_memory_mb=peak_memory_mb,
            relearn_lr=profile_spec.recipe.lr, eval_batch_size=batch,
            sensitive_attributes=prepared.task.spec.sensitive_attributes,
            counterfactual=prepared.task.counterfactual, shadow_outputs=prepared.shadow_outputs, target=target,
            attack=prepared.attack)


@dataclass(frozen=True)
class _Twin:
    """The retrained model a run's `train_from_scratch` on retain returns, and the seed of any
    other training from scratch: the run's oracle and seed, or a population member's."""

    oracle: nn.Module
    seed: int


def apply_method(method_cls: type, model: nn.Module, request: Request, hp: object, engine: Engine,
                 input_shape: tuple[int, ...]) -> tuple[object, float, float | None, float]:
    """Run `method_cls().unlearn` on `model` under `engine`, as the harness and the sandbox's
    jailed child both do: (what it returned, its seconds, its peak device memory in MB, its work
    units: mubench.harness.work). The result is not checked here."""
    with PeakMemory(request.device) as peak, counting_work(type(model), input_shape) as work:
        started = time.perf_counter()
        with engine.hosting(model, request.device):
            unlearned = method_cls().unlearn(model, request, hp)
        synchronize(request.device)  # the method's loop may return with steps still queued
        seconds = time.perf_counter() - started
    return unlearned, seconds, peak.megabytes, work.units


def supports(method_cls: type, task: Task) -> bool:
    """Whether a method applies to the task (Method.inapplicable: target kind and the method's own needs)."""
    return method_cls.inapplicable(task.spec) is None


def check_target(method_cls: type, task: Task) -> None:
    reason = method_cls.inapplicable(task.spec)
    if reason is not None:
        raise MubenchError(f"method {method_cls.name!r} does not apply to task {task.spec.name!r}: {reason}")


def check_architecture(model: object, reference: nn.Module) -> None:
    """A method must return a model of the original's class and parameter shapes, with finite weights."""
    if not isinstance(model, nn.Module):
        raise MethodOutputError(f"unlearn returned {type(model).__name__}, not a torch.nn.Module")
    if type(model) is not type(reference):
        raise MethodOutputError(f"unlearn changed the architecture: it returned a {type(model).__name__}, "
                                f"the original is a {type(reference).__name__}")
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    if got != want:
        changed = sorted(set(got) ^ set(want) | {k for k in got.keys() & want.keys() if got[k] != want[k]})
        raise MethodOutputError(f"unlearn changed the architecture (parameters {changed[:5]})")
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise MethodOutputError(f"unlearn returned non-finite weights in {name!r}")


def check_outputs(outputs: dict[str, Outputs]) -> None:
    """Finite weights can still overflow to non-finite logits: such a model is unusable, and says
    so here rather than as a scikit-learn error deep in an attack's fit."""
    bad = sorted(part for part, out in outputs.items() if not bool(torch.isfinite(out.logits).all()))
    if bad:
        raise MethodOutputError(f"the unlearned model gives non-finite outputs on {', '.join(bad)}")


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _description(task: Task, profile: str, seed: int, role: str, indices_id: str, poison: str = "") -> dict[str, object]:
    """What a trained model depends on: its model-cache key."""
    spec = task.spec
    description: dict[str, object] = {"task": spec.name, "version": spec.version, "profile": profile,
                                      "profile_spec": spec.profile(profile).model_dump(mode="json"), "seed": seed,
                                      "role": role, "train_indices": indices_id, "trainer": TRAINER_VERSION}
    if poison:
        description["poison"] = poison
    return description


def in_registry_order(values: dict[str, float]) -> dict[str, float]:
    """The metrics in the order the registry computes them (by name), whichever phase computed
    them: a record reads the same with or without overlap."""
    return dict(sorted(values.items()))


def _indices_id(split: Split, part: str) -> str:
    return sha256_arrays({part: getattr(split, part)})


def _reason(exc: Exception) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"

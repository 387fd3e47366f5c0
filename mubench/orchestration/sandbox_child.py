"""The sandbox's child: `python -m mubench.orchestration.sandbox_child /scratch/job.json`, run in
the jail (mubench.orchestration.jail) by mubench.orchestration.sandbox.

Everything here before the method's import is trusted library code: the jail's prologue (resource
limits, no root), the inputs (the original's weights and the declared subsets, the only data in
the jail), the model rebuilt from the task's spec, the "started" line, the address-space limit.
Then the method's module is imported and `unlearn` runs on a Request holding those subsets; its
weights go back to the scratch folder and a "finished" line says so. Any exception, SystemExit
included, becomes an "error" line with the reason; the driver decides everything else.

`Request.train_from_scratch` trains here, in the jail, with the task's recipe and the run's seeds
(the in-process harness hands back its cached oracle instead; on the CPU both give the same
weights): the oracle itself never enters the jail.
"""

from __future__ import annotations

import importlib
import os
import resource
import sys
from pathlib import Path

from pydantic import BaseModel

from mubench.orchestration import jail
from mubench.orchestration.sandbox import Failure, Finished, Job, MethodSource, Started


def main(job_path: str) -> int:
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the method's prints (and anything else on fd 1) go to stderr
    sys.stdout = sys.stderr

    def send(message: BaseModel) -> None:
        channel.write(message.model_dump_json() + "\n")
        channel.flush()

    try:
        job = Job.model_validate_json(Path(job_path).read_text())
        os.environ["MUBENCH_JAIL_USER_TASKS"] = str(job.user_tasks)
        jail.enter(jail.JailLimits(processes=job.processes, file_size_mb=job.file_size_mb,
                                   open_files=job.open_files))
        send(run(job, Path(job_path).parent, send))
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a method included: reported, not lost
        from mubench.harness.runner import _reason

        if isinstance(exc, MemoryLimitError):
            error = str(exc)
        elif isinstance(exc, Exception):
            error = _reason(exc)
        else:
            error = f"{type(exc).__name__}: {exc} (raised outside the harness's handling)"
        send(Failure(kind="error", error=error[:4000]))
    return 0


def run(job: Job, scratch: Path, send) -> Finished:  # type: ignore[no-untyped-def]
    import torch

    from mubench.access import Access
    from mubench.harness.artifacts import ModelCache
    from mubench.harness.models import build_model
    from mubench.harness.runner import Harness, apply_method, check_architecture, check_target, derived_seed
    from mubench.harness.training import Engine
    from mubench.orchestration import handover
    from mubench.request import Request
    from mubench.tasks.base import tasks

    config = job.config
    if job.threads:
        torch.set_num_threads(job.threads)
    device = torch.device(job.device)
    task = tasks.get(config.task)
    spec = task.spec
    state, subsets = handover.read_inputs(scratch / handover.INPUTS, device)
    model = build_model(spec, config.profile, derived_seed(spec.name, config.seed, "init")).to(device)
    model.load_state_dict(state)
    template = build_model(spec, config.profile, 0)  # the architecture the result must have
    trainer = Harness(device=job.device, cache=ModelCache(scratch / "no-cache"))  # trains from scratch only
    send(Started(kind="started"))
    if job.memory_limit_mb is not None:
        limit_address_space(job.memory_limit_mb)
    try:
        method_cls = load_method(config.method, job.source)
        check_target(method_cls, task)
        hp = method_cls.resolve(config.hparams, config.profile)
        method_cls.check(hp)  # the driver's stand-in of a submitted file cannot run it (jailed_method)
        access = Access(job.access)
        request = Request(subsets, access, spec.num_classes, device, seed=job.request_seed,
                          trainer=lambda subset: trainer.fit_from_scratch(task, config.profile, config.seed, subset),
                          target=spec.target_spec, counterfactual=task.counterfactual,
                          sensitive_attributes=spec.sensitive_attributes)
        engine = Engine.for_method(device, spec.profile(config.profile).recipe, method_cls.mixed_precision)
        unlearned, _, peak_mb, work = apply_method(method_cls, model, request, hp, engine, spec.input_shape)
        check_architecture(unlearned, template)  # the clear message; the driver checks again
    except Exception as exc:
        if job.memory_limit_mb is not None and _is_allocation_failure(str(exc), exc):
            raise MemoryLimitError(f"exceeded the memory limit of {job.memory_limit_mb} MB "
                                   f"({type(exc).__name__}: {str(exc)[:300]})") from None
        raise
    handover.write_weights(scratch / handover.WEIGHTS, unlearned)  # type: ignore[arg-type]
    return Finished(kind="finished", work=work, peak_mb=peak_mb,
                    precision="fp32" if engine.autocast is None else "bf16")


class MemoryLimitError(Exception):
    """The method ran out of the address space the sandbox allows it."""


def load_method(name: str, source: MethodSource) -> type:
    """The method class, from its module or its file, registered in this process under `name`."""
    from mubench.errors import MubenchError
    from mubench.methods import methods, register_method
    from mubench.orchestration.loading import load_method_class

    if source.module is not None:
        importlib.import_module(source.module)
    if source.file is not None and name not in methods:
        cls, _, problems = load_method_class(source.file)
        if problems:
            raise MubenchError("; ".join(problems))
        if name not in methods:
            register_method(name)(cls)  # type: ignore[arg-type]
    return methods.get(name)  # an unknown name fails here, clearly


def limit_address_space(megabytes: int) -> None:
    """RLIMIT_AS (soft and hard) at the current address-space size plus `megabytes`."""
    current = _vm_size_bytes()
    limit = current + megabytes * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _vm_size_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmSize in /proc/self/status")


def _is_allocation_failure(message: str, exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or any(
        marker in message for marker in ("can't allocate memory", "Cannot allocate memory", "bad_alloc"))


def describe_main(spec: str, processes: int, file_size_mb: int, open_files: int) -> int:
    """`--describe FILE.py:CLASS`: import the method's file here, in the jail, and send its
    description (mubench.orchestration.jailed_method) as one line; nothing is run."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from mubench.orchestration.jailed_method import MethodDescription, describe
    from mubench.orchestration.loading import load_method_class

    jail.enter(jail.JailLimits(processes=processes, file_size_mb=file_size_mb, open_files=open_files))
    class_name = spec.rpartition(":")[2]
    try:
        cls, _, problems = load_method_class(spec)
        description = (MethodDescription(class_name=class_name, problems=problems) if problems
                       else describe(cls))
    except BaseException as exc:  # noqa: BLE001 - the file's code: any failure is a problem to report
        description = MethodDescription(class_name=class_name,
                                        problems=[f"describing it raised {type(exc).__name__}: {exc}"[:2000]])
    channel.write(description.model_dump_json() + "\n")
    channel.flush()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--describe":
        sys.exit(describe_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
    if len(sys.argv) != 2:
        sys.exit("usage: python -m mubench.orchestration.sandbox_child JOB.json | --describe FILE.py:CLASS N N N")
    sys.exit(main(sys.argv[1]))

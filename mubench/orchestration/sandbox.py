"""Run one RunConfig of an untrusted method in a jail, with limits, and measure it outside.

A submitted method is someone else's code: it may hang, raise, exhaust memory, kill its own
process, return NaN weights or another architecture, reach for data it did not declare, or try
to forge its own scores. Here the driver keeps everything that decides a number and hands the
method only what it declared:

1. The trusted driver prepares the run (split, the cached original and oracle, their outputs)
   and times retraining on this machine, as the in-process harness does.
2. It writes the original's weights and the subsets of the method's access level, nothing else,
   into a private scratch folder (mubench.orchestration.handover) with a small job description,
   and starts the child (`python -m mubench.orchestration.sandbox_child`) in the operating
   system's jail (mubench.orchestration.jail: no network, no store, no caches, no data mirror,
   no `MUBENCH_HOME`, read-only code, an unprivileged user, process and file-size limits).
3. The child loads those tensors, says "started", imports the method, runs `unlearn` and writes
   the weights back (safetensors) with a "finished" line; or an "error" line with the reason.
   Its channel is a private copy of its stdout (the method's prints go to stderr); every line is
   parsed by pydantic, nothing is unpickled, and a line the driver did not expect fails the run.
4. The driver reads the weights (names, shapes, dtypes, finiteness and size checked) into a copy
   of the original and computes every metric itself (`Harness.evaluate`): the child never sees
   the oracle, the test set or a record, so it has nothing to forge them with.

Limits. `startup_limit_s` bounds the child's start (imports, reading its inputs); `time_limit_s`
bounds the method, counted from the "started" line, so the limit does not depend on how long a
busy machine takes to import torch; the method's seconds in the record are the driver's clock
between "started" and "finished". On expiry the driver kills the jail, and with it every process
the method started. `memory_limit_mb` bounds the address space the method may add to the child's
own footprint: RLIMIT_AS (soft and hard) set at the child's size plus the limit just before the
method is imported (torch alone maps 3-4 GB of address space on import, so a whole-process limit
of a few GB would refuse the child itself); an allocation beyond it raises MemoryError (numpy) or
a torch allocator error, which becomes "exceeded the memory limit of N MB".

What is still trusted: the method's work units (`cost/work`) and peak memory are counted by the
child, inside the jail, with the method in the same process, so a hostile method could understate
them; its seconds (`cost/seconds`, `cost/rte`) are the driver's. Where the jail cannot be had,
isolated runs refuse (`jail.require`), naming how to install it.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from mubench.errors import MethodOutputError, MubenchError
from mubench.harness import provenance
from mubench.harness.record import Record, RunConfig
from mubench.orchestration import handover, jail
from mubench.orchestration.executors import Executor
from mubench.orchestration.loading import parse_method_spec

if TYPE_CHECKING:
    from mubench.harness.runner import Harness, Prepared
    from mubench.methods import Method

MAX_LINE_BYTES = 1 << 20  # a message is a few hundred bytes; anything near this is not one
REAP_GRACE_S = 10.0  # after its last line, how long the child may take to exit before it is killed
STDERR_TAIL_LINES = 40
JOB = "job.json"
METHOD_FILE = "method.py"
CHILD_MODULE = "mubench.orchestration.sandbox_child"


@dataclass(frozen=True)
class Limits:
    """Limits of one isolated run (see the module docstring for what each one counts)."""

    time_limit_s: float = 3600.0
    memory_limit_mb: int | None = None
    startup_limit_s: float = 600.0
    parallel: int = 1  # isolated runs at once; 1 (one after another) keeps cost/seconds comparable
    jail_limits: jail.JailLimits = field(default_factory=jail.JailLimits)

    def __post_init__(self) -> None:
        if self.parallel < 1:
            raise ValueError(f"parallel must be at least 1, got {self.parallel}")
        if not self.time_limit_s > 0 or not self.startup_limit_s > 0:
            raise ValueError(f"time limits must be positive, got {self.time_limit_s} and {self.startup_limit_s}")
        if self.memory_limit_mb is not None and self.memory_limit_mb <= 0:
            raise ValueError(f"the memory limit must be positive, got {self.memory_limit_mb} MB")


class MethodSource(BaseModel):
    """Where the child finds the method class: an importable module (registered baselines and
    entry-point packages) or a user's file, loaded as `mubench submit` does
    (mubench.orchestration.loading); the file is bound read-only into the jail at its own path."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    module: str | None = None
    file: str | None = None  # "path/to/file.py:ClassName"


class Job(BaseModel):
    """What the child is told, beside its inputs file: which method, on which task's model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: RunConfig
    source: MethodSource
    access: str
    request_seed: int
    device: str = "cpu"
    threads: int | None = Field(default=None, ge=1)  # torch intra-op threads (same threads: same numbers)
    memory_limit_mb: int | None = Field(default=None, ge=1)
    processes: int = Field(ge=1)
    file_size_mb: int = Field(ge=1)
    open_files: int = Field(ge=1)
    user_tasks: int = Field(default=0, ge=0)  # the driver user's threads now (RLIMIT_NPROC counts them)


class Started(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["started"]


class Finished(BaseModel):
    """The method returned and its weights are in the scratch folder; its own counts beside."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["finished"]
    work: float = Field(ge=0, allow_inf_nan=False)
    peak_mb: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    precision: Literal["fp32", "bf16", ""] = ""


class Failure(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["error"]
    error: str = Field(min_length=1, max_length=4000)


Message = TypeAdapter(Annotated[Union[Started, Finished, Failure], Field(discriminator="kind")])


# -- the driver ------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What the driver saw of one child: its messages, how it ended, and when."""

    started: bool = False
    result: Finished | Failure | None = None
    invalid: str | None = None  # why a line from the child was refused
    timed_out: str | None = None  # "start-up" or "run"
    exit_code: int | None = None  # negative: killed by that signal
    peak_rss_mb: float = 0.0
    seconds: float = 0.0  # the child's whole life
    run_seconds: float | None = None  # from "started" to the result (the method's seconds)
    stderr_tail: list[str] = field(default_factory=list)


def run_in_sandbox(harness: Harness, config: RunConfig, limits: Limits) -> Record:
    """The record of `config`, its method run in the jail under `limits` and measured here by
    `harness`; never raises for the method's faults. Raises JailUnavailableError where the jail
    cannot run."""
    from mubench.harness.runner import derived_seed
    from mubench.methods import methods

    require_jail_for(harness.device)
    if config.population:
        raise MubenchError(f"{config.label}: a population run applies the method to every member in the driver's "
                           "process; the jail runs one model per run (run it without --isolate)")
    prepared = harness.prepare(config.task, config.scenario, config.seed, config.profile)
    method_cls = methods.get(config.method)
    harness.reference_seconds(prepared)  # retraining timed here, before the child competes for the CPU
    scratch = jail.make_scratch()
    try:
        handover.write_inputs(scratch, prepared.original.model.state_dict(),
                              {name: prepared.subsets[name] for name in method_cls.access.subsets})
        job = Job(config=config, source=jailed_source(method_source(config.method), scratch),
                  access=method_cls.access.value,
                  request_seed=derived_seed(config.task, config.scenario, config.method, config.seed, "method"),
                  device=str(harness.device), threads=_threads(), memory_limit_mb=limits.memory_limit_mb,
                  processes=limits.jail_limits.processes, file_size_mb=limits.jail_limits.file_size_mb,
                  open_files=limits.jail_limits.open_files,
                  user_tasks=0 if os.geteuid() == 0 else jail.user_tasks(os.getuid()))
        (scratch / JOB).write_text(job.model_dump_json())
        (scratch / JOB).chmod(0o644)
        outcome = supervise(scratch, job, limits)
        if isinstance(outcome.result, Finished) and outcome.run_seconds is not None:
            try:
                state = handover.read_weights(scratch / handover.WEIGHTS, prepared.original.model)
            except MethodOutputError as exc:
                return failed_record(config, prepared, str(exc), outcome, harness)
            unlearned = copy.deepcopy(prepared.original.model)
            unlearned.load_state_dict({k: v.to(harness.device) for k, v in state.items()})
            result = outcome.result
            return harness.evaluate(config, unlearned, outcome.run_seconds, result.peak_mb, result.work,
                                    result.precision)
        return failed_record(config, prepared, failure_reason(limits, outcome), outcome, harness)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def require_jail_for(device: object) -> None:
    """The jail here, and a device it can run on: it binds no GPU device files, so an isolated
    run on CUDA is refused up front rather than failed run by run."""
    if getattr(device, "type", str(device)) != "cpu":
        raise MubenchError(f"isolated runs (--isolate, mubench submit) run on the CPU: the jail binds no GPU device, "
                           f"so --device {device} cannot be isolated yet; use --device cpu")
    jail.require()


class IsolatedExecutor(Executor):
    """The local executor's order and records, each run's method in the jail under `limits`."""

    def __init__(self, harness: Harness, limits: Limits) -> None:
        self.harness, self.limits = harness, limits

    def map(self, configs: Sequence[RunConfig]) -> Iterator[Record]:
        require_jail_for(self.harness.device)  # before the first run: a grid refused as a whole, not run by run
        if self.limits.parallel == 1:
            for config in configs:
                yield run_in_sandbox(self.harness, config, self.limits)
            return
        pool = ThreadPoolExecutor(self.limits.parallel)  # threads wait on their jails; the harness is locked
        lock = threading.Lock()
        try:
            futures = [pool.submit(_locked_run, self.harness, config, self.limits, lock) for config in configs]
            for future in futures:
                yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _locked_run(harness: Harness, config: RunConfig, limits: Limits, lock: threading.Lock) -> Record:
    """`run_in_sandbox` with the driver's harness (not thread-safe) held only while it prepares
    and evaluates; the jailed methods run side by side."""
    return run_in_sandbox(_LockedHarness(harness, lock), config, limits)  # type: ignore[arg-type]


class _LockedHarness:
    """The harness calls `run_in_sandbox` makes, each under one lock shared by the threads."""

    def __init__(self, harness: Harness, lock: threading.Lock) -> None:
        self._harness, self._lock = harness, lock
        self.device = harness.device

    def prepare(self, *args: object) -> Prepared:
        with self._lock:
            return self._harness.prepare(*args)  # type: ignore[arg-type]

    def reference_seconds(self, prepared: Prepared) -> float:
        with self._lock:
            return self._harness.reference_seconds(prepared)

    def evaluate(self, *args: object) -> Record:
        with self._lock:
            return self._harness.evaluate(*args)  # type: ignore[arg-type]


def isolated_executor(executor: Executor | str, harness: Harness, limits: Limits) -> IsolatedExecutor:
    """run_grid's `isolate` hook: isolation replaces the local executor (Ray runs are not isolated yet)."""
    from mubench.orchestration.executors import LocalExecutor

    if not (executor == "local" or isinstance(executor, (LocalExecutor, IsolatedExecutor))):
        name = executor if isinstance(executor, str) else type(executor).__name__
        raise MubenchError(f"isolated runs (--isolate) use the local executor; they do not combine with {name!r} yet")
    return IsolatedExecutor(harness, limits)


def method_source(name: str) -> MethodSource:
    """An importable module where the class has one, else its file (a submission loaded by path)."""
    from mubench.methods import methods

    cls = methods.get(name)
    jailed = getattr(cls, "jailed_source", None)
    if jailed is not None:  # a stand-in (mubench.orchestration.jailed_method): the file, never imported here
        return MethodSource(file=jailed)
    module = sys.modules.get(cls.__module__)
    importable = (cls.__module__ != "__main__" and not cls.__module__.startswith("mubench_submission_")
                  and _find_spec(cls.__module__) is not None)
    if importable:
        return MethodSource(module=cls.__module__)
    path = getattr(module, "__file__", None)
    if path is None:
        raise ValueError(f"method {name!r}: its class {cls.__qualname__} has no source file the child could load")
    return MethodSource(file=f"{Path(path).resolve()}:{cls.__qualname__}")


def jailed_source(source: MethodSource, scratch: Path) -> MethodSource:
    """A method file travels as a copy in the scratch folder (`method.py`, readable by the
    jail's user whatever the original's permissions), the only file of the submission the jail
    holds; a module is imported from the installed packages."""
    if source.file is None:
        return source
    path, _, class_name = source.file.rpartition(":")
    copy_path = scratch / METHOD_FILE
    shutil.copyfile(path, copy_path)
    copy_path.chmod(0o444)
    return MethodSource(file=f"{jail.SCRATCH}/{METHOD_FILE}:{class_name}")


DESCRIBE_LIMIT_S = 300.0  # importing a method's file and describing it: imports, no training


def describe_in_jail(spec: str, limits: Limits | None = None) -> tuple[type[Method] | None, Path | None, list[str]]:
    """(a stand-in class, the file, problems) for 'path/to/file.py:ClassName', the way
    `load_method_class` answers, but with the file imported only in the jail
    (mubench.orchestration.jailed_method): its module-level code never runs in this process."""
    from mubench.orchestration.jailed_method import MethodDescription, stand_in

    jail.require()
    path, class_name, problems = parse_method_spec(spec)
    if problems:
        return None, path, problems
    jail_limits = (limits or Limits()).jail_limits
    scratch = jail.make_scratch()
    try:
        source = jailed_source(MethodSource(file=f"{path}:{class_name}"), scratch)
        argv = jail.jail_argv([sys.executable, "-m", CHILD_MODULE, "--describe", source.file or "",
                               str(jail_limits.processes), str(jail_limits.file_size_mb), str(jail_limits.open_files)],
                              scratch, readable=jail.python_roots(), env={"MUBENCH_IN_JAIL": "1"})
        child, lines, tail, readers = _start_jailed(argv)
        try:
            line = lines.get(timeout=DESCRIBE_LIMIT_S)
        except queue.Empty:
            line = None
            _kill_group(child.pid)
            return None, path, [f"{path}: importing it in the sandbox took longer than {DESCRIBE_LIMIT_S:g} s"]
        finally:
            code, _ = _reap(child, grace=REAP_GRACE_S)
            for reader in readers:
                reader.join(timeout=1.0)
        if line is None:
            last = next((text for text in reversed(tail) if text.strip()), "")
            return None, path, [f"{path}: the sandbox's child exited (status {code}) without describing it"
                                + (f": {last[-300:]}" if last else "")]
        try:
            description = MethodDescription.model_validate_json(line)
        except ValidationError as exc:
            return None, path, [f"{path}: the sandbox's child sent an invalid description: {_first_error(exc)}"]
        if description.problems:
            inside = f"{jail.SCRATCH}/{METHOD_FILE}"
            problems = [problem.replace(inside, str(path)) for problem in description.problems]
            return None, path, [p if p.startswith(str(path)) else f"{path}: {p}" for p in problems]
        return stand_in(description, path), path, []
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def readable_for(source: MethodSource) -> list[Path]:
    """What the jail binds read-only: the Python installation and packages, and the folder of
    an installed method module that lies outside them."""
    roots = jail.python_roots()
    if source.module is not None:
        spec = importlib.util.find_spec(source.module.split(".")[0])
        origin = next(iter(spec.submodule_search_locations or []), None) if spec else None
        folder = Path(origin) if origin else (Path(spec.origin) if spec and spec.origin else None)
        if folder is not None and not any(folder == r or r in folder.parents for r in roots):
            roots.append(folder)
    return roots


def supervise(scratch: Path, job: Job, limits: Limits) -> Outcome:
    """Start the jailed child, read its lines under the two deadlines, reap it (and the jail)."""
    argv = jail.jail_argv([sys.executable, "-m", CHILD_MODULE, f"{jail.SCRATCH}/{JOB}"], scratch,
                          readable=readable_for(job.source), env=_child_env(job))
    start = time.perf_counter()
    child, lines, tail, readers = _start_jailed(argv)
    outcome = Outcome()
    started_at = _follow(lines, outcome, start + limits.startup_limit_s, limits.time_limit_s)
    ended_at = time.perf_counter()
    outcome.exit_code, outcome.peak_rss_mb = _reap(child, grace=0.0 if outcome.timed_out else REAP_GRACE_S)
    outcome.seconds = time.perf_counter() - start
    if started_at is not None:
        outcome.run_seconds = ended_at - started_at
    for reader in readers:
        reader.join(timeout=1.0)
    outcome.stderr_tail = list(tail)
    return outcome


def _start_jailed(argv: list[str]) -> tuple[subprocess.Popen[bytes], queue.Queue[bytes | None], deque[str],
                                            list[threading.Thread]]:
    """Start the jail in a session of its own, with threads reading its message lines (bounded)
    and the tail of its stderr."""
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    lines: queue.Queue[bytes | None] = queue.Queue()
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    readers = [threading.Thread(target=_read_lines, args=(child.stdout, lines), daemon=True),
               threading.Thread(target=_read_tail, args=(child.stderr, tail), daemon=True)]
    for reader in readers:
        reader.start()
    return child, lines, tail, readers


def _child_env(job: Job) -> dict[str, str]:
    """The child's whole environment (the jail clears the rest): threads, and nothing that
    names a store, a cache, a mirror or a credential."""
    env = {"MUBENCH_IN_JAIL": "1"}
    if job.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(job.threads)
    return env


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _follow(lines: queue.Queue[bytes | None], outcome: Outcome, deadline: float, time_limit_s: float) -> float | None:
    """Consume the child's lines until its result, end of output or a deadline; returns when it started."""
    started_at = None
    while outcome.result is None and outcome.invalid is None:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.perf_counter()))
        except queue.Empty:
            outcome.timed_out = "run" if started_at is not None else "start-up"
            if started_at is not None:
                outcome.run_seconds = time.perf_counter() - started_at
            return started_at
        if line is None:  # end of output: the child exited (or closed its channel)
            return started_at
        try:
            message = Message.validate_json(line)
        except ValidationError as exc:
            outcome.invalid = _first_error(exc)
            return started_at
        if isinstance(message, Started) and not outcome.started:
            outcome.started, started_at = True, time.perf_counter()
            deadline = started_at + time_limit_s
        elif isinstance(message, Started):
            outcome.invalid = "a second 'started' line"
        elif isinstance(message, Finished) and not outcome.started:
            outcome.invalid = "'finished' before 'started'"
        else:
            outcome.result = message
    return started_at


def _read_lines(stream, lines: queue.Queue[bytes | None]) -> None:  # type: ignore[no-untyped-def]
    while True:
        line = stream.readline(MAX_LINE_BYTES)
        if not line:
            break
        lines.put(line)
    lines.put(None)


def _read_tail(stream, tail: deque[str]) -> None:  # type: ignore[no-untyped-def]
    for line in iter(lambda: stream.readline(65536), b""):
        tail.append(line.decode("utf-8", "replace").rstrip())


def _reap(child: subprocess.Popen, grace: float) -> tuple[int, float]:
    """Wait up to `grace` s for the jail to exit, then kill its process group; (exit code, peak
    RSS MB). Killing bubblewrap ends the jail's PID namespace, and the kernel kills every process
    in it; the child is reaped only after that (WNOWAIT), so its pid cannot be reused meanwhile.
    bubblewrap reports a child killed by signal N as status 128 + N: returned as -N."""
    deadline = time.perf_counter() + grace
    while os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.perf_counter() >= deadline:
            break
        time.sleep(0.02)
    _kill_group(child.pid)
    _, status, usage = os.wait4(child.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    child.returncode = code
    if 128 < code < 128 + 65:
        code = -(code - 128)
    return code, usage.ru_maxrss / 1024.0


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def failed_record(config: RunConfig, prepared: Prepared, reason: str, outcome: Outcome, harness: Harness) -> Record:
    """A failed record with the reason, built here from what the driver knows."""
    from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION

    device = str(harness.device)
    return Record(id=config.id, config=config, status="failed", error=reason, metrics={},
                  split_id=prepared.split.id, data_source=prepared.task.data_source(),
                  metrics_version=METRICS_VERSION, mia_spec_version=MIA_SPEC_VERSION,
                  mubench_version=provenance.mubench_version(), git_commit=provenance.git_commit(),
                  hardware=provenance.hardware(device), device=device,
                  seconds=outcome.seconds if outcome.run_seconds is None else outcome.run_seconds,
                  peak_rss_mb=outcome.peak_rss_mb)


def failure_reason(limits: Limits, outcome: Outcome) -> str:
    if outcome.timed_out == "run":
        return f"exceeded the wall-time limit of {limits.time_limit_s:g} s"
    if outcome.timed_out == "start-up":
        return f"the isolated run did not start within {limits.startup_limit_s:g} s (imports, its inputs)"
    if isinstance(outcome.result, Failure):
        return outcome.result.error
    if outcome.invalid is not None:
        return f"the isolated run sent an invalid message: {outcome.invalid}"
    if isinstance(outcome.result, Finished):
        return "the isolated run said it finished before it started"
    code = outcome.exit_code or 0
    last = next((line for line in reversed(outcome.stderr_tail) if line.strip()), "")
    if code < 0:
        name = _signal_name(-code)
        why = f"the isolated run was killed by signal {name}"
        if limits.memory_limit_mb is not None and name in {"SIGKILL", "SIGSEGV", "SIGABRT", "SIGBUS"}:
            why += f" (by the method, or from running out of memory; memory limit {limits.memory_limit_mb} MB)"
        return why
    return f"the isolated run exited with status {code} without a result" + (f": {last[-300:]}" if last else "")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    return f"{where}: {error['msg']}"


def _find_spec(module: str) -> object | None:
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None

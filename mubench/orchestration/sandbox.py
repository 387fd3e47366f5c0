"""Run one RunConfig of an untrusted method in a separate process, with limits.

A submitted method is someone else's code: it may hang, raise, exhaust memory, kill its own
process, return NaN weights or another architecture, or reach for data it did not declare. Here
it runs in a child process (`python -m mubench.orchestration.sandbox`, its own session, so its whole process
group can be killed), and whatever happens the driver gets a normal Record and the sweep goes on.

Protocol. The driver writes a JSON `Payload` (config, limits, harness options, where the method
class comes from) on the child's stdin. The child prepares the run (data, the cached original and
oracle, the split) and writes one JSON line `{"kind": "ready", ...}` (split id, data source), then
runs the harness and writes `{"kind": "record", "record": ...}` or `{"kind": "error", ...}`. The
record channel is a private copy of the child's stdout: the child points fd 1 at stderr first,
so a method's prints cannot corrupt it. The driver parses every line with pydantic (Record's own
validators; the record's config must equal the one sent): nothing is unpickled from the child,
and models never come back.

Limits. `startup_limit_s` bounds the start-up (imports, data, models from the cache);
`time_limit_s` bounds the rest (the method and its evaluation), counted from the "ready" line, so
the limit does not depend on how long a busy machine takes to import torch. On expiry the driver
kills the child's process group (SIGKILL). `memory_limit_mb` bounds the address space the method
may add to the harness's own footprint: RLIMIT_AS (soft and hard, so the method cannot raise it)
is set to the child's current size plus the limit just before the method runs (torch alone maps
about 3-4 GB of address space on import, so a whole-process limit of a few GB would refuse the
harness itself). An allocation beyond it raises MemoryError (numpy) or a torch allocator error,
which becomes "exceeded the memory limit of N MB".

What this does not do: it isolates failures, not intent. The method runs in the process that
evaluates it, so a deliberately malicious method could forge its own record; and the user's file
is imported once in the driver too, for the static checks of `mubench submit`.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import resource
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

from mubench.errors import MubenchError
from mubench.harness import provenance
from mubench.harness.record import Record, RunConfig
from mubench.orchestration.executors import Executor

if TYPE_CHECKING:
    from mubench.harness.runner import Harness

MAX_LINE_BYTES = 64 * 2**20  # a record is a few kB; anything near this is not one
REAP_GRACE_S = 10.0  # after its last line, how long the child may take to exit before it is killed
STDERR_TAIL_LINES = 40


@dataclass(frozen=True)
class Limits:
    """Limits of one isolated run (see the module docstring for what each one counts)."""

    time_limit_s: float = 3600.0
    memory_limit_mb: int | None = None
    startup_limit_s: float = 600.0
    parallel: int = 1  # isolated runs at once; 1 (one after another) keeps cost/seconds comparable

    def __post_init__(self) -> None:
        if self.parallel < 1:
            raise ValueError(f"parallel must be at least 1, got {self.parallel}")
        if not self.time_limit_s > 0 or not self.startup_limit_s > 0:
            raise ValueError(f"time limits must be positive, got {self.time_limit_s} and {self.startup_limit_s}")
        if self.memory_limit_mb is not None and self.memory_limit_mb <= 0:
            raise ValueError(f"the memory limit must be positive, got {self.memory_limit_mb} MB")


class HarnessOptions(BaseModel):
    """How the child builds its Harness: the driver's device, shadow models, model cache and threads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = "cpu"
    shadow_models: int = Field(default=0, ge=0)
    cache_root: str | None = None  # None: the default cache under $MUBENCH_HOME
    threads: int | None = Field(default=None, ge=1)  # torch intra-op threads (same threads: same numbers)

    @classmethod
    def of(cls, harness: Harness) -> HarnessOptions:
        import torch

        return cls(device=str(harness.device), shadow_models=harness.shadow_models,
                   cache_root=str(harness.cache.root), threads=torch.get_num_threads())


class MethodSource(BaseModel):
    """Where the child finds the method class: an importable module (registered baselines and
    entry-point packages) or a user's file, loaded as `mubench submit` does (mubench.orchestration.loading)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    module: str | None = None
    file: str | None = None  # "path/to/file.py:ClassName"


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    config: RunConfig
    time_limit_s: float
    memory_limit_mb: int | None
    options: HarnessOptions
    source: MethodSource


class Ready(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["ready"]
    split_id: str
    data_source: str


class Done(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["record"]
    record: Record


class Failure(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["error"]
    error: str = Field(min_length=1)


Message = TypeAdapter(Annotated[Union[Ready, Done, Failure], Field(discriminator="kind")])


# -- the driver ------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What the driver saw of one child: its messages, how it ended, and when."""

    ready: Ready | None = None
    result: Done | Failure | None = None
    invalid: str | None = None  # why a line from the child was refused
    timed_out: str | None = None  # "start-up" or "run"
    exit_code: int | None = None  # negative: killed by that signal
    peak_rss_mb: float = 0.0
    seconds: float = 0.0  # the child's whole life
    run_seconds: float | None = None  # from "ready" to the end (a failed record's seconds, like Harness.run's)
    stderr_tail: list[str] = field(default_factory=list)


def run_isolated(config: RunConfig, limits: Limits, harness_options: HarnessOptions | None = None) -> Record:
    """The record of `config` run in a child process under `limits`; never raises for the method's faults."""
    options = harness_options or HarnessOptions()
    outcome = supervise(config, limits, options)
    return record_of(config, limits, options, outcome)


def run_in_sandbox(harness: Harness, config: RunConfig, limits: Limits) -> Record:
    """For sweep.run_grid: train (or load) the shared original and oracle in the trusted driver
    first, so the child only loads them from the model cache, then run isolated."""
    harness.prepare(config.task, config.scenario, config.seed, config.profile)
    return run_isolated(config, limits, HarnessOptions.of(harness))


class IsolatedExecutor(Executor):
    """The local executor's order and records, each run in its own child process under `limits`."""

    def __init__(self, harness: Harness, limits: Limits) -> None:
        self.harness, self.limits = harness, limits

    def map(self, configs: Sequence[RunConfig]) -> Iterator[Record]:
        if self.limits.parallel == 1:
            for config in configs:
                yield run_in_sandbox(self.harness, config, self.limits)
            return
        pool = ThreadPoolExecutor(self.limits.parallel)  # threads only wait on their child processes
        try:
            futures = []
            for config in configs:  # the driver's harness (not thread-safe) prepares here, in order
                self.harness.prepare(config.task, config.scenario, config.seed, config.profile)
                futures.append(pool.submit(run_isolated, config, self.limits, HarnessOptions.of(self.harness)))
            for future in futures:
                yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


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
    module = sys.modules.get(cls.__module__)
    importable = (cls.__module__ != "__main__" and not cls.__module__.startswith("mubench_submission_")
                  and _find_spec(cls.__module__) is not None)
    if importable:
        return MethodSource(module=cls.__module__)
    path = getattr(module, "__file__", None)
    if path is None:
        raise ValueError(f"method {name!r}: its class {cls.__qualname__} has no source file the child could load")
    return MethodSource(file=f"{Path(path).resolve()}:{cls.__qualname__}")


def supervise(config: RunConfig, limits: Limits, options: HarnessOptions) -> Outcome:
    """Start the child, feed it the payload, read its lines under the two deadlines, reap it."""
    payload = Payload(config=config, time_limit_s=limits.time_limit_s, memory_limit_mb=limits.memory_limit_mb,
                      options=options, source=method_source(config.method))
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "mubench.orchestration.sandbox"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env)
    outcome = Outcome()
    lines: queue.Queue[bytes | None] = queue.Queue()
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    readers = [threading.Thread(target=_read_lines, args=(child.stdout, lines), daemon=True),
               threading.Thread(target=_read_tail, args=(child.stderr, tail), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        assert child.stdin is not None
        child.stdin.write(payload.model_dump_json().encode())
        child.stdin.close()
    except OSError:
        pass  # the child died at once; its exit status says how
    ready_at = _follow(lines, outcome, start + limits.startup_limit_s, limits.time_limit_s)
    outcome.exit_code, outcome.peak_rss_mb = _reap(child, grace=0.0 if outcome.timed_out else REAP_GRACE_S)
    end = time.perf_counter()
    outcome.seconds = end - start
    outcome.run_seconds = end - ready_at if ready_at is not None else None
    for reader in readers:
        reader.join(timeout=1.0)
    outcome.stderr_tail = list(tail)
    return outcome


def _follow(lines: queue.Queue[bytes | None], outcome: Outcome, deadline: float, time_limit_s: float) -> float | None:
    """Consume the child's lines until its result, end of output or a deadline; returns when it was ready."""
    ready_at = None
    while outcome.result is None and outcome.invalid is None:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.perf_counter()))
        except queue.Empty:
            outcome.timed_out = "run" if ready_at is not None else "start-up"
            return ready_at
        if line is None:  # end of output: the child exited (or closed its channel)
            return ready_at
        try:
            message = Message.validate_json(line)
        except ValidationError as exc:
            outcome.invalid = _first_error(exc)
            return ready_at
        if isinstance(message, Ready) and outcome.ready is None:
            outcome.ready, ready_at = message, time.perf_counter()
            deadline = ready_at + time_limit_s
        elif isinstance(message, Ready):
            outcome.invalid = "a second 'ready' line"
        else:
            outcome.result = message
    return ready_at


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
    """Wait up to `grace` s for the child to exit, then kill its process group; (exit code, peak RSS MB).
    The group is killed in any case, so processes the method started do not outlive the run; the
    child is reaped only after that (WNOWAIT), so its pid, the group's id, cannot be reused meanwhile."""
    deadline = time.perf_counter() + grace
    while os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.perf_counter() >= deadline:
            break
        time.sleep(0.02)
    _kill_group(child.pid)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: wait4 gives this child's own rusage
    return child.returncode, usage.ru_maxrss / 1024.0


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def record_of(config: RunConfig, limits: Limits, options: HarnessOptions, outcome: Outcome) -> Record:
    """The child's own record when it sent a valid one for this config; else a failed record with
    the reason, built here from what the driver knows."""
    if isinstance(outcome.result, Done) and outcome.result.record.config == config:
        return outcome.result.record
    reason = failure_reason(config, limits, outcome)
    from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION

    ready = outcome.ready
    return Record(id=config.id, config=config, status="failed", error=reason, metrics={},
                  split_id=ready.split_id if ready else "", data_source=ready.data_source if ready else "",
                  metrics_version=METRICS_VERSION, mia_spec_version=MIA_SPEC_VERSION,
                  mubench_version=provenance.mubench_version(), git_commit=provenance.git_commit(),
                  hardware=provenance.hardware(options.device), device=options.device,
                  seconds=outcome.seconds if outcome.run_seconds is None else outcome.run_seconds,
                  peak_rss_mb=outcome.peak_rss_mb)


def failure_reason(config: RunConfig, limits: Limits, outcome: Outcome) -> str:
    if isinstance(outcome.result, Done):
        return f"the isolated run returned the record of another config ({outcome.result.record.config.label})"
    if outcome.timed_out == "run":
        return f"exceeded the wall-time limit of {limits.time_limit_s:g} s"
    if outcome.timed_out == "start-up":
        return f"the isolated run did not start within {limits.startup_limit_s:g} s (imports, data, cached models)"
    if isinstance(outcome.result, Failure):
        return outcome.result.error
    if outcome.invalid is not None:
        return f"the isolated run sent an invalid message: {outcome.invalid}"
    code = outcome.exit_code or 0
    last = next((line for line in reversed(outcome.stderr_tail) if line.strip()), "")
    if code < 0:
        name = _signal_name(-code)
        why = f"the isolated run was killed by signal {name}"
        if limits.memory_limit_mb is not None and name in {"SIGKILL", "SIGSEGV", "SIGABRT", "SIGBUS"}:
            why += f" (by the method, or from running out of memory; memory limit {limits.memory_limit_mb} MB)"
        return why
    return f"the isolated run exited with status {code} without a record" + (f": {last[-300:]}" if last else "")


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


# -- the child -------------------------------------------------------------------------------------

def _child_main() -> int:
    """`python -m mubench.orchestration.sandbox`: read the payload on stdin, write JSON lines on a private stdout."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the method's prints (and anything else on fd 1) go to stderr
    sys.stdout = sys.stderr

    def send(message: BaseModel) -> None:
        channel.write(message.model_dump_json() + "\n")
        channel.flush()

    try:
        payload = Payload.model_validate_json(sys.stdin.buffer.read())
        send(_child_run(payload, send))
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a method included: reported, not lost
        from mubench.harness.runner import _reason

        send(Failure(kind="error", error=_reason(exc) if isinstance(exc, Exception)
                     else f"{type(exc).__name__}: {exc} (raised outside the harness's handling)"))
    return 0


def _child_run(payload: Payload, send) -> Done:  # type: ignore[no-untyped-def]
    import torch

    from mubench.harness.artifacts import ModelCache
    from mubench.harness.runner import Harness

    config, options = payload.config, payload.options
    if options.threads:
        torch.set_num_threads(options.threads)
    _load_method(config.method, payload.source)
    cache = ModelCache(Path(options.cache_root)) if options.cache_root else None
    harness = Harness(device=options.device, cache=cache, shadow_models=options.shadow_models)
    prepared = harness.prepare(config.task, config.scenario, config.seed, config.profile)
    send(Ready(kind="ready", split_id=prepared.split.id, data_source=prepared.task.data_source()))
    if payload.memory_limit_mb is not None:
        limit_address_space(payload.memory_limit_mb)
    record = harness.run(config)
    if payload.memory_limit_mb is not None and record.error and _is_allocation_failure(record.error):
        record = record.model_copy(update={
            "error": f"exceeded the memory limit of {payload.memory_limit_mb} MB ({record.error[:300]})"})
    return Done(kind="record", record=record)


def _load_method(name: str, source: MethodSource) -> None:
    """Register the method in this fresh process the way the driver got it."""
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
    methods.get(name)  # an unknown name fails here, clearly


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


def _is_allocation_failure(error: str) -> bool:
    return error.startswith("MemoryError") or any(
        marker in error for marker in ("can't allocate memory", "Cannot allocate memory", "bad_alloc"))


if __name__ == "__main__":
    sys.exit(_child_main())

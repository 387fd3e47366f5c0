"""`mubench verify --rerun K`: re-execute K of an entry's runs from their configs and compare.

A record is a claim about what its config gives; rerunning the config with the installed code
(whose source digest the config names) tests the claim, as RobustBench re-evaluates submitted
models. The runs are chosen reproducibly (a generator of fixed seed over the successful records
sorted by id), training the original and oracle where this clone's model cache lacks them.

The unlearned weights are compared by their sha256 where the record names them
(`Record.weights_sha256`), and every metric is compared, except the three that measure the machine rather than the method
(`MEASURED`: seconds, seconds relative to retraining, peak memory). On the CPU a run on one
thread is deterministic (the same kernels give the same bits; the test suite checks that a run
repeated gives the same record), and the board's runs are made on one thread (`make board`), so
reruns use one thread too and the tolerance is tight: `TOLERANCE` absolute, which allows the last
digits of a different BLAS build and nothing a method could change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mubench.harness.record import Record

if TYPE_CHECKING:
    from mubench.orchestration.sandbox import Limits

MEASURED = frozenset({"cost/seconds", "cost/rte", "cost/peak_mem_mb"})
TOLERANCE = 1e-6
RERUN_SEED = 0


@dataclass
class RerunReport:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def chosen_runs(records: Sequence[Record], k: int) -> list[Record]:
    """K successful records, drawn reproducibly."""
    ok = sorted((r for r in records if r.status == "ok"), key=lambda r: r.id)
    if k >= len(ok):
        return ok
    picks = np.random.default_rng(RERUN_SEED).choice(len(ok), size=k, replace=False)
    return [ok[i] for i in sorted(picks)]


def compare(stated: Record, again: Record) -> tuple[list[str], float]:
    """Differences beyond TOLERANCE between a record and its rerun (metrics missing on either
    side included), and the largest absolute difference seen."""
    problems, largest = [], 0.0
    if again.status != "ok":
        return [f"{stated.config.label}: the rerun failed ({again.error})"], float("inf")
    if stated.weights_sha256 and again.weights_sha256 and stated.weights_sha256 != again.weights_sha256:
        problems.append(f"{stated.config.label}: the rerun's unlearned weights differ from the record's "
                        f"(sha256 {again.weights_sha256[:12]}, the record says {stated.weights_sha256[:12]})")
    keys = (set(stated.metrics) | set(again.metrics)) - MEASURED
    for key in sorted(keys):
        if key not in stated.metrics or key not in again.metrics:
            side = "the record" if key not in stated.metrics else "the rerun"
            problems.append(f"{stated.config.label}: {key} is missing from {side}")
            continue
        difference = abs(stated.metrics[key] - again.metrics[key])
        largest = max(largest, difference)
        if difference > TOLERANCE:
            problems.append(f"{stated.config.label}: {key} is {stated.metrics[key]!r} in the record, "
                            f"{again.metrics[key]!r} rerun")
    return problems, largest


def rerun_records(records: Sequence[Record], k: int, device: str = "cpu", isolate: Limits | None = None) -> RerunReport:
    """Rerun `k` of `records` and compare each with its record; with `isolate`, each method runs
    in the sandbox's jail (mubench.orchestration.sandbox) and the harness measures it outside, as
    `mubench submit` ran it."""
    import torch

    from mubench.harness.runner import Harness
    from mubench.orchestration.sandbox import run_in_sandbox

    torch.set_num_threads(1)  # as the board's runs are made (`make board`): the same kernels, the same bits
    harness = Harness(device=device)
    report = RerunReport()
    for record in chosen_runs(records, k):
        again = run_in_sandbox(harness, record.config, isolate) if isolate else harness.run(record.config)
        problems, largest = compare(record, again)
        report.problems += problems
        compared = len((set(record.metrics) & set(again.metrics)) - MEASURED)
        state = "reproduced" if not problems else f"{len(problems)} difference(s)"
        report.lines.append(f"rerun {record.config.label}: {state} ({compared} metrics, largest difference "
                            f"{largest:.1e}; {sorted(MEASURED)} measure the machine and are not compared)")
    return report

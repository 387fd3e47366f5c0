"""`python -m mubench.bench.training` on the synthetic `debug` task: the figures it writes, the
projection by hand, and the per-run breakdown of seconds (method, outputs, each metric)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from mubench.bench import training as bench_training
from mubench.harness.artifacts import ModelCache
from mubench.harness.runner import Harness, supports
from mubench.harness.training import METHOD_PRECISION_ENV
from mubench.methods import methods
from mubench.metrics import metrics
from mubench.tasks import tasks


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    """One bench run for the module (one torch thread: the debug models are tiny)."""
    import torch

    folder = tmp_path_factory.mktemp("bench")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MUBENCH_HOME", str(folder / "home"))
            patch.setenv("MUBENCH_OFFLINE", "1")
            bench_training.main(["--tasks", "debug", "--profile", "smoke", "--methods", "identity,finetune,retrain",
                                 "--json", str(folder / "figures.json")])
    finally:
        torch.set_num_threads(before)
    return json.loads((folder / "figures.json").read_text())


def test_bench_writes_training_figures_and_a_run_breakdown(figures):
    (row,) = figures
    assert row["task"] == "debug" and row["profile"] == "smoke" and row["methods_measured"] == 3  # retrain is timed like any run
    assert row["train_seconds"] > 0 and row["samples_per_second"] == pytest.approx(
        row["epochs"] * row["train_samples"] / row["train_seconds"])
    assert 0.0 <= row["test_value"] <= 1.0
    breakdown = row["run_breakdown"]
    assert {"method", "outputs", "relearn/steps", "mia/svc", "forget/acc"} <= set(breakdown)
    assert set(breakdown) - {"method", "outputs"} <= set(metrics.names())
    assert all(v >= 0 for v in breakdown.values())
    assert sum(breakdown.values()) <= row["run_seconds"]  # the parts fit inside the run's wall time


def test_bench_projection_by_hand(figures):
    (row,) = figures
    task = tasks.get("debug")
    scenarios = len(task.spec.scenarios)
    applicable = [n for n in methods.names() if supports(methods.get(n), task)]
    runs = 3 * scenarios * len(applicable)  # retrain too: it reuses the cached oracle
    trainings = 3 * (1 + scenarios)  # originals (no poisoning scenario on debug) and oracles
    expected = (trainings * row["train_seconds"] + runs * row["run_seconds"]) / 3600
    assert not any(s.kind == "fgsm_poison" for s in task.spec.scenarios)
    assert row["projected_hours"] == pytest.approx(expected)


def test_format_breakdown_keeps_method_and_outputs_then_the_costliest_metrics():
    text = bench_training.format_breakdown({"b": 0.5, "method": 1.0, "a": 2.0, "c": 0.1, "outputs": 0.2}, top=2)
    assert text == "method 1.000, outputs 0.200, a 2.000, b 0.500, other metrics 0.100"
    assert bench_training.format_breakdown({"method": 1.0}) == "method 1.000"


@pytest.mark.slow
def test_bench_times_runs_concurrently_and_projects_with_the_effective_seconds(tmp_path, monkeypatch):
    """`--concurrent 2`: the runs also go through two workers (a local Ray instance, or worker
    processes without Ray); the projection takes the effective seconds per run (wall time / runs)."""
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    out = tmp_path / "figures.json"
    bench_training.main(["--tasks", "debug", "--profile", "smoke", "--methods", "identity,finetune,grad_ascent",
                         "--concurrent", "2", "--json", str(out)])
    (row,) = json.loads(out.read_text())
    assert row["workers"] == 2 and row["concurrent_run_seconds"] > 0
    assert row["concurrency"] == {"2": row["concurrent_run_seconds"]}  # no --overlap on the CPU by default
    faster = "2" if row["concurrent_run_seconds"] < row["run_seconds"] else "1"
    assert row["projected_with"] == faster
    assert row["projected_hours"] == pytest.approx(bench_training.projected_hours(
        tasks.get("debug"), row["train_seconds"], min(row["run_seconds"], row["concurrent_run_seconds"])))


def test_bench_refuses_a_concurrency_below_one(capsys):
    with pytest.raises(SystemExit):
        bench_training.main(["--tasks", "debug", "--concurrent", "0"])
    assert "--concurrent must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_without_ray_the_runs_go_through_worker_processes(tmp_path, monkeypatch, capsys):
    """Ray is optional: without it `--concurrent` times the runs K at a time in the `processes`
    executor's worker processes, and says which executor it used."""
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    configs = bench_training.method_configs(tasks.get("debug"), "smoke", ["identity", "finetune"])
    seconds = bench_training.concurrent_run_seconds(Harness(cache=ModelCache(tmp_path / "models")), configs, 2)
    assert seconds > 0
    assert "debug: 2 runs, 2 at a time (processes): " in capsys.readouterr().out
    assert len(list((tmp_path / "models").glob("*.safetensors"))) == 2  # the workers trained the original and oracle


def test_bench_keeps_the_sequential_projection_when_no_worker_starts(tmp_path, monkeypatch, capsys):
    """Workers that cannot start leave the runs timed one after another, with a message."""
    def cannot_start(harness, configs, workers):  # type: ignore[no-untyped-def]
        raise OSError("cannot spawn a process")

    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.setattr(bench_training, "concurrent_run_seconds", cannot_start)
    out = tmp_path / "figures.json"
    bench_training.main(["--tasks", "debug", "--profile", "smoke", "--methods", "identity", "--concurrent", "2",
                         "--json", str(out)])
    (row,) = json.loads(out.read_text())
    assert row["concurrent_run_seconds"] is None and row["workers"] == 1
    assert row["projected_hours"] == pytest.approx(
        bench_training.projected_hours(tasks.get("debug"), row["train_seconds"], row["run_seconds"]))
    assert "runs not timed 2 at a time (OSError: cannot spawn a process)" in capsys.readouterr().out


def test_bench_times_several_concurrency_levels_and_projects_with_the_fastest(tmp_path, monkeypatch):
    """`--concurrent 2,3`: both levels are timed (the executor is stubbed: its seconds are given),
    the row keeps each, and the projection and `workers` take the fastest."""
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.setenv(METHOD_PRECISION_ENV, "")  # restored afterwards: --methods-fp32 sets it
    seen = []

    def timed(harness, configs, workers):  # type: ignore[no-untyped-def]
        seen.append(workers)
        return {2: 0.002, 3: 0.001}[workers]  # faster than any real run

    monkeypatch.setattr(bench_training, "concurrent_run_seconds", timed)
    out = tmp_path / "figures.json"
    bench_training.main(["--tasks", "debug", "--profile", "smoke", "--methods", "identity", "--concurrent", "2,3",
                         "--methods-fp32", "--json", str(out)])
    (row,) = json.loads(out.read_text())
    assert seen == [2, 3] and row["concurrency"] == {"2": 0.002, "3": 0.001}
    assert row["workers"] == 3 and row["concurrent_run_seconds"] == 0.001
    assert row["projected_with"] == "3"
    assert row["projected_hours"] == pytest.approx(bench_training.projected_hours(tasks.get("debug"),
                                                                                  row["train_seconds"], 0.001))
    assert row["overrides"] == "methods fp32" and os.environ[METHOD_PRECISION_ENV] == "fp32"


def test_bench_times_overlapped_runs_and_projects_with_the_fastest_way(tmp_path, monkeypatch, capsys):
    """`--overlap`: the runs are timed again one after another with each run's host phase in a
    thread beside the next run's method; the row keeps it as the "1+overlap" level and the
    projection takes the fastest way timed."""
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    out = tmp_path / "figures.json"
    bench_training.main(["--tasks", "debug", "--profile", "smoke", "--methods", "identity,grad_ascent", "--overlap",
                         "--json", str(out)])
    (row,) = json.loads(out.read_text())
    overlapped = row["overlapped_run_seconds"]
    assert overlapped > 0 and row["concurrency"] == {"1+overlap": overlapped}
    assert row["projected_with"] == ("1+overlap" if overlapped < row["run_seconds"] else "1")
    assert row["projected_hours"] == pytest.approx(bench_training.projected_hours(
        tasks.get("debug"), row["train_seconds"], min(overlapped, row["run_seconds"])))
    assert "debug: 2 runs one after another, host phases overlapped: " in capsys.readouterr().out
    assert row["overlapped_method_seconds"] > 0 and row["method_seconds"] > 0  # mean cost/seconds, both ways


def test_bench_refuses_a_concurrency_list_that_is_not_numbers(capsys):
    with pytest.raises(SystemExit):
        bench_training.main(["--tasks", "debug", "--concurrent", "4,many"])
    assert "expected whole numbers separated by commas, got '4,many'" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_bench_refuses_a_sync_audit_without_cuda(capsys):
    with pytest.raises(SystemExit):
        bench_training.main(["--tasks", "debug", "--methods", "identity", "--sync-audit"])
    assert "--sync-audit needs a CUDA device" in capsys.readouterr().err


def test_sync_audit_counts_each_methods_synchronisations_and_names_the_busiest_lines(tmp_path, monkeypatch, capsys):
    """The recorder is stubbed (no CUDA here): each method's unlearning "synchronises" at given
    lines; the audit counts them per method, prints the busiest first, and reports a method that
    fails instead of stopping."""
    import contextlib

    from mubench.harness import runner
    made: list[str] = []

    def unlearn(self, config, prepared):  # type: ignore[no-untyped-def]
        made.append(config.method)
        if config.method == "retrain":
            raise RuntimeError("boom")

    monkeypatch.setattr(runner.Harness, "unlearn", unlearn)

    @contextlib.contextmanager
    def recorder():  # type: ignore[no-untyped-def]
        sites: list[str] = []
        yield sites
        sites.extend({"identity": [], "finetune": ["/x/request.py:10"] * 5 + ["/x/optim.py:3"] * 2}[made[-1]])

    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.setattr(bench_training, "recording_synchronisations", recorder)
    configs = bench_training.method_configs(tasks.get("debug"), "smoke", ["identity", "finetune", "retrain"])
    counts = bench_training.method_synchronisations(Harness(cache=ModelCache(tmp_path / "models")), configs)
    assert counts == {"identity": 0, "finetune": 7}
    out = capsys.readouterr().out
    assert "debug identity: 0 synchronising calls\n" in out
    assert "debug finetune: 7 synchronising calls: /x/request.py:10 x5, /x/optim.py:3 x2" in out
    assert "debug retrain: not audited (RuntimeError: boom)" in out


def test_plan_counts_the_full_leaderboard_by_hand_and_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_training, "Harness", None)  # --plan must not build a harness, let alone train
    bench_training.main(["--plan", "--tasks", "debug,cifar10", "--budget-hours", "2", "--json", str(tmp_path / "p.json")])
    sizes = {s["task"]: s for s in json.loads((tmp_path / "p.json").read_text())}
    for name in ("debug", "cifar10"):
        task = tasks.get(name)
        scenarios = task.spec.scenarios
        applicable = [n for n in methods.names() if supports(methods.get(n), task)]
        poisoning = sum(s.kind == "fgsm_poison" for s in scenarios)
        assert sizes[name] == {"task": name, "scenarios": len(scenarios), "methods": len(applicable),
                               "trainings": 3 * (1 + poisoning + len(scenarios)),
                               "runs": 3 * len(scenarios) * len(applicable)}
    # the projection counts the same jobs: 1 s a training and 0 s a run is the trainings in hours
    assert bench_training.projected_hours(tasks.get("cifar10"), 3600.0, 0.0) == sizes["cifar10"]["trainings"]
    jobs = sum(s["runs"] + s["trainings"] for s in sizes.values())
    out = capsys.readouterr().out
    assert f"leaves {2 * 3600 / jobs:.3f} s per job" in out and "total" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--plan", "--tasks", "debug,nope"], "--tasks: unknown task 'nope'"),
    (["--plan", "--budget-hours", "-1"], "--budget-hours must be positive"),
])
def test_plan_refuses_bad_input_by_name(args, message, capsys):
    with pytest.raises(SystemExit):
        bench_training.main(args)
    assert message in capsys.readouterr().err

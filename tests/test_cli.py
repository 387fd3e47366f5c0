"""The `mubench` command line: list, run, results, data status, and its errors.

Commands run in-process through typer's CliRunner (or through `mubench.cli.app.main`, the console
script's entry point, where the exit code and message of a MubenchError matter); a few run the
installed console script in a subprocess, end to end. Everything that trains uses the `debug`
task; `cmnist` appears only where no data is read (data status, missing files, grid expansion).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from helpers import MIRROR_SKIP, REAL_MIRROR
from mubench.cli import app as cli
from mubench.cli.app import app
from mubench.harness.record import Record
from mubench.methods import methods
from mubench.orchestration.store import Store
from mubench.orchestration.sweep import GridSpec, Suite, expand_grid
from mubench.tasks import tasks

MUBENCH = Path(sys.executable).with_name("mubench")
MNIST_FILES = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}
RUN_ARGS = ["run", "--task", "debug", "--scenario", "random_10", "--method", "identity", "--method", "retrain",
            "--seed", "0", "--seed", "1", "--json"]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    yield tmp_path / "home"


def invoke(*args: object):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result


def main_in_process(monkeypatch, capsys, *args: str) -> SimpleNamespace:
    """`mubench ARGS` through `mubench.cli.app.main` (what the console script calls)."""
    monkeypatch.setattr(sys, "argv", ["mubench", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    captured = capsys.readouterr()
    return SimpleNamespace(code=exit_info.value.code, stdout=captured.out, stderr=captured.err)


def console_script(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """The installed `mubench` in a subprocess, with this test's environment."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra_env}
    return subprocess.run([str(MUBENCH), *args], env=env, capture_output=True, text=True, timeout=300)


def json_records(stdout: str) -> list[Record]:
    return [Record.model_validate_json(line) for line in stdout.splitlines()]


# ---- progress ---------------------------------------------------------------------------------

def test_the_progress_bar_names_each_run_while_it_runs(tmp_path, monkeypatch, capsys):
    """run_with_progress (`mubench run`, `mubench submit`): the bar's description is the run in
    progress (task/scenario/method/seed and its setting), a finished run's line counts i/N, and a
    run already stored is counted without running."""
    from helpers import debug_config
    from mubench.cli import common
    from mubench.cli.common import describe_runs, run_name, run_with_progress
    from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION

    descriptions: list[str] = []

    class Recording(common.Progress):
        def add_task(self, description, *args, **kwargs):  # type: ignore[no-untyped-def]
            descriptions.append(description)
            return super().add_task(description, *args, **kwargs)

        def update(self, task_id, *args, description=None, **kwargs):  # type: ignore[no-untyped-def]
            if description is not None:
                descriptions.append(description)
            return super().update(task_id, *args, description=description, **kwargs)

    def finished(config):  # type: ignore[no-untyped-def]
        return Record(id=config.id, config=config, status="ok", metrics={"test/acc": 0.5}, split_id="s",
                      metrics_version=METRICS_VERSION, mia_spec_version=MIA_SPEC_VERSION, mubench_version="0",
                      git_commit="x", hardware="cpu", device="cpu", seconds=0.0, peak_rss_mb=0.0)

    class Executor:
        def map(self, configs):  # type: ignore[no-untyped-def]
            for config in configs:
                seen.append(descriptions[-1])  # what the bar says while this run runs
                yield finished(config)

    seen: list[str] = []
    monkeypatch.setattr(common, "Progress", Recording)
    configs = [debug_config("identity", seed=0), debug_config("finetune", seed=0, lr=0.5),
               debug_config("identity", scenario="random_10", seed=1)]
    store = Store(tmp_path / "store.sqlite")
    store.put(finished(configs[1]))
    assert describe_runs(configs, store) == (
        f"3 runs over 2 task x scenario cells of 1 task x 2 seeds x 2 settings; "
        f"1 already in the store {store.path}, 2 to run")
    records = run_with_progress(configs, store, None, False, Executor())
    assert [r.id for r in records] == [c.id for c in configs]
    assert seen == [run_name(configs[0]), run_name(configs[2])]
    assert run_name(configs[1]) == 'debug/class_0/finetune/seed0/smoke ' + json.dumps(
        dict(configs[1].hparams), sort_keys=True, separators=(",", ":"))
    assert descriptions[-1] == "done"
    lines = capsys.readouterr().err
    assert f"[2/3] {run_name(configs[1])}: stored before" in lines and f"[3/3] {run_name(configs[2])}: ok" in lines


# ---- list -------------------------------------------------------------------------------------

def test_list_tasks_json():
    result = invoke("list", "tasks", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    versions = {row["task"]: row["version"] for row in rows}
    assert {"cmnist", "debug"} <= set(versions)
    from mubench.continual.task import continual_tasks

    expected = {name: task.spec.version for name, task in (*tasks.items(), *continual_tasks.items())}
    assert versions == expected and {"split_mnist", "metr_la", "cwru"} <= set(versions)
    assert all(isinstance(v, str) and v for v in versions.values())
    assert {row["task"]: row["scenarios"] for row in rows}["cmnist"] == len(tasks.get("cmnist").spec.scenarios)


def test_list_scenarios_json_has_every_scenario_of_every_task():
    rows = json.loads(invoke("list", "scenarios", "--json").stdout)
    listed = [(row["task"], row["scenario"]) for row in rows]
    from mubench.continual.task import continual_tasks

    expected = [(name, s.name) for name, task in tasks.items() for s in task.spec.scenarios]
    expected += [(name, s.name) for name, task in continual_tasks.items() for s in task.spec.streams]
    assert sorted(listed) == sorted(expected)
    assert ("split_mnist", "uncle_5a") in listed
    assert len(listed) == len(set(listed))
    assert ("debug", "class_0") in listed and ("cmnist", "bias_aligned") in listed


def test_list_methods_json_has_access_and_defaults():
    from mubench.continual.methods import continual_methods

    rows = json.loads(invoke("list", "methods", "--json").stdout)
    listed = {row["method"]: (row["access"], row["defaults"]) for row in rows if row["kind"] == "unlearning"}
    assert listed == {name: (cls.access.value, cls.defaults()) for name, cls in methods.items()}
    streams = {row["method"]: row for row in rows if row["kind"] == "stream"}
    assert set(streams) == set(continual_methods.names()) and "uncle" in streams
    assert streams["uncle"]["access"] == "stream: current task's data"  # data-free unlearning
    assert streams["retrain"]["access"] == "stream: retained tasks' data"
    assert "split_mnist" in streams["uncle"]["tasks"]
    assert "fmd" in listed and listed["fmd"][0] == "counterfactual" and listed["lotus"][0] == "unseen"
    assert listed["identity"] == ("forget", {})
    assert listed["retrain"][0] == "retain"
    assert "lr" in listed["finetune"][1]
    profile_defaults = {row["method"]: row["profile_defaults"] for row in rows}
    assert profile_defaults["finetune"] == {"standard": "epochs=10"} and profile_defaults["identity"] == {}
    assert profile_defaults["uncle"] == {}  # stream rows have the column too, so the table's columns line up


def test_list_prints_a_table():
    result = invoke("list", "methods")
    assert result.exit_code == 0
    assert all(name in result.stdout for name in methods.names())


# ---- run and results --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def debug_run(tmp_path_factory):
    """The same 4-run grid twice into one store (the second time everything is stored already)."""
    home = tmp_path_factory.mktemp("cli-run")
    store = home / "store.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUBENCH_HOME", str(home / "home"))
        mp.setenv("MUBENCH_OFFLINE", "1")
        first = invoke(*RUN_ARGS, "--store", store)
        count_after_first = Store(store).count()
        second = invoke(*RUN_ARGS, "--store", store)
    return SimpleNamespace(store=store, first=first, second=second, count_after_first=count_after_first)


def test_run_json_prints_one_record_per_run(debug_run):
    result = debug_run.first
    assert result.exit_code == 0, result.stderr
    records = json_records(result.stdout)  # every stdout line is a record, nothing else
    assert len(records) == 4
    assert sorted((r.config.method, r.config.seed) for r in records) == [
        ("identity", 0), ("identity", 1), ("retrain", 0), ("retrain", 1)]
    assert {(r.config.task, r.config.scenario, r.config.profile) for r in records} == {("debug", "random_10", "smoke")}
    assert all(r.status == "ok" for r in records)
    assert len({r.id for r in records}) == 4
    assert debug_run.count_after_first == 4
    stored = {r.id: r for r in Store(debug_run.store).records()}
    assert stored == {r.id: r for r in records}


def test_run_again_reprints_the_stored_records_and_stores_nothing_new(debug_run):
    assert debug_run.second.exit_code == 0
    first, second = json_records(debug_run.first.stdout), json_records(debug_run.second.stdout)
    assert [r.id for r in second] == [r.id for r in first]
    assert second == first  # the same records (same metrics and created_at), not new runs
    assert "stored before" in debug_run.second.stderr
    assert Store(debug_run.store).count() == 4


def test_run_on_worker_processes_gives_the_local_records(debug_run, tmp_path):
    result = invoke(*RUN_ARGS, "--executor", "processes", "--workers", "2", "--store", tmp_path / "store.sqlite")
    assert result.exit_code == 0, result.stderr
    records = {r.id: r for r in json_records(result.stdout)}  # printed as they arrive
    local = {r.id: r for r in json_records(debug_run.first.stdout)}
    assert set(records) == set(local) and all(r.status == "ok" for r in records.values())
    assert all(records[i].metrics["forget/acc"] == local[i].metrics["forget/acc"] for i in local)
    assert Store(tmp_path / "store.sqlite").count() == 4


def test_run_with_overlap_gives_the_local_records_in_order(debug_run, tmp_path):
    result = invoke(*RUN_ARGS, "--overlap", "--store", tmp_path / "store.sqlite")
    assert result.exit_code == 0, result.stderr
    records, local = json_records(result.stdout), json_records(debug_run.first.stdout)
    assert [r.id for r in records] == [r.id for r in local] and all(r.status == "ok" for r in records)
    assert all(mine.metrics["mia/svc"] == theirs.metrics["mia/svc"] for mine, theirs in zip(records, local))


def test_retrain_has_every_gap_exactly_zero(debug_run):
    retrains = [r for r in json_records(debug_run.first.stdout) if r.config.method == "retrain"]
    assert len(retrains) == 2
    for record in retrains:
        gaps = {k: v for k, v in record.metrics.items() if k.startswith("gap/")}
        assert {"gap/forget_acc", "gap/retain_acc", "gap/test_acc", "gap/mia_loss_auc"} <= set(gaps)
        assert all(v == 0.0 for v in gaps.values()), gaps
    identity = [r for r in json_records(debug_run.first.stdout) if r.config.method == "identity"]
    assert all(r.metrics["gap/forget_acc"] > 0 for r in identity)  # the zero above is not trivial


def test_results_csv_means_and_intervals_match_the_stored_records(debug_run):
    result = invoke("results", "--task", "debug", "--store", debug_run.store, "--format", "csv")
    assert result.exit_code == 0
    table = pd.read_csv(io.StringIO(result.stdout))
    assert list(table.columns) == ["task", "scenario", "method", "hparams", "profile", "metric", "mean", "ci95", "n"]
    per_seed: dict[tuple[str, str], list[float]] = {}
    for record in Store(debug_run.store).records():
        for key, value in record.metrics.items():
            per_seed.setdefault((record.config.method, key), []).append(value)
    assert len(table) == len(per_seed)
    assert set(table["method"]) == {"identity", "retrain"}
    assert (table["n"] == 2).all()
    for row in table.itertuples(index=False):
        values = per_seed[(row.method, row.metric)]
        assert len(values) == 2
        assert row.mean == pytest.approx(np.mean(values), rel=1e-9, abs=1e-15)
        half_width = stats.t.ppf(0.975, 1) * np.std(values, ddof=1) / np.sqrt(2)
        assert row.ci95 == pytest.approx(half_width, rel=1e-9, abs=1e-15)
    assert (table["ci95"] > 0).any()  # the seeds differ somewhere: the interval check is not 0 == 0


def test_results_json_markdown_and_table(debug_run):
    as_json = json.loads(invoke("results", "--task", "debug", "--store", debug_run.store, "--format", "json").stdout)
    assert {row["method"] for row in as_json} == {"identity", "retrain"}
    assert all(row["n"] == 2 and isinstance(row["hparams"], dict) for row in as_json)
    assert any(row["metric"] == "forget/acc" for row in as_json)

    markdown = invoke("results", "--task", "debug", "--store", debug_run.store, "--format", "markdown")
    lines = markdown.stdout.strip().splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert "forget/acc" in header and "method" in header
    assert set(lines[1]) <= set("|-:")
    assert len(lines) == 2 + 2  # one row per method

    table = invoke("results", "--task", "debug", "--store", debug_run.store, "--format", "table")
    assert table.exit_code == 0
    assert "identity" in table.stdout and "retrain" in table.stdout and "forget/acc" in table.stdout
    assert "low signal" not in table.stdout  # debug's noisy labels leave plenty to forget

    assert "not applicable: fmd on debug" in table.stderr and "sensitive attribute" in table.stderr
    assert "not applicable: fmd" not in table.stdout  # stdout stays the table alone

    no_match = invoke("results", "--method", "finetune", "--store", debug_run.store, "--format", "markdown")
    assert no_match.exit_code == 0 and "no successful records" in no_match.stdout


# ---- suites -----------------------------------------------------------------------------------

def test_quick_suite_covers_every_task_with_every_method():
    from mubench.orchestration.sweep import QUICK_SCENARIOS

    configs = expand_grid(GridSpec.from_suite("quick"))
    by_task: dict[str, set[str]] = {}
    for c in configs:
        by_task.setdefault(c.task, set()).add(c.scenario)
    registered = {name for name, task in tasks.items() if name not in ("debug", "celeba_smiling")
                  and type(task).__module__.startswith("mubench.")}  # not the tasks test modules register
    assert set(by_task) == registered  # every task family is in the quick suite
    assert {t: set(s) for t, s in QUICK_SCENARIOS.items()} == by_task
    assert {"random_10", "class_0", "bias_aligned"} <= by_task["cmnist"]
    for task, scenarios in by_task.items():
        for scenario in scenarios:
            ran = {c.method for c in configs if c.task == task and c.scenario == scenario}
            expected = {m for m in methods.names() if methods.get(m).inapplicable(tasks.get(task).spec) is None}
            assert ran == expected, (task, scenario)
    assert "random_label" not in {c.method for c in configs if c.task == "metr_la"}
    assert {c.seed for c in configs} == {0} and {c.profile for c in configs} == {"smoke"}
    assert len({c.id for c in configs}) == len(configs)


def test_a_suite_skips_and_names_tasks_without_data(home, monkeypatch, tmp_path):
    monkeypatch.setenv("MUBENCH_MIRROR", str(tmp_path / "empty-mirror"))
    monkeypatch.setattr("mubench.orchestration.sweep.SUITES", {"tiny": Suite("tiny", "debug and cmnist", ("debug", "cmnist"), "smoke",
                                                               (0,), methods=("identity",))})
    result = invoke("run", "--suite", "tiny", "--store", str(tmp_path / "r.sqlite"))
    assert result.exit_code == 0, result.output
    assert "skipping cmnist: data not found" in result.stderr
    assert "2 runs (0 failed)" in result.stderr  # debug's two scenarios, identity only


# ---- bad input ----------------------------------------------------------------------------------

def test_unknown_task_through_the_console_script(home):
    result = console_script("run", "--task", "cmnst")
    assert result.returncode == 2
    assert "Did you mean 'cmnist'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (home / "results.sqlite").exists()


def test_results_from_a_missing_store_through_the_console_script():
    result = console_script("results", "--store", "/nonexistent/x.sqlite")
    assert result.returncode == 2
    assert "no result store at /nonexistent/x.sqlite" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["--method", "idnetity"], ["unknown method 'idnetity'", "Did you mean 'identity'"]),
    (["--scenario", "random_1O"], ["unknown scenario 'random_1O'", "Did you mean 'random_10'"]),
    (["--hparam", "finetune.nope=1"], ["no hyper-parameter 'nope'", *methods.get("finetune").defaults()]),
    (["--hparam", "garbage"], ["'garbage'", "METHOD.NAME=VALUE"]),
    (["--hparam", "finetun.lr=0.1"], ["unknown method 'finetun'", "Did you mean 'finetune'"]),
    (["--method", "identity", "--hparam", "finetune.lr=0.1"], ["'finetune', which is not in this run"]),
    (["--hparam", "finetune.lr=fast"], ["finetune.lr", "'fast'"]),
    (["--seed", "-1"], ["seed -1"]),
    (["--profile", "huge"], ["unknown profile 'huge'"]),
    (["--device", "garbage"], ["--device 'garbage'"]),
    (["--scenario", "[/bold]"], ["unknown scenario '[/bold]'"]),  # brackets are not rich markup
    (["--executor", "processes", "--address", "HOST:6379"], ["--address and --gpus-per-run apply to --executor ray"]),
    (["--workers", "2"], ["--workers applies to --executor processes and ray"]),
    (["--executor", "processes", "--overlap"], ["--overlap applies to --executor local without --isolate"]),
    (["--isolate", "--overlap"], ["--overlap applies to --executor local without --isolate"]),
], ids=["method", "scenario", "hparam-name", "hparam-form", "hparam-method", "hparam-unused", "hparam-value",
        "seed", "profile", "device", "markup", "address-processes", "workers-local", "overlap-processes",
        "overlap-isolated"])
def test_bad_run_options_exit_2_with_a_clear_message(monkeypatch, capsys, home, args, expected):
    result = main_in_process(monkeypatch, capsys, "run", "--task", "debug", *args)
    assert result.code == 2
    assert result.stderr.startswith("error: ")
    for text in expected:
        assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (home / "results.sqlite").exists()  # nothing ran


def test_every_bad_name_is_reported_in_one_message(monkeypatch, capsys):
    result = main_in_process(monkeypatch, capsys, "run", "--task", "debug", "--task", "cmnst", "--scenario", "random_1O",
                             "--method", "idnetity", "--seed", "-2")
    assert result.code == 2
    assert result.stderr.count("error:") == 1
    for text in ("Did you mean 'cmnist'", "Did you mean 'identity'", "Did you mean 'random_10'", "seed -2"):
        assert text in result.stderr
    assert "Traceback" not in result.stderr


def test_run_needs_a_task(monkeypatch, capsys):
    result = main_in_process(monkeypatch, capsys, "run", "--method", "identity")
    assert result.code == 2
    assert "--task" in result.stderr and "--suite" in result.stderr


def test_unknown_suite(monkeypatch, capsys):
    result = main_in_process(monkeypatch, capsys, "run", "--suite", "quik")
    assert result.code == 2
    assert "unknown suite 'quik'" in result.stderr and "quick" in result.stderr


# ---- data -------------------------------------------------------------------------------------

def test_data_status_with_an_empty_mirror(tmp_path, monkeypatch):
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setenv("MUBENCH_MIRROR", str(empty))
    result = invoke("data", "status", "--json")
    assert result.exit_code == 0
    rows = {row["task"]: row for row in json.loads(result.stdout)}
    assert rows["cmnist"]["status"] == "missing"
    assert set(rows["cmnist"]["missing"]) == MNIST_FILES
    assert rows["cmnist"]["found"] == {}
    assert rows["debug"]["status"] == "generated"
    assert rows["debug"]["missing"] == []
    assert invoke("data", "status").exit_code == 0  # the table form prints too


@pytest.mark.skipif(not (REAL_MIRROR / "mnist").is_dir(), reason=f"{MIRROR_SKIP}mnist/ in {REAL_MIRROR}")
def test_data_status_finds_the_real_mirror(monkeypatch):
    monkeypatch.delenv("MUBENCH_MIRROR", raising=False)
    rows = {row["task"]: row for row in json.loads(invoke("data", "status", "--json").stdout)}
    cmnist = rows["cmnist"]
    assert cmnist["status"] == "found"
    assert cmnist["missing"] == []
    assert set(cmnist["found"]) == MNIST_FILES
    for path in cmnist["found"].values():
        assert Path(path).is_file()
        assert Path(path).resolve().is_relative_to(REAL_MIRROR.resolve())


def test_run_cmnist_without_its_files_stops_before_running_anything(tmp_path, home):
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    store = tmp_path / "store.sqlite"
    result = console_script("run", "--task", "cmnist", "--method", "identity", "--scenario", "random_1",
                            "--store", str(store), MUBENCH_MIRROR=str(empty))
    assert result.returncode == 2
    assert "train-images-idx3-ubyte" in result.stderr
    assert str(empty / "mnist") in result.stderr  # the folders searched
    assert str(home / "raw" / "mnist") in result.stderr
    assert "MUBENCH_MIRROR" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not store.exists()
    assert not (home / "models").exists() and not (home / "prepared").exists()

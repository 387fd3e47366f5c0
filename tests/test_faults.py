"""Faults, each with what the harness does: a driver SIGKILLed mid-sweep on Ray resumes without
duplicates or losses; a corrupted cached model is detected and retrained; a read-only or full store
location is refused with a clear error before any run starts."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mubench.cli.app import app
from mubench.errors import StoreError
from mubench.harness.artifacts import ModelCache
from mubench.harness.record import Record
from mubench.harness.runner import Harness
from mubench.hashing import sha256_file
from mubench.orchestration import reaper
from mubench.orchestration import store as store_module
from mubench.orchestration.store import Store


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    return tmp_path / "home"


# ---- the driver killed mid-sweep on Ray ---------------------------------------------------------

# `mubench run` with one extra method, registered before the command line runs: it sleeps, so that
# the driver can be killed while runs are in flight. Ray ships the class to its workers by value.
DRIVER = textwrap.dedent("""
    import sys, time
    from mubench.cli.app import main
    from mubench.methods import Access, Method, register_method

    @register_method("test_sleepy")
    class Sleepy(Method):
        access = Access.FORGET
        space = {"nap": (0.5, [0.5, 0.6, 0.7, 0.8])}

        def unlearn(self, model, request, hp):
            time.sleep(hp.nap)
            return model

    sys.argv = ["mubench", *sys.argv[1:]]
    main()
""")
SWEEP = ["run", "--task", "debug", "--scenario", "random_10", "--method", "test_sleepy", "--sweep",
         "--seed", "0", "--seed", "1", "--executor", "ray", "--workers", "2", "--json"]  # 8 runs


@pytest.mark.slow
def test_a_driver_killed_mid_sweep_on_ray_resumes_without_duplicates_or_losses(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    command = [sys.executable, str(script), *SWEEP, "--store", str(tmp_path / "store.sqlite")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # its own session: after the driver is killed, its local Ray instance (same process group) is ended with it
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
                               start_new_session=True)
    printed = []
    try:
        for line in process.stdout:
            printed.append(Record.model_validate_json(line))
            if len(printed) == 2:
                os.kill(process.pid, signal.SIGKILL)
                break
    finally:
        process.wait(timeout=60)
        os.killpg(process.pid, signal.SIGKILL)  # Ray's processes that the dead driver left behind
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL and len(printed) == 2
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        before = dict(db.execute("SELECT id, created_at FROM records").fetchall())
    assert {r.id for r in printed} <= set(before) and len(before) < 8  # killed mid-sweep, nothing printed was lost

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180, start_new_session=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    reported = [Record.model_validate_json(line) for line in rerun.stdout.splitlines()]
    assert len(reported) == len({r.id for r in reported}) == 8 and all(r.status == "ok" for r in reported)
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        after = dict(db.execute("SELECT id, created_at FROM records").fetchall())
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM records").fetchone() == (8, 8)
    assert set(after) == {r.id for r in reported}
    assert all(after[i] == before[i] for i in before)  # stored before the kill: kept, not run again


# ---- a corrupted cached model ------------------------------------------------------------------

def _original(harness: Harness) -> tuple[dict[str, torch.Tensor], str, bool]:
    prepared = harness.prepare("debug", "random_10", 0, "smoke")
    return prepared.original.model.state_dict(), prepared.original.key, prepared.original.from_cache


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_corrupted_cached_model_is_detected_and_retrained(home, damage, caplog, private_model_cache):
    fresh, key, from_cache = _original(Harness())
    assert not from_cache
    weights = home / "models" / f"{key}.safetensors"
    good_bytes = weights.read_bytes()
    if damage == "flip":
        damaged = bytearray(good_bytes)
        damaged[-20:] = bytes(b ^ 0xFF for b in damaged[-20:])  # inside the last tensor's data
        weights.write_bytes(bytes(damaged))
    else:
        weights.write_bytes(good_bytes[: len(good_bytes) // 2])

    with caplog.at_level(logging.WARNING, logger="mubench.harness.artifacts"):
        rebuilt, key_again, from_cache = _original(Harness())
    assert key_again == key and not from_cache  # retrained, not loaded
    assert any(str(weights) in message and "retraining" in message for message in caplog.messages)
    assert all(torch.equal(rebuilt[name], fresh[name]) for name in fresh)  # the same model as a fresh training
    assert weights.read_bytes() == good_bytes  # and the file is good again
    meta = json.loads((home / "models" / f"{key}.json").read_text())
    assert meta["sha256"] == sha256_file(weights)
    _, _, from_cache = _original(Harness())
    assert from_cache


def test_a_model_cache_entry_with_damaged_metadata_is_retrained(tmp_path):
    cache = ModelCache(tmp_path / "models")
    trainings = []

    def train(model: torch.nn.Module) -> float:
        trainings.append(1)
        return 0.1

    first = cache.get_or_train({"m": 1}, lambda: torch.nn.Linear(2, 2), train)
    (tmp_path / "models" / f"{first.key}.json").write_text("{not json")
    assert not cache.get_or_train({"m": 1}, lambda: torch.nn.Linear(2, 2), train).from_cache
    assert cache.get_or_train({"m": 1}, lambda: torch.nn.Linear(2, 2), train).from_cache
    assert len(trainings) == 2


# ---- a store location that cannot take the results ---------------------------------------------

def _run_debug(store_path: Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["run", "--task", "debug", "--scenario", "random_10", "--method", "identity",
                                    "--store", str(store_path)])


def _refused_before_any_work(result, home: Path, expected: str) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(result.exception, StoreError), result.output
    assert expected in str(result.exception)
    assert not (home / "models").exists() and not (home / "splits").exists()  # nothing trained, nothing drawn


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root, whom file permissions cannot refuse "
                                               "(a chmod 0o500 folder stays writable); see the probe test below")
def test_a_read_only_store_folder_is_refused_before_any_run(tmp_path, home):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        _refused_before_any_work(_run_debug(folder / "store.sqlite"), home, str(folder))
    finally:
        folder.chmod(0o700)


def test_a_folder_that_refuses_new_files_is_refused_before_any_run(tmp_path, home, monkeypatch):
    """What a read-only mount or an ACL does (and root cannot reproduce with chmod): the probe file
    cannot be created although the permission bits allow it."""
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(store_module.tempfile, "NamedTemporaryFile", refuse)
    result = _run_debug(tmp_path / "ro" / "store.sqlite")
    _refused_before_any_work(result, home, "does not take new files (Read-only file system)")
    assert str(tmp_path / "ro") in str(result.exception)


def test_a_full_store_location_is_refused_before_any_run(tmp_path, home, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda path: usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    result = _run_debug(tmp_path / "full" / "store.sqlite")
    _refused_before_any_work(result, home, "1.0 MiB free")
    assert str(tmp_path / "full") in str(result.exception)
    assert not (tmp_path / "full" / "store.sqlite").exists()


def test_a_store_with_room_opens(tmp_path):
    assert shutil.disk_usage(tmp_path).free >= store_module.MIN_FREE_BYTES
    Store(tmp_path / "store.sqlite").close()


# ---- the driver killed while its worker processes run ---------------------------------------------

WORKERS_DRIVER = textwrap.dedent("""
    import sys, time
    from mubench.harness.runner import Harness
    from mubench.orchestration.executors import ProcessExecutor

    if __name__ == "__main__":  # spawned workers import this script again
        executor = ProcessExecutor(Harness(), workers=2)
        executor.start()  # both workers spawned and warm
        print(" ".join(str(p.pid) for pool in executor._pools for p in pool._processes.values()), flush=True)
        time.sleep(600)
""")


@pytest.mark.slow
def test_a_killed_driver_leaves_no_worker_process_behind(tmp_path):
    """SIGKILL runs no clean-up in the driver: its workers notice their parent is gone and exit
    within a second, rather than run on (and hold memory) for nobody."""
    script = tmp_path / "workers_driver.py"
    script.write_text(WORKERS_DRIVER)
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "MUBENCH_HOME": str(tmp_path / "home")})
    pids = [int(pid) for pid in driver.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped by init."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


RAY_DRIVER = textwrap.dedent("""
    import os, time
    from mubench.harness.runner import Harness
    from mubench.orchestration import reaper
    from mubench.orchestration.executors import RayExecutor

    executor = RayExecutor(Harness(), workers=1)
    ray_processes = reaper.descendants([os.getpid()]) - {executor._reaper.pid}
    print(" ".join(map(str, sorted(ray_processes))), flush=True)
    time.sleep(600)
""")


@pytest.mark.slow
def test_a_killed_driver_leaves_no_ray_process_behind(tmp_path):
    """The local Ray instance a driver started (its control store, raylet and workers, in
    sessions of their own) is ended by the driver's watcher when the driver is SIGKILLed."""
    script = tmp_path / "ray_driver.py"
    script.write_text(RAY_DRIVER)
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, env={**os.environ, "MUBENCH_HOME": str(tmp_path / "home")})
    pids = [int(pid) for pid in driver.stdout.readline().split()]
    assert pids and all(_alive(pid) for pid in pids)
    time.sleep(2 * reaper.POLL_S + 0.5)  # the watcher has looked at the agents Ray started last (a run would be longer)
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in pids if _alive(pid)] == []

"""The jail (mubench.orchestration.jail): what code inside it can and cannot reach.

Each test runs a few lines of Python in the jail the way the sandbox runs a method (the trusted
prologue `jail.enter` first) and checks, from outside, that the attempt failed: the secret file
stays unread, the listening socket gets no connection, nothing appears outside the scratch
folder, a child started to outlive the run is gone. These need bubblewrap: where it is missing
they skip with the reason, and MUBENCH_REQUIRE_JAIL=1 (set by .ci/run, which installs it)
makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import require_jail
from mubench.orchestration import jail


@pytest.fixture(scope="module")
def jail_ready() -> None:
    require_jail()


@pytest.fixture
def scratch() -> Iterator[Path]:
    folder = jail.make_scratch()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def run_jailed(code: str, scratch: Path, limits: jail.JailLimits | None = None,
               extra_env: dict[str, str] | None = None) -> dict[str, object]:
    """Run `code` after the jail's prologue; it reports by assigning to `out` (printed as JSON)."""
    program = ("import json, os\nfrom mubench.orchestration import jail\n"
               f"jail.enter(jail.JailLimits(**{json.dumps((limits or jail.JailLimits()).__dict__)}))\nout = {{}}\n"
               + textwrap.dedent(code) + "\nprint(json.dumps(out))\n")
    env = {**os.environ, **(extra_env or {})}
    result = subprocess.run(jail.jail_argv([sys.executable, "-c", program], scratch), capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_jailed_code_sees_neither_the_store_nor_the_caches_nor_the_environment(jail_ready, scratch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "results.sqlite").write_text("every other method's records")
    out = run_jailed(f"""
        try:
            out["read"] = open({str(home / "results.sqlite")!r}).read()
        except OSError as exc:
            out["read"] = type(exc).__name__
        out["env"] = sorted(os.environ)
        out["uid"] = os.getuid()
        """, scratch, extra_env={"MUBENCH_HOME": str(home), "SECRET_TOKEN": "x"})
    assert out["read"] == "FileNotFoundError"  # the folder does not exist in the jail at all
    assert "MUBENCH_HOME" not in out["env"] and "SECRET_TOKEN" not in out["env"]
    assert out["uid"] != 0


def test_jailed_code_cannot_reach_a_service_on_the_host(jail_ready, scratch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    out = run_jailed(f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=3)
            out["connected"] = True
        except OSError as exc:
            out["connected"] = type(exc).__name__
        """, scratch)
    assert out["connected"] in {"ConnectionRefusedError", "OSError", "TimeoutError"}
    with pytest.raises(BlockingIOError):
        server.accept()  # nothing ever knocked
    server.close()


def test_jailed_code_writes_only_to_its_scratch_folder(jail_ready, scratch, tmp_path):
    outside = tmp_path / "planted.txt"
    package_file = Path(jail.__file__)
    before = package_file.read_bytes()
    out = run_jailed(f"""
        open("/scratch/weights.bin", "w").write("mine")
        for target in ({str(outside)!r}, {str(package_file)!r}):
            try:
                open(target, "w").write("planted")
                out[target] = "written"
            except OSError as exc:
                out[target] = type(exc).__name__
        """, scratch)
    assert (scratch / "weights.bin").read_text() == "mine"
    assert out[str(outside)] in {"FileNotFoundError", "PermissionError", "OSError"}
    assert out[str(package_file)] in {"PermissionError", "OSError"}  # read-only, even for the package it imports
    assert not outside.exists() and package_file.read_bytes() == before


def test_no_process_started_in_the_jail_outlives_it(jail_ready, scratch):
    run_jailed("""
        import subprocess
        subprocess.Popen(["/bin/sh", "-c", "sleep 2; echo alive > /scratch/late"], start_new_session=True)
        """, scratch)
    time.sleep(3.5)
    assert not (scratch / "late").exists()


def test_the_jail_holds_its_process_and_file_size_limits(jail_ready, scratch):
    out = run_jailed("""
        import threading, resource
        started = 0
        stop = threading.Event()
        try:
            for _ in range(64):
                threading.Thread(target=stop.wait, daemon=True).start()
                started += 1
        except RuntimeError as exc:
            out["threads"] = started
        stop.set()
        try:
            with open("/scratch/big", "wb") as f:
                f.write(b"0" * (3 * 2**20))
            out["big"] = "written"
        except OSError as exc:
            out["big"] = type(exc).__name__
        """, scratch, limits=jail.JailLimits(processes=16, file_size_mb=1))
    assert out.get("threads", 64) < 20  # a fork (or thread) bomb stops at the limit
    assert out["big"] == "OSError"  # SIGXFSZ is ignored by Python: the write fails with EFBIG


def test_isolated_runs_refuse_clearly_where_the_jail_is_missing(monkeypatch):
    monkeypatch.setattr(jail, "bwrap_path", lambda: None)
    jail.unavailable.cache_clear()
    try:
        with pytest.raises(jail.JailUnavailableError, match="bubblewrap.*apt-get install bubblewrap"):
            jail.require()
    finally:
        jail.unavailable.cache_clear()


def test_the_jail_binds_the_python_installation_and_package_but_not_the_repository():
    roots = jail.python_roots()
    package = Path(jail.__file__).resolve().parents[1]
    assert package in roots or any(root in package.parents for root in roots)
    repository = package.parent
    assert repository not in roots  # the leaderboard and .git stay out of the jail
    argv = jail.jail_argv(["true"], Path("/tmp/x"))
    assert "--unshare-net" in argv and "--clearenv" in argv and "--die-with-parent" in argv
    assert argv[argv.index("--bind") + 1:argv.index("--bind") + 3] == ["/tmp/x", jail.SCRATCH]

"""The suite's own set-up (tests/conftest.py): with no data mirror, a run says so once, naming
what it skipped and how to run it; and every test shares one model cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_run_without_the_mirror_says_once_what_it_skipped(tmp_path):
    empty = tmp_path / "no-mirror"
    empty.mkdir()
    env = {**os.environ, "MUBENCH_MIRROR": str(empty), "MUBENCH_HOME": str(tmp_path / "home")}
    env.pop("MUBENCH_CACHE", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_task_adult.py",
                           "-k", "real"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    assert f"data mirror: {empty} (empty)" in done.stdout
    summary = [line for line in done.stdout.splitlines() if "were skipped because the data mirror" in line]
    assert len(summary) == 1
    assert f"at {empty} lacks adult/" in summary[0] and "Set MUBENCH_MIRROR" in summary[0]


def test_every_test_shares_one_cache_outside_its_home(session_model_cache):
    assert os.environ["MUBENCH_CACHE"] == str(session_model_cache)
    from mubench import paths

    assert paths.models() == session_model_cache / "models" and paths.prepared() == session_model_cache / "prepared"


def test_a_cache_test_gets_the_cache_back_under_its_home(private_model_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path))
    from mubench import paths

    assert paths.models() == tmp_path / "models"

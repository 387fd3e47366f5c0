"""Attacks on the sandbox, each by a small hostile method on the `debug` task, run isolated as
`mubench submit` runs them: each must fail to reach its goal, checked from outside (the store's
and the model cache's bytes, the listening socket, the host's process table, the file system).

Each method reports what it reached in its exception's message, so its failed record says what
it saw; where an attack would succeed silently, the test looks at the target itself.
"""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest

from helpers import require_jail, shared_home
from mubench.board.entries import method_problems
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.hashing import sha256_file
from mubench.orchestration.loading import load_method_class
from mubench.orchestration.sandbox import Limits
from mubench.orchestration.store import Store
from mubench.orchestration.sweep import run_grid
from mubench.tasks import tasks

pytestmark = pytest.mark.slow

ATTACKS = '''
    """Hostile methods: each tries one thing it must not manage."""
    import gc
    import os
    import socket
    import subprocess

    from mubench.methods import Access, Method


    class Snoop(Method):
        """Declares the forget set only, then searches its own process for the rest (Warnecke 2023)."""
        name = "atk_snoop"
        access = Access.FORGET
        def unlearn(self, model, request, hp):
            objects = gc.get_objects()
            kinds = sorted({type(o).__name__ for o in objects if str(getattr(type(o), "__module__", "")).startswith("mubench")
                            and type(o).__name__ in {"Prepared", "CachedModel", "Split", "Store", "Record"}})
            kinds += ["Harness holding a run" for o in objects if type(o).__name__ == "Harness" and o._prepared]
            sizes = sorted({len(o) for o in objects if type(o).__name__ == "Subset"})
            raise RuntimeError(f"found kinds={kinds} subset_sizes={sizes} home={os.environ.get('MUBENCH_HOME')}")


    class Vandal(Method):
        """Rewrites the results store and the cached oracle it knows the paths of (Warnecke 2023)."""
        name = "atk_vandal"
        def unlearn(self, model, request, hp):
            reached = []
            for target in TARGETS:
                try:
                    with open(target, "r+b") as f:
                        f.write(b"forged")
                    reached.append(target)
                except OSError:
                    pass
            for folder in PLANT:
                try:
                    open(os.path.join(folder, "planted"), "w").write("x")
                    reached.append(folder)
                except OSError:
                    pass
            raise RuntimeError(f"reached={reached}")


    class Caller(Method):
        """Calls a service on the host (Warnecke 2023)."""
        name = "atk_caller"
        def unlearn(self, model, request, hp):
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=3).sendall(b"hello")
                raise RuntimeError("connected")
            except OSError as exc:
                raise RuntimeError(f"no connection: {type(exc).__name__}") from None


    class Lingerer(Method):
        """Starts a process meant to outlive the run, then returns the original (Warnecke 2023)."""
        name = "atk_linger"
        def unlearn(self, model, request, hp):
            subprocess.Popen(["/bin/sh", "-c", f"sleep 30; echo {MARKER}"], start_new_session=True)
            return model
'''

CLASSES = ("Snoop", "Vandal", "Caller", "Lingerer")
MARKER = "mubench-attack-marker-5e1f"


def _config(name: str) -> RunConfig:
    return RunConfig(task="debug", task_version=tasks.get("debug").spec.version, scenario="class_0", method=name,
                     method_version="1", hparams={}, seed=0, profile="smoke")


def _fingerprint(paths: list[Path]) -> dict[str, str]:
    return {str(p): sha256_file(p) for p in paths}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    require_jail()
    base = tmp_path_factory.mktemp("attacks")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.setblocking(False)
    with shared_home(base):
        harness = Harness()
        store = Store(base / "results.sqlite")
        run_grid([_config("identity")], store, harness)  # a record for the vandal to rewrite
        prepared = harness.prepare("debug", "class_0", 0, "smoke")
        models = sorted(Path(os.environ["MUBENCH_CACHE"]).rglob("*.safetensors")) or sorted(
            p for p in Path(os.environ["MUBENCH_CACHE"]).rglob("*") if p.is_file())
        targets = [base / "results.sqlite", *models]
        before = _fingerprint(models)  # the store changes: the driver adds the attacks' records
        source = base / "attacks.py"
        source.write_text(textwrap.dedent(ATTACKS) + f"\nTARGETS = {[str(t) for t in targets]!r}\n"
                          f"PLANT = {[str(base), str(Path.home())]!r}\nPORT = {server.getsockname()[1]}\n"
                          f"MARKER = {MARKER!r}\n")
        names = {}
        for class_name in CLASSES:
            cls, _, problems = load_method_class(f"{source}:{class_name}")
            assert not problems and not method_problems(cls), method_problems(cls)
            names[class_name] = cls.name
        records = run_grid([_config(names[c]) for c in CLASSES], store, harness,
                           isolate=Limits(time_limit_s=60, parallel=2))
        stored_identity = next(r for r in store.records() if r.config.method == "identity")
        store.close()
        yield {"records": dict(zip(CLASSES, records)), "before": before, "targets": targets, "server": server,
               "base": base, "identity": stored_identity, "prepared": prepared}
    server.close()


def test_a_forget_only_method_finds_nothing_of_the_prepared_run_in_its_process(attacked):
    error = attacked["records"]["Snoop"].error
    forget_size = len(attacked["prepared"].subsets["forget"])
    assert f"found kinds=[] subset_sizes=[{forget_size}] home=None" in error, error


def test_the_store_and_the_model_cache_are_out_of_reach(attacked):
    error = attacked["records"]["Vandal"].error
    assert "reached=[]" in error, error
    assert _fingerprint(attacked["targets"][1:]) == attacked["before"]
    assert not (attacked["base"] / "planted").exists()
    store = Store(attacked["base"] / "results.sqlite")
    assert next(r for r in store.records() if r.config.method == "identity") == attacked["identity"]
    store.close()


def test_no_service_on_the_host_is_reached(attacked):
    assert "no connection" in attacked["records"]["Caller"].error
    with pytest.raises(BlockingIOError):
        attacked["server"].accept()


def test_a_process_started_by_the_method_does_not_outlive_its_run(attacked):
    assert attacked["records"]["Lingerer"].status == "ok"  # it returned the original: a valid, useless run
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if MARKER.encode() in (entry / "cmdline").read_bytes():
                    alive.append(entry.name)
            except OSError:
                continue
    assert alive == []


def test_submitting_an_attack_writes_no_entry(attacked, tmp_path, monkeypatch):
    """`mubench submit` runs the smoke check in the jail too: the snooping method fails it, with
    what it found (nothing) in the reason, and no entry is written."""
    from typer.testing import CliRunner

    from mubench.board.submission import SubmissionError
    from mubench.cli.app import app

    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    source = tmp_path / "snoop.py"  # a name of its own: the fixture registered the others in this process
    source.write_text((attacked["base"] / "attacks.py").read_text().replace('"atk_snoop"', '"atk_snoop_submitted"'))
    with pytest.raises(SubmissionError, match="smoke run on the debug task failed: RuntimeError: found kinds=\\[\\]"):
        CliRunner().invoke(app, ["submit", f"{source}:Snoop", "--task", "debug", "--out", str(tmp_path / "subs")],
                           catch_exceptions=False)
    assert not (tmp_path / "subs").exists()

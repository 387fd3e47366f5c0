"""The SQLite result store: idempotent puts, failed-then-ok replacement, filters, persistence,
clear errors for bad locations and corrupt rows, and crash safety under SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mubench.errors import StoreError
from mubench.harness.record import Record, RunConfig
from mubench.orchestration.store import Store

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


@pytest.fixture
def store_path(tmp_path) -> Path:
    return tmp_path / "home" / "results.sqlite"


@pytest.fixture
def store(store_path):
    opened = Store(store_path)
    yield opened
    opened.close()


def make_record(task="cmnist", scenario="random", method="finetune", seed=0, status="ok", error=None,
                metrics=None, created_at="2024-01-01T00:00:00+00:00", **hparams) -> Record:
    cfg = RunConfig(task=task, task_version="1", scenario=scenario, method=method, method_version="1",
                    hparams=hparams or {"lr": 0.1}, seed=seed, profile="smoke")
    if status == "failed":
        error = error or "RuntimeError: boom"
        metrics = metrics or {}
    elif metrics is None:
        metrics = {"test/acc": 0.9, "forget/acc": 0.5 + seed / 100}
    return Record(id=cfg.id, config=cfg, status=status, error=error, metrics=metrics, split_id="split",
                  metrics_version="1", mia_spec_version="1", mubench_version="0.1.0", git_commit="abc", hardware="cpu", device="cpu",
                  seconds=1.0, peak_rss_mb=10.0, created_at=created_at)


def ids(records) -> set[str]:
    return {r.id for r in records}


# ---- put semantics ----------------------------------------------------------------------------

def test_same_successful_record_twice_keeps_one_row(store):
    rec = make_record()
    assert store.put(rec) is True
    assert store.put(rec) is False
    assert store.count() == 1
    assert store.get(rec.id) == rec
    assert store.completed_ids() == {rec.id}


def test_successful_record_is_never_overwritten(store):
    first = make_record(metrics={"test/acc": 0.9}, created_at="2024-01-01T00:00:00+00:00")
    second = make_record(metrics={"test/acc": 0.1}, created_at="2024-02-01T00:00:00+00:00")
    assert first.id == second.id
    assert store.put(first)
    assert not store.put(second)
    assert store.get(first.id) == first
    failed = make_record(status="failed", error="OOM")
    assert failed.id == first.id
    assert store.put(failed) is False
    assert store.get(first.id) == first
    assert store.count() == 1


def test_a_successful_record_of_other_metric_versions_is_replaced_by_a_successful_rerun(store):
    stale = make_record(metrics={"test/acc": 0.9})
    assert store.put(stale)
    rerun_failed = make_record(status="failed", error="RuntimeError: no").model_copy(update={"metrics_version": "2"})
    assert store.put(rerun_failed) is False and store.get(stale.id) == stale  # a failure never replaces a result
    rerun = make_record(metrics={"test/acc": 0.8}, created_at="2024-03-01T00:00:00+00:00").model_copy(
        update={"metrics_version": "2"})
    assert store.put(rerun) is True and store.get(stale.id) == rerun and store.count() == 1
    assert store.put(make_record(metrics={"test/acc": 0.1}).model_copy(update={"metrics_version": "2"})) is False
    new_attack = rerun.model_copy(update={"mia_spec_version": "2", "metrics": {"test/acc": 0.7}})
    assert store.put(new_attack) is True and store.get(stale.id).metrics == {"test/acc": 0.7}


def test_failed_record_is_replaced_by_a_later_success(store):
    failed = make_record(status="failed", error="RuntimeError: first try")
    assert store.put(failed) is True
    assert store.get(failed.id) == failed
    assert store.completed_ids() == set()
    retried = make_record(status="failed", error="RuntimeError: second try", created_at="2024-01-02T00:00:00+00:00")
    assert store.put(retried) is True  # a failed one may be replaced by a newer attempt
    assert store.get(failed.id).error == "RuntimeError: second try"
    ok = make_record(created_at="2024-01-03T00:00:00+00:00")
    assert store.put(ok) is True
    assert store.count() == 1
    assert store.get(ok.id) == ok
    assert store.completed_ids() == {ok.id}
    assert store.records(status="failed") == []


def test_get_missing_is_none(store):
    assert store.get("0" * 64) is None
    assert store.count() == 0
    assert store.records() == []


def test_filters_by_task_scenario_method_and_status(store):
    recs = {
        "a": make_record(task="cmnist", scenario="random", method="finetune"),
        "b": make_record(task="cmnist", scenario="random", method="retrain"),
        "c": make_record(task="cmnist", scenario="class", method="finetune", status="failed"),
        "d": make_record(task="cifar", scenario="random", method="finetune"),
        "e": make_record(task="cifar", scenario="class", method="identity", seed=1),
    }
    for rec in recs.values():
        assert store.put(rec)
    want = lambda *keys: {recs[k].id for k in keys}  # noqa: E731
    assert ids(store.records()) == want("a", "b", "c", "d", "e")
    assert ids(store.records(task=["cmnist"])) == want("a", "b", "c")
    assert ids(store.records(task=("cmnist", "cifar"))) == want("a", "b", "c", "d", "e")
    assert ids(store.records(scenario=["class"])) == want("c", "e")
    assert ids(store.records(method=["finetune"])) == want("a", "c", "d")
    assert ids(store.records(method=["finetune", "identity"])) == want("a", "c", "d", "e")
    assert ids(store.records(status="failed")) == want("c")
    assert ids(store.records(status="ok")) == want("a", "b", "d", "e")
    assert ids(store.records(task=["cmnist"], method=["finetune"])) == want("a", "c")
    assert ids(store.records(task=["cmnist"], method=["finetune"], status="ok")) == want("a")
    assert ids(store.records(task=["cifar"], scenario=["random"])) == want("d")
    assert store.records(task=["nope"]) == []
    assert store.completed_ids() == want("a", "b", "d", "e")


def test_records_are_ordered_by_creation_time(store):
    late = make_record(seed=1, created_at="2024-03-01T00:00:00+00:00")
    early = make_record(seed=2, created_at="2024-01-01T00:00:00+00:00")
    middle = make_record(seed=3, created_at="2024-02-01T00:00:00+00:00")
    for rec in (late, early, middle):
        store.put(rec)
    assert [r.id for r in store.records()] == [early.id, middle.id, late.id]


def test_records_survive_closing_and_reopening(store_path):
    recs = [make_record(seed=s) for s in range(5)] + [make_record(seed=9, status="failed")]
    first = Store(store_path)
    for rec in recs:
        first.put(rec)
    first.close()
    second = Store(store_path)
    try:
        assert second.count() == len(recs)
        assert sorted(second.records(), key=lambda r: r.id) == sorted(recs, key=lambda r: r.id)
        assert second.completed_ids() == {r.id for r in recs if r.status == "ok"}
        assert second.put(recs[0]) is False
    finally:
        second.close()


# ---- bad locations and corrupt contents -------------------------------------------------------

def test_store_in_read_only_directory_is_refused(tmp_path):
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        if os.access(readonly, os.W_OK):
            pytest.skip("running as a user (root) for whom a 0o500 folder is still writable")
        path = readonly / "results.sqlite"
        with pytest.raises(StoreError) as info:
            Store(path)
        assert str(path) in str(info.value)
        assert not path.exists()
        nested = readonly / "sub" / "results.sqlite"
        with pytest.raises(StoreError) as info:
            Store(nested)
        assert str(nested.parent) in str(info.value)
    finally:
        readonly.chmod(0o700)


def test_not_writable_location_is_refused_before_opening(tmp_path, monkeypatch):
    # Simulates the read-only case where the test runs as root (for whom chmod does not bite).
    import mubench.orchestration.store as store_module

    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False)
    path = tmp_path / "folder" / "results.sqlite"
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(path) in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize("depth", [1, 2])
def test_store_whose_parent_is_a_file_is_refused(tmp_path, depth):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("I am a file")
    path = blocker / "results.sqlite" if depth == 1 else blocker / "sub" / "results.sqlite"
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(path.parent) in str(info.value)
    assert blocker.read_text() == "I am a file"


def test_store_path_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "results.sqlite"
    path.write_bytes(b"this is not a sqlite database, just some bytes " * 100)
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(path) in str(info.value)


def test_schema_version_mismatch_is_refused(store_path):
    Store(store_path).close()
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.close()
    with pytest.raises(StoreError, match="v99"):
        Store(store_path)


@pytest.mark.parametrize("body", ["{not json", "", json.dumps({"id": "x"}), "[1, 2, 3]"],
                         ids=["invalid-json", "empty", "wrong-fields", "wrong-type"])
def test_corrupt_record_body_names_the_record(store, store_path, body):
    good, bad = make_record(seed=1), make_record(seed=2)
    store.put(good)
    store.put(bad)
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE records SET body=? WHERE id=?", (body, bad.id))
    db.close()
    assert store.get(good.id) == good
    with pytest.raises(StoreError) as info:
        store.get(bad.id)
    assert bad.id[:12] in str(info.value)
    assert str(store_path) in str(info.value)
    with pytest.raises(StoreError) as info:
        store.records()
    assert bad.id[:12] in str(info.value)


def test_record_with_non_finite_metric_in_db_is_refused(store, store_path):
    rec = make_record(seed=3)
    store.put(rec)
    body = rec.model_dump_json().replace('"test/acc":0.9', '"test/acc":NaN')
    assert "NaN" in body
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE records SET body=? WHERE id=?", (body, rec.id))
    db.close()
    with pytest.raises(StoreError) as info:
        store.get(rec.id)
    assert rec.id[:12] in str(info.value)


# ---- crash safety -----------------------------------------------------------------------------

LOOP_SIZE = 400

LOOP_RECORD_SOURCE = '''
from mubench.harness.record import Record, RunConfig

def make_loop_record(i):
    cfg = RunConfig(task="crash", task_version="1", scenario="s", method="m", method_version="1",
                    hparams={"i": i}, seed=0, profile="smoke")
    return Record(id=cfg.id, config=cfg, status="ok", metrics={"x": float(i)}, split_id="split",
                  metrics_version="1", mia_spec_version="1", mubench_version="0", git_commit="g", hardware="cpu", device="cpu",
                  seconds=0.0, peak_rss_mb=0.0, created_at="2024-01-01T00:00:00+00:00")
'''

WRITER_SCRIPT = LOOP_RECORD_SOURCE + f'''
import sys, time
from pathlib import Path
from mubench.orchestration.store import Store

store = Store(Path(sys.argv[1]))
for i in range({LOOP_SIZE}):
    record = make_loop_record(i)
    store.put(record)
    print(record.id, flush=True)
    time.sleep(0.002)
'''


def _loop_records() -> list[Record]:
    namespace: dict = {}
    exec(LOOP_RECORD_SOURCE, namespace)
    return [namespace["make_loop_record"](i) for i in range(LOOP_SIZE)]


def test_store_survives_sigkill_mid_loop(store_path, tmp_path):
    env = {**os.environ, "MUBENCH_HOME": str(tmp_path / "home"), "MUBENCH_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(store_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
    printed: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while len(printed) < 5 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            printed.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    printed += [line.strip() for line in rest.splitlines() if line.strip()]
    assert len(printed) >= 5, f"the writer printed {printed!r}; stderr: {err}"
    assert proc.returncode == -signal.SIGKILL, "the writer finished before it was killed"
    assert len(printed) < LOOP_SIZE

    loop = _loop_records()
    loop_ids = [r.id for r in loop]
    assert printed == loop_ids[:len(printed)]

    with sqlite3.connect(store_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()

    reopened = Store(store_path)
    try:
        present = {r.id for r in reopened.records()}
        assert set(printed) <= present
        assert present <= set(loop_ids)
        # what was committed is a prefix of the loop: at most the put in flight is lost or done
        assert present == set(loop_ids[:len(present)])
        for rec in loop:
            assert reopened.put(rec) is (rec.id not in present), rec.id
        assert reopened.count() == LOOP_SIZE
        assert all(reopened.put(rec) is False for rec in loop)
        assert reopened.count() == LOOP_SIZE
        assert reopened.get(loop_ids[0]) == loop[0]
    finally:
        reopened.close()
    with sqlite3.connect(store_path) as db:
        duplicates = db.execute("SELECT id FROM records GROUP BY id HAVING COUNT(*) > 1").fetchall()
        assert duplicates == []
        assert db.execute("SELECT COUNT(DISTINCT id) FROM records").fetchone()[0] == LOOP_SIZE
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()


def test_a_record_edited_outside_mubench_is_refused_by_its_digest(store, store_path):
    """Two bytes changed inside a stored body, still valid JSON and a valid record, with
    SQLite's integrity check passing: the record's digest no longer matches, and reading it
    fails naming the record (it would otherwise move a method on the board)."""
    record = make_record(seed=4)
    store.put(record)
    body = record.model_dump_json()
    edited = body.replace('"test/acc":0.9', '"test/acc":0.99')
    assert edited != body
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE records SET body=? WHERE id=?", (edited, record.id))
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with pytest.raises(StoreError, match=f"record {record.id[:12]} was changed outside mubench"):
        store.get(record.id)


def test_an_empty_store_file_is_refused_not_replaced(tmp_path):
    path = tmp_path / "results.sqlite"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match="empty file"):
        Store(path)
    assert path.read_bytes() == b""  # left as it was found


def test_a_truncated_store_is_refused(store_path):
    store = Store(store_path)
    for seed in range(20):
        store.put(make_record(seed=seed))
    store.close()
    data = store_path.read_bytes()
    store_path.write_bytes(data[: len(data) // 3])
    for suffix in ("-wal", "-shm"):
        Path(str(store_path) + suffix).unlink(missing_ok=True)
    with pytest.raises(StoreError):
        reopened = Store(store_path)
        reopened.records()


def test_a_schema_1_store_is_migrated_with_its_records_intact(store_path):
    """A store written before the digest column opens, gains digests, and reads the same records."""
    record = make_record(seed=5)
    body = record.model_dump_json()
    store_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(store_path) as db:
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE records (id TEXT PRIMARY KEY, task TEXT NOT NULL, scenario TEXT NOT NULL,
                method TEXT NOT NULL, seed INTEGER NOT NULL, profile TEXT NOT NULL, status TEXT NOT NULL,
                created_at TEXT NOT NULL, body TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');""")
        cfg = record.config
        db.execute("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?)", (record.id, cfg.task, cfg.scenario, cfg.method,
                                                                     cfg.seed, cfg.profile, record.status,
                                                                     record.created_at, body))
    db.close()
    store = Store(store_path)
    assert store.get(record.id) == record
    store.close()
    with sqlite3.connect(store_path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    db.close()

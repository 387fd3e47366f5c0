"""`mubench data fetch`: every official file of a task that is not found is downloaded, resumed, verified.

A throwaway task whose files live on a local HTTP server (tests/test_download.py's RangeServer) is
registered for each test only: the registry's items are swapped for a copy and restored afterwards.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from mubench.cli import app as cli
from mubench.data.files import DataFile, FileForm
from mubench.tasks import tasks
from mubench.tasks.base import Pool, Task, TaskData
from mubench.tasks.spec import ProfileSpec, Recipe, ScenarioSpec, TaskSpec
from tests.test_download import RangeServer, serve, sha

FILES = {"a.bin": b"first file " * 300, "b.bin": b"second file " * 500}
SPEC = TaskSpec(
    name="fetchdemo", version="1.0", title="Fetch demo", modality="vector", description="Two files on a local server.",
    num_classes=2, input_shape=(1,),
    profiles={"smoke": ProfileSpec(model="mlp", recipe=Recipe(lr=0.1, epochs=1, batch_size=4), val_size=1)},
    scenarios=(ScenarioSpec(name="random_10", kind="random", params={"fraction": 0.1}, domain="privacy",
                            description="10 %"),),
    licence="test data", citation="none")


class FetchDemo(Task):
    spec = SPEC

    def __init__(self, data_files: list[DataFile]) -> None:
        self.files = data_files

    def data_files(self) -> list[DataFile]:
        return self.files

    def load(self) -> TaskData:
        pool = Pool(torch.zeros(4, 1), torch.tensor([0, 1, 0, 1]))
        return TaskData(train=pool, test=pool)


@pytest.fixture
def server(tmp_path):
    with serve(tmp_path / "served") as running:
        for name, data in FILES.items():
            (running.root / name).write_bytes(data)
        yield running


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_MIRROR", str(tmp_path / "empty_mirror"))
    monkeypatch.delenv("MUBENCH_OFFLINE", raising=False)
    monkeypatch.setattr(tasks, "_items", dict(tasks._items))  # restored after the test


def register(server: RangeServer, digests: dict[str, str] | None = None, names: tuple[str, ...] = tuple(FILES)) -> FetchDemo:
    digests = digests or {}
    task = FetchDemo([DataFile("demo", (FileForm(name, digests.get(name, sha(FILES.get(name, b"")))),), server.url(name))
                      for name in names])
    tasks.add("fetchdemo", task)
    return task


def mubench(monkeypatch, capsys, *args: str) -> SimpleNamespace:
    """`mubench ARGS` through `mubench.cli.app.main`, the console script's entry point."""
    monkeypatch.setattr(sys, "argv", ["mubench", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    captured = capsys.readouterr()
    return SimpleNamespace(code=exit_info.value.code, stdout=captured.out, stderr=captured.err)


def test_fetch_downloads_every_missing_file_and_a_second_call_downloads_nothing(server, tmp_path, monkeypatch, capsys):
    register(server)
    first = mubench(monkeypatch, capsys, "data", "fetch", "fetchdemo")
    assert first.code == 0, first.stderr
    raw = tmp_path / "home" / "raw" / "demo"
    for name, data in FILES.items():
        assert (raw / name).read_bytes() == data
        assert f"fetchdemo: {name} downloaded ({raw / name})" in first.stdout
    assert sorted(p.name for p in raw.iterdir()) == sorted(FILES)
    second = mubench(monkeypatch, capsys, "data", "fetch", "fetchdemo")
    assert second.code == 0
    assert second.stdout.count(" found ") == 2 and "downloaded" not in second.stdout
    assert len(server.requests) == 2  # one per file, from the first call only


def test_fetch_resumes_a_partial_download(server, tmp_path, monkeypatch, capsys):
    register(server, names=("b.bin",))
    part = tmp_path / "home" / "raw" / "demo" / "b.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(FILES["b.bin"][:777])
    result = mubench(monkeypatch, capsys, "data", "fetch", "fetchdemo")
    assert result.code == 0, result.stderr
    assert server.ranges() == ["bytes=777-"]
    assert (part.parent / "b.bin").read_bytes() == FILES["b.bin"] and not part.exists()


def test_fetch_refuses_a_file_with_the_wrong_checksum_and_names_url_and_digests(server, tmp_path, monkeypatch, capsys):
    register(server, digests={"a.bin": "a" * 64})
    result = mubench(monkeypatch, capsys, "data", "fetch", "fetchdemo")
    assert result.code == 2
    assert server.url("a.bin") in result.stderr and "a" * 64 in result.stderr and sha(FILES["a.bin"]) in result.stderr
    raw = tmp_path / "home" / "raw" / "demo"
    assert sorted(p.name for p in raw.iterdir()) == ["b.bin"]  # the good file is fetched; nothing of the bad one


def test_fetch_reports_a_404_with_url_and_file(server, monkeypatch, capsys):
    register(server, names=("a.bin", "gone.bin"))
    result = mubench(monkeypatch, capsys, "data", "fetch", "fetchdemo")
    assert result.code == 2
    assert "1 file(s) could not be fetched" in result.stderr
    assert "HTTP 404" in result.stderr and server.url("gone.bin") in result.stderr and "'gone.bin'" in result.stderr
    assert "a.bin downloaded" in result.stdout


def test_fetch_is_refused_offline(server, monkeypatch, capsys):
    register(server)
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    result = mubench(monkeypatch, capsys, "data", "fetch", "fetchdemo")
    assert result.code == 2 and "MUBENCH_OFFLINE=1" in result.stderr
    assert server.requests == []


def no_continual_tasks(monkeypatch) -> None:
    """Hide the continual stream tasks (mubench.continual), which `--all` also covers."""
    from mubench.continual.task import continual_tasks

    monkeypatch.setattr(continual_tasks, "_items", {})
    monkeypatch.setattr(continual_tasks, "_builtins_loaded", True)
    monkeypatch.setattr(continual_tasks, "_entry_points_loaded", True)


def test_fetch_all_covers_every_registered_task(server, monkeypatch, capsys):
    monkeypatch.setattr(tasks, "_items", {"debug": tasks.get("debug")})
    no_continual_tasks(monkeypatch)
    register(server)
    result = mubench(monkeypatch, capsys, "data", "fetch", "--all")
    assert result.code == 0, result.stderr
    assert "debug: generated data, nothing to fetch" in result.stdout
    assert result.stdout.count("fetchdemo: ") == 2


def test_a_file_in_the_mirror_is_verified_there_and_not_downloaded(server, tmp_path, monkeypatch, capsys):
    register(server, names=("a.bin",))
    mirror = tmp_path / "mirror"
    (mirror / "demo").mkdir(parents=True)
    (mirror / "demo" / "a.bin").write_bytes(FILES["a.bin"])
    monkeypatch.setenv("MUBENCH_MIRROR", str(mirror))
    result = mubench(monkeypatch, capsys, "data", "fetch", "fetchdemo")
    assert result.code == 0
    assert f"a.bin found ({mirror / 'demo' / 'a.bin'})" in result.stdout
    assert server.requests == []
    (mirror / "demo" / "a.bin").write_bytes(b"damaged")
    damaged = mubench(monkeypatch, capsys, "data", "fetch", "fetchdemo")
    assert damaged.code == 2 and str(mirror / "demo" / "a.bin") in damaged.stderr and sha(b"damaged") in damaged.stderr


def test_fetch_needs_task_names_or_all_and_suggests_close_names(monkeypatch, capsys):
    assert "or pass --all" in mubench(monkeypatch, capsys, "data", "fetch").stderr
    unknown = mubench(monkeypatch, capsys, "data", "fetch", "cmnst")
    assert unknown.code == 2 and "Did you mean 'cmnist'" in unknown.stderr

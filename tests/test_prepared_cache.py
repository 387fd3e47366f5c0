"""The prepared-data cache (mubench.tasks.base.cached_task_data): the tensors every number is
computed on, kept under $MUBENCH_CACHE/prepared with their sha256. An edited file (a few labels
changed: every metric moves, under the same split ids) is rebuilt from the raw files, not read."""

from __future__ import annotations

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mubench import paths
from mubench.tasks.base import Pool, TaskData, cached_task_data


def _data() -> TaskData:
    x = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    return TaskData(train=Pool(x, torch.arange(10) % 3, {"group": torch.arange(10) % 2}),
                    test=Pool(x[:4].clone(), torch.arange(4) % 3))


def test_an_edited_prepared_file_is_rebuilt_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_CACHE", str(tmp_path / "cache"))
    builds: list[int] = []

    def build() -> TaskData:
        builds.append(1)
        return _data()

    first = cached_task_data("toy", ["v1"], build)
    again = cached_task_data("toy", ["v1"], build)
    assert len(builds) == 1 and torch.equal(again.test.y, first.test.y)  # read from the cache
    (cache,) = sorted(paths.prepared().glob("toy-*.safetensors"))
    with safe_open(cache, framework="pt") as handle:
        digest = handle.metadata()["sha256"]
    tensors = load_file(cache)
    tensors["test.y"] = (tensors["test.y"] + 1) % 3  # every test label moved: test/acc from 1 to 0
    save_file(tensors, cache, metadata={"sha256": digest})  # the old digest kept, as an editor would
    rebuilt = cached_task_data("toy", ["v1"], build)
    assert len(builds) == 2 and torch.equal(rebuilt.test.y, first.test.y)
    assert sorted(p.name for p in paths.prepared().iterdir()) == [cache.name]  # no temporary left behind


def test_a_prepared_file_without_its_digest_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_CACHE", str(tmp_path / "cache"))
    builds: list[int] = []
    cached_task_data("toy", ["v1"], lambda: builds.append(1) or _data())
    (cache,) = sorted(paths.prepared().glob("toy-*.safetensors"))
    save_file(load_file(cache), cache)  # written by an older mubench: no sha256
    cached_task_data("toy", ["v1"], lambda: builds.append(1) or _data())
    assert len(builds) == 2

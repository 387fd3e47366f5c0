"""Data cards (mubench/board/datacard.py, `mubench data card`): rendered from the spec plus statistics.

The committed cards in data_cards/ are compared with a fresh rendering: the spec part for every
task shipped with mubench (cheap, no data is read), the statistics part where the task's data is
present (slow: it loads the data). A throwaway task, registered per test only, exercises the
renderer and the command.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from helpers import MIRROR_SKIP, REAL_MIRROR
from mubench.board import datacard
from mubench.cli import app as cli
from mubench.data.files import DataFile, FileForm
from mubench.tasks import tasks
from mubench.tasks.base import Pool, Task, TaskData
from mubench.tasks.spec import DataFileSpec, ProfileSpec, Recipe, ScenarioSpec, TaskSpec

CARDS = Path(__file__).resolve().parents[1] / "data_cards"
# The statistics check loads every task whose data is present; it uses the caller's MUBENCH_HOME,
# so that prepared tensors cached by earlier runs are reused (decoding CIFAR-10's JPEGs from scratch
# takes minutes on two cores) and the check sees the very tensors that runs use.
CALLERS_HOME = os.environ.get("MUBENCH_HOME")
RAW = b"card demo raw file"
DIGEST = hashlib.sha256(RAW).hexdigest()
SPEC = TaskSpec(
    name="carddemo", version="1.0", title="Card demo", modality="tabular",
    description="Eight samples in two groups.", num_classes=3, input_shape=(2,),
    source=(DataFileSpec(name="demo.bin", sha256=DIGEST),), source_folder="carddemo",
    profiles={"smoke": ProfileSpec(model="mlp", model_args={"hidden": [8]}, recipe=Recipe(lr=0.1, epochs=1, batch_size=4),
                                   train_size=5, val_size=2, test_size=None)},
    scenarios=(ScenarioSpec(name="group_1", kind="subgroup", params={"attribute": "group", "value": 1},
                            domain="fairness", description="every sample of group 1 | a pipe"),
               ScenarioSpec(name="class_9", kind="class", params={"label": 9}, domain="adaptability",
                            description="a class with no samples")),
    sensitive_attributes=("group",), notes=("The demo has no missing values.",),
    licence="test licence", citation="Nobody 2025")


class CardDemo(Task):
    spec = SPEC

    def __init__(self, labels: list[int] | None = None) -> None:
        self.labels = labels or [0, 1, 2, 0, 1, 2, 0, 1]

    def data_files(self) -> list[DataFile]:
        return [DataFile("carddemo", (FileForm("demo.bin", DIGEST), FileForm("demo.txt", "0" * 64)),
                         url="https://example.invalid/demo.bin")]

    def load(self) -> TaskData:
        n = len(self.labels)
        train = Pool(torch.arange(2 * n, dtype=torch.float32).view(n, 2), torch.tensor(self.labels),
                     {"group": torch.tensor([0, 1] * (n // 2)), "person": torch.arange(n) * 3})
        test = Pool(torch.zeros(3, 2), torch.tensor([0, 0, 1]), {"group": torch.tensor([1, 1, 0])})
        return TaskData(train=train, test=test)

    def data_source(self) -> str:
        return "a made-up copy"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    mirror = tmp_path / "mirror"
    (mirror / "carddemo").mkdir(parents=True)
    (mirror / "carddemo" / "demo.bin").write_bytes(RAW)
    monkeypatch.setenv("MUBENCH_MIRROR", str(mirror))
    monkeypatch.setattr(tasks, "_items", dict(tasks._items))  # restored after the test
    return mirror


@pytest.fixture
def demo() -> CardDemo:
    task = CardDemo()
    tasks.add("carddemo", task)
    return task


def shipped_tasks() -> list[Task]:
    """Tasks defined in mubench itself (not throwaway tasks that other tests register), unlearning
    tasks and continual stream tasks."""
    from mubench.continual.task import continual_tasks

    every = [*tasks.items(), *continual_tasks.items()]
    return [task for _, task in every if type(task).__module__.startswith("mubench.")]


def mubench(monkeypatch, capsys, *args: str) -> SimpleNamespace:
    monkeypatch.setattr(sys, "argv", ["mubench", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    captured = capsys.readouterr()
    return SimpleNamespace(code=exit_info.value.code, stdout=captured.out, stderr=captured.err)


# ---- the committed cards ------------------------------------------------------------------------

def test_every_shipped_task_has_a_card_whose_spec_part_matches_the_spec(monkeypatch):
    monkeypatch.delenv("MUBENCH_MIRROR")
    assert {"cmnist", "debug"} <= {task.spec.name for task in shipped_tasks()}
    stale = {task.spec.name: parts for task in shipped_tasks()
             if (parts := datacard.stale_parts(task, CARDS, with_statistics=False))}
    assert not stale, f"stale cards in {CARDS}: {stale}; regenerate with `mubench data card` (make cards)"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(task.spec.name for task in shipped_tasks()))
def test_the_statistics_of_a_card_are_current_where_the_data_is_present(name, monkeypatch):
    monkeypatch.delenv("MUBENCH_MIRROR")
    if CALLERS_HOME is None:
        monkeypatch.delenv("MUBENCH_HOME")
    else:
        monkeypatch.setenv("MUBENCH_HOME", CALLERS_HOME)
    task = next(task for task in shipped_tasks() if task.spec.name == name)
    if not datacard.data_available(task):
        pytest.skip(f"{MIRROR_SKIP}files of {name} ({', '.join(task.data_status().missing)}) in {REAL_MIRROR}")
    stale = datacard.stale_parts(task, CARDS)
    assert not stale, f"{CARDS / name}.md: stale {stale}; regenerate with `mubench data card {name}`"


# ---- the renderer -------------------------------------------------------------------------------

def test_a_card_holds_the_spec_and_the_statistics_in_delimited_parts(demo, tmp_path, monkeypatch):
    monkeypatch.setattr(datacard, "MAX_VALUE_ROWS", 4)  # `person` (8 values) gets the summary form
    path, note = datacard.write_card(demo, tmp_path / "cards")
    text = path.read_text()
    assert path.name == "carddemo.md" and note == ""
    assert text.index(datacard.SPEC_BEGIN) < text.index(datacard.SPEC_END) < text.index(datacard.STATS_BEGIN)
    parts = datacard.split_card(text)
    for fact in ("# Card demo", "`carddemo`", DIGEST, "Folder `carddemo/`", "https://example.invalid/demo.bin",
                 "`demo.txt`", "- The demo has no missing values.", "test licence", "Nobody 2025", "`group`",
                 '`{"attribute": "group", "value": 1}`', "`{\"hidden\": [8]}`", "| train size | 5 |", "| test size | all |",
                 "every sample of group 1 \\| a pipe", "`mubench data fetch carddemo`", "`MUBENCH_MIRROR`"):
        assert fact in parts.spec, fact
    for fact in ("Data source: a made-up copy.", "| train | 8 | 2 | float32 | 0 … 15 |", "| 0 | 3 | 37.50 % | 2 | 66.67 % |",
                 "#### `group` (sensitive)", "| 1 | 4 | 50.00 % | 2 | 66.67 % |", "#### `person`",
                 "Not in the test pool.", "- train: 8 distinct values from 0 to 21, each on one sample", "| `smoke` | `group_1` | 5 |",
                 "error: task carddemo, scenario class_9"):
        assert fact in parts.statistics, fact


def test_rendering_is_deterministic_and_a_fresh_card_is_not_stale(demo, tmp_path):
    first = datacard.compose(datacard.render_card(demo))
    assert datacard.compose(datacard.render_card(demo)) == first
    datacard.write_card(demo, tmp_path)
    assert (tmp_path / "carddemo.md").read_text() == first
    assert datacard.stale_parts(demo, tmp_path) == []


def test_a_changed_spec_or_changed_data_makes_the_card_stale(demo, tmp_path, monkeypatch):
    datacard.write_card(demo, tmp_path)
    monkeypatch.setattr(demo, "spec", SPEC.model_copy(update={"licence": "another licence"}))
    assert datacard.stale_parts(demo, tmp_path) == ["spec"]
    assert datacard.stale_parts(demo, tmp_path, with_statistics=False) == ["spec"]
    monkeypatch.setattr(demo, "spec", SPEC)
    demo.labels = [0, 0, 2, 0, 1, 2, 0, 1]
    assert datacard.stale_parts(demo, tmp_path) == ["statistics"]
    assert datacard.stale_parts(demo, tmp_path, with_statistics=False) == []


def test_a_missing_or_unmarked_card_is_stale(demo, tmp_path):
    assert datacard.stale_parts(demo, tmp_path) == ["missing"]
    (tmp_path / "carddemo.md").write_text("# hand-written\n")
    assert datacard.stale_parts(demo, tmp_path) == ["markers"]


def test_without_its_data_a_card_says_so_and_only_its_spec_is_checked(demo, tmp_path, isolated):
    (isolated / "carddemo" / "demo.bin").unlink()
    path, note = datacard.write_card(demo, tmp_path)
    statistics = datacard.split_card(path.read_text()).statistics
    assert datacard.UNAVAILABLE in statistics and "`demo.bin`" in statistics and "statistics left out" in note
    assert datacard.stale_parts(demo, tmp_path) == []


def test_without_its_data_the_statistics_of_an_existing_card_are_kept(demo, tmp_path, isolated, monkeypatch):
    datacard.write_card(demo, tmp_path)
    before = datacard.split_card((tmp_path / "carddemo.md").read_text()).statistics
    (isolated / "carddemo" / "demo.bin").unlink()
    monkeypatch.setattr(demo, "spec", SPEC.model_copy(update={"version": "1.1"}))
    _, note = datacard.write_card(demo, tmp_path)
    after = datacard.split_card((tmp_path / "carddemo.md").read_text())
    assert "kept the statistics" in note and after.statistics == before and "| version | 1.1 |" in after.spec


@pytest.mark.skipif("target" not in TaskSpec.model_fields, reason="TaskSpec has no regression targets yet")
def test_a_regression_task_gets_target_statistics_instead_of_class_counts(tmp_path, monkeypatch):
    spec = SPEC.model_copy(update={"target": "regression", "missing_value": 0.0, "num_classes": 2,
                                   "scenarios": SPEC.scenarios[:1]})
    task = CardDemo()
    monkeypatch.setattr(task, "spec", spec)
    data = TaskData(train=Pool(torch.zeros(4, 2), torch.tensor([[1.0, 0.0], [3.0, 5.0], [0.0, 0.0], [2.0, 4.0]]),
                               {"group": torch.tensor([0, 1, 0, 1])}),
                    test=Pool(torch.zeros(2, 2), torch.tensor([[1.0, 1.0], [1.0, float("nan")]]), {"group": torch.tensor([1, 0])}))
    text = datacard.render_statistics(task, data)
    assert "### Targets" in text and "### Classes" not in text
    assert "Missing: NaN or equal to 0.0." in text
    assert "| train | 2 | float32 | 8 | 37.50 % | 3 | 1.414 | 1 | 5 |" in text
    assert "| test | 2 | float32 | 4 | 25.00 % | 1 | 0 | 1 | 1 |" in text


# ---- the command --------------------------------------------------------------------------------

def test_data_card_writes_then_checks_and_names_stale_cards(demo, tmp_path, monkeypatch, capsys):
    cards = tmp_path / "cards"
    written = mubench(monkeypatch, capsys, "data", "card", "carddemo", "debug", "--dir", str(cards))
    assert written.code == 0, written.stderr
    assert sorted(p.name for p in cards.iterdir()) == ["carddemo.md", "debug.md"]
    fresh = mubench(monkeypatch, capsys, "data", "card", "carddemo", "debug", "--check", "--dir", str(cards))
    assert fresh.code == 0 and "2 card(s) up to date" in fresh.stdout
    monkeypatch.setattr(demo, "spec", SPEC.model_copy(update={"title": "Renamed"}))
    stale = mubench(monkeypatch, capsys, "data", "card", "carddemo", "debug", "--check", "--dir", str(cards))
    assert stale.code == 1
    assert f"stale: {cards / 'carddemo'}.md (spec)" in stale.stderr and "debug" not in stale.stderr.split("regenerate")[0]
    assert "mubench data card carddemo" in stale.stderr


def test_data_card_defaults_to_every_registered_task(demo, tmp_path, monkeypatch, capsys):
    from tests.test_fetch import no_continual_tasks

    monkeypatch.setattr(tasks, "_items", {"carddemo": demo, "debug": tasks.get("debug")})
    no_continual_tasks(monkeypatch)
    result = mubench(monkeypatch, capsys, "data", "card", "--dir", str(tmp_path))
    assert result.code == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".md") == ["carddemo.md", "debug.md"]
    assert mubench(monkeypatch, capsys, "data", "card", "--check", "--dir", str(tmp_path / "none")).code == 1
    assert "Did you mean 'carddemo'" in mubench(monkeypatch, capsys, "data", "card", "cardemo").stderr

"""The board's U-LiRA column: the privacy audits committed beside the submissions
(`<submissions>/../audit/*.csv`) read, chosen per cell and method, and shown beside a privacy
cell's score; a bad audit file is refused by name without hiding the board."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from board_fixtures import board_environment, make_folder
from helpers import shared_home
from mubench.board import scores
from mubench.board import tables as bd
from mubench.results.audit import COLUMNS, board_audit, read_audit_folder


def audit_row(method: str, value: float, population: int = 16, seed: int = 0, metric: str = "audit/ulira_acc",
              scenario: str = "random_10") -> dict:
    return {"task": "debug", "scenario": scenario, "method": method, "profile": "smoke", "population": population,
            "seed": seed, "metric": metric, "value": value, "low": value - 0.02, "high": value + 0.03,
            "sizes": json.dumps({"examples": 10, "models": population})}


def write_audit(path, rows: list[dict]) -> None:  # noqa: ANN001 - a pathlib.Path
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)


def test_board_audit_keeps_the_largest_population_then_the_first_seed_of_one_key():
    frame = pd.DataFrame([audit_row("alpha", 0.70, population=16), audit_row("alpha", 0.60, population=32, seed=1),
                          audit_row("alpha", 0.65, population=32, seed=0), audit_row("beta", 0.55),
                          audit_row("beta", 3.0, metric="audit/klom_forget")], columns=COLUMNS)
    chosen = board_audit(frame).set_index("method")
    assert list(chosen.index) == ["alpha", "beta"]
    assert (chosen.loc["alpha", "value"], chosen.loc["alpha", "population"], chosen.loc["alpha", "seed"]) == (0.65, 32, 0)
    assert chosen.loc["beta", "value"] == 0.55  # not KLOM's 3.0


def test_read_audit_folder_refuses_a_bad_file_by_name_and_keeps_the_others(tmp_path):
    write_audit(tmp_path / "good.csv", [audit_row("alpha", 0.6)])
    (tmp_path / "bad.csv").write_text("task,scenario\ndebug,random_10\n")
    frame, problems = read_audit_folder(tmp_path)
    assert list(frame["method"]) == ["alpha"]
    assert [path.name for path, _ in problems] == ["bad.csv"] and "column(s)" in problems[0][1]
    empty, none = read_audit_folder(tmp_path / "missing")
    assert empty.empty and list(empty.columns) == COLUMNS and none == []


def test_the_board_reads_the_audits_beside_its_submissions(tmp_path, monkeypatch):
    board_environment(tmp_path, monkeypatch)
    with shared_home(tmp_path):
        folder, _ = make_folder(tmp_path, refused=False)
    assert bd.load_board(folder).audit.empty  # no audit folder: no column
    write_audit(tmp_path / "audit" / "cells.csv", [audit_row("alpha", 0.61), audit_row("beta", 0.52)])
    board = bd.load_board(folder)
    assert bd.audit_folder(folder) == tmp_path / "audit"
    monkeypatch.setenv("MUBENCH_AUDIT", str(tmp_path / "elsewhere"))
    assert bd.audit_folder(folder) == tmp_path / "elsewhere" and bd.load_board(folder).audit.empty
    monkeypatch.delenv("MUBENCH_AUDIT")
    assert sorted(board.audit["method"]) == ["alpha", "beta"] and not board.refused
    (tmp_path / "audit" / "broken.csv").write_text("not,a\ntable")
    broken = bd.load_board(folder)
    assert [r.source for r in broken.refused] == [str(tmp_path / "audit" / "broken.csv")]
    assert len(broken.entries) == len(board.entries) and len(broken.audit) == 2


def ranked_cell(scenario: str, methods: list[str]) -> pd.DataFrame:
    n = len(methods)
    return pd.DataFrame({"task": "debug", "scenario": scenario, "profile": "smoke", "entry": methods, "method": methods,
                         "access": "retain", "status": "verified", "rank": [1.0] * n, "reference": [False] * n,
                         "score": [0.5] * n, "score_ci95": [0.1] * n, "forgetting": [0.5] * n, "utility": [1.0] * n,
                         "n": [5] * n, "hypervolume": [float("nan")] * n, "work": [0.1] * n, "flags": [""] * n})


def test_a_privacy_cell_shows_each_methods_audit_with_its_interval():
    audit = board_audit(pd.DataFrame([audit_row("alpha", 0.61), audit_row("beta", 0.5)], columns=COLUMNS))
    table = scores.format_cells(ranked_cell("random_10", ["alpha", "beta", "gamma"]), audit)
    assert list(table.columns) == ["rank", "method", "access", "status", "score", "forgetting", "utility", "U-LiRA",
                                   "n", "hypervolume", "work", "flags"]
    assert list(table["U-LiRA"]) == ["0.610 [0.590, 0.640]", "0.500 [0.480, 0.530]", "–"]
    note = scores.audit_note(ranked_cell("random_10", ["alpha"]), audit)
    assert "population of 16" in note and "seed 0" in note and "not in the score" in note
    # another cell, or no audit at all: no column and no note
    other = ranked_cell("class_0", ["alpha"])
    assert "U-LiRA" not in scores.format_cells(other, audit).columns and scores.audit_note(other, audit) == ""
    assert "U-LiRA" not in scores.format_cells(other).columns


@pytest.mark.parametrize("cell", [("adult", "random_1", "standard"), ("cwru", "random_10", "standard")])
def test_the_committed_board_page_shows_the_committed_audits(cell):
    """docs/board.md's block (test_export holds it to the export of the committed folder) shows
    each audited privacy cell's U-LiRA, as the committed audit tables state it."""
    frame, problems = read_audit_folder(bd.audit_folder(bd.submissions_folder(None)))
    assert problems == []
    identity = frame[(frame["task"] == cell[0]) & (frame["scenario"] == cell[1]) & (frame["method"] == "identity")
                     & (frame["metric"] == "audit/ulira_acc")].iloc[0]
    block = (Path(__file__).resolve().parents[1] / "docs" / "board.md").read_text()
    section = block[block.index(f"**`{cell[0]}` / `{cell[1]}` (`{cell[2]}`)**"):]
    section = section[:section.index("\n\n**", 10)]
    assert "population of 16" in section.splitlines()[0]
    row = next(line for line in section.splitlines() if line.startswith("| ref | `identity`"))
    assert f"{identity['value']:.3f} \\[{identity['low']:.3f}, {identity['high']:.3f}\\]" in row

"""Tuned board entries that verify on any clone: `leaderboard-data` on a tuned suite writes each
entry with its records file; `mubench verify` rebuilds the entry from that file alone, refuses a
tampered entry or records file naming the field, refuses records of other code, and `--rerun`
reproduces runs from their configs. Runs train only on `debug`, through a tiny tuned suite."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import require_jail, shared_home
from mubench.board.records_file import read_records, records_path, write_records
from mubench.board.rerun import compare
from mubench.board.submission import check_submission
from mubench.cli.app import app
from mubench.methods import methods
from mubench.orchestration import sweep

METHODS = ("identity", "retrain", "finetune", "grad_ascent")


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A tuned suite on debug (budget 2 on seed 9, reported on seeds 0-2) written by leaderboard-data."""
    base = tmp_path_factory.mktemp("tuned")
    suite = sweep.Suite("tiny_board", "debug, tuned", tasks=("debug",), profile="smoke", seeds=(0, 1, 2),
                        scenarios=("class_0",), methods=METHODS, tuning=sweep.Tuning(dev_seed=9, budget=2))
    with shared_home(base), pytest.MonkeyPatch.context() as patch:
        patch.setitem(sweep.SUITES, "tiny_board", suite)
        result = CliRunner().invoke(app, ["leaderboard-data", "--suite", "tiny_board", "--out", str(base / "subs"),
                                          "--store", str(base / "store.sqlite"), "--no-readme"],
                                    catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return base


def test_a_tier_of_its_own_writes_to_its_folder_and_leaves_the_readme_alone(tmp_path, monkeypatch):
    """A suite with a `folder` (the GPU tier) writes its entries and records there, not into the
    board's folder, and never regenerates the README's board from them."""
    suite = sweep.Suite("tiny_tier", "debug, tuned, a tier", tasks=("debug",), profile="smoke", seeds=(0, 1),
                        scenarios=("class_0",), methods=("identity", "finetune"),
                        tuning=sweep.Tuning(dev_seed=9, budget=1), folder="tiers/tiny")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("# readme\n<!-- BEGIN LEADERBOARD -->\n<!-- END LEADERBOARD -->\n")
    before = (tmp_path / "README.md").read_bytes()
    with shared_home(tmp_path), pytest.MonkeyPatch.context() as patch:
        patch.setitem(sweep.SUITES, "tiny_tier", suite)
        result = CliRunner().invoke(app, ["leaderboard-data", "--suite", "tiny_tier", "--store",
                                          str(tmp_path / "store.sqlite")], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "tiers" / "tiny" / "submissions").iterdir()) == ["finetune.json",
                                                                                               "identity.json"]
    assert (tmp_path / "tiers" / "tiny" / "records" / "finetune.jsonl.gz").is_file()
    assert not (tmp_path / "leaderboard").exists() and (tmp_path / "README.md").read_bytes() == before


def verify(*args: object):
    return CliRunner().invoke(app, ["verify", *map(str, args), "--store", "/nonexistent/store.sqlite"],
                              catch_exceptions=False)


def test_tuned_entries_carry_the_protocol_the_choice_and_their_records(board):
    entry = json.loads((board / "subs" / "finetune.json").read_text())
    assert entry["selection"] == "tuned" and entry["tuning"] == {"dev_seed": 9, "budget": 2, "select_by": "score/val"}
    result = entry["results"][0]
    assert result["search"]["searched"] == 2 and "seed 9" in result["search"]["reason"]
    assert result["metrics"]["score"]["n"] == 3 and [s["seed"] for s in result["splits"]] == [0, 1, 2]
    assert result["hypervolume"]["n"] == 1 and result["hypervolume"]["points"] == 2  # the search's sweep
    records = read_records(records_path(board / "subs", "finetune"), entry["records_sha256"])
    assert sorted(r.id for r in records) == entry["record_ids"] and len(records) == 2 + 3
    chosen = {r.config.seed: r.config.hparams for r in records if r.config.seed != 9}
    assert len({json.dumps(h, sort_keys=True) for h in chosen.values()}) == 1  # one setting on every reported seed
    assert json.dumps(next(iter(chosen.values())), sort_keys=True, separators=(",", ":")) == result["hparams"]


def test_a_fresh_clone_verifies_from_the_records_file_alone(board):
    for name in METHODS:
        checked = check_submission(board / "subs" / f"{name}.json", board / "subs", Path("/nonexistent/store.sqlite"))
        assert not checked.problems and checked.submission.verified, (name, checked.notes)
    result = verify(board / "subs" / "grad_ascent.json")
    assert result.exit_code == 0 and "rebuild every number" in result.stdout


def test_rerun_reproduces_the_runs(board):
    with shared_home(board):
        result = verify(board / "subs" / "finetune.json", "--rerun", 2)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("reproduced") == 2


@pytest.mark.slow
def test_rerun_in_the_jail_reproduces_the_runs_weight_for_weight(board):
    require_jail()
    with shared_home(board):
        result = verify(board / "subs" / "finetune.json", "--rerun", 1, "--isolate")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("reproduced") == 1  # metrics within the tolerance and the same weights' sha256


def copy_board(board: Path, tmp_path: Path) -> Path:
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in METHODS:
        (subs / f"{name}.json").write_bytes((board / "subs" / f"{name}.json").read_bytes())
        target = records_path(subs, name)
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(records_path(board / "subs", name).read_bytes())
    return subs


def test_a_tampered_entry_is_refused_naming_the_field(board, tmp_path):
    subs = copy_board(board, tmp_path)
    path = subs / "finetune.json"
    entry = json.loads(path.read_text())
    entry["results"][0]["metrics"]["score"]["mean"] += 0.01
    path.write_text(json.dumps(entry))
    result = verify(path)
    assert result.exit_code == 1
    assert "results[debug/class_0/smoke].metrics.score.mean: the entry says" in " ".join(result.stderr.split())


def test_a_tampered_records_file_is_refused(board, tmp_path):
    subs = copy_board(board, tmp_path)
    file = records_path(subs, "finetune")
    lines = gzip.decompress(file.read_bytes()).decode().splitlines()
    record = json.loads(lines[0])
    key = next(iter(record["metrics"]))
    record["metrics"][key] = 0.123
    file.write_bytes(gzip.compress(("\n".join([json.dumps(record), *lines[1:]]) + "\n").encode()))
    result = verify(subs / "finetune.json")
    assert result.exit_code == 1 and "the file was changed after the entry was written" in " ".join(result.stderr.split())
    # the same edit with the entry's digest updated: the rebuilt numbers differ from the entry's
    entry = json.loads((subs / "finetune.json").read_text())
    records = read_records(file)
    entry["records_sha256"] = write_records(file, records)
    (subs / "finetune.json").write_text(json.dumps(entry))
    changed = verify(subs / "finetune.json")
    assert changed.exit_code == 1 and "the entry says" in " ".join(changed.stderr.split())
    # a record whose config no longer hashes to its id names the line and field
    record["config"]["seed"] = 42
    file.write_bytes(gzip.compress((json.dumps(record) + "\n").encode()))
    with pytest.raises(Exception, match="line 1: .*record id .* is not the hash of its config"):
        read_records(file)


def test_records_of_other_code_are_not_verified(board, tmp_path, monkeypatch):
    subs = copy_board(board, tmp_path)
    monkeypatch.setattr(methods.get("finetune"), "source_digest", classmethod(lambda cls: "f" * 64))
    result = verify(subs / "finetune.json")
    assert result.exit_code == 1 and "the code changed since" in " ".join(result.stderr.split())
    checked = check_submission(subs / "finetune.json", subs, Path("/nonexistent/store.sqlite"))
    assert not checked.submission.verified


def test_compare_names_every_difference_and_ignores_what_measures_the_machine(board):
    records = read_records(records_path(board / "subs", "finetune"))
    stated = next(r for r in records if r.status == "ok")
    timed = stated.model_copy(update={"metrics": {**stated.metrics, "cost/seconds": 99.0, "cost/rte": 9.0}})
    assert compare(stated, timed) == ([], 0.0)
    key = next(k for k in stated.metrics if k.startswith("forget/"))
    moved = stated.model_copy(update={"metrics": {**stated.metrics, key: stated.metrics[key] + 0.01}})
    problems, largest = compare(stated, moved)
    assert len(problems) == 1 and key in problems[0] and largest == pytest.approx(0.01)
    named = stated.model_copy(update={"weights_sha256": "a" * 64})
    other = named.model_copy(update={"weights_sha256": "b" * 64})
    problems, _ = compare(named, other)  # the same numbers from other weights: a difference
    assert len(problems) == 1 and "unlearned weights differ" in problems[0]
    older = stated.model_copy(update={"weights_sha256": ""})  # a record from before the field
    assert compare(named, named) == ([], 0.0) and compare(older, other) == ([], 0.0)


# ---- the board's ranking rule over the entries ---------------------------------------------------

def test_the_board_ranks_entries_by_score_with_reference_rows(board):
    from mubench.board.scores import format_cells, ranked_cells, summary_table
    from mubench.board.tables import load_board

    loaded = load_board(board / "subs")
    ranked = ranked_cells(loaded).set_index("entry")
    assert set(ranked.index) == set(METHODS)
    assert bool(ranked.loc["retrain", "reference"]) and ranked.loc["retrain", "score"] == 1.0
    assert bool(ranked.loc["identity", "reference"]) and ranked.loc["identity", "score"] == 0.0
    assert math.isnan(ranked.loc["retrain", "rank"]) and math.isnan(ranked.loc["identity", "rank"])
    assert bool(ranked.loc["finetune", "ranked"])  # class_0 on debug: the signal holds on every seed
    assert {ranked.loc["finetune", "rank"], ranked.loc["grad_ascent", "rank"]} <= {1.0, 2.0}
    assert ranked.loc["finetune", "domain"] == "adaptability"
    shown = format_cells(ranked.reset_index())
    assert set(shown[shown["method"].isin(["retrain", "identity"])]["rank"]) == {"ref"}
    by_task = summary_table(loaded, ranked.reset_index(), "task")
    assert list(by_task["entry"])[-2:] == sorted(["identity", "retrain"])  # reference rows last
    finetune = by_task.set_index("entry").loc["finetune"]
    assert finetune["debug"][0] == pytest.approx(ranked.loc["finetune", "score"]) and finetune["cells"] == 1
    assert "adaptability" in summary_table(loaded, ranked.reset_index(), "domain").columns


def test_the_exports_follow_the_boards_rule(board):
    from mubench.cli.board import ExportFormat, page_block, readme_block, render_export

    readme = readme_block(board / "subs")
    assert "Top three per task" in readme and "| debug | class\\_0 | `smoke` |" in readme
    assert "verified" in readme  # the records file travels with each entry: verified on any clone
    assert "\\(rank 1, verified\\)" in readme and "share rank 1" in readme  # the top place names its band
    assert "retrain" not in readme and "identity" not in readme  # reference rows are not competitors
    page = page_block(board / "subs")
    lines = page.splitlines()
    assert lines[0].startswith("**Summary by task") and any(line.startswith("**Summary by intervention domain")
                                                             for line in lines)
    cell = next(i for i, line in enumerate(lines) if line.startswith("**`debug` / `class_0` (`smoke`)**"))
    assert "adaptability; ranked by score" in lines[cell]
    rows = [line for line in lines[cell:] if line.startswith("| ref |")]
    assert len(rows) == 2 and any("`retrain`" in r and "1.000 ± 0.000" in r for r in rows)
    html = render_export(ExportFormat.html, board / "subs")
    assert "<h2>Summary by task" in html


def test_the_app_opens_on_the_summary_and_drills_down(board, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MUBENCH_SUBMISSIONS", str(board / "subs"))
    monkeypatch.delenv("MUBENCH_STORE", raising=False)
    app = str(Path(__file__).resolve().parents[1] / "leaderboard" / "app.py")
    at = AppTest.from_file(app, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    summary = at.dataframe[0].value
    assert list(summary.columns)[:4] == ["method", "access", "status", "debug"]
    assert list(summary["method"])[-2:] == ["identity", "retrain"] and list(summary["mean rank"])[-2:] == ["ref", "ref"]
    assert set(summary["status"]) == {"verified"}
    at.radio(key="group").set_value("domain").run()
    assert "adaptability" in at.dataframe[0].value.columns
    at.sidebar.radio(key="page").set_value("Cells").run()
    cell = at.dataframe[0].value
    assert list(cell.columns)[:5] == ["rank", "method", "access", "status", "score"]
    assert set(cell[cell["method"].isin(["retrain", "identity"])]["rank"]) == {"ref"}
    metrics = at.dataframe[2].value  # the cell's metrics, constant ones hidden
    assert "method" in metrics.columns and "signal/forget_acc" not in metrics.columns  # the same for every method
    at.sidebar.multiselect(key="domains").set_value(["privacy"]).run()
    assert "No entry matches" in at.info[0].value  # debug/class_0 is an adaptability scenario
    for page in ("Trade-offs", "How it is ranked"):
        at.sidebar.radio(key="page").set_value(page).run()
        assert not at.exception

"""Leaderboard submissions: build from records, write without overwriting, validate everything at once,
and `mubench submit` / `validate` / `schema` through typer's CliRunner. Everything trains on `debug`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import debug_config, home_under, shared_home
from mubench.board.submission import (
    MethodInfo,
    Submission,
    SubmissionError,
    build_submission,
    check_submission,
    schema_json,
    validate_submission,
    write_submission,
)
from mubench.cli.app import app
from mubench.methods import Access, methods
from mubench.orchestration.store import Store

ROOT = Path(__file__).resolve().parents[1]
INFO = MethodInfo(method="identity", version="1", authors=["A. Author"], paper="none", description="does nothing",
                  source_file="identity.py", class_name="Identity", source_sha256=methods.get("identity").source_digest(),
                  access=Access.FORGET,
                  hparams={}, intensity=None)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Records of `identity` on debug (two scenarios, two seeds), in a store; and the submission built from them."""
    from mubench.harness.runner import Harness

    base = tmp_path_factory.mktemp("submission")
    with shared_home(base):
        harness = Harness()
        records = [harness.run(debug_config("identity", scenario, seed)) for scenario in ("class_0", "random_10")
                   for seed in (0, 1)]
    store_path = base / "results.sqlite"
    store = Store(store_path)
    for record in records:
        store.put(record)
    store.close()
    submission = build_submission(records, INFO, suite="quick", seeds=[0, 1], sweep=None, verified=True,
                                  created_at="2026-01-01T00:00:00+00:00")
    return base, store_path, submission


@pytest.fixture(autouse=True)
def home(stored, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(home_under(stored[0])))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.delenv("MUBENCH_SUBMISSIONS", raising=False)


def _write(folder: Path, data: dict | str, name: str = "identity.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _problems(path: Path, folder: Path) -> str:
    with pytest.raises(SubmissionError) as info:
        validate_submission(path, folder)
    message = str(info.value)
    assert str(path) in message  # every message names the file
    return message


def test_a_good_file_round_trips_and_stays_verified_with_its_records(stored, tmp_path):
    _, store_path, submission = stored
    assert {(r.task, r.scenario) for r in submission.results} == {("debug", "class_0"), ("debug", "random_10")}
    assert all(r.metrics["forget/acc"].n == 2 and len(r.splits) == 2 for r in submission.results)
    path = write_submission(submission, tmp_path / "subs")
    assert path == tmp_path / "subs" / "identity.json"
    assert validate_submission(path, tmp_path / "subs", store_path) == submission
    elsewhere = check_submission(path, tmp_path / "subs", tmp_path / "no-store.sqlite")
    assert not elsewhere.problems and elsewhere.submission.verified is False  # records absent: self-reported
    assert any("self-reported" in note for note in elsewhere.notes)


def test_per_seed_values_and_tradeoff_points_are_filled_and_optional(stored):
    submission = stored[2]
    for result in submission.results:
        summary = result.metrics["forget/acc"]
        assert len(summary.values) == summary.n == 2 and sum(summary.values) / 2 == pytest.approx(summary.mean)
        assert [p.hparams for p in result.tradeoff] == ["{}"] and result.tradeoff[0].n == 2
        assert result.tradeoff[0].utility == pytest.approx(result.metrics["objective/utility"].mean)
    older = json.loads(submission.model_dump_json())  # a file written before the two fields existed
    for result in older["results"]:
        del result["tradeoff"]
        for summary in result["metrics"].values():
            del summary["values"]
    assert Submission.model_validate(older).results[0].tradeoff == []


def test_malformed_json_is_refused_naming_the_file(tmp_path):
    path = _write(tmp_path / "subs", '{"method": "x",')
    assert "malformed JSON" in _problems(path, tmp_path / "subs")


def test_schema_violations_are_listed_by_field(stored, tmp_path):
    data = json.loads(stored[2].model_dump_json())
    del data["seeds"]
    data["compute_seconds"] = -1
    data["results"][0]["metrics"]["forget/acc"]["n"] = 0
    message = _problems(_write(tmp_path / "subs", data), tmp_path / "subs")
    for field in ("seeds: Field required", "compute_seconds:", "results.0.metrics.forget/acc.n:"):
        assert field in message


def test_split_ids_and_task_versions_must_match_the_registry(stored, tmp_path):
    data = json.loads(stored[2].model_dump_json())
    data["results"][0]["splits"][1]["split_id"] = "0" * 64
    data["results"][1]["task_version"] = "0.9"
    message = _problems(_write(tmp_path / "subs", data), tmp_path / "subs")
    assert "seed 1: split id 000000000000 does not match the one drawn now" in message
    assert "task version 0.9, the registry's is" in message


def test_results_of_other_metric_versions_are_refused(stored, tmp_path):
    """Numbers computed under other metric definitions cannot be ranked beside this mubench's:
    a file stating another version, or none (made before entries recorded it), is refused."""
    from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION

    assert (stored[2].metrics_version, stored[2].mia_spec_version) == (METRICS_VERSION, MIA_SPEC_VERSION)
    data = json.loads(stored[2].model_dump_json())
    data["metrics_version"] = "2"
    del data["mia_spec_version"]
    message = _problems(_write(tmp_path / "subs", data), tmp_path / "subs")
    assert f"metrics_version: the results were computed under 2, this mubench's is {METRICS_VERSION}" in message
    assert f"mia_spec_version: the results were computed under an unrecorded version, this mubench's is " \
           f"{MIA_SPEC_VERSION}" in message


def test_metrics_outside_their_ranges_are_refused(stored, tmp_path):
    data = json.loads(stored[2].model_dump_json())
    data["results"][0]["metrics"]["forget/acc"]["mean"] = 1.5
    data["results"][0]["metrics"]["cost/seconds"]["mean"] = -2.0
    message = _problems(_write(tmp_path / "subs", data), tmp_path / "subs")
    assert "forget/acc mean 1.5 is outside [0.0, 1.0]" in message and "cost/seconds mean -2.0" in message


def test_a_task_scenario_listed_twice_is_refused(stored, tmp_path):
    data = json.loads(stored[2].model_dump_json())
    data["results"].append(data["results"][0])
    cell = "/".join(data["results"][0][k] for k in ("task", "scenario", "profile"))
    assert f"results: {cell} is listed 2 times" in _problems(_write(tmp_path / "subs", data), tmp_path / "subs")


def test_a_duplicate_name_is_refused(stored, tmp_path):
    write_submission(stored[2], tmp_path / "subs")
    incoming = _write(tmp_path / "incoming", json.loads(stored[2].model_dump_json()))
    assert "duplicate name 'identity'" in _problems(incoming, tmp_path / "subs")


def test_html_in_names_and_texts_is_refused(stored, tmp_path):
    data = json.loads(stored[2].model_dump_json())
    data["method"] = "<script>alert(1)</script>"
    data["paper"] = "<a href='x'>paper</a>"
    message = _problems(_write(tmp_path / "incoming", data), tmp_path / "subs")
    assert "method: '<script>alert(1)</script>' is not a method name" in message
    assert "paper: contains '<' or '>'" in message


def test_nothing_in_the_folder_is_overwritten(stored, tmp_path):
    path = write_submission(stored[2], tmp_path / "subs")
    before = path.read_bytes()
    with pytest.raises(SubmissionError, match="already exists; nothing was overwritten"):
        write_submission(stored[2].model_copy(update={"paper": "changed"}), tmp_path / "subs")
    assert path.read_bytes() == before


def test_the_committed_schema_is_the_models():
    assert (ROOT / "leaderboard" / "submission.schema.json").read_text() == schema_json()
    assert Submission.model_json_schema()["properties"]["method"]["pattern"] == r"^[a-z][a-z0-9_]{0,63}$"


def test_submit_writes_a_verified_entry_and_validate_accepts_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_SUBMISSIONS", str(tmp_path / "subs"))
    store = tmp_path / "store.sqlite"
    args = ["submit", f"{ROOT / 'examples' / 'my_method.py'}:MyMethod", "--task", "debug", "--seeds", "0",
            "--store", str(store), "--no-isolate"]  # isolation itself: tests/test_sandbox.py
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # before the first run: how many runs and why; then each run by name, with its setting
    assert "2 runs = 2 task x scenario cells of 1 task x 1 seed x 1 setting; 0 already in the store" in result.stderr
    assert result.stderr.index("2 runs = ") < result.stderr.index("[1/2] debug/")
    setting = '{"alpha":0.95,"epochs":3,"lr":0.01}'
    for scenario in ("class_0", "random_10"):
        assert f"/2] debug/{scenario}/my_method/seed0/smoke {setting}: ok" in result.stderr
    path = tmp_path / "subs" / "my_method.json"
    entry = json.loads(path.read_text())
    assert entry["verified"] is True and entry["access"] == "retain" and entry["seeds"] == [0]
    assert {r["scenario"] for r in entry["results"]} == {"class_0", "random_10"}
    checked = CliRunner().invoke(app, ["validate", str(path), "--store", str(store)], catch_exceptions=False)
    assert checked.exit_code == 0 and "OK" in checked.output and "verified" in checked.output
    before = path.read_bytes()
    with pytest.raises(SubmissionError, match="already exists"):
        CliRunner().invoke(app, args, catch_exceptions=False)
    assert path.read_bytes() == before


def test_validate_prints_every_problem(stored, tmp_path):
    data = json.loads(stored[2].model_dump_json())
    data["method"] = "Bad Name"
    data["hardware"] = "<b>gpu</b>"
    path = _write(tmp_path / "incoming", data)
    result = CliRunner().invoke(app, ["validate", str(path), "--out", str(tmp_path / "subs")], catch_exceptions=False)
    assert result.exit_code == 1
    assert "2 problem(s)" in result.output and "method:" in result.output and "hardware:" in result.output


def test_a_broken_method_file_reports_all_its_problems(tmp_path):
    source = tmp_path / "broken.py"
    source.write_text(
        "from mubench.methods import Method\n"
        "class Broken(Method):\n"
        "    name = 'Broken-Name'\n"
        "    access = 'retain'\n"
        "    space = {'lr': 0.1}\n"
        "    intensity = 'alpha'\n")
    with pytest.raises(SubmissionError) as info:
        CliRunner().invoke(app, ["submit", f"{source}:Broken", "--task", "debug", "--out", str(tmp_path / "subs")],
                           catch_exceptions=False)
    message = str(info.value)
    for problem in ("does not implement unlearn", "method name 'Broken-Name' must match", "access must be",
                    "space['lr'] must be (default, [sweep values])", "intensity 'alpha' is not in its space",
                    "has no docstring"):
        assert problem in message
    assert not (tmp_path / "subs").exists()
    with pytest.raises(SubmissionError, match="no class 'Nope'"):
        CliRunner().invoke(app, ["submit", f"{source}:Nope"], catch_exceptions=False)


def test_a_deeply_nested_file_is_refused_without_stopping_the_folder(stored, tmp_path):
    """Python's parser raises RecursionError a few thousand levels down, which no caller handled:
    the file is refused by its depth before parsing, and the rest of the folder still loads."""
    from mubench.board.tables import load_board

    folder = tmp_path / "subs"
    write_submission(stored[2], folder)
    nested = _write(folder, '{"method": ' + "[" * 5000 + "]" * 5000 + "}", name="deep.json")
    assert "nested 5001 levels deep" in _problems(nested, folder)
    board = load_board(folder)
    assert [e.submission.method for e in board.entries] == ["identity"]
    assert [r.source for r in board.refused] == [str(nested)]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_number_anywhere_is_refused(stored, tmp_path, constant):
    text = stored[2].model_dump_json()
    values = json.loads(text)["results"][0]["metrics"]["forget/acc"]["values"]
    assert values, "the entry holds per-seed values"
    edited = text.replace('"values":[' + ",".join(map(json.dumps, values)), '"values":[' + constant, 1)
    assert constant in edited
    path = _write(tmp_path / "incoming", edited)
    assert f"the number {constant} is not finite" in _problems(path, tmp_path / "subs")


def test_a_file_above_the_size_cap_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    from mubench.board import safe_json

    monkeypatch.setattr(safe_json, "MAX_BYTES", 1000)
    path = _write(tmp_path / "incoming", "{" + " " * 2000 + "}")
    assert "2002 bytes, above the 1000 a submission may hold" in _problems(path, tmp_path / "subs")


def test_a_records_file_that_unpacks_beyond_its_cap_is_refused(tmp_path, monkeypatch):
    import gzip

    from mubench.board import records_file

    monkeypatch.setattr(records_file, "MAX_UNPACKED_BYTES", 10_000)
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip.compress(b" " * 1_000_000))  # 1 kB on disk
    with pytest.raises(records_file.RecordsFileError, match="unpacks to more than the 10000 bytes"):
        records_file.read_records(path)

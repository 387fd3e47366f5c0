"""Property-based tests (hypothesis, bounded in examples and time) of the submission parser: any
file given to `check_submission` (random JSON documents, random bytes, and valid submissions with
one random change) is either accepted or refused with a list of problems, never another
exception; `validate_submission` raises SubmissionError and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mubench.board.submission import (
    MethodInfo,
    Submission,
    SubmissionError,
    Validation,
    check_submission,
    current_split_id,
    validate_submission,
)
from mubench.methods import Access
from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION
from mubench.tasks import tasks

# derandomize: CI runs the same examples every time (a failure found once is kept as a plain test below)
BOUNDED = settings(max_examples=40, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, Any]:
    """A submission (as JSON data) that passes every check: the debug task, its real split id."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUBENCH_HOME", str(tmp_path_factory.mktemp("home")))
        patch.setenv("MUBENCH_OFFLINE", "1")
        task = tasks.get("debug")
        split_id = current_split_id(task, task.load(), "class_0", 0, "smoke")
    info = MethodInfo(method="prop_method", version="1", authors=["A. Author"], paper="none", description="text",
                      source_file="m.py", class_name="M", source_sha256="0" * 64, access=Access.FORGET,
                      hparams={"lr": 0.1}, intensity="lr")
    submission = Submission(
        **{k: getattr(info, k) for k in MethodInfo.__dataclass_fields__}, suite="quick", seeds=[0], sweep=None,
        selection="default", hardware="cpu", compute_seconds=1.0, mubench_version="0", git_commit="abc",
        metrics_version=METRICS_VERSION, mia_spec_version=MIA_SPEC_VERSION,
        created_at="2026-01-01T00:00:00+00:00", record_ids=["r" * 64], verified=False,
        results=[{"task": "debug", "scenario": "class_0", "profile": "smoke", "task_version": task.spec.version,
                  "hparams": "{}", "splits": [{"seed": 0, "split_id": split_id}],
                  "metrics": {"forget/acc": {"mean": 0.5, "ci95": None, "n": 1}}}])
    return json.loads(submission.model_dump_json())


@pytest.fixture(autouse=True)
def offline(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path_factory.getbasetemp() / "prop-submission-home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


def _check(folder: Path, raw: bytes) -> Validation:
    """The property: a Validation whose problems are non-empty strings, or an accepted submission."""
    path = folder / "incoming" / "entry.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    result = check_submission(path, folder / "subs", folder / "no-store.sqlite")
    assert isinstance(result.problems, list) and all(isinstance(p, str) and p for p in result.problems)
    if not result.problems:
        assert result.submission is not None and result.submission.verified is False  # no records here
    try:
        validate_submission(path, folder / "subs", folder / "no-store.sqlite")
    except SubmissionError as exc:
        assert result.problems and str(path) in str(exc)
    return result


def test_the_valid_base_passes(valid, tmp_path):
    assert _check(tmp_path, json.dumps(valid).encode()).problems == []


@BOUNDED
@given(document=JSON_VALUES)
def test_any_json_document_is_accepted_or_refused_with_problems(tmp_path_factory, document):
    result = _check(tmp_path_factory.mktemp("doc"), json.dumps(document).encode())
    assert result.problems  # nothing random is a submission


@BOUNDED
@given(raw=st.binary(max_size=200))
def test_any_bytes_are_refused_with_problems(tmp_path_factory, raw):
    assert _check(tmp_path_factory.mktemp("raw"), raw).problems


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location in a JSON document (keys and list indices), the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _mutate(document: Any, path: tuple, action: str, replacement: Any) -> Any:
    if not path:
        return replacement
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = replacement
    elif action == "wrap":
        parent[last] = [parent[last]]
    elif isinstance(parent, dict):  # "add": an unknown key beside this one
        parent[f"extra_{last}"] = replacement
    else:
        parent.append(replacement)
    return document


@BOUNDED
@given(data=st.data())
def test_a_valid_submission_with_one_random_change_is_accepted_or_refused_with_problems(valid, tmp_path_factory, data):
    document = json.loads(json.dumps(valid))
    path = data.draw(st.sampled_from(_paths(document)), label="path")
    action = data.draw(st.sampled_from(["delete", "replace", "wrap", "add"]), label="action")
    replacement = data.draw(JSON_VALUES, label="replacement")
    mutated = _mutate(document, path, action, replacement)
    _check(tmp_path_factory.mktemp("mut"), json.dumps(mutated).encode())


@BOUNDED
@given(cut=st.integers(min_value=0, max_value=4000), junk=st.binary(max_size=8))
def test_a_truncated_or_spliced_valid_file_is_refused_or_still_valid(valid, tmp_path_factory, cut, junk):
    raw = json.dumps(valid, indent=1).encode()
    cut = min(cut, len(raw))
    _check(tmp_path_factory.mktemp("cut"), raw[:cut] + junk + raw[cut + len(junk):])

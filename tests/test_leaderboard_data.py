"""The baselines' leaderboard entries (`mubench leaderboard-data`), the `standard` suite, and
`mubench submit --entry-point` for a method an installed package publishes.

Runs train only on `debug`, through a tiny suite patched into SUITES; the entry point is faked by
patching `importlib.metadata.entry_points` to point at a package this test writes into tmp_path."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import shared_home
from mubench.board.entries import baseline_methods
from mubench.board.submission import SubmissionError, check_submission
from mubench.cli.app import app
from mubench.cli.board import README_END, README_START
from mubench.hashing import sha256_file
from mubench.methods import methods
from mubench.orchestration import sweep
from mubench.orchestration.loading import load_entry_point_method

ROOT = Path(__file__).resolve().parents[1]
TINY_METHODS = ("identity", "grad_ascent", "finetune")
PLUGIN = "ep_plugin_pkg_for_tests"
PLUGIN_METHOD = "ep_plugin_method"


@pytest.fixture(autouse=True)
def home(tmp_path_factory, monkeypatch):
    """Models shared with the other debug tests (trained once per session), offline, no $MUBENCH_SUBMISSIONS."""
    with shared_home(tmp_path_factory.mktemp("home")):
        monkeypatch.delenv("MUBENCH_SUBMISSIONS", raising=False)
        yield


@pytest.fixture
def tiny_suite(monkeypatch):
    monkeypatch.setitem(sweep.SUITES, "tiny", sweep.Suite(
        "tiny", "debug, one scenario, three baselines", tasks=("debug",), profile="smoke", seeds=(0,),
        scenarios=("class_0",), methods=TINY_METHODS))
    return "tiny"


def _readme(tmp_path: Path) -> Path:
    """A README and a board page, each with an old leaderboard block; the README's path."""
    (tmp_path / "board.md").write_text(f"# Board\n\n{README_START}\nold cells\n{README_END}\n", encoding="utf-8")
    path = tmp_path / "README.md"
    path.write_text(f"# Title\n\nbefore\n\n{README_START}\nold table\n{README_END}\n\nafter\n", encoding="utf-8")
    return path


def _leaderboard_data(tmp_path: Path, *extra: str):
    args = ["leaderboard-data", "--suite", "tiny", "--out", str(tmp_path / "subs"),
            "--store", str(tmp_path / "store.sqlite"), "--readme", str(tmp_path / "README.md"),
            "--page", str(tmp_path / "board.md"), *extra]
    return CliRunner().invoke(app, args, catch_exceptions=False)


def test_the_standard_suite_expands_to_every_task_scenario_method_and_three_seeds():
    from mubench.orchestration.sweep import GridSpec, expand_grid
    from mubench.tasks import tasks

    suite = sweep.SUITES["standard"]
    assert suite.profile == "standard" and suite.seeds == (0, 1, 2) and "GPU" in suite.description
    built_in = {n for n in tasks.names() if type(tasks.get(n)).__module__.startswith("mubench.tasks.")}
    assert set(suite.tasks) == built_in - {"debug"}  # a new built-in task must be added (tests register others)
    configs = expand_grid(GridSpec.from_suite("standard"))  # expanded, never run
    assert {c.profile for c in configs} == {"standard"} and {c.seed for c in configs} == {0, 1, 2}
    for name in suite.tasks:
        spec = tasks.get(name).spec
        assert {c.scenario for c in configs if c.task == name} == {s.name for s in spec.scenarios}
        applicable = {m for m, cls in methods.items() if cls.inapplicable(spec) is None}
        assert {c.method for c in configs if c.task == name} == applicable


def test_the_baselines_are_the_unlearning_methods_of_the_baselines_package():
    names = {cls.name for cls in baseline_methods()}
    assert {"identity", "finetune", "scrub", "retrain"} <= names
    assert all(cls.__module__.startswith("baselines.") and cls.__module__ != "baselines.continual"
               for cls in baseline_methods())


def test_leaderboard_data_writes_verified_entries_refuses_to_overwrite_and_replaces(tiny_suite, tmp_path):
    readme = _readme(tmp_path)
    result = _leaderboard_data(tmp_path)
    assert result.exit_code == 0, result.output
    subs, store = tmp_path / "subs", tmp_path / "store.sqlite"
    assert sorted(p.name for p in subs.iterdir()) == sorted(f"{m}.json" for m in TINY_METHODS)
    for name in TINY_METHODS:
        checked = check_submission(subs / f"{name}.json", subs, store)
        assert not checked.problems, checked.problems
        entry = checked.submission
        assert entry.verified and entry.suite == "tiny" and entry.seeds == [0] and entry.authors == ["mubench baselines"]
        cls = methods.get(name)
        assert entry.source_file == f"baselines/{cls.__module__.split('.')[-1]}.py" and entry.class_name == cls.__name__
        assert entry.source_sha256 == sha256_file(ROOT / entry.source_file) and entry.paper == cls.paper
        assert entry.description and "\n" not in entry.description
        assert [(r.task, r.scenario) for r in entry.results] == [("debug", "class_0")]
    text = readme.read_text(encoding="utf-8")
    assert "old table" not in text and text.startswith("# Title\n\nbefore") and text.endswith("after\n")
    assert all(f"`{name}`" in text for name in TINY_METHODS)
    page = (tmp_path / "board.md").read_text(encoding="utf-8")
    assert "old cells" not in page and "**`debug` / `class_0`" in page and all(f"`{n}`" in page for n in TINY_METHODS)

    before = {p.name: p.read_bytes() for p in subs.iterdir()}
    readme_before = readme.read_bytes()
    with pytest.raises(SubmissionError, match="already exist.*nothing was run or overwritten.*--replace"):
        _leaderboard_data(tmp_path)
    assert {p.name: p.read_bytes() for p in subs.iterdir()} == before and readme.read_bytes() == readme_before

    (subs / "identity.json").write_text("{broken", encoding="utf-8")
    readme.write_text(readme_before.decode().replace("`identity`", "`stale`"), encoding="utf-8")
    result = _leaderboard_data(tmp_path, "--replace")  # every run is in the store: nothing trains again
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in subs.iterdir()) == sorted(before)  # no temporary file left behind
    assert check_submission(subs / "identity.json", subs, store).submission.verified
    assert readme.read_bytes() == readme_before


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A package in tmp_path that publishes a method under the `mubench.methods` entry-point group."""
    package = tmp_path / "site" / PLUGIN
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"from {PLUGIN} import unlearners  # noqa: F401\n", encoding="utf-8")
    (package / "unlearners.py").write_text(
        "from mubench.methods import Access, Method, register_method\n\n\n"
        f"@register_method({PLUGIN_METHOD!r})\n"
        "class PluginMethod(Method):\n"
        "    \"\"\"Returns the original unchanged (a plugin published by an installed package).\"\"\"\n\n"
        "    access = Access.FORGET\n"
        "    paper = 'none'\n"
        "    authors = ('A. Plugin',)\n\n"
        "    def unlearn(self, model, request, hp):\n"
        "        return model\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    real = importlib.metadata.entry_points
    published = importlib.metadata.EntryPoints([
        importlib.metadata.EntryPoint(name="ep_plugin", value=PLUGIN, group="mubench.methods"),
        importlib.metadata.EntryPoint(name="ep_direct", value=f"{PLUGIN}.unlearners:PluginMethod", group="mubench.methods"),
    ])
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: published if kw.get("group") == "mubench.methods" else real(**kw))
    yield package / "unlearners.py"
    methods._items.pop(PLUGIN_METHOD, None)  # leave the registry as the other test modules expect it
    for name in [m for m in sys.modules if m == PLUGIN or m.startswith(PLUGIN + ".")]:
        del sys.modules[name]


def test_an_entry_point_method_is_found_by_method_name_or_entry_point_name(plugin):
    cls, path, problems = load_entry_point_method(PLUGIN_METHOD)
    assert not problems and cls.__name__ == "PluginMethod" and path == plugin
    cls2, _, problems = load_entry_point_method("ep_direct")
    assert not problems and cls2 is cls
    _, _, problems = load_entry_point_method("nope")
    assert "no installed package publishes a method 'nope'" in problems[0] and "ep_direct, ep_plugin" in problems[0]


def test_submit_by_entry_point_writes_a_verified_entry(plugin, tmp_path):
    store = tmp_path / "store.sqlite"
    args = ["submit", "--entry-point", PLUGIN_METHOD, "--task", "debug", "--seeds", "0", "--no-isolate",
            "--store", str(store), "--out", str(tmp_path / "subs")]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    path = tmp_path / "subs" / f"{PLUGIN_METHOD}.json"
    entry = json.loads(path.read_text())
    assert entry["source_file"] == "unlearners.py" and entry["source_sha256"] == sha256_file(plugin)
    assert entry["class_name"] == "PluginMethod" and entry["authors"] == ["A. Plugin"] and entry["verified"]
    assert check_submission(path, tmp_path / "subs", store).submission.verified
    with pytest.raises(SubmissionError, match="either as FILE.py:CLASS or with --entry-point"):
        CliRunner().invoke(app, ["submit"], catch_exceptions=False)


def test_a_standard_profile_suite_submits_at_the_standard_profiles_defaults(monkeypatch, tmp_path):
    """finetune's standard default (10 epochs) differs from smoke's: the entry must declare and keep
    the standard setting its runs used, not drop them as "not at the defaults"."""
    monkeypatch.setitem(sweep.SUITES, "tiny_standard", sweep.Suite(
        "tiny_standard", "debug at the standard profile, finetune", tasks=("debug",), profile="standard",
        seeds=(0,), scenarios=("class_0",), methods=("finetune",)))
    subs = tmp_path / "subs"
    result = CliRunner().invoke(app, ["leaderboard-data", "--suite", "tiny_standard", "--out", str(subs), "--store",
                                      str(tmp_path / "store.sqlite"), "--no-readme"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    entry = check_submission(subs / "finetune.json", subs, tmp_path / "store.sqlite").submission
    standard = dict(methods.get("finetune").resolve(profile="standard"))
    assert standard["epochs"] == 10 and entry.hparams == standard
    assert [(r.task, r.scenario, r.profile) for r in entry.results] == [("debug", "class_0", "standard")]
    assert json.loads(entry.results[0].hparams) == standard

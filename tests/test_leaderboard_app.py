"""The Streamlit leaderboard (leaderboard/app.py) driven by streamlit.testing's AppTest: each page
renders without an exception and shows the right rows, filters change them, and texts from a
submission (markdown, a javascript: link, a refused <script> name) are shown literally."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from board_fixtures import INJECTION, make_folder
from helpers import home_under, shared_home

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "leaderboard" / "app.py")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    base = tmp_path_factory.mktemp("leaderboard")
    with shared_home(base):
        folder, store = make_folder(base, description=INJECTION)
    return base, folder, store


@pytest.fixture(autouse=True)
def env(made, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(home_under(made[0])))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.setenv("MUBENCH_SUBMISSIONS", str(made[1]))
    monkeypatch.setenv("MUBENCH_STORE", str(made[2]))


def _app(page: str = "Cells") -> AppTest:
    """The app on `page`; these entries have no score (made before it), so Cells ranks by a metric."""
    at = AppTest.from_file(APP, default_timeout=120).run()
    if page != "Board":
        at.sidebar.radio(key="page").set_value(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _rendered_markdown(at: AppTest) -> str:
    """Everything Streamlit renders as Markdown on the page."""
    elements = [*at.markdown, *at.caption, *at.title, *at.header, *at.subheader, *at.info]
    return "\n".join(str(e.value) for e in elements)


def _tables(at: AppTest) -> list:
    """The page's dataframes in order (AppTest finds widgets by key, not dataframes)."""
    return [frame.value for frame in at.dataframe]


def _images(at: AppTest) -> int:
    return sum(type(e).__name__ == "Image" for e in at.main)


def test_overview_ranks_each_cell_and_lists_refused_files_literally():
    at = _app()
    class_0, random_10, means, refused = _tables(at)
    assert list(class_0["method"]) == ["alpha", "gamma", "beta"] and list(class_0["rank"]) == [1.5, 1.5, 3.0]
    assert list(class_0["status"]) == ["verified", "self-reported", "unchecked"] and set(class_0["n"]) == {2}
    assert list(random_10["method"]) == ["beta", "alpha"] and list(random_10["rank"]) == [1.0, 2.0]
    assert list(means["entry"]) == ["gamma", "alpha", "beta"] and list(means["mean_rank"]) == [1.5, 1.75, 2.0]
    assert any("'<script>alert(1)</script>' is not a method name" in p for p in refused["problem"])
    assert "<script>" not in _rendered_markdown(at) and _images(at) == 1  # the mean-rank figure
    assert at.title[0].value == "mubench leaderboard"


def test_overview_filters_change_the_rows():
    at = _app()
    at.sidebar.selectbox(key="access").set_value("forget").run()
    assert list(_tables(at)[0]["method"]) == ["alpha"]
    at.sidebar.selectbox(key="access").set_value("retain").run()
    assert list(_tables(at)[0]["method"]) == ["alpha", "beta"]
    at.sidebar.selectbox(key="access").set_value("any").run()
    at.sidebar.checkbox(key="verified").check().run()
    table = _tables(at)[0]
    assert list(table["method"]) == ["alpha"] and list(table["rank"]) == [1.0]
    at.sidebar.checkbox(key="verified").uncheck().run()
    at.sidebar.selectbox(key="metric").set_value("objective/forgetting").run()
    assert list(_tables(at)[1]["method"]) == ["beta", "alpha"]
    assert "objective/forgetting" in _tables(at)[0].columns
    assert not at.exception


def test_tradeoffs_page_draws_the_chosen_methods():
    at = _app("Trade-offs")
    assert _images(at) == 2  # trade-off and hypervolume (beta swept in debug/class_0)
    assert set(_tables(at)[0]["entry"]) == {"alpha", "beta", "gamma"}
    at.multiselect(key="tradeoff-methods").set_value(["alpha"]).run()
    assert set(_tables(at)[0]["entry"]) == {"alpha"}
    assert _images(at) == 1 and not at.exception  # alpha has no sweep: no hypervolume bars


def test_method_page_shows_texts_literally():
    at = _app("Method")
    at.selectbox(key="method").set_value("alpha").run()
    assert INJECTION in [t.value for t in at.text]
    rendered = _rendered_markdown(at)
    assert "bold" not in rendered and "javascript" not in rendered
    seeds = _tables(at)[3]
    values = seeds[(seeds["scenario"] == "class_0") & (seeds["metric"] == "gap/forget_acc")]["value"]
    assert list(values) == pytest.approx([0.08, 0.12])
    about = _tables(at)[0]
    assert dict(zip(about["field"], about["value"]))["git commit"] == "abc123"
    at.selectbox(key="method").set_value("beta").run()
    assert set(_tables(at)[2]["hparams"]) == {'{"lr":0.1}'} and not at.exception


def test_task_page_shows_the_data_card_as_text():
    at = _app("Task")
    at.selectbox(key="task").set_value("debug").run()
    assert at.code[0].value == (ROOT / "data_cards" / "debug.md").read_text(encoding="utf-8").rstrip("\n")
    assert set(_tables(at)[0]["scenario"]) == {"class_0", "random_10"}
    assert not at.exception


def test_an_empty_folder_renders_every_page(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_SUBMISSIONS", str(tmp_path / "none"))
    monkeypatch.delenv("MUBENCH_STORE")
    at = _app("Board")
    assert "No entry matches" in at.info[0].value
    monkeypatch.setenv("MUBENCH_AUDIT", str(tmp_path / "no_audit"))
    for page in ("Cells", "Trade-offs", "Privacy audit", "Method", "Task", "How it is ranked"):
        at.sidebar.radio(key="page").set_value(page).run()
        assert not at.exception


def test_audit_page_shows_each_population_table_ordered_and_refuses_a_bad_file(tmp_path, monkeypatch):
    header = "task,scenario,method,profile,population,seed,metric,value,low,high,sizes\n"
    rows = ["debug,random_10,identity,smoke,4,0,audit/ulira_acc,0.7,0.65,0.75,\"{\"\"forget\"\": 100}\"",
            "debug,random_10,retrain,smoke,4,0,audit/ulira_acc,0.5,0.5,0.5,",
            "debug,random_10,identity,smoke,4,0,audit/klom_forget_mean,3.0,2.5,3.5,",
            "debug,random_10,retrain,smoke,4,0,audit/klom_forget_mean,0.0,0.0,0.0,"]
    (tmp_path / "good.csv").write_text(header + "\n".join(rows) + "\n")
    (tmp_path / "bad.csv").write_text("task,method\n[x](javascript:alert(1)),a\n")
    monkeypatch.setenv("MUBENCH_AUDIT", str(tmp_path))
    at = _app("Privacy audit")
    table = _tables(at)[0]
    assert list(table["method"]) == ["retrain", "identity"]  # closest to retraining first
    assert list(table["audit/ulira_acc"]) == ["0.500 [0.500, 0.500]", "0.700 [0.650, 0.750]"]
    texts = "\n".join(str(t.value) for t in at.text)
    assert "bad.csv: not a table of attack intervals" in texts and "javascript" not in _rendered_markdown(at)

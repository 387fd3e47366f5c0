"""The leaderboard end to end in a real headless Chromium: Debian's `chromium`, driven
by Playwright for Python through `executable_path`. Where chromium is missing the test skips and
says how to install it (tests/browser_setup.py); CI installs it and requires it.

The app (leaderboard/app.py) is started with `streamlit run` on a free port of 127.0.0.1 over
fabricated submissions (tests/board_fixtures.py: alpha, beta, gamma on the debug task, plus two
refused files). The test waits for the first ranking table (debug / class_0: alpha and gamma tie
at rank 1.5 on gap/forget_acc, beta is third; ties keep the method-name order, so alpha's row is
first), reads that row from the grid's accessible DOM (Streamlit's dataframe is a canvas,
glide-data-grid, which mirrors the visible cells in an ARIA table), checks that the mean-rank
plot arrived as a decoded image, and saves a screenshot to tmp_path / "leaderboard.png" and to
/tmp/mubench-leaderboard.png for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import browser_setup
from board_fixtures import make_folder
from browser_setup import CHROMIUM_ARGS, Server, chromium_or_reason
from helpers import home_under, shared_home

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "leaderboard" / "app.py"
SCREENSHOT_COPY = Path("/tmp/mubench-leaderboard.png")
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def chromium() -> Path:
    pytest.importorskip("playwright.sync_api", reason="playwright (a dev dependency: pip install -e '.[dev]') is missing")
    path, reason = chromium_or_reason()
    if path is None and os.environ.get("MUBENCH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"MUBENCH_REQUIRE_BROWSER=1 but {reason}")
    if path is None:
        pytest.skip(f"no browser for the end-to-end test: {reason}")
    return path


@pytest.fixture
def server(chromium, tmp_path):
    """The app over fabricated submissions; stopped (its whole process group) however the test ends."""
    with shared_home(tmp_path):
        folder, store = make_folder(tmp_path)
    env = dict(os.environ, MUBENCH_SUBMISSIONS=str(folder), MUBENCH_STORE=str(store),
               MUBENCH_HOME=str(home_under(tmp_path)), MUBENCH_OFFLINE="1")
    running = Server(APP, env, tmp_path / "streamlit.log")
    try:
        running.wait_healthy()
        yield running
    finally:
        running.stop()


def grid_rows(table) -> list[list[str]]:
    """The texts of the body rows of one stDataFrame, from glide-data-grid's ARIA table."""
    rows = table.locator('tbody [role="row"]')
    return [[(cell or "").strip() for cell in row.locator('[role="gridcell"]').all_text_contents()] for row in rows.all()]


def grid_header(table) -> list[str]:
    return [(h or "").strip() for h in table.locator('[role="columnheader"]').all_text_contents()]


def first_table_headed(page, first_column: str, timeout_s: float = TIMEOUT_MS / 1000):  # noqa: ANN001, ANN201
    """The page's first dataframe once its first column is `first_column`: after a page change,
    Streamlit keeps the previous page's elements until the new run has replaced them."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        table = page.locator('[data-testid="stDataFrame"]').first
        try:
            table.locator('tbody [role="gridcell"]').first.wait_for(state="attached", timeout=2_000)
            if grid_header(table)[:1] == [first_column]:
                return table
        except Exception:  # noqa: BLE001 - not there yet: poll again
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no dataframe headed {first_column!r} within {timeout_s} s")
        time.sleep(0.25)


def rows_once(read, ready, timeout_s: float = TIMEOUT_MS / 1000) -> list[list[str]]:  # noqa: ANN001
    """`read()` once `ready(rows)` holds or the time is up: the grid fills its body rows after its
    heading is on the page, later on a loaded machine."""
    import time

    deadline = time.monotonic() + timeout_s
    rows = read()
    while not ready(rows) and time.monotonic() < deadline:
        time.sleep(0.25)
        rows = read()
    return rows


@pytest.mark.slow  # a real browser and a Streamlit server: docs/testing.md
def test_the_overview_ranks_and_plots_in_a_real_browser(chromium, server, tmp_path):
    from playwright.sync_api import sync_playwright

    shot, dialogs = tmp_path / "leaderboard.png", []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.set_default_timeout(TIMEOUT_MS)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))  # an injected alert() would open one
            page.goto(server.url, wait_until="domcontentloaded")
            page.get_by_role("heading", name="mubench leaderboard", level=1).wait_for()
            assert page.title() == "mubench leaderboard"
            pages = page.get_by_role("radiogroup", name="Page")
            assert pages.get_by_role("radio", name="Board").is_checked()
            page.get_by_text("No entry matches").wait_for()  # these entries predate the score: Cells ranks them
            pages.get_by_text("Cells", exact=True).click()
            table = first_table_headed(page, "rank")  # the Cells page's first ranking, inside the canvas
            header, rows = grid_header(table), grid_rows(table)
            first = dict(zip(header, rows[0]))
            assert first["method"] == "alpha" and float(first["rank"]) == 1.5, (header, rows)
            assert [dict(zip(header, r))["method"] for r in rows] == ["alpha", "gamma", "beta"]

            plot = page.locator('[data-testid="stImage"] img').first
            plot.wait_for()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plot.element_handle())
            assert plot.evaluate("img => img.naturalWidth") > 100

            # The refused files come last on the page: once they are there, the script has finished.
            page.get_by_role("heading", name="Refused files (not shown above)").wait_for()
            refused = rows_once(lambda: grid_rows(page.locator('[data-testid="stDataFrame"]').last),
                                lambda rows: any("<script>alert(1)</script>" in problem for _, problem in rows))
            assert any("<script>alert(1)</script>" in problem for _, problem in refused)  # shown as text
            assert page.locator("script", has_text="alert(1)").count() == 0 and not dialogs
            assert page.locator('[data-testid="stException"]').count() == 0
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    shutil.copyfile(shot, SCREENSHOT_COPY)


@pytest.fixture
def tuned_server(chromium, tmp_path):
    """The app over a tuned board on debug (leaderboard-data of a tiny tuned suite, its records files beside)."""
    from typer.testing import CliRunner

    from mubench.cli.app import app
    from mubench.orchestration import sweep

    suite = sweep.Suite("tiny_board", "debug, tuned", tasks=("debug",), profile="smoke", seeds=(0, 1, 2),
                        scenarios=("class_0", "random_10"), methods=("identity", "retrain", "finetune", "grad_ascent"),
                        tuning=sweep.Tuning(dev_seed=9, budget=2))
    with shared_home(tmp_path), pytest.MonkeyPatch.context() as patch:
        patch.setitem(sweep.SUITES, "tiny_board", suite)
        made = CliRunner().invoke(app, ["leaderboard-data", "--suite", "tiny_board", "--out", str(tmp_path / "subs"),
                                        "--store", str(tmp_path / "store.sqlite"), "--no-readme"])
    assert made.exit_code == 0, made.stderr
    env = dict(os.environ, MUBENCH_SUBMISSIONS=str(tmp_path / "subs"), MUBENCH_HOME=str(home_under(tmp_path)),
               MUBENCH_OFFLINE="1")
    env.pop("MUBENCH_STORE", None)
    running = Server(APP, env, tmp_path / "streamlit.log")
    try:
        running.wait_healthy()
        yield running
    finally:
        running.stop()


@pytest.mark.slow  # a real browser and a Streamlit server: docs/testing.md
def test_the_board_opens_on_one_summary_table_in_a_real_browser(chromium, tuned_server, tmp_path):
    """The first page is the summary (methods by tasks, score ± CI, mean rank, reference rows last,
    every entry verified from its records file); the Cells page shows rank bands. Screenshots of
    both go to tmp_path and /tmp/mubench-board-*.png for a person to look at."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(tuned_server.url, wait_until="domcontentloaded")
            page.get_by_role("heading", name="Board", level=2).wait_for()
            table = page.locator('[data-testid="stDataFrame"]').first
            table.locator('tbody [role="gridcell"]').first.wait_for(state="attached")
            header, rows = grid_header(table), grid_rows(table)
            assert header[:4] == ["method", "access", "status", "debug"], header
            named = [dict(zip(header, r)) for r in rows]
            assert [r["method"] for r in named][-2:] == ["identity", "retrain"]
            assert {r["status"] for r in named} == {"verified"} and named[-1]["mean rank"] == "ref"
            assert "±" in named[0]["debug"]
            page.locator('[data-testid="stImage"] img').first.wait_for()  # the mean-rank figure
            assert page.locator('[data-testid="stException"]').count() == 0
            page.screenshot(path=str(tmp_path / "board.png"), full_page=True)
            page.get_by_role("radiogroup", name="Page").get_by_text("Cells", exact=True).click()
            cell = first_table_headed(page, "rank")
            assert grid_header(cell)[:5] == ["rank", "method", "access", "status", "score"]
            assert page.locator('[data-testid="stException"]').count() == 0
            page.screenshot(path=str(tmp_path / "cells.png"), full_page=True)
        finally:
            browser.close()
    for name in ("board", "cells"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
        shutil.copyfile(tmp_path / f"{name}.png", Path(f"/tmp/mubench-{name}.png"))


def test_a_missing_browser_is_named_with_how_to_install_it(monkeypatch, tmp_path):
    """No install is attempted: the reason names the missing path and the command that installs it."""
    monkeypatch.setattr(browser_setup, "CHROMIUM", tmp_path / "no-chromium")
    path, reason = chromium_or_reason()
    assert path is None
    assert str(tmp_path / "no-chromium") in reason and "apt-get install chromium" in reason

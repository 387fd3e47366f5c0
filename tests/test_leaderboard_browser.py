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


@pytest.mark.slow
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
            assert page.get_by_role("radiogroup", name="Page").get_by_role("radio", name="Overview").is_checked()

            table = page.locator('[data-testid="stDataFrame"]').first
            table.locator('tbody [role="gridcell"]').first.wait_for(state="attached")  # inside the canvas
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
            refused = grid_rows(page.locator('[data-testid="stDataFrame"]').last)
            assert any("<script>alert(1)</script>" in problem for _, problem in refused)  # shown as text
            assert page.locator("script", has_text="alert(1)").count() == 0 and not dialogs
            assert page.locator('[data-testid="stException"]').count() == 0
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    shutil.copyfile(shot, SCREENSHOT_COPY)


def test_a_missing_browser_is_named_with_how_to_install_it(monkeypatch, tmp_path):
    """No install is attempted: the reason names the missing path and the command that installs it."""
    monkeypatch.setattr(browser_setup, "CHROMIUM", tmp_path / "no-chromium")
    path, reason = chromium_or_reason()
    assert path is None
    assert str(tmp_path / "no-chromium") in reason and "apt-get install chromium" in reason

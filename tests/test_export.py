"""`mubench export` (Markdown, LaTeX, HTML) on the fabricated folder of tests/board_fixtures.py,
checked line by line by hand; escaping of hostile texts; the README block is what the export
makes from the committed submissions folder; `mubench leaderboard` starts streamlit with the env."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from board_fixtures import board_environment, made_folder
from mubench.cli import board as cli_board
from mubench.cli.board import (
    MEAN_RANK_TITLE,
    README_END,
    README_START,
    ExportFormat,
    markdown_table,
    markdown_text,
    page_block,
    readme_block,
    render_export,
    replace_readme_block,
    to_html,
    to_latex,
)
from mubench.errors import MubenchError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return made_folder(tmp_path_factory, "export")


@pytest.fixture(autouse=True)
def env(made, monkeypatch):
    board_environment(made[0], monkeypatch)


def _cli() -> typer.Typer:
    app = typer.Typer()
    cli_board.register(app)
    return app


def test_markdown_tables_by_hand(made):
    text = render_export(ExportFormat.markdown, made[1])
    lines = text.splitlines()
    # class_0 gaps: alpha 0.08/0.12 (CI t(0.975, 1) * 0.0283 / sqrt 2 = 0.254), gamma 0.1, beta 0.2;
    # beta's hypervolume over (utility, forgetting): its lr 0.01 point is dominated, so 0.9 * 0.8 = 0.72;
    # in the other scenario 0.9 * (1 - gap) per seed, mean 0.9 * 0.95, CI 0.9 x alpha's 0.127
    expected = [
        "**`debug` / `class_0` (`smoke`)**: ranked by gap/forget\\_acc, lower is better",
        "| rank | method | access | status | gap/forget\\_acc | n | hypervolume |",
        "|---:|---|---|---|---:|---:|---:|",
        "| 1.5 | `alpha` | forget | unchecked | 0.100 ± 0.254 | 2 | – |",
        "| 1.5 | `gamma` | unseen | self-reported | 0.100 ± 0.000 | 2 | – |",
        "| 3 | `beta` | retain | unchecked | 0.200 ± 0.000 | 2 | 0.720 ± 0.000 |",
        "| 1 | `beta` | retain | unchecked | 0.050 ± 0.127 | 2 | 0.855 ± 0.114 |",
        "| 2 | `alpha` | forget | unchecked | 0.300 ± 0.635 | 2 | – |",
        "**Mean rank over task x scenario cells \\(1 = best\\)**",
        "| `smoke` | `gamma` | 1.5 | 1 |", "| `smoke` | `alpha` | 1.75 | 2 |", "| `smoke` | `beta` | 2 | 2 |",
    ]
    positions = [lines.index(line) for line in expected]
    assert positions == sorted(positions)
    assert "script" not in text and "broken" not in text  # refused files are not exported
    with_store = render_export(ExportFormat.markdown, made[1], made[2])
    assert "| 1.5 | `alpha` | forget | verified | 0.100 ± 0.254 | 2 | – |" in with_store.splitlines()
    assert "**`debug` / `class_0` (`smoke`)**: ranked by objective/forgetting, higher is better" in \
        render_export(ExportFormat.markdown, made[1], metric="objective/forgetting")


def test_latex_and_html_by_hand(made):
    latex = render_export(ExportFormat.latex, made[1])
    assert "\\caption{debug / class\\_0 (smoke): ranked by gap/forget\\_acc, lower is better}" in latex
    assert "1.5 & alpha & forget & unchecked & 0.100 $\\pm$ 0.254 & 2 & -- \\\\" in latex
    assert latex.count("\\begin{table}") == 3 and "\\toprule" in latex
    page = render_export(ExportFormat.html, made[1])
    assert page.startswith("<!DOCTYPE html>") and page.count("<table") == 3
    assert "<h2>debug / random_10 (smoke): ranked by gap/forget_acc, lower is better</h2>" in page
    assert "<td>beta</td>" in page and "<td>0.855 ± 0.114</td>" in page


def test_every_format_escapes_hostile_texts():
    import pandas as pd

    hostile = pd.DataFrame({"method": ["**bold**", "<script>x</script>"], "status": ["[x](javascript:alert(1))", "a|b & 50%_$"]})
    markdown = markdown_table(hostile)
    assert "`**bold**`" in markdown and "`<script>x</script>`" in markdown  # code spans: shown literally
    assert "\\[x\\]\\(javascript:alert\\(1\\)\\)" in markdown and "a\\|b & 50%\\_$" in markdown
    sections = [(("t<b>", "s_1", "p", "ranked by x & y"), hostile)]
    page = to_html(sections)
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page and "t&lt;b&gt;" in page
    latex = to_latex(sections)
    assert "a|b \\& 50\\%\\_\\$" in latex and "\\caption{t\\textless{}b\\textgreater{} / s\\_1 (p): ranked by x \\& y}" in latex


def _block(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text[text.index(README_START) + len(README_START):text.index(README_END)]


@pytest.fixture(scope="module")
def committed():
    """The committed submissions folder as a board (loading checks every entry: seconds)."""
    from mubench.board.tables import load_board

    return load_board(ROOT / "leaderboard" / "submissions")


@pytest.mark.slow  # loading the committed board redraws every cell's split, poisons included (half a minute)
def test_the_readme_block_is_the_summary_of_the_committed_folder(committed):
    assert _block(ROOT / "README.md") == "\n" + readme_block(board=committed), \
        "stale README leaderboard block: run `mubench export --readme README.md`"


@pytest.mark.slow
def test_the_board_page_block_is_the_export_of_the_committed_folder(committed):
    assert _block(ROOT / "docs" / "board.md") == "\n" + page_block(board=committed), \
        "stale board page: run `mubench export --page docs/board.md`"


def test_the_readme_summary_is_the_mean_ranks_and_the_page_every_cell(made):
    summary, page = readme_block(made[1]), page_block(made[1])
    assert summary.startswith("**" + markdown_text(MEAN_RANK_TITLE) + "**, over 2 task x scenario cells and 3 entries")
    assert "[docs/board.md](docs/board.md)" in summary and "`alpha`" in summary
    assert "**`debug` / `class_0`" not in summary and "**`debug` / `class_0`" in page
    assert page.rstrip().endswith(summary.rstrip().splitlines()[-1])  # the page ends with the same mean ranks


def test_export_command_writes_files_and_only_the_readme_block(made, tmp_path):
    out = tmp_path / "board.html"
    result = CliRunner().invoke(_cli(), ["export", "--format", "html", "--out", str(out), "--submissions", str(made[1])],
                                catch_exceptions=False)
    assert result.exit_code == 0 and "<td>alpha</td>" in out.read_text()
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\nbefore\n{README_START}\nold rows\n{README_END}\nafter\n")
    result = CliRunner().invoke(_cli(), ["export", "--readme", str(readme), "--submissions", str(made[1])],
                                catch_exceptions=False)
    assert result.exit_code == 0
    written = readme.read_text()
    assert written.startswith(f"# title\nbefore\n{README_START}\n**Mean rank") and "old rows" not in written
    assert written.endswith(f"{README_END}\nafter\n")
    page = tmp_path / "board.md"
    page.write_text(f"# board\n{README_START}\n{README_END}\n")
    result = CliRunner().invoke(_cli(), ["export", "--page", str(page), "--submissions", str(made[1])],
                                catch_exceptions=False)
    assert result.exit_code == 0 and page.read_text().startswith(f"# board\n{README_START}\n**`debug` / `class_0`")
    with pytest.raises(MubenchError, match="no <!-- leaderboard:start -->"):
        replace_readme_block("no markers", "x")


def test_leaderboard_starts_streamlit_with_the_paths(made, monkeypatch):
    calls = []
    monkeypatch.setattr(cli_board.subprocess, "call", lambda command, env: calls.append((command, env)) or 0)
    result = CliRunner().invoke(_cli(), ["leaderboard", "--submissions", str(made[1]), "--store", str(made[2]),
                                         "--port", "8600"], catch_exceptions=False)
    assert result.exit_code == 0
    command, env = calls[0]
    assert command[:4] == [sys.executable, "-m", "streamlit", "run"] and command[4].endswith("leaderboard/app.py")
    assert command[command.index("--server.port") + 1] == "8600"
    assert command[command.index("--server.address") + 1] == "127.0.0.1"  # this machine only, unless asked
    assert env["MUBENCH_SUBMISSIONS"] == str(made[1].resolve()) and env["MUBENCH_STORE"] == str(made[2].resolve())
    result = CliRunner().invoke(_cli(), ["leaderboard", "--submissions", str(made[1]), "--host", "0.0.0.0"],
                                catch_exceptions=False)
    assert result.exit_code == 0
    command, env = calls[1]
    assert command[command.index("--server.address") + 1] == "0.0.0.0" and "MUBENCH_STORE" not in env
    assert "0.0.0.0 exposes" in " ".join(CliRunner().invoke(_cli(), ["leaderboard", "--help"]).output.split())


def test_export_reads_the_default_store_but_the_readme_and_page_blocks_never_do(made, tmp_path, monkeypatch):
    """Without --store, `export` checks statuses against $MUBENCH_HOME/results.sqlite when it exists
    (as `leaderboard` and `results` do); the README and board page blocks stay store-free."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "results.sqlite").write_bytes(made[2].read_bytes())
    monkeypatch.setenv("MUBENCH_HOME", str(home))
    alpha_verified = "| 1.5 | `alpha` | forget | verified | 0.100 ± 0.254 | 2 | – |"
    result = CliRunner().invoke(_cli(), ["export", "--submissions", str(made[1])], catch_exceptions=False)
    assert result.exit_code == 0 and alpha_verified in result.stdout.splitlines()
    readme, page = tmp_path / "README.md", tmp_path / "board.md"
    for document in (readme, page):
        document.write_text(f"# title\n{README_START}\n{README_END}\n")
    result = CliRunner().invoke(_cli(), ["export", "--readme", str(readme), "--page", str(page), "--submissions",
                                         str(made[1])], catch_exceptions=False)
    assert result.exit_code == 0
    assert _block(readme) == "\n" + readme_block(made[1]) and _block(page) == "\n" + page_block(made[1])
    assert alpha_verified not in page.read_text() and "| `alpha` | forget | unchecked |" in page.read_text()

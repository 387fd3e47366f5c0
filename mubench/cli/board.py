"""`mubench leaderboard` (the Streamlit app) and `mubench export` (its overview tables as
Markdown, LaTeX or HTML, and the README's leaderboard block).

The exports are rendered from the same mubench.board.tables tables the app shows, so a pasted table
can always be regenerated. Every text is escaped for its format: Markdown cells backslash-escape
the characters that would format or link, names sit in code spans; LaTeX and HTML go through
pandas' escaping (`to_latex(escape=True)`, `to_html(escape=True)`) and `html.escape`.

`mubench export` and `mubench leaderboard` read the store given with --store, else the default
store ($MUBENCH_HOME/results.sqlite) when it exists, as `mubench results` does: statuses are checked
against it and its uncited records shown as local entries. The README block (`--readme`) and the
board page's block (`--page`) are rendered without a store, so they depend only on the committed
submissions folder and every clone renders the same text (an entry whose records file travels with
it is `verified` there too: see mubench/board/submission.py).
Registered on the main app by `register(app)` (mubench/cli/app.py).
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer
from rich.markup import escape

from mubench.board import tables as bd
from mubench.errors import MubenchError

APP = Path(__file__).resolve().parents[2] / "leaderboard" / "app.py"
README_START, README_END = "<!-- leaderboard:start -->", "<!-- leaderboard:end -->"
EMPTY = "No submissions yet: `mubench submit` writes the first."
MEAN_RANK_TITLE = "Mean rank over task x scenario cells (1 = best)"
LocalStoreOption = Annotated[Optional[Path], typer.Option("--store", help="SQLite store the statuses are checked against (default: $MUBENCH_HOME/results.sqlite when it exists)")]
SubmissionsOption = Annotated[Optional[Path], typer.Option("--submissions", help="submissions folder (default: $MUBENCH_SUBMISSIONS or leaderboard/submissions)")]


class ExportFormat(str, Enum):
    markdown = "markdown"
    latex = "latex"
    html = "html"


# ---- the tables -------------------------------------------------------------------------------------

def _number(value: float, ci: float | None = None) -> str:
    if value != value:
        return "–"
    return f"{value:.3f}" if ci is None or ci != ci else f"{value:.3f} ± {ci:.3f}"


def _rank(value: float) -> str:
    return "–" if value != value else f"{value:.2f}".rstrip("0").rstrip(".")


def export_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One cell's ranking with formatted cells: rank, method, access, status, metric mean ± CI, n, hypervolume."""
    key = str(rows["ranked_by"].iloc[0])
    return pd.DataFrame({
        "rank": [_rank(v) for v in rows["rank"]], "method": list(rows["entry"]), "access": list(rows["access"]),
        "status": list(rows["status"]), key: [_number(m, c) for m, c in zip(rows["mean"], rows["ci95"])],
        "n": [str(n) for n in rows["n"]], "hypervolume": [_number(m, c) for m, c in zip(rows["hv_mean"], rows["hv_ci95"])]})


SUMMARY_TITLES = {"task": "Summary by task: mean score over each task's ranked scenarios (per seed, then ± 95 % CI "
                           "over seeds), mean rank over the cells a method covers",
                   "domain": "Summary by intervention domain: mean score over each domain's ranked scenarios"}


SIGNAL_TITLE = ("Forgetting signal per scenario: the original's minus the oracle's value (forget accuracy; relative "
                "forget MAE on regression tasks; loss-attack AUC), mean ± 95 % CI over seeds; a scenario is ranked "
                "where one is significant")


def overview_sections(board: bd.Board, metric: str | None = None, profile: str | None = None,
                      by_score: bool | None = None) -> list[tuple[tuple[str, ...], pd.DataFrame]]:
    """[(title parts, table)]. By default the board's rule (mubench.board.scores): the summaries by
    task and by domain, then one ranking per task x scenario cell by `score` with rank bands,
    reference rows and flags. With `metric`, the per-cell ranking by that metric and the mean
    ranks. Title parts: (task, scenario, profile, how it is ranked) for a cell, (title,) else."""
    if by_score is None:
        by_score = metric is None and any("score" in r.metrics for e in board.entries for r in e.submission.results)
    if by_score:
        return board_sections(board, profile)
    # entries made before the score (or a chosen metric): ranked by that metric's mean
    tidy = bd.filter_rows(bd.metrics_frame(board), profile=profile)
    volumes = bd.filter_rows(bd.hypervolume_frame(board), profile=profile)
    ranks = bd.rank_cells(tidy, metric, volumes)
    sections: list[tuple[tuple[str, ...], pd.DataFrame]] = []
    for cell in bd.cells(ranks):
        rows = bd.cell_rows(ranks, cell)
        sections.append(((*cell, f"ranked by {rows['ranked_by'].iloc[0]}, {rows['direction'].iloc[0]}"),
                         export_table(rows)))
    means = bd.mean_ranks(ranks)
    if not means.empty:
        table = pd.DataFrame({"profile": list(means["profile"]), "method": list(means["entry"]),
                              "mean rank": [_rank(v) for v in means["mean_rank"]], "cells": [str(c) for c in means["cells"]]})
        sections.append(((MEAN_RANK_TITLE,), table))
    return sections


def board_sections(board: bd.Board, profile: str | None = None) -> list[tuple[tuple[str, ...], pd.DataFrame]]:
    """The summaries by task and by domain, then every cell's ranking by the board's rule."""
    from mubench.board import scores

    entries = [e for e in board.entries if profile is None or any(r.profile == profile for r in e.submission.results)]
    ranked = scores.ranked_cells(board, entries)
    if profile is not None:
        ranked = ranked[ranked["profile"] == profile]
    if ranked.empty:
        return []
    sections: list[tuple[tuple[str, ...], pd.DataFrame]] = []
    for by in scores.GROUPINGS:
        summary = scores.summary_table(board, ranked, by)
        sections.append(((SUMMARY_TITLES[by],), scores.format_summary(summary).rename(columns={"entry": "method"})))
    signal = scores.signal_frame(entries)
    if not signal.empty:
        table = pd.DataFrame({
            "task": signal["task"], "scenario": signal["scenario"], "profile": signal["profile"],
            "signal": signal["signal"], "original − oracle": [_number(m, c) for m, c in zip(signal["mean"], signal["ci95"])],
            "n": signal["n"].astype(str), "significant": ["yes" if v else "no" for v in signal["significant"]]})
        sections.append(((SIGNAL_TITLE,), table))
    for cell, rows in ranked.groupby(["task", "scenario", "profile"], sort=True):
        domain = rows["domain"].iloc[0]
        how = (f"{domain}; ranked by score (forgetting x utility), higher is better; rank = 1 + methods whose 95 % "
               "interval lies wholly above" if rows["ranked"].any()
               else f"{domain}; not ranked: the forgetting signal is not significant over the seeds")
        sections.append(((*cell, how + scores.audit_note(rows, board.audit)), scores.format_cells(rows, board.audit)))
    return sections


def readme_summary(board: bd.Board, top: int = 3) -> pd.DataFrame:
    """Per task: its ranked scenarios, the `top` methods by mean score over them (score ± CI, rank
    band over the task's summary, status), how many methods share the first band, and the seeds;
    the README's short summary. The band is the cells' rule applied to the task's means: 1 + how
    many methods' intervals lie wholly above, so "#1" alone never claims more than the seeds show."""
    from mubench.board import scores
    from mubench.results.scoreboard import rank_bands

    ranked = scores.ranked_cells(board)
    summary = scores.summary_table(board, ranked, "task")
    rows = []
    for task in [c for c in summary.columns if c not in ("entry", "access", "status", "mean rank", "cells", "reference")]:
        scored = [(value[0], value[1], value[2], entry, status) for entry, status, ref, value in
                  zip(summary["entry"], summary["status"], summary["reference"], summary[task])
                  if value is not None and not ref]
        scored.sort(key=lambda item: -item[0])
        bands = list(rank_bands(pd.Series([item[0] for item in scored], dtype=float),
                                pd.Series([item[1] for item in scored], dtype=float))) if scored else []
        cells = ranked[(ranked["task"] == task) & ranked["ranked"]][["scenario", "profile"]].drop_duplicates()
        row = {"task": task, "scenarios": ", ".join(cells["scenario"]), "profile": ", ".join(sorted(set(cells["profile"])))}
        for place in range(top):
            if place < len(scored):
                mean, ci, n, entry, status = scored[place]
                row[f"#{place + 1}"] = f"{entry} {_number(mean, ci)} (rank {bands[place]:.0f}, {status})"
            else:
                row[f"#{place + 1}"] = "–"
        row["share rank 1"] = f"{sum(1 for band in bands if band == 1)} of {len(scored)}"
        row["seeds"] = str(max((item[2] for item in scored), default=0))
        rows.append(row)
    return pd.DataFrame(rows)


# ---- Markdown -----------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")
_IDENTIFIER_COLUMNS = {"method", "profile"}


def markdown_text(text: str) -> str:
    """Backslash-escape every character that Markdown would format, link or split a table on."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def markdown_code(text: str) -> str:
    """A name as a code span (shown literally); one holding a backtick falls back to escaping."""
    return markdown_text(text) if "`" in str(text) else f"`{text}`"


def markdown_table(frame: pd.DataFrame) -> str:
    left = ("method", "access", "status", "profile", "task", "scenario", "scenarios", "signal", "significant", "flags",
            "#1", "#2", "#3")
    right = [c not in left for c in frame.columns]
    header = "| " + " | ".join(markdown_text(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if r else "---" for r in right) + "|"
    body = ["| " + " | ".join(markdown_code(v) if c in _IDENTIFIER_COLUMNS else markdown_text(v)
                              for c, v in zip(frame.columns, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def to_markdown(sections: list[tuple[tuple[str, ...], pd.DataFrame]]) -> str:
    if not sections:
        return EMPTY + "\n"
    parts = []
    for title, table in sections:
        heading = (f"**{markdown_code(title[0])} / {markdown_code(title[1])} ({markdown_code(title[2])})**: "
                   f"{markdown_text(title[3])}") if len(title) == 4 else f"**{markdown_text(title[0])}**"
        parts.append(heading + "\n\n" + markdown_table(table))
    return "\n\n".join(parts) + "\n"


# ---- LaTeX and HTML -----------------------------------------------------------------------------------

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}"}


def latex_text(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _title(title: tuple[str, ...]) -> str:
    return f"{title[0]} / {title[1]} ({title[2]}): {title[3]}" if len(title) == 4 else title[0]


def to_latex(sections: list[tuple[tuple[str, ...], pd.DataFrame]]) -> str:
    """One `table` float per section (booktabs rules); cells escaped by pandas, ± as $\\pm$."""
    if not sections:
        return f"% {latex_text(EMPTY)}\n"
    parts = []
    for title, table in sections:
        body = table.to_latex(index=False, escape=True).replace(" ± ", r" $\pm$ ").replace("–", "--")
        parts.append("\\begin{table}[ht]\n\\centering\n\\caption{" + latex_text(_title(title)) + "}\n"
                     + body + "\\end{table}\n")
    return "% mubench leaderboard (mubench export --format latex); needs \\usepackage{booktabs}\n" + "\n".join(parts)


def to_html(sections: list[tuple[tuple[str, ...], pd.DataFrame]]) -> str:
    body = [f"<p>{html.escape(EMPTY)}</p>"] if not sections else [
        f"<h2>{html.escape(_title(title))}</h2>\n" + table.to_html(index=False, escape=True, border=0)
        for title, table in sections]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>mubench leaderboard</title></head>\n"
            "<body>\n<h1>mubench leaderboard</h1>\n" + "\n".join(body) + "\n</body>\n</html>\n")


RENDERERS = {ExportFormat.markdown: to_markdown, ExportFormat.latex: to_latex, ExportFormat.html: to_html}


def render_export(fmt: ExportFormat, folder: Path | None = None, store: Path | None = None,
                  metric: str | None = None, profile: str | None = None) -> str:
    board = bd.load_board(folder, store)
    return RENDERERS[ExportFormat(fmt)](overview_sections(board, metric, profile))


def page_block(folder: Path | None = None, board: bd.Board | None = None) -> str:
    """The full board's block (docs/board.md): the Markdown export of `folder` (or of an already
    loaded `board`), without a store."""
    return to_markdown(overview_sections(board or bd.load_board(folder)))


def readme_block(folder: Path | None = None, board: bd.Board | None = None) -> str:
    """The README's short summary: per task, its ranked scenarios and the three best methods by
    mean score (± 95 % CI over seeds, status); the summaries and every cell's ranking are on the
    board page (`page_block`)."""
    board = board or bd.load_board(folder)
    if not any("score" in r.metrics for e in board.entries for r in e.submission.results):
        return _mean_rank_block(board)  # entries made before the board's score
    table = readme_summary(board)
    if table.empty:  # no scenario ranked (one seed, say): the mean ranks by the default metric
        return _mean_rank_block(board)
    return (f"**Top three per task** by mean score over the task's ranked scenarios (mean ± 95 % CI over seeds), "
            f"from {len(board.entries)} entries. A rank is 1 + the number of methods whose interval lies wholly "
            "above; *share rank 1* counts the methods the seeds cannot tell from the first. The summaries by "
            "task and by domain, and every cell's ranking with its rank bands: [docs/board.md](docs/board.md)."
            "\n\n" + markdown_table(table) + "\n")


def _mean_rank_block(board: bd.Board) -> str:
    """The mean ranks by the default metric over every cell, and how many cells and entries they cover."""
    sections = overview_sections(board, by_score=False)
    means = [table for title, table in sections if title == (MEAN_RANK_TITLE,)]
    if not means:
        return EMPTY + "\n"
    cells = sum(1 for title, _ in sections if len(title) == 4)
    return (f"**{markdown_text(MEAN_RANK_TITLE)}**, over {cells} task x scenario cells and {len(board.entries)} "
            f"entries; every cell's ranking with its intervals: [docs/board.md](docs/board.md).\n\n"
            + markdown_table(means[0]) + "\n")


def write_block(path: Path, block: str) -> None:
    """Replace the leaderboard block of the Markdown file `path` (atomically: a staged file renamed over it)."""
    if not path.is_file():
        raise MubenchError(f"{path}: no such file, so its leaderboard block cannot be regenerated")
    text = replace_readme_block(path.read_text(encoding="utf-8"), block, str(path))
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(text, encoding="utf-8")
    os.replace(staged, path)


def replace_readme_block(text: str, block: str, where: str = "README") -> str:
    """`text` with only what lies between the leaderboard markers replaced by `block`."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise MubenchError(f"{where}: no {README_START} ... {README_END} markers (in that order) to write between")
    return text[:start + len(README_START)] + "\n" + block + text[end:]


# ---- commands -----------------------------------------------------------------------------------------

def local_store(store: Path | None) -> Path | None:
    """The store a board command reads: `store`, else the default store when it exists, else none."""
    from mubench import paths

    if store is not None:
        return store
    default = paths.default_store()
    return default if default.is_file() else None


def leaderboard(
    submissions: SubmissionsOption = None,
    store: LocalStoreOption = None,
    port: Annotated[int, typer.Option("--port", help="port to serve on")] = 8501,
    host: Annotated[str, typer.Option("--host", help="address to listen on (default 127.0.0.1: this machine only; "
                                      "0.0.0.0 exposes the app to the network)")] = "127.0.0.1",
) -> None:
    """Start the leaderboard (Streamlit, read-only) over the submissions folder and the local store."""
    from mubench.board.submission import submissions_folder

    if not APP.is_file():
        raise MubenchError(f"{APP} not found: the leaderboard app ships with the source checkout, run it from there")
    env = dict(os.environ, MUBENCH_SUBMISSIONS=str(submissions_folder(submissions).resolve()))
    chosen = local_store(store)
    if chosen is not None:
        env["MUBENCH_STORE"] = str(Path(chosen).resolve())
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host, "--server.port", str(port),
               "--browser.gatherUsageStats", "false"]
    raise typer.Exit(subprocess.call(command, env=env))


def export(
    fmt: Annotated[ExportFormat, typer.Option("--format", help="markdown, latex or html")] = ExportFormat.markdown,
    out: Annotated[Optional[Path], typer.Option("--out", help="write here (default: stdout)")] = None,
    submissions: SubmissionsOption = None,
    store: LocalStoreOption = None,
    metric: Annotated[Optional[str], typer.Option("--metric", help="rank by this metric (default: forget/acc, else forget/mae)")] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", help="only this profile")] = None,
    readme: Annotated[Optional[Path], typer.Option("--readme", help="rewrite only the summary block of this README (Markdown, no store)")] = None,
    page: Annotated[Optional[Path], typer.Option("--page", help="rewrite only the full board's block of this page, e.g. docs/board.md (Markdown, no store)")] = None,
) -> None:
    """Write the leaderboard's overview tables (per task x scenario ranks and mean ranks), statuses checked
    against the store (--store, else $MUBENCH_HOME/results.sqlite when it exists; never for --readme and --page)."""
    from mubench.cli.common import out as console

    if readme is not None or page is not None:
        if fmt != ExportFormat.markdown or store is not None or metric or profile or out:
            raise MubenchError("--readme and --page write the default Markdown blocks from the submissions folder "
                               "alone: drop --format, --store, --metric, --profile and --out")
        board = bd.load_board(submissions)  # checked once (split ids are recomputed), rendered twice
        for target, block in ((readme, readme_block), (page, page_block)):
            if target is not None:
                write_block(target, block(board=board))
                console.print(f"updated the leaderboard block of {escape(str(target))}", highlight=False,
                              soft_wrap=True)
        return
    text = render_export(fmt, submissions, local_store(store), metric, profile)
    if out is None:
        console.file.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {escape(str(out))}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `leaderboard` and `export` to the main app (mubench/cli/app.py calls this)."""
    app.command()(leaderboard)
    app.command()(export)

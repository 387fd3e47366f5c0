"""The mubench leaderboard: a read-only Streamlit app over the submissions folder (and a local store).

Started by `mubench leaderboard`, or `streamlit run leaderboard/app.py` with MUBENCH_SUBMISSIONS
(default leaderboard/submissions) and optionally MUBENCH_STORE in the environment. Every table
comes from mubench.board.tables and mubench.board.scores; this file only lays them out. Pages (a
sidebar radio, which streamlit.testing's AppTest drives directly): Board (one summary table:
methods as rows, tasks or intervention domains as columns, score ± CI, mean rank, access, status,
as the MTEB and Open LLM leaderboards open), Cells (each task x scenario's ranking, its settings
and its metrics), Trade-offs, Privacy audit (the committed population audits, leaderboard/audit/),
Method, Task, and How it is ranked.

Nothing from a submission is ever rendered as Markdown or HTML: names and texts go through
st.text, st.code and dataframe cells only (st.markdown only for this file's own static text,
never unsafe_allow_html). The few
headings that show a task or scenario name put it in a code span (`code_span`), whose content
Markdown shows literally; those names come from the task registry anyway.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # figures.py beside this file

import figures  # noqa: E402

import mubench.tasks  # noqa: E402,F401  (registers the tasks check_submission looks up)
from mubench.board import scores  # noqa: E402
from mubench.board import tables as bd  # noqa: E402
from mubench.methods import Access  # noqa: E402
from mubench.results.plots import style  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("Board", "Cells", "Trade-offs", "Privacy audit", "Method", "Task", "How it is ranked")
ANY_ACCESS, ALL_PROFILES, AUTO_METRIC = "any", "all", "auto (forget/acc, else forget/mae)"
BOARD_RULE = "score (the board's rule)"
DOMAINS = ("privacy", "resilience", "fairness", "adaptability")


def code_span(text: str) -> str:
    """`text` as a Markdown code span (shown literally); a name with a backtick is refused upstream."""
    return "`" + str(text).replace("`", "'") + "`"


def folder_stamp(folder: Path, store: Path | None) -> tuple:
    """What the cached board depends on: file names, sizes and modification times."""
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    if store is not None and store.is_file():
        stamp.append((str(store), store.stat().st_size, store.stat().st_mtime_ns))
    return tuple(stamp)


@st.cache_resource(show_spinner="checking the submissions", max_entries=8)
def load(folder: str, store: str | None, stamp: tuple) -> bd.Board:
    return bd.load_board(Path(folder), Path(store) if store else None)


def csv_button(frame: pd.DataFrame, name: str, key: str) -> None:
    st.download_button("Download CSV", frame.to_csv(index=False).encode("utf-8"), file_name=f"{name}.csv",
                       mime="text/csv", key=key)


def show_figure(fig: plt.Figure) -> None:
    st.pyplot(fig, clear_figure=True)
    plt.close(fig)


def sidebar_filters(tidy: pd.DataFrame, scored: bool) -> tuple[str | None, bool, str | None, str | None, list[str]]:
    """(max access, verified only, profile, metric, domains) from the sidebar. `metric` None is the
    board's rule where entries have a score, else the automatic metric."""
    st.sidebar.header("Filters")
    access = st.sidebar.selectbox("Data access at most", [ANY_ACCESS, *(a.value for a in Access)], key="access")
    verified = st.sidebar.checkbox("Verified only", key="verified")
    profiles = sorted(tidy["profile"].unique())
    profile = st.sidebar.selectbox("Profile", [ALL_PROFILES, *profiles], key="profile")
    domains = st.sidebar.multiselect("Intervention domains", list(DOMAINS), default=list(DOMAINS), key="domains")
    rankable = sorted(m for m in tidy["metric"].unique() if _rankable(m))
    first = BOARD_RULE if scored else AUTO_METRIC
    metric = st.sidebar.selectbox("Rank cells by", [first, *rankable], key="metric")
    return (None if access == ANY_ACCESS else access, verified, None if profile == ALL_PROFILES else profile,
            None if metric in (AUTO_METRIC, BOARD_RULE) else metric, domains)


def chosen_entries(board: bd.Board, filters: tuple) -> list[bd.Entry]:
    """The entries within the access level and, if asked, verified."""
    max_access, verified = filters[0], filters[1]
    return [e for e in board.entries
            if (max_access is None or e.submission.access.level <= Access(max_access).level)
            and (not verified or e.status == bd.VERIFIED)]


def ranked_by_rule(board: bd.Board, filters: tuple) -> pd.DataFrame:
    """The board's ranking of the chosen entries, within the profile and domains chosen."""
    ranked = scores.ranked_cells(board, chosen_entries(board, filters))
    profile, domains = filters[2], filters[4]
    if profile is not None:
        ranked = ranked[ranked["profile"] == profile]
    return ranked[ranked["domain"].isin(domains) | (ranked["domain"] == "")]


def has_scores(board: bd.Board) -> bool:
    return any("score" in r.metrics for e in board.entries for r in e.submission.results)


def board_page(board: bd.Board, filters: tuple, palette: dict) -> None:
    """The summary: methods as rows, tasks or domains as columns."""
    ranked = ranked_by_rule(board, filters) if has_scores(board) else pd.DataFrame()
    if ranked.empty:
        st.info("No entry matches: the submissions folder has no scored entry (made before the board's score, "
                "see Cells), or the filters exclude every entry.")
        refused_section(board)
        return
    group = st.radio("Columns", list(scores.GROUPINGS), horizontal=True, key="group",
                     format_func=lambda g: {"task": "tasks", "domain": "intervention domains"}[g])
    summary = scores.summary_table(board, ranked, group)
    st.caption("Each column: the mean score (forgetting x utility; 1 = the oracle, 0 = doing nothing) over the "
               "group's ranked scenarios, per seed and then ± 95 % CI over seeds; '–' where a method misses one "
               "of them. Mean rank: over the ranked cells the method covers (their number in 'cells'). retrain "
               "and identity are reference rows, not competitors. 'How it is ranked' explains every column.")
    st.dataframe(scores.format_summary(summary).rename(columns={"entry": "method"}), hide_index=True,
                 key="summary")
    csv_button(summary.drop(columns=[c for c in summary.columns if c not in ("entry", "access", "status", "mean rank",
                                                                             "cells", "reference")]),
               "summary", "csv-summary")
    means = summary[~summary["reference"] & summary["mean rank"].notna()].rename(
        columns={"entry": "entry", "mean rank": "mean_rank"})
    if not means.empty:
        show_figure(figures.mean_rank_figure(means, "mean rank over the ranked cells (1 = best)", palette))
    refused_section(board)


def cells_page(board: bd.Board, filters: tuple) -> None:
    """Each task x scenario: the ranking, the chosen settings, the metrics that differ."""
    if filters[3] is None and has_scores(board):
        cells_by_rule(board, filters)
    else:
        overview(board, filters)


def cells_by_rule(board: bd.Board, filters: tuple) -> None:
    ranked = ranked_by_rule(board, filters)
    if ranked.empty:
        st.info("No entry matches the filters.")
        return
    tidy = bd.metrics_frame(board)
    inapplicable = bd.not_applicable_frame(board)
    for i, (cell, rows) in enumerate(ranked.groupby(bd.CELL, sort=True)):
        task, scenario, profile = cell
        st.subheader(f"{code_span(task)} / {code_span(scenario)} ({code_span(profile)})")
        domain = rows["domain"].iloc[0] or "no domain"
        st.text(f"{domain}; " + ("ranked by score: rank = 1 + methods whose 95 % interval lies wholly above"
                                 if rows["ranked"].any() else "not ranked: no significant forgetting signal")
                + scores.audit_note(rows, board.audit))
        st.dataframe(scores.format_cells(rows, board.audit), hide_index=True, key=f"cell-{i}")
        csv_button(rows, f"cell-{task}-{scenario}-{profile}", f"csv-cell-{i}")
        with st.expander("Chosen settings"):
            st.dataframe(rows[["entry", "hparams"]].rename(columns={"entry": "method"}), hide_index=True,
                         key=f"cell-settings-{i}")
        with st.expander("Every metric (means over seeds; metrics equal for every method here are hidden)"):
            metrics, hidden = scores.varying_metrics(tidy, cell, list(rows["entry"]))
            st.dataframe(metrics, hide_index=True, key=f"cell-metrics-{i}")
            if hidden:
                st.text("the same for every method here, hidden: " + ", ".join(hidden))
        here = inapplicable[inapplicable["task"] == task]
        if not here.empty:
            st.text("not applicable here: " + "; ".join(f"{r.method} ({r.reason})" for r in here.itertuples()))


def how_it_is_ranked() -> None:
    """The columns and the ranking rule, in words (static text: nothing from a submission)."""
    st.markdown(RANKING_TEXT)


RANKING_TEXT = """
**Score.** `score` = forgetting x utility, per run. *Forgetting* is the share of the distance between
the original model and the oracle (retrained without the forget set) that the method closed, on the
forget set's accuracy (or error, on regression tasks) and on a loss-based membership attack, averaged
over the components where the original measurably differs from the oracle: 1 for the oracle, 0 for
doing nothing. *Utility* is retain accuracy times test accuracy on the classes that should be kept,
each relative to the oracle and capped at 1: near 0 for a model that no longer works. The product is
the form of the NeurIPS 2023 unlearning competition (Triantafillou et al. 2024).

**Protocol.** Every method gets the same budget of settings from its own hyper-parameter space,
chosen on a development seed by the score on validation data (never test data, never a reported
seed), then reported on three seeds. An entry's *hypervolume* is that search's Pareto front over
(forgetting, utility).

**Ranks.** Per task x scenario, mean score over the seeds with a 95 % interval; a method's rank is 1 +
the number of methods whose interval lies wholly above its own, so methods whose intervals overlap
share a rank. `retrain` and `identity` are reference rows. A scenario is ranked only where the
original's forgetting signal over the oracle is significant over the seeds.

**Columns.** *access*: the data the method may touch (forget < unseen < retain < counterfactual).
*status*: verified (its committed records rebuild every number with the code it names), unchecked
(records not here), self-reported, local (runs of a local store). *n*: seeds. *work*: sample passes
through the model relative to retraining (hardware-independent cost; retrain = 1). *flags*: `no
effect` (forgetting indistinguishable from doing nothing), `no signal` (scenario not ranked), `one
seed` (no interval). The summary's *mean rank* is over the ranked cells a method covers; *cells*
says how many.
"""


def _rankable(metric: str) -> bool:
    try:
        bd.ranking_key(metric)
    except Exception:  # context metrics and unregistered keys cannot be ranked
        return False
    return True


def overview(board: bd.Board, filters: tuple) -> None:
    """Cells ranked by one metric (entries made before the board's score, or a metric chosen)."""
    max_access, verified, profile, metric = filters[:4]
    tidy = bd.filter_rows(bd.metrics_frame(board), max_access, verified, profile)
    volumes = bd.filter_rows(bd.hypervolume_frame(board), max_access, verified, profile)
    ranks = bd.rank_cells(tidy, metric, volumes)
    st.caption("Ranks per task x scenario: 1 = best, ties share their mean rank. Status: verified (its records are "
               "in the local store and reproduce it), unchecked (made by mubench submit, records not here), "
               "self-reported, or local (records of the local store, never submitted). Hypervolume: of the "
               "records the entry cites only, over its hv seeds and hv settings (a tuned entry: its development "
               "seed's search); `mubench results --view hypervolume` pools every record of a store.")
    if ranks.empty:
        st.info("No entry matches: the submissions folder is empty, or the filters exclude every entry.")
    inapplicable = bd.not_applicable_frame(board)
    for i, cell in enumerate(bd.cells(ranks)):
        rows = bd.cell_rows(ranks, cell)
        task, scenario, cell_profile = cell
        st.subheader(f"{code_span(task)} / {code_span(scenario)} ({code_span(cell_profile)})")
        st.text(f"ranked by {rows['ranked_by'].iloc[0]} ({rows['direction'].iloc[0]}); "
                f"headline {rows['headline'].iloc[0]}")
        st.dataframe(bd.ranking_display(rows), hide_index=True, key=f"rank-{i}")
        csv_button(rows, f"ranking-{task}-{scenario}-{cell_profile}", f"csv-rank-{i}")
        here = inapplicable[inapplicable["task"] == task]
        if not here.empty:
            st.text("not applicable here: " + "; ".join(f"{r.method} ({r.reason})" for r in here.itertuples()))
    means = bd.mean_ranks(ranks)
    st.subheader("Mean rank over task x scenario cells")
    st.dataframe(means, hide_index=True, key="mean-ranks")
    csv_button(means, "mean-ranks", "csv-mean-ranks")
    if not means.empty:
        show_figure(figures.mean_rank_figure(means, "mean rank (1 = best)"))
    refused_section(board)


def refused_section(board: bd.Board) -> None:
    if not board.refused:
        return
    st.subheader("Refused files (not shown above)")
    refused = pd.DataFrame([{"file": r.source, "problem": p} for r in board.refused for p in r.problems],
                           columns=["file", "problem"])
    st.dataframe(refused, hide_index=True, key="refused")
    csv_button(refused, "refused", "csv-refused")


def tradeoffs(board: bd.Board, filters: tuple, palette: dict) -> None:
    max_access, verified, profile = filters[:3]
    points = bd.filter_rows(bd.tradeoff_frame(board), max_access, verified, profile)
    volumes = bd.filter_rows(bd.hypervolume_frame(board), max_access, verified, profile)
    cell_list = [tuple(c) for c in points[bd.CELL].drop_duplicates().sort_values(bd.CELL).itertuples(index=False)]
    if not cell_list:
        st.info("No trade-off points match (entries older than the tradeoff field, or the filters exclude all).")
        return
    labels = [f"{t} / {s} ({p})" for t, s, p in cell_list]
    cell = cell_list[labels.index(st.selectbox("Task / scenario", labels, key="tradeoff-cell"))]
    here = bd.cell_rows(points, cell)
    entries = sorted(here["entry"].unique())
    chosen = st.multiselect("Methods", entries, default=entries, key="tradeoff-methods")
    here = here[here["entry"].isin(chosen)]
    if here.empty:
        st.info("Choose at least one method.")
        return
    title = f"Trade-off: forgetting vs utility\n{cell[0]} / {cell[1]} ({cell[2]}); means over seeds"
    show_figure(figures.tradeoff_figure(here, title, palette))
    hv = bd.cell_rows(volumes, cell)
    hv = hv[hv["entry"].isin(chosen)]
    if not hv.empty:
        show_figure(figures.hypervolume_figure(hv, f"Hypervolume of each sweep\n{cell[0]} / {cell[1]} ({cell[2]})",
                                               palette))
    st.dataframe(here, hide_index=True, key="tradeoff-points")
    csv_button(here, f"tradeoff-{cell[0]}-{cell[1]}-{cell[2]}", "csv-tradeoff")


def method_page(board: bd.Board) -> None:
    if not board.entries:
        st.info("No entries.")
        return
    label = st.selectbox("Method", sorted(e.label for e in board.entries), key="method")
    entry = board.entry(label)
    details = bd.method_details(entry)
    st.subheader("Description")
    st.text(entry.submission.description or "(none)")
    st.text(f"paper: {entry.submission.paper or '(none)'}")
    for note in entry.notes:
        st.text(f"note: {note}")
    for title, key in (("About and provenance", "about"), ("Default hyper-parameters", "defaults"),
                       ("Chosen setting per task x scenario", "chosen"), ("Per-seed values", "per_seed"),
                       ("Failed runs", "failures")):
        st.subheader(title)
        st.dataframe(details[key], hide_index=True, key=f"method-{key}")
        csv_button(details[key], f"{entry.submission.method}-{key}", f"csv-method-{key}")


AUDIT_TEXT = """
Each table is one population audit: N originals unlearned by each method beside N oracles,
attacked with **U-LiRA** (accuracy telling an unlearned model from a retrained one on forget
examples; 0.5 = indistinguishable), **KLOM** (KL divergence of the margins, unlearned from
retrained; 0 = the same distribution, but independent retrained models score well above 0 at
these N, so compare it between methods and with its floor in docs/metrics.md) and **RMIA** (AUC
of the forget set over held-out samples;
the gap to the oracles' is 0 for retraining). Every value shows its 95 % interval; rows are ordered
by U-LiRA accuracy, closest to retraining first. Definitions: docs/metrics.md, "The privacy audit".
"""


def audit_page() -> None:
    """The committed population audits (CSV tables of `mubench results --view audit`), from the
    folder the board reads them from (mubench.board.tables.audit_folder)."""
    from mubench.results.audit import AUDIT_KEYS, cells_by_first_key, read_audit_files

    folder = bd.audit_folder(bd.submissions_folder(None))
    st.markdown(AUDIT_TEXT)
    tables, problems = read_audit_files(folder)
    for _, problem in problems:
        st.text(f"refused: {problem}")
    if not tables:
        st.info("No population audit here: `mubench run --suite audit` (or `--suite board --population 16`), then "
                "`mubench results --view audit --format csv > leaderboard/audit/NAME.csv`.")
        return
    for path, frame in tables:
        for (task, scenario, profile, population), table in cells_by_first_key(frame, AUDIT_KEYS):
            st.subheader(f"{code_span(task)} / {code_span(scenario)} ({code_span(profile)}), N = {population}")
            st.text(f"from {path.name}")
            st.dataframe(table.drop(columns=["task", "scenario", "profile", "population"]), hide_index=True)


def task_page() -> None:
    from mubench.board.listing import every_task, scenario_rows

    names = sorted(every_task())
    task = st.selectbox("Task", names, key="task")
    st.subheader("Scenarios")
    scenarios = pd.DataFrame([r for r in scenario_rows() if r["task"] == task])
    st.dataframe(scenarios, hide_index=True, key="task-scenarios")
    csv_button(scenarios, f"{task}-scenarios", "csv-task-scenarios")
    st.subheader("Data card")
    card = ROOT / "data_cards" / f"{task}.md"
    if card.is_file():
        st.code(card.read_text(encoding="utf-8"), language="markdown", wrap_lines=True)
    else:
        st.text(f"no data card at {card}: `mubench data card {task}` renders it")


def main() -> None:
    st.set_page_config(page_title="mubench leaderboard", layout="wide")
    st.title("mubench leaderboard")
    folder = bd.submissions_folder(None)
    store = Path(os.environ["MUBENCH_STORE"]) if os.environ.get("MUBENCH_STORE") else None
    board = load(str(folder.resolve()), str(store.resolve()) if store else None, folder_stamp(folder, store))
    page = st.sidebar.radio("Page", PAGES, key="page")
    st.sidebar.text(f"submissions: {folder}\nstore: {store or '(none)'}")
    filtered = page in ("Board", "Cells", "Trade-offs")
    filters = (sidebar_filters(bd.metrics_frame(board), has_scores(board)) if filtered
               else (None, False, None, None, list(DOMAINS)))
    palette = style([e.label for e in board.entries])  # one colour and marker per method on every page
    st.header(page)
    {"Board": lambda: board_page(board, filters, palette), "Cells": lambda: cells_page(board, filters),
     "Trade-offs": lambda: tradeoffs(board, filters, palette), "Privacy audit": audit_page,
     "Method": lambda: method_page(board),
     "Task": task_page, "How it is ranked": how_it_is_ranked}[page]()


main()

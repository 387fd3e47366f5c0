"""The mubench leaderboard: a read-only Streamlit app over the submissions folder (and a local store).

Started by `mubench leaderboard`, or `streamlit run leaderboard/app.py` with MUBENCH_SUBMISSIONS
(default leaderboard/submissions) and optionally MUBENCH_STORE in the environment. Every table
comes from mubench.board.tables; this file only lays them out. Pages (a sidebar radio, which
streamlit.testing's AppTest drives directly): Overview, Trade-offs, Method, Task.

Nothing from a submission is ever rendered as Markdown or HTML: names and texts go through
st.text, st.code and dataframe cells only (never st.markdown, never unsafe_allow_html). The few
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
from mubench.board import tables as bd  # noqa: E402
from mubench.methods import Access  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("Overview", "Trade-offs", "Method", "Task")
ANY_ACCESS, ALL_PROFILES, AUTO_METRIC = "any", "all", "auto (forget/acc, else forget/mae)"


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


def sidebar_filters(tidy: pd.DataFrame) -> tuple[str | None, bool, str | None, str | None]:
    """(max access, verified only, profile, metric) from the sidebar."""
    st.sidebar.header("Filters")
    access = st.sidebar.selectbox("Data access at most", [ANY_ACCESS, *(a.value for a in Access)], key="access")
    verified = st.sidebar.checkbox("Verified only", key="verified")
    profiles = sorted(tidy["profile"].unique())
    profile = st.sidebar.selectbox("Profile", [ALL_PROFILES, *profiles], key="profile")
    rankable = sorted(m for m in tidy["metric"].unique() if _rankable(m))
    metric = st.sidebar.selectbox("Rank by", [AUTO_METRIC, *rankable], key="metric")
    return (None if access == ANY_ACCESS else access, verified, None if profile == ALL_PROFILES else profile,
            None if metric == AUTO_METRIC else metric)


def _rankable(metric: str) -> bool:
    try:
        bd.ranking_key(metric)
    except Exception:  # context metrics and unregistered keys cannot be ranked
        return False
    return True


def overview(board: bd.Board, filters: tuple) -> None:
    max_access, verified, profile, metric = filters
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


def tradeoffs(board: bd.Board, filters: tuple) -> None:
    max_access, verified, profile, _ = filters
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
    show_figure(figures.tradeoff_figure(here, title))
    hv = bd.cell_rows(volumes, cell)
    hv = hv[hv["entry"].isin(chosen)]
    if not hv.empty:
        show_figure(figures.hypervolume_figure(hv, f"Hypervolume of each sweep\n{cell[0]} / {cell[1]} ({cell[2]})"))
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
    filters = sidebar_filters(bd.metrics_frame(board)) if page in ("Overview", "Trade-offs") else (None, False, None, None)
    st.header(page)
    {"Overview": lambda: overview(board, filters), "Trade-offs": lambda: tradeoffs(board, filters),
     "Method": lambda: method_page(board), "Task": task_page}[page]()


main()

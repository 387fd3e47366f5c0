"""Figures from stored records (matplotlib; PNG, SVG or PDF by the output's extension).

- `tradeoff`: forgetting vs utility, one marker per run, marker area by cost (seconds relative to
  the oracle's training), and each method's Pareto front over its sweep as a line; one panel per
  task x scenario when the selection spans several;
- `hypervolume`: hypervolume per method, bars with 95 % confidence intervals over seeds;
- `ranks`: a heat map of hypervolume ranks, methods x (task, scenario);
- `families`: a heat map, methods x metric families, each family scored in [0, 1] with higher
  better. A radar chart was considered and rejected: its areas depend on the arbitrary order of
  the axes, and values are hard to read off it; a labelled heat map shows the same comparison.

Colours come from the Okabe-Ito palette (safe for the common colour-vision deficiencies) and each
method also gets its own marker, so nothing depends on colour alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mubench.errors import MubenchError  # noqa: E402
from mubench.harness.record import Record  # noqa: E402
from mubench.registry import Registry  # noqa: E402
from mubench.results.aggregate import CELL, records_frame  # noqa: E402
from mubench.results.ranking import hypervolume_table, objective_points, rank_table  # noqa: E402
from mubench.results.tradeoff import pareto_front  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">"]
FORMATS = {".png", ".svg", ".pdf"}
MAX_BAR_GROUPS = 4
MAX_PANEL_COLUMNS = 3  # trade-off panels per row

plot_kinds: Registry = Registry("plot kind")


def style(methods: Sequence[str]) -> dict[str, tuple[str, str]]:
    """A stable (colour, marker) per method: sorted names, so a method looks the same in every figure."""
    return {m: (OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)]) for i, m in enumerate(sorted(methods))}


def _subset(records: Sequence[Record], task: str | None, scenario: str | None) -> list[Record]:
    chosen = [r for r in records if r.status == "ok" and (task is None or r.config.task == task)
              and (scenario is None or r.config.scenario == scenario)]
    if not chosen:
        raise MubenchError(f"no successful records for task {task or 'any'}, scenario {scenario or 'any'}")
    return chosen


def _caption(records: Sequence[Record], task: str | None, scenario: str | None) -> str:
    profiles = sorted({r.config.profile for r in records})
    seeds = sorted({r.config.seed for r in records})
    return (f"task {task or 'all'} · scenario {scenario or 'all'} · profile {', '.join(profiles)} · "
            f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}")


def _text_colour(rgb: Sequence[float]) -> str:
    """Black on light fills, white on dark ones (luminance with ITU-R BT.601 weights)."""
    red, green, blue = rgb
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"


def _save(fig: plt.Figure, out: Path) -> Path:
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise MubenchError(f"{out}: choose a .png, .svg or .pdf file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return out


@plot_kinds.register("tradeoff")
def tradeoff(records: Sequence[Record], task: str | None, scenario: str | None, out: Path) -> Path:
    """One panel per task x scenario of the selection (a single panel when both are chosen): runs
    of different scenarios are never drawn on one set of axes."""
    chosen = _subset(records, task, scenario)
    frame = records_frame(chosen)
    points = objective_points(frame)
    if points.empty:
        raise MubenchError(f"no records with the trade-off objectives for task {task or 'any'}, "
                           f"scenario {scenario or 'any'}")
    # seconds relative to the oracle's training, per run (a mean where records repeat a run's key)
    seconds = frame[frame["metric"] == "cost/rte"].groupby([*CELL, "seed", "hparams"])["value"].mean()
    cells = sorted({(t, s) for t, s in zip(points["task"], points["scenario"])})
    columns = min(len(cells), MAX_PANEL_COLUMNS)
    rows = -(-len(cells) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(7 * columns, 5.5 * rows), squeeze=False)
    colours = style(points["method"].unique())  # one style per method across the panels
    handles: dict[str, object] = {}
    for ax, (cell_task, cell_scenario) in zip(axes.flat, cells):
        here = points[(points["task"] == cell_task) & (points["scenario"] == cell_scenario)]
        handles.update(_tradeoff_panel(ax, here, seconds, colours))
        if len(cells) > 1:
            ax.set_title(f"{cell_task} / {cell_scenario}", fontsize=10)
    for ax in axes.flat[len(cells):]:
        ax.set_visible(False)
    legend = {"title": "method (area: seconds / oracle's)", "fontsize": 8, "title_fontsize": 8}
    caption = f"Trade-off: forgetting vs utility\n{_caption(chosen, task, scenario)}"
    if len(cells) == 1:
        axes[0, 0].legend(loc="lower left", **legend)
        axes[0, 0].set_title(caption, fontsize=10)
    else:
        fig.legend(list(handles.values()), list(handles), loc="upper left", bbox_to_anchor=(1.0, 0.95), **legend)
        fig.suptitle(caption + f"; one panel per task / scenario ({len(cells)})", fontsize=11)
        fig.tight_layout()
    return _save(fig, out)


def _tradeoff_panel(ax: plt.Axes, points: pd.DataFrame, seconds: pd.Series,
                    colours: dict[str, tuple[str, str]]) -> dict[str, object]:
    """One cell's runs on `ax`: a marker per run, each method's Pareto front as a line, the
    oracle's corner. Returns the legend handles by label."""
    handles: dict[str, object] = {}
    for method, group in points.groupby("method"):
        colour, marker = colours[method]
        keys = pd.MultiIndex.from_frame(group[[*CELL, "seed", "hparams"]])
        rte = seconds.reindex(keys).fillna(1.0).to_numpy(dtype=float) if len(seconds) else np.ones(len(group))
        area = 45 + 200 * np.clip(rte, 0, 2) / 2
        # larger (costlier) markers lower in the stack, so cheap runs at the same spot stay visible
        handles[method] = ax.scatter(group["objective/forgetting"], group["objective/utility"], s=area, c=colour,
                                     marker=marker, alpha=0.8, edgecolors="black", linewidths=0.4, label=method,
                                     zorder=3 + 1 / float(area.mean()))
        xy = group[["objective/forgetting", "objective/utility"]].to_numpy(dtype=float)
        front = xy[pareto_front(xy)]
        front = front[np.argsort(front[:, 0])]
        if len(front) > 1:
            ax.plot(front[:, 0], front[:, 1], color=colour, linewidth=1.5, alpha=0.9)
    ax.set_xlabel("forgetting: closeness to the oracle on the forget set (higher is better)")
    ax.set_ylabel("utility: test accuracy relative to the oracle (higher is better)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.05)
    handles["oracle (1, 1)"] = ax.scatter([1.0], [1.0], marker="*", s=220, c="none", edgecolors="black",
                                          linewidths=1.0, label="oracle (1, 1)")
    ax.grid(alpha=0.3)
    return handles


@plot_kinds.register("hypervolume")
def hypervolume_bars(records: Sequence[Record], task: str | None, scenario: str | None, out: Path) -> Path:
    """Grouped bars: one group per task/scenario, one bar per method, 95 % CI whiskers over seeds."""
    chosen = _subset(records, task, scenario)
    table = hypervolume_table(chosen)
    table["cell"] = table["task"] + "/" + table["scenario"]
    cells, methods = sorted(table["cell"].unique()), sorted(table["method"].unique())
    if len(cells) > MAX_BAR_GROUPS:  # bars for a dozen scenarios are unreadable: a labelled heat map instead
        grid = table.pivot_table(index="method", columns="cell", values="hv_mean", aggfunc="first")
        grid = grid.loc[grid.mean(axis=1).sort_values(ascending=False).index]
        return _heatmap(grid.T, "hypervolume (higher is better)", "cividis", "{:.2f}",
                        f"Hypervolume of each method's sweep (utility x forgetting x cost, reference point 0)\n"
                        f"{_caption(chosen, task, scenario)}; mean over seeds (intervals: mubench results --view hypervolume)",
                        out, vmin=0, vmax=1)
    colours = style(methods)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(cells) * len(methods) * 0.35 + 3), 4.8))
    top = 0.0
    for k, method in enumerate(methods):
        rows = table[table["method"] == method].set_index("cell").reindex(cells)
        x = np.arange(len(cells)) + (k - (len(methods) - 1) / 2) * width
        means, errors = rows["hv_mean"].to_numpy(dtype=float), rows["hv_ci95"].fillna(0).to_numpy(dtype=float)
        colour, _ = colours[method]
        # a hypervolume lies in [0, 1]: whiskers are clipped there (two seeds give t = 12.7 intervals)
        whiskers = np.vstack([np.minimum(errors, means), np.minimum(errors, 1 - means)])
        ax.bar(x, means, width, yerr=np.nan_to_num(whiskers), capsize=3, color=colour, edgecolor="black",
               linewidth=0.5, label=method)
        for xi, mean, upper in zip(x, means, whiskers[1]):
            if mean == mean:
                ax.text(xi, 0.01, f"{mean:.2f}", ha="center", va="bottom", fontsize=7, rotation=90,
                        color=_text_colour(matplotlib.colors.to_rgb(colour)))
                top = max(top, mean + upper)
    ax.set_xticks(range(len(cells)), cells, rotation=30 if len(cells) > 3 else 0, ha="right" if len(cells) > 3 else "center")
    ax.set_ylabel("hypervolume of the sweep's front (higher is better)")
    ax.set_ylim(0, max(0.1, top + 0.05))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="method", title_fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    n_seeds = sorted(set(table["n"]))
    ax.set_title(f"Hypervolume of each method's sweep (utility x forgetting x cost, reference point 0)\n"
                 f"{_caption(chosen, task, scenario)}; whiskers: 95 % CI over seeds (n = {', '.join(map(str, n_seeds))})",
                 fontsize=9)
    return _save(fig, out)


@plot_kinds.register("ranks")
def ranks_heatmap(records: Sequence[Record], task: str | None, scenario: str | None, out: Path) -> Path:
    chosen = _subset(records, task, scenario)
    ranks, _ = rank_table(chosen)
    ranks = ranks.dropna(subset=["hv_rank"])
    if ranks.empty:
        raise MubenchError("no hypervolume ranks: the records have no trade-off objectives")
    ranks["cell"] = ranks["task"] + "/" + ranks["scenario"]
    grid = ranks.pivot_table(index="method", columns="cell", values="hv_rank", aggfunc="mean")
    grid["mean rank"] = grid.mean(axis=1)
    grid = grid.sort_values("mean rank")
    return _heatmap(grid, "rank by hypervolume (1 = best)", "viridis_r", "{:.1f}",
                    f"Hypervolume ranks per task/scenario\n{_caption(chosen, task, scenario)}", out)


FAMILIES = {
    "utility": "objective/utility",
    "forgetting": "objective/forgetting",
    "score": "score",
    "privacy (1 - 2|MIA gap|)": "gap/mia_loss_auc",
    "oracle agreement (ToW)": "tow",
    "representation (CKA)": "repr/cka_oracle",
}


@plot_kinds.register("families")
def families_heatmap(records: Sequence[Record], task: str | None, scenario: str | None, out: Path) -> Path:
    chosen = _subset(records, task, scenario)
    frame = records_frame(chosen)
    means = frame.groupby(["method", "metric"])["value"].mean().unstack("metric")
    columns = {}
    for label, key in FAMILIES.items():
        if key not in means:
            continue
        values = means[key]
        columns[label] = (1 - (2 * values).clip(upper=1)) if key.startswith("gap/") else values.clip(0, 1)
    grid = pd.DataFrame(columns).sort_index()
    return _heatmap(grid, "score (higher is better)", "cividis", "{:.2f}",
                    f"Metric families, default and swept settings pooled (mean)\n{_caption(chosen, task, scenario)}", out,
                    vmin=0, vmax=1)


def _heatmap(grid: pd.DataFrame, colour_label: str, cmap: str, fmt: str, title: str, out: Path,
             vmin: float | None = None, vmax: float | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(1.3 * grid.shape[1] + 3, 0.5 * grid.shape[0] + 2))
    image = ax.imshow(grid.to_numpy(dtype=float), cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=9)
    for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        if value == value:
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=8,
                    color=_text_colour(image.cmap(image.norm(value))[:3]))
    fig.colorbar(image, ax=ax, label=colour_label)
    ax.set_title(title, fontsize=10)
    return _save(fig, out)


def plot(kind: str, records: Sequence[Record], task: str | None, scenario: str | None, out: Path) -> Path:
    return plot_kinds.get(kind)(records, task, scenario, out)

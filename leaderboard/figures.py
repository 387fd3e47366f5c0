"""The leaderboard's figures, drawn from board tables (mubench.board.tables) rather than from records.

Submission files carry the trade-off points and hypervolumes, not the records, so the drawing of
mubench/results/plots.py (`tradeoff`, `hypervolume`) is repeated here on those tables with the same
encodings: Okabe-Ito colours and one marker per method (`mubench.results.plots.style`), marker area by
seconds relative to the oracle's training, each method's Pareto front as a line, bars with 95 %
intervals clipped to [0, 1]. Functions return figures; the app shows and closes them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mubench.results.plots import style
from mubench.results.tradeoff import pareto_front


def tradeoff_figure(points: pd.DataFrame, title: str,
                    palette: dict[str, tuple[str, str]] | None = None) -> plt.Figure:
    """Forgetting vs utility, one marker per setting (means over seeds), fronts as lines.
    `palette` (style() over every entry of the board) keeps a method's colour and marker the same
    on every page and figure, whichever methods are selected."""
    fig, ax = plt.subplots(figsize=(9, 5.2))
    colours = palette or style(points["entry"].unique())
    for entry, group in points.groupby("entry"):
        colour, marker = colours[entry]
        rte = group["cost/rte"].fillna(1.0).to_numpy(dtype=float)
        area = 45 + 200 * np.clip(rte, 0, 2) / 2
        ax.scatter(group["objective/forgetting"], group["objective/utility"], s=area, c=colour, marker=marker,
                   alpha=0.8, edgecolors="black", linewidths=0.4, label=entry, zorder=3)
        xy = group[["objective/forgetting", "objective/utility"]].to_numpy(dtype=float)
        front = xy[pareto_front(xy)]
        front = front[np.argsort(front[:, 0])]
        if len(front) > 1:
            ax.plot(front[:, 0], front[:, 1], color=colour, linewidth=1.5, alpha=0.9)
    ax.scatter([1.0], [1.0], marker="*", s=220, c="none", edgecolors="black", linewidths=1.0, label="oracle (1, 1)")
    ax.set_xlabel("forgetting: share of the original-to-oracle distance closed (higher is better)")
    ax.set_ylabel("utility: retain x kept-test accuracy relative to the oracle (higher is better)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(title="method (area: seconds / retraining's)", fontsize=7, title_fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), ncol=1 if len(colours) <= 14 else 2, borderaxespad=0.0)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def hypervolume_figure(volumes: pd.DataFrame, title: str,
                       palette: dict[str, tuple[str, str]] | None = None) -> plt.Figure:
    """One bar per entry: mean hypervolume over seeds, whiskers the 95 % interval within [0, 1]."""
    table = volumes.sort_values("entry")
    colours = palette or style(table["entry"])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(table) + 2), 4.2))
    means = table["hv_mean"].to_numpy(dtype=float)
    errors = table["hv_ci95"].fillna(0).to_numpy(dtype=float)
    whiskers = np.vstack([np.minimum(errors, means), np.minimum(errors, 1 - means)])
    ax.bar(range(len(table)), means, yerr=whiskers, capsize=3, edgecolor="black", linewidth=0.5,
           color=[colours[e][0] for e in table["entry"]])
    ax.set_xticks(range(len(table)), table["entry"], rotation=30 if len(table) > 3 else 0,
                  ha="right" if len(table) > 3 else "center")
    ax.set_ylabel("hypervolume of the sweep's front (higher is better)")
    ax.set_ylim(0, 1.0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    return fig


def mean_rank_figure(means: pd.DataFrame, title: str,
                     palette: dict[str, tuple[str, str]] | None = None) -> plt.Figure:
    """Horizontal bars of mean rank (1 = best at the top), labelled with the cells each is over."""
    table = means.sort_values(["mean_rank", "entry"], ascending=[False, False])
    colours = palette or style(table["entry"])
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(table) + 1.6))
    ax.barh(range(len(table)), table["mean_rank"], color=[colours[e][0] for e in table["entry"]],
            edgecolor="black", linewidth=0.5)
    ax.set_yticks(range(len(table)), [f"{e} ({c} cell{'' if c == 1 else 's'})" for e, c in zip(table["entry"], table["cells"])], fontsize=8)
    ax.set_xlabel("mean rank over task x scenario cells (1 = best)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=10)
    return fig

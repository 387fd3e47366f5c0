"""Stream metrics: pure functions of the accuracy matrix (requests x tasks) and the stream.

`acc[r - 1, t]` is task t's test accuracy after request r (1-based), measured by the harness.
After request r, the retained tasks are those learned and not unlearned, the unlearned tasks those
unlearned so far. Keys (`@r`: after request r; the others are final values):

- `stream/retained_acc@r`, `stream/retained_acc`: mean accuracy over the retained tasks (higher
  is better); absent while no task is retained.
- `stream/unlearned_acc@r`, `stream/unlearned_acc`: mean accuracy over the unlearned tasks, which
  should sit at chance (1 / the task's classes; 0.5 on split-MNIST); absent before any unlearning.
- `stream/task<t>_acc@r`: task t's accuracy, from the request that first learns it on.
- `stream/relapse`: for each unlearned task u that has later requests, how far its accuracy came
  back, max(0, max over requests r after u's unlearning of acc[r, u] - acc[r_u, u]), with r_u the
  request that unlearned it; averaged over those tasks (lower is better). UnCLe (Adhikari et al.
  2025) names the phenomenon "task relapse" (an unlearned task resurfacing during later learning)
  but its code computes no relapse number; this is the direct measure of that description. An
  unlearning that overshoots below chance shows its return towards chance as relapse, so read it
  beside `stream/unlearned_chance_gap`.
- `stream/unlearned_stability`: UnCLe's own number for unlearned tasks (visprasadh/uncle,
  toolbox/stability_calculator.py, branch "U"): the mean over the requests from the unlearning on
  of (chance - accuracy), averaged over unlearned tasks; in accuracy units here (UnCLe: percent,
  with chance 10). Positive: below chance; negative: above it (relapse or incomplete forgetting).
- `stream/unlearned_chance_gap`: mean |accuracy - chance| over the unlearned tasks at the end.
- `stream/gap_retained`, `stream/gap_unlearned`: |final value - the retrain oracle's| (same
  stream, seed and profile); `stream/oracle_retained_acc`, `stream/oracle_unlearned_acc`: the
  oracle's final values, for context.
"""

from __future__ import annotations

import numpy as np

from mubench.continual.spec import StreamState

STREAM_METRICS_VERSION = "1"
DIRECTIONS = {
    "stream/retained_acc": "higher", "stream/unlearned_acc": "chance", "stream/relapse": "lower",
    "stream/unlearned_stability": "zero", "stream/unlearned_chance_gap": "lower", "stream/gap_retained": "lower",
    "stream/gap_unlearned": "lower", "stream/oracle_retained_acc": "info", "stream/oracle_unlearned_acc": "info",
    "cost/seconds": "lower", "cost/rte": "lower",
}


def _mean(acc_row: np.ndarray, tasks: tuple[int, ...]) -> float | None:
    return float(np.mean(acc_row[list(tasks)])) if tasks else None


def retained_accuracy(states: list[StreamState], acc: np.ndarray) -> list[float | None]:
    """Per request, the mean accuracy over the retained tasks (None while there are none)."""
    return [_mean(acc[s.request - 1], s.retained) for s in states]


def unlearned_accuracy(states: list[StreamState], acc: np.ndarray) -> list[float | None]:
    """Per request, the mean accuracy over the tasks unlearned so far (None before any)."""
    return [_mean(acc[s.request - 1], s.unlearned) for s in states]


def relapse(states: list[StreamState], acc: np.ndarray) -> float | None:
    """Mean over unlearned tasks with later requests of max(0, max_{r > r_u} acc[r, u] - acc[r_u, u])."""
    final, values = states[-1], []
    for task, at in final.unlearned_at.items():
        later = acc[at:, task]  # rows of requests at + 1 .. R (row index = request - 1)
        if len(later):
            values.append(max(0.0, float(later.max() - acc[at - 1, task])))
    return float(np.mean(values)) if values else None


def unlearned_stability(states: list[StreamState], acc: np.ndarray, chance: np.ndarray) -> float | None:
    """UnCLe's stability of an unlearned task, mean_{r >= r_u} (chance - acc[r, u]), averaged over tasks."""
    unlearned_at = states[-1].unlearned_at
    values = [float(np.mean(chance[task] - acc[at - 1:, task])) for task, at in unlearned_at.items()]
    return float(np.mean(values)) if values else None


def per_request(states: list[StreamState], acc: np.ndarray) -> dict[str, float]:
    """The `@r` keys: retained and unlearned means, and each task's accuracy once it is learned."""
    values: dict[str, float] = {}
    seen: list[int] = []
    for state, retained, unlearned in zip(states, retained_accuracy(states, acc), unlearned_accuracy(states, acc)):
        r = state.request
        if state.step.op == "learn":
            seen.append(state.step.task)
        if retained is not None:
            values[f"stream/retained_acc@{r}"] = retained
        if unlearned is not None:
            values[f"stream/unlearned_acc@{r}"] = unlearned
        values.update({f"stream/task{t}_acc@{r}": float(acc[r - 1, t]) for t in seen})
    return values


def stream_metrics(states: list[StreamState], acc: np.ndarray, chance: np.ndarray,
                   oracle_acc: np.ndarray) -> dict[str, float]:
    """Every stream metric of one run (see the module docstring); keys whose value does not exist
    for this stream (no unlearning, nothing retained at the end) are absent."""
    final = states[-1]
    values = per_request(states, acc)
    finals = {
        "stream/retained_acc": retained_accuracy(states, acc)[-1],
        "stream/unlearned_acc": unlearned_accuracy(states, acc)[-1],
        "stream/oracle_retained_acc": retained_accuracy(states, oracle_acc)[-1],
        "stream/oracle_unlearned_acc": unlearned_accuracy(states, oracle_acc)[-1],
        "stream/relapse": relapse(states, acc),
        "stream/unlearned_stability": unlearned_stability(states, acc, chance),
        "stream/unlearned_chance_gap": (float(np.mean(np.abs(acc[-1, list(final.unlearned)] - chance[list(final.unlearned)])))
                                        if final.unlearned else None),
    }
    for name in ("retained", "unlearned"):
        mine, oracle = finals[f"stream/{name}_acc"], finals[f"stream/oracle_{name}_acc"]
        finals[f"stream/gap_{name}"] = abs(mine - oracle) if mine is not None and oracle is not None else None
    values.update({key: float(value) for key, value in finals.items() if value is not None})
    return values

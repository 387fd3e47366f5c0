"""Fabricated leaderboard submissions for the board, app and export tests (no training).

Records are made by hand on the `debug` task with real split ids (drawn with the registry, as
`check_submission` recomputes them), then aggregated with `build_submission`, so every file passes
the real checks. The numbers are chosen so that ranks can be worked out by hand:

gap/forget_acc (ranked ascending; forget/acc is oracle-targeted), mean over seeds 0 and 1:
    cell             alpha   beta   gamma
    class_0          0.10    0.20   0.10     -> ranks alpha 1.5, gamma 1.5, beta 3
    random_10        0.30    0.05   (none)   -> ranks beta 1, alpha 2
mean rank: alpha 1.75 (2 cells), beta 2.0 (2 cells), gamma 1.5 (1 cell).

Access: alpha forget, beta retain, gamma unseen. alpha's records go in the store (verified),
beta claims verified without records there (unchecked), gamma is self-reported. beta ran a
two-point sweep (lr 0.1 chosen by val/acc; hypervolume and two trade-off points per cell).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from mubench.board.submission import MethodInfo, Submission, build_submission, write_submission
from mubench.harness.record import Record, RunConfig
from mubench.methods import Access
from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION
from mubench.orchestration.store import Store

GAPS = {("alpha", "class_0"): (0.08, 0.12), ("beta", "class_0"): (0.2, 0.2), ("gamma", "class_0"): (0.1, 0.1),
        ("alpha", "random_10"): (0.25, 0.35), ("beta", "random_10"): (0.04, 0.06)}
ACCESS = {"alpha": Access.FORGET, "beta": Access.RETAIN, "gamma": Access.UNSEEN}
INJECTION = "**bold** [x](javascript:alert(1)) # not a heading"


@lru_cache(maxsize=None)
def split_id(scenario: str, seed: int) -> str:
    import mubench.tasks  # noqa: F401  (registers the tasks)
    from mubench.board.submission import current_split_id
    from mubench.tasks.base import tasks

    task = tasks.get("debug")
    return current_split_id(task, task.load(), scenario, seed, "smoke")


def record(method: str, scenario: str, seed: int, gap: float, hparams: dict | None = None, val: float = 0.9) -> Record:
    from mubench.tasks.base import tasks

    config = RunConfig(task="debug", task_version=tasks.get("debug").spec.version, scenario=scenario, method=method,
                       method_version="1", hparams=hparams or {}, seed=seed, profile="smoke", method_digest="0" * 64)
    metrics = {"forget/acc": 0.5 + gap, "gap/forget_acc": gap, "test/acc": 0.8, "val/acc": val,
               "objective/utility": 0.9, "objective/forgetting": 1 - gap, "cost/work": 0.5, "cost/rte": 0.5}
    return Record(id=config.id, config=config, status="ok", metrics=metrics, split_id=split_id(scenario, seed),
                  metrics_version=METRICS_VERSION, mia_spec_version=MIA_SPEC_VERSION, mubench_version="0.1.0",
                  git_commit="abc123",
                  hardware="test cpu", device="cpu", seconds=1.0, peak_rss_mb=1.0,
                  created_at="2026-01-01T00:00:00+00:00")


def records_of(method: str) -> list[Record]:
    runs = []
    for (name, scenario), gaps in GAPS.items():
        if name != method:
            continue
        for seed, gap in enumerate(gaps):
            if method == "beta":  # a sweep: lr 0.1 wins on val/acc; lr 0.01 is a worse, second point
                runs.append(record(method, scenario, seed, gap, {"lr": 0.1}, val=0.95))
                runs.append(record(method, scenario, seed, min(1.0, gap + 0.3), {"lr": 0.01}, val=0.5))
            else:
                runs.append(record(method, scenario, seed, gap))
    return runs


def submission_of(method: str, description: str = "a fabricated method") -> Submission:
    hparams = {"lr": 0.1} if method == "beta" else {}
    info = MethodInfo(method=method, version="1", authors=["A. Author"], paper="Author et al. 2026",
                      description=description, source_file=f"{method}.py", class_name=method.title(),
                      source_sha256="0" * 64, access=ACCESS[method], hparams=hparams, intensity=None)
    return build_submission(records_of(method), info, suite="quick", seeds=[0, 1],
                            sweep="axes" if method == "beta" else None, verified=method != "gamma",
                            created_at="2026-01-01T00:00:00+00:00")


def make_folder(base: Path, refused: bool = True, description: str = "a fabricated method") -> tuple[Path, Path]:
    """(submissions folder, store path): alpha, beta, gamma written; plus two refused files."""
    folder, store_path = base / "subs", base / "store.sqlite"
    for method in ("alpha", "beta", "gamma"):
        write_submission(submission_of(method, description if method == "alpha" else "a fabricated method"), folder)
    if refused:
        (folder / "broken.json").write_text('{"method": "x",')
        bad = json.loads(submission_of("gamma").model_dump_json())
        bad["method"] = "<script>alert(1)</script>"
        (folder / "script.json").write_text(json.dumps(bad))
    store = Store(store_path)
    for run in records_of("alpha"):
        store.put(run)
    store.close()
    return folder, store_path


def made_folder(tmp_path_factory, name: str) -> tuple[Path, Path, Path]:  # noqa: ANN001 - pytest's factory
    """(base, submissions folder, store) of the fabricated entries, made once per test module."""
    from helpers import shared_home

    base = tmp_path_factory.mktemp(name)
    with shared_home(base):
        folder, store = make_folder(base)
    return base, folder, store


def board_environment(base: Path, monkeypatch) -> None:  # noqa: ANN001 - pytest's monkeypatch
    from helpers import home_under

    """The environment the board reads, pointed at `base`: its own home, offline, no folder override."""
    monkeypatch.setenv("MUBENCH_HOME", str(home_under(base)))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.delenv("MUBENCH_SUBMISSIONS", raising=False)

"""The leaderboard's data layer (mubench.board.tables) on fabricated submissions whose ranks are worked
out by hand in tests/board_fixtures.py: checks, statuses, ranks, filters, mean ranks, method
details, trade-off points, local store entries (read without writing)."""

from __future__ import annotations

import hashlib
import json

import pytest

from board_fixtures import board_environment, made_folder, record
from helpers import shared_home
from mubench.board import tables as bd
from mubench.errors import MubenchError
from mubench.orchestration.store import Store


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return made_folder(tmp_path_factory, "board")


@pytest.fixture(autouse=True)
def home(made, monkeypatch):
    board_environment(made[0], monkeypatch)


@pytest.fixture(scope="module")
def board(made):
    with shared_home(made[0]):
        return bd.load_board(made[1], made[2])


def _ranks(ranks) -> dict[tuple[str, str], float]:
    return {(r.scenario, r.entry): r.rank for r in ranks.itertuples(index=False)}


def test_statuses_and_refused_files(board, made):
    assert {e.label: e.status for e in board.entries} == {"alpha": "verified", "beta": "unchecked",
                                                          "gamma": "self-reported"}
    assert [e.submission.verified for e in board.entries] == [True, False, False]
    refused = {r.source.rsplit("/", 1)[-1]: " ".join(r.problems) for r in board.refused}
    assert set(refused) == {"broken.json", "script.json"}
    assert "malformed JSON" in refused["broken.json"]
    assert "'<script>alert(1)</script>' is not a method name" in refused["script.json"]
    without_store = bd.load_board(made[1])
    assert without_store.entry("alpha").status == "unchecked"  # its records are not here


def test_ranks_by_hand(board):
    ranks = bd.rank_cells(bd.metrics_frame(board), None, bd.hypervolume_frame(board))
    assert _ranks(ranks) == {("class_0", "alpha"): 1.5, ("class_0", "gamma"): 1.5, ("class_0", "beta"): 3.0,
                             ("random_10", "beta"): 1.0, ("random_10", "alpha"): 2.0}
    assert set(ranks["ranked_by"]) == {"gap/forget_acc"} and set(ranks["headline"]) == {"forget/acc"}
    alpha = ranks[(ranks["entry"] == "alpha") & (ranks["scenario"] == "class_0")].iloc[0]
    assert alpha["mean"] == pytest.approx(0.10) and alpha["n"] == 2 and alpha["ci95"] > 0
    beta = ranks[ranks["entry"] == "beta"].set_index("scenario")
    assert beta.loc["random_10", "hv_mean"] > 0 and ranks[ranks["entry"] == "alpha"]["hv_mean"].isna().all()
    by_utility = bd.rank_cells(bd.metrics_frame(board), "objective/forgetting")  # higher is better: 1 - gap
    assert _ranks(by_utility)[("random_10", "beta")] == 1.0 and set(by_utility["ranked_by"]) == {"objective/forgetting"}
    with pytest.raises(MubenchError, match="no such metric"):
        bd.rank_cells(bd.metrics_frame(board), "no/such")


def test_mean_ranks_by_hand(board):
    means = bd.mean_ranks(bd.rank_cells(bd.metrics_frame(board)))
    assert list(means["entry"]) == ["gamma", "alpha", "beta"]
    assert dict(zip(means["entry"], means["mean_rank"])) == {"gamma": 1.5, "alpha": 1.75, "beta": 2.0}
    assert dict(zip(means["entry"], means["cells"])) == {"gamma": 1, "alpha": 2, "beta": 2}


def test_filters_change_the_rows_and_the_ranks(board):
    tidy = bd.metrics_frame(board)
    forget_only = bd.rank_cells(bd.filter_rows(tidy, max_access="forget"))
    assert _ranks(forget_only) == {("class_0", "alpha"): 1.0, ("random_10", "alpha"): 1.0}
    up_to_retain = bd.rank_cells(bd.filter_rows(tidy, max_access="retain"))
    assert set(up_to_retain["entry"]) == {"alpha", "beta"}
    assert _ranks(up_to_retain)[("class_0", "beta")] == 2.0
    assert set(bd.filter_rows(tidy, verified_only=True)["entry"]) == {"alpha"}
    assert bd.filter_rows(tidy, profile="standard").empty and len(bd.filter_rows(tidy, profile="smoke")) == len(tidy)
    assert bd.rank_cells(bd.filter_rows(tidy, profile="standard")).empty


def test_method_details_hold_per_seed_values_and_provenance(board):
    details = bd.method_details(board.entry("alpha"))
    about = dict(zip(details["about"]["field"], details["about"]["value"]))
    assert about["hardware"] == "test cpu" and about["git commit"] == "abc123" and about["records"] == "4"
    assert about["status"] == "verified" and about["access"] == "forget" and about["paper"] == "Author et al. 2026"
    seeds = details["per_seed"]
    gap = seeds[(seeds["scenario"] == "class_0") & (seeds["metric"] == "gap/forget_acc")]
    assert list(gap["seed"]) == [0, 1] and list(gap["value"]) == pytest.approx([0.08, 0.12])
    beta = bd.method_details(board.entry("beta"))
    assert dict(zip(beta["defaults"]["hyper-parameter"], beta["defaults"]["default"])) == {"lr": "0.1"}
    assert set(beta["chosen"]["hparams"]) == {'{"lr":0.1}'}  # val/acc chose lr 0.1 in both cells


def test_tradeoff_points_and_hypervolumes(board):
    points = bd.tradeoff_frame(board)
    beta = points[points["entry"] == "beta"]
    assert len(beta) == 4 and set(beta["hparams"]) == {'{"lr":0.1}', '{"lr":0.01}'} and set(beta["n"]) == {2}
    chosen = beta[(beta["scenario"] == "class_0") & (beta["hparams"] == '{"lr":0.1}')].iloc[0]
    assert chosen["objective/forgetting"] == pytest.approx(0.8) and chosen["cost/rte"] == pytest.approx(0.5)
    assert len(points[points["entry"] == "alpha"]) == 2
    assert set(bd.hypervolume_frame(board)["entry"]) == {"beta"}


def test_local_store_records_become_local_entries_and_the_store_is_not_written(made, tmp_path):
    store_path = tmp_path / "local.sqlite"
    store = Store(store_path)
    with shared_home(made[0]):
        runs = [record("delta", scenario, seed, 0.2) for scenario in ("class_0", "random_10") for seed in (0, 1)]
    fixture_store = Store(made[2])
    for run in [*runs, *fixture_store.records()]:
        store.put(run)
    fixture_store.close()
    store.close()
    before = hashlib.sha256(store_path.read_bytes()).hexdigest()
    with shared_home(made[0]):
        board = bd.load_board(made[1], store_path)
    assert hashlib.sha256(store_path.read_bytes()).hexdigest() == before
    labels = {e.label: e for e in board.entries}
    assert "alpha (local)" not in labels and labels["alpha"].status == "verified"  # its records are cited
    delta = labels["delta (local)"]
    assert delta.status == "local" and not delta.submission.verified
    assert delta.submission.access.value == "counterfactual"  # not registered: the widest level
    ranks = bd.rank_cells(bd.metrics_frame(board))
    # class_0 gaps: alpha 0.1, gamma 0.1, beta 0.2, delta 0.2 -> ranks 1.5, 1.5, 3.5, 3.5
    assert _ranks(ranks)[("class_0", "delta (local)")] == 3.5 and _ranks(ranks)[("class_0", "beta")] == 3.5
    with pytest.raises(MubenchError, match="no result store"):
        bd.load_board(made[1], tmp_path / "absent.sqlite")


def test_not_applicable_cells_come_from_the_registry(board):
    renamed = bd.Entry(board.entry("gamma").submission.model_copy(update={"method": "fmd"}), "submission",
                       "self-reported", "x.json")
    rows = bd.not_applicable_frame(bd.Board((renamed,), ()))
    assert list(rows["method"]) == ["fmd"] and list(rows["task"]) == ["debug"]
    assert "sensitive attribute" in rows["reason"].iloc[0]
    assert bd.not_applicable_frame(board).empty


def test_the_schema_fields_are_filled_for_every_metric(board):
    result = board.entry("alpha").submission.results[0]
    assert all(len(m.values) == m.n == 2 for m in result.metrics.values())
    data = json.loads(board.entry("alpha").submission.model_dump_json())
    assert data["results"][0]["tradeoff"][0]["hparams"] == "{}"


# ---- the app's hypervolume and the CLI's, from the same records ----------------------------------

def _cli_hypervolumes(store, *extra: str) -> tuple[dict, str]:
    from typer.testing import CliRunner

    from mubench.cli.app import app

    result = CliRunner().invoke(app, ["results", "--view", "hypervolume", "--format", "json", "--store", str(store),
                                      *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    return {(r["scenario"], r["method"]): (r["hv_mean"], r["n"], r["points"]) for r in rows}, result.stderr


def _app_hypervolumes(board) -> dict:
    frame = bd.hypervolume_frame(board)
    return {(r.scenario, r.method): (r.hv_mean, r.hv_n, r.points) for r in frame.itertuples(index=False)}


def test_a_sweep_entry_and_the_cli_give_the_same_hypervolume(made, tmp_path):
    """beta's sweep (two settings on each of two seeds) in a store: `mubench results --view
    hypervolume` and the board (the number its file states) agree in every cell."""
    from board_fixtures import records_of

    store = Store(tmp_path / "beta.sqlite")
    for run in records_of("beta"):
        store.put(run)
    store.close()
    with shared_home(made[0]):
        board = bd.load_board(made[1], tmp_path / "beta.sqlite")
    app, cli_side = _app_hypervolumes(board), _cli_hypervolumes(tmp_path / "beta.sqlite")[0]
    assert set(app) == set(cli_side) == {("class_0", "beta"), ("random_10", "beta")}
    for key in app:
        assert app[key][0] == pytest.approx(cli_side[key][0], abs=1e-12) and app[key][1:] == cli_side[key][1:]


def test_a_tuned_entrys_hypervolume_is_its_search_and_the_cli_says_what_it_pools(tmp_path):
    """A tuned entry states the hypervolume of its development seed's search (seed 100, three
    settings, n 1). The store also holds the reported seeds (0, 1), which ran only the chosen
    setting: over every record, each of them adds a one-point "front" (0.72 vs 0.515 here). The CLI
    names the difference, `--seed 100` gives the entry's number, and the board says what it covers."""
    from mubench.board.submission import MethodInfo, TuningProtocol, build_tuned_entry
    from mubench.cli.app import hypervolume_notes
    from mubench.methods import Access

    def run(seed: int, gap: float, lr: float, utility: float, score_val: float = 0.5):
        made_run = record("beta", "class_0", seed, gap, {"lr": lr})
        return made_run.model_copy(update={"metrics": {**made_run.metrics, "objective/utility": utility,
                                                       "score/val": score_val}})

    search = [run(100, 0.1, 0.1, 0.5, 0.9), run(100, 0.6, 0.01, 0.95, 0.1), run(100, 0.3, 0.05, 0.8)]
    reported = [run(0, 0.15, 0.1, 0.5), run(1, 0.2, 0.1, 0.5)]
    info = MethodInfo(method="beta", version="1", authors=["A. Author"], paper="none", description="tuned",
                      source_file="beta.py", class_name="Beta", source_sha256="0" * 64, access=Access.RETAIN,
                      hparams={"lr": 0.1}, intensity=None)
    entry = build_tuned_entry(search, reported, info, suite="board", seeds=[0, 1], created_at="2026-01-01T00:00:00+00:00",
                              tuning=TuningProtocol(dev_seed=100, budget=3, select_by="score/val"))
    board = bd.Board((bd.Entry(entry, "submission", bd.UNCHECKED, "beta.json"),), ())
    store = Store(tmp_path / "tuned.sqlite")
    for made_run in [*search, *reported]:
        store.put(made_run)
    store.close()

    app = _app_hypervolumes(board)[("class_0", "beta")]
    assert app == (pytest.approx(0.72), 1, 3)  # the search's front: (0.9, 0.5), (0.4, 0.95), (0.7, 0.8)
    pooled, notes = _cli_hypervolumes(tmp_path / "tuned.sqlite")
    assert pooled[("class_0", "beta")] == (pytest.approx((0.72 + 0.85 * 0.5 + 0.8 * 0.5) / 3), 3, 3)
    said = " ".join(notes.split())
    assert "debug/class_0/beta/smoke: its seeds ran different settings (seed 100: 3 settings; seeds 0, 1: 1 setting)" \
        in said and "--seed" in said
    searched, notes = _cli_hypervolumes(tmp_path / "tuned.sqlite", "--seed", "100")
    assert searched[("class_0", "beta")] == (app[0], 1, 3) and "note:" not in notes  # the same number, exactly
    display = bd.ranking_display(bd.rank_cells(bd.metrics_frame(board), None, bd.hypervolume_frame(board)))
    assert display[["hypervolume", "hv seeds", "hv settings"]].iloc[0].tolist() == [pytest.approx(0.72), 1, 3]
    other_code = record("beta", "class_0", 100, 0.3, {"lr": 0.05}).config.model_copy(update={"method_digest": "1" * 64})
    rebuilt = search[2].model_copy(update={"id": other_code.id, "config": other_code})
    assert any("pools records of 2 method versions / source digests" in note
               for note in hypervolume_notes([*search, rebuilt]))

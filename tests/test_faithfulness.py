"""`python -m mubench.bench.faithfulness`: the spread rule by hand, the measures against the harness's
own numbers and invariants on `debug` (retrain reproduces the oracle, identity the original), and
clear errors for a bad table."""

from __future__ import annotations

import json

import pytest
import torch

from mubench.bench import faithfulness
from mubench.bench.faithfulness import Cell, PublishedTable, clean_test_accuracy
from mubench.evaluation import EvaluationContext, Outputs
from mubench.harness.runner import Harness

DEBUG_TABLE = PublishedTable(source="a made-up table", task="debug", scenario="random_10",
                             rows={"retrain": {"forget": 0.5, "test": 0.5, "mia/svc": 0.5},
                                   "identity": {"forget": 0.9, "retain": 0.9}})


def test_within_is_two_standard_deviations_or_the_rounding():
    assert Cell("m", "forget", [0.90, 0.92, 0.94], 0.95).sd == pytest.approx(0.02)
    assert Cell("m", "forget", [0.90, 0.92, 0.94], 0.95).within        # |0.92 - 0.95| <= 0.04
    assert not Cell("m", "forget", [0.90, 0.92, 0.94], 0.97).within    # 0.05 > 0.04
    assert Cell("m", "forget", [0.905], 0.91).within and Cell("m", "forget", [0.905], 0.91).sd == 0.0
    assert not Cell("m", "forget", [0.89], 0.91).within               # one seed: the rounding floor only


def test_clean_test_accuracy_keeps_the_samples_without_the_attribute():
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    outputs = Outputs(logits, torch.tensor([0, 1, 1, 0]))  # right, wrong, right, wrong
    ctx = EvaluationContext({"test": outputs}, {}, {}, test_attributes={"patched": torch.tensor([0, 1, 0, 0])})
    assert clean_test_accuracy(ctx, "patched") == pytest.approx(2 / 3)
    assert clean_test_accuracy(ctx, None) == 0.5
    with pytest.raises(faithfulness.MubenchError, match="no attribute 'colour'"):
        clean_test_accuracy(ctx, "colour")


@pytest.fixture()
def debug_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(before)


def test_cells_on_debug_match_the_harness_records_and_invariants(debug_home):
    harness = Harness()
    cells = {(c.method, c.column): c for c in faithfulness.run_table(DEBUG_TABLE, [0, 1], "smoke", harness)}
    assert set(cells) == {("retrain", "forget"), ("retrain", "test"), ("retrain", "mia/svc"),
                          ("identity", "forget"), ("identity", "retain")}
    for seed in (0, 1):
        prepared = harness.prepare("debug", "random_10", seed, "smoke")
        # retrain trains with the oracle's seed and data: it is the oracle; identity is the original
        assert cells["retrain", "forget"].values[seed] == prepared.oracle_outputs["forget"].accuracy
        assert cells["retrain", "test"].values[seed] == prepared.oracle_outputs["test"].accuracy  # no attribute given
        assert cells["identity", "forget"].values[seed] == prepared.original_outputs["forget"].accuracy
        assert cells["identity", "retain"].values[seed] == prepared.original_outputs["retain"].accuracy
    from helpers import debug_config

    record = harness.run(debug_config("retrain", scenario="random_10", seed=1))
    assert cells["retrain", "mia/svc"].values[1] == pytest.approx(record.metrics["mia/svc"])


def test_main_writes_json_and_refuses_bad_rows(debug_home, monkeypatch, capsys):
    monkeypatch.setitem(faithfulness.TABLES, "debug_table", DEBUG_TABLE)
    out = debug_home / "cells.json"
    faithfulness.main(["--table", "debug_table", "--seeds", "0", "--methods", "identity", "--json", str(out)])
    cells = json.loads(out.read_text())
    assert [(c["method"], c["column"]) for c in cells] == [("identity", "forget"), ("identity", "retain")]
    assert all(len(c["values"]) == 1 and c["sd"] == 0.0 for c in cells)
    assert "a made-up table" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"not rows of this table"):
        faithfulness.main(["--table", "debug_table", "--seeds", "0", "--methods", "finetune"])
    monkeypatch.setitem(faithfulness.TABLES, "bad_column",
                        PublishedTable(source="x", task="debug", scenario="random_10", rows={"identity": {"nope": 1.0}}))
    with pytest.raises(SystemExit, match="column 'nope'"):
        faithfulness.main(["--table", "bad_column", "--seeds", "0"])
    with pytest.raises(SystemExit):
        faithfulness.main(["--table", "debug_table", "--seeds", "zero"])


def test_the_lotus_table_names_registered_methods_and_metrics():
    from mubench.methods import methods
    from mubench.metrics import metrics

    table = faithfulness.TABLES["lotus_cifar10_random_10"]
    assert set(table.rows) <= set(methods.names())
    assert table.rows["retrain"] == {"forget": 0.91, "retain": 0.99, "test": 0.91, "mia/entropy_lr": 0.76}
    assert all(c in ("forget", "retain", "test") or c in metrics for row in table.rows.values() for c in row)

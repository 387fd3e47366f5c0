"""RunConfig ids (canonical hashing) and Record validation and JSON round trips."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys

import pytest
from pydantic import ValidationError

from mubench.harness.record import Record, RunConfig


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


BASE = dict(task="cmnist", task_version="1", scenario="random_10", method="neggrad_plus", method_version="2",
            hparams={"lr": 0.01, "epochs": 3, "alpha": 0.5, "nesterov": False, "optimizer": "sgd"},
            seed=7, profile="smoke")

# Computed once from the literal config above; it changes only if canonical hashing changes, which
# would orphan every stored record.
EXPECTED_ID = "356f886c84c50cdac20936582ea6af493c6c1dcf6f9d5bd3944dcbbb35c75ecc"
EXPECTED_CANONICAL = ('{"hparams":{"alpha":0.5,"epochs":3,"lr":0.01,"nesterov":false,"optimizer":"sgd"},'
                      '"method":"neggrad_plus","method_version":"2","profile":"smoke","scenario":"random_10",'
                      '"seed":7,"task":"cmnist","task_version":"1"}')


def config(**changes) -> RunConfig:
    fields = {**BASE, "hparams": dict(BASE["hparams"])}
    fields.update(changes)
    return RunConfig(**fields)


def record(cfg: RunConfig | None = None, **changes) -> Record:
    cfg = cfg or config()
    fields = dict(id=cfg.id, config=cfg, status="ok", error=None, metrics={"forget/acc": 0.5, "test/acc": 0.9},
                  split_id="abc123", metrics_version="1", mia_spec_version="1", mubench_version="0.1.0", git_commit="deadbeef",
                  hardware="cpu: test", device="cpu", seconds=1.25, peak_rss_mb=321.5,
                  created_at="2024-05-01T12:00:00+00:00")
    fields.update(changes)
    return Record(**fields)


# ---- RunConfig ids ----------------------------------------------------------------------------

def test_config_id_is_the_hard_coded_canonical_hash():
    assert config().id == EXPECTED_ID
    assert hashlib.sha256(EXPECTED_CANONICAL.encode("utf-8")).hexdigest() == EXPECTED_ID


def test_config_id_is_stable_across_key_order_and_processes():
    reordered = RunConfig(**{k: BASE[k] for k in reversed(list(BASE))} | {
        "hparams": dict(reversed(list(BASE["hparams"].items())))})
    assert reordered.id == EXPECTED_ID
    script = ("from mubench.harness.record import RunConfig; import json, sys; "
              "print(RunConfig(**json.loads(sys.argv[1])).id)")
    out = subprocess.run([sys.executable, "-c", script, json.dumps(BASE)], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == EXPECTED_ID


CHANGES = {
    "seed": dict(seed=8),
    "seed0": dict(seed=0),
    "task": dict(task="cifar10"),
    "task_version": dict(task_version="2"),
    "scenario": dict(scenario="class_0"),
    "method": dict(method="finetune"),
    "method_version": dict(method_version="3"),
    "profile": dict(profile="standard"),
    "hparam_value": dict(hparams={**BASE["hparams"], "lr": 0.02}),
    "hparam_int": dict(hparams={**BASE["hparams"], "epochs": 4}),
    "hparam_bool": dict(hparams={**BASE["hparams"], "nesterov": True}),
    "hparam_str": dict(hparams={**BASE["hparams"], "optimizer": "adam"}),
    "hparam_added": dict(hparams={**BASE["hparams"], "momentum": 0.9}),
    "hparam_removed": dict(hparams={k: v for k, v in BASE["hparams"].items() if k != "alpha"}),
    "hparam_renamed": dict(hparams={**{k: v for k, v in BASE["hparams"].items() if k != "alpha"}, "beta": 0.5}),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_config_id_changes_with_any_field(name):
    assert config(**CHANGES[name]).id != EXPECTED_ID


def test_config_ids_of_all_changes_are_distinct():
    ids = [config(**change).id for change in CHANGES.values()]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 64 and set(i) <= set("0123456789abcdef") for i in ids)


def test_config_validation():
    with pytest.raises(ValidationError):
        config(seed=-1)
    with pytest.raises(ValidationError):
        RunConfig(**BASE, extra_field=1)
    with pytest.raises(ValidationError):
        config(hparams={"lr": [0.1, 0.2]})
    with pytest.raises(ValidationError):  # frozen
        config().seed = 3
    assert config().label == "cmnist/random_10/neggrad_plus/seed7/smoke"


# ---- Record validation ------------------------------------------------------------------------

def test_valid_record():
    rec = record()
    assert rec.id == rec.config.id == EXPECTED_ID
    failed = record(status="failed", error="RuntimeError: boom", metrics={})
    assert failed.status == "failed"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_record_rejects_non_finite_metrics(bad):
    with pytest.raises(ValidationError, match="mia/loss_auc"):
        record(metrics={"test/acc": 0.9, "mia/loss_auc": bad})


def test_record_rejects_an_id_that_is_not_its_configs_hash():
    other = config(seed=8)
    with pytest.raises(ValidationError, match="not the hash of its config"):
        record(id=other.id)
    with pytest.raises(ValidationError):
        record(id="0" * 64)
    with pytest.raises(ValidationError):
        record(id=EXPECTED_ID.upper())


@pytest.mark.parametrize("error", [None, ""])
def test_failed_record_must_have_an_error(error):
    with pytest.raises(ValidationError, match="must say why"):
        record(status="failed", error=error, metrics={})


def test_record_rejects_bad_fields():
    with pytest.raises(ValidationError):
        record(status="running")
    with pytest.raises(ValidationError):
        record(seconds=-1.0)
    with pytest.raises(ValidationError):
        record(peak_rss_mb=-0.5)
    with pytest.raises(ValidationError):
        record(unknown="x")


def test_record_default_created_at_is_utc_iso():
    cfg = config()
    rec = Record(id=cfg.id, config=cfg, status="ok", split_id="s", metrics_version="1", mia_spec_version="1", mubench_version="0",
                 git_commit="g", hardware="h", device="cpu", seconds=0.0, peak_rss_mb=0.0)
    assert rec.created_at.endswith("+00:00") and "T" in rec.created_at
    assert rec.metrics == {} and rec.error is None


@pytest.mark.parametrize("rec", [
    record(),
    record(status="failed", error="ValueError: bad shape (at x.py:3)", metrics={}),
    record(metrics={"a": 0.1, "b": 1e-300, "c": -2.5, "d": 123456789.123456789, "e": 0.0}),
], ids=["ok", "failed", "floats"])
def test_record_json_round_trip_preserves_everything(rec):
    text = rec.model_dump_json()
    back = Record.model_validate_json(text)
    assert back == rec
    assert back.model_dump() == rec.model_dump()
    assert back.id == back.config.id == rec.id
    for key, value in rec.config.hparams.items():  # types survive: bool stays bool, int stays int
        assert type(back.config.hparams[key]) is type(value), key
        assert back.config.hparams[key] == value
    assert back.metrics == rec.metrics
    assert back.model_dump_json() == text

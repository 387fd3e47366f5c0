"""Every plot kind writes a non-empty image, in each format, from a small committed records file."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mubench.cli.app import app
from mubench.errors import MubenchError
from mubench.harness.record import Record
from mubench.orchestration.store import Store
from mubench.results.plots import plot, plot_kinds

GOLDEN = Path(__file__).parent / "golden" / "records.jsonl"


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return [Record.model_validate_json(line) for line in GOLDEN.read_text().splitlines() if line.strip()]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@pytest.mark.parametrize("kind", plot_kinds.names())
def test_every_plot_kind_writes_a_png(kind, records, tmp_path):
    task = records[0].config.task
    scenario = records[0].config.scenario
    out = plot(kind, records, task, scenario, tmp_path / f"{kind}.png")
    width, height = png_size(out)
    assert out.stat().st_size > 5_000 and width > 300 and height > 200


@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_the_extension_picks_the_format(records, tmp_path, suffix, magic):
    out = plot("tradeoff", records, None, None, tmp_path / f"figure{suffix}")
    assert out.read_bytes().startswith(magic)


def test_bad_extension_and_empty_selection_are_clear_errors(records, tmp_path):
    with pytest.raises(MubenchError, match="png, .svg or .pdf"):
        plot("tradeoff", records, None, None, tmp_path / "figure.jpg")
    with pytest.raises(MubenchError, match="no successful records"):
        plot("tradeoff", records, "no_such_task", None, tmp_path / "figure.png")


def test_plot_command_reads_the_store(records, tmp_path):
    store = Store(tmp_path / "store.sqlite")
    for record in records:
        store.put(record)
    out = tmp_path / "cli.png"
    result = CliRunner().invoke(app, ["plot", "hypervolume", "--store", str(store.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 5_000


def with_cost(records: list[Record]) -> list[Record]:
    """The golden records with a cost/rte per run, as the harness records it (the golden file has none)."""
    return [r.model_copy(update={"metrics": {**r.metrics, "cost/rte": 0.5 if r.config.method == "tune" else 1.5}})
            for r in records]


def test_tradeoff_over_several_scenarios_draws_one_panel_per_cell(records, tmp_path):
    """Without --scenario (or --task) the trade-off used to crash in pandas (runs of two scenarios
    share (method, seed, hparams)); it now draws one panel per task x scenario, through the CLI too."""
    costly = with_cost(records)
    single = png_size(plot("tradeoff", costly, "golden", "s1", tmp_path / "one.png"))
    both = png_size(plot("tradeoff", costly, None, None, tmp_path / "both.png"))
    assert both[0] > 1.5 * single[0]  # two panels side by side
    store = Store(tmp_path / "store.sqlite")
    for record in costly:
        store.put(record)
    for extra in ([], ["--task", "golden"]):
        out = tmp_path / f"cli{len(extra)}.png"
        result = CliRunner().invoke(app, ["plot", "tradeoff", *extra, "--store", str(store.path), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert png_size(out)[0] > 1.5 * single[0]

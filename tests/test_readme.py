"""The README is real: its method example registers, runs on the debug task and forgets, and its
five-minute tour runs command by command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
from mubench.methods import methods
from mubench.tasks import tasks

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_method_example_registers_and_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path))
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "register_method" in b)
    exec(compile(example.replace('"my_neggrad"', '"test_readme_neggrad"'), "README.md", "exec"), {})
    cls = methods.get("test_readme_neggrad")
    config = RunConfig(task="debug", task_version=tasks.get("debug").spec.version, scenario="class_0", method=cls.name,
                       method_version=cls.version, hparams=dict(cls.resolve()), seed=0, profile="smoke")
    record = Harness().run(config)
    assert record.status == "ok", record.error
    identity = Harness().run(config.model_copy(update={"method": "identity", "hparams": {}}))
    assert record.metrics["forget/acc"] < identity.metrics["forget/acc"]


# ---- the five-minute tour ---------------------------------------------------------------------------

NOT_RUN = "(not run by the test)"


def tour_commands(text: str) -> list[list[str]]:
    """The tour's `mubench` commands, each as its arguments, in order (comments dropped; a line
    whose comment says it is not run, such as one that starts a server, is left out)."""
    section = text.split("## A five-minute tour", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block is not None, "the tour has no bash block"
    commands = []
    for line in block.group(1).splitlines():
        if NOT_RUN in line:
            continue
        command = shlex.split(line.split(" #", 1)[0])
        if command:
            assert command[0] == "mubench", f"the tour runs mubench commands only: {line}"
            commands.append(command[1:])
    return commands


def test_tour_commands_are_read_in_order_and_servers_are_left_out():
    text = "## A five-minute tour\n```bash\nmubench list methods  # x\n\nmubench leaderboard  # y (not run by the test)\nmubench results --task debug\n```\n"
    assert tour_commands(text) == [["list", "methods"], ["results", "--task", "debug"]]


def test_the_readme_tour_runs_as_written(tmp_path, monkeypatch):
    """Every command of the tour, in order, in a fresh folder and home: each exits 0 and leaves
    what the next one reads (records, a plot, a submission file that validates)."""
    from typer.testing import CliRunner

    from mubench.cli.app import app

    commands = tour_commands(README.read_text())
    assert len(commands) >= 8
    (tmp_path / "examples").symlink_to(README.parent / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.delenv("MUBENCH_SUBMISSIONS", raising=False)
    for command in commands:
        result = CliRunner().invoke(app, command, catch_exceptions=False)
        assert result.exit_code == 0, f"mubench {' '.join(command)}:\n{result.output}"
    assert (tmp_path / "tradeoff.png").stat().st_size > 1000
    assert (tmp_path / "my-submissions" / "my_method.json").is_file()

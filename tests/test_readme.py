"""The README's method example is real code: it registers, runs on the debug task and forgets."""

from __future__ import annotations

import re
from pathlib import Path

from mubench.methods import methods
from mubench.harness.record import RunConfig
from mubench.harness.runner import Harness
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

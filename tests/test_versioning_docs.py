"""docs/versioning.md's "Current values" paragraph against the code: every version constant it
states, and exactly the tasks and methods it names as exceptions to the common version."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from mubench.board.submission import SCHEMA_VERSION as SUBMISSION_SCHEMA
from mubench.continual.metrics import STREAM_METRICS_VERSION
from mubench.continual.runner import ORACLE_TRAINER_VERSION
from mubench.harness.training import TRAINER_VERSION
from mubench.metrics import METRICS_VERSION, MIA_SPEC_VERSION
from mubench.orchestration.store import SCHEMA_VERSION as STORE_SCHEMA
from mubench.tasks.adult import FEATURES_VERSION
from mubench.tasks.celeba import LOADER_VERSION
from mubench.tasks.cub import PREPARATION

DOC = Path(__file__).resolve().parents[1] / "docs" / "versioning.md"


def current_values() -> str:
    text = DOC.read_text()
    return " ".join(text[text.index("Current values:"):text.index("To find them again:")].split())


def sentence(paragraph: str, start: str) -> str:
    """The clause of `paragraph` from `start` to the next semicolon."""
    return paragraph[paragraph.index(start):].split(";")[0]


def test_the_stated_constants_are_the_codes():
    paragraph = current_values()
    for name, value in {"METRICS_VERSION": METRICS_VERSION, "MIA_SPEC_VERSION": MIA_SPEC_VERSION,
                        "STREAM_METRICS_VERSION": STREAM_METRICS_VERSION, "TRAINER_VERSION": TRAINER_VERSION,
                        "ORACLE_TRAINER_VERSION": ORACLE_TRAINER_VERSION, "LOADER_VERSION": LOADER_VERSION,
                        "FEATURES_VERSION": FEATURES_VERSION, "PREPARATION": PREPARATION}.items():
        assert f'`{name}` "{value}"' in paragraph, name
    assert f"store schema {STORE_SCHEMA}" in paragraph and f"submission schema {SUBMISSION_SCHEMA}" in paragraph
    text = " ".join(DOC.read_text().split())  # each constant's own section says it too
    assert f'`mubench/metrics/__init__.py`, now "{METRICS_VERSION}"' in text
    assert f'`mubench/metrics/membership.py`, now "{MIA_SPEC_VERSION}"' in text


BUILT_IN_VERSIONS = """
import json
from mubench.continual.methods import continual_methods
from mubench.methods import methods
from mubench.tasks import tasks
print(json.dumps({"every task": {n: tasks.get(n).spec.version for n in tasks.names()},
                  "every method": {n: methods.get(n).version for n in methods.names()},
                  "every continual method": {n: continual_methods.get(n).version for n in continual_methods.names()}}))
"""


def test_the_named_exceptions_are_exactly_those_of_the_registries():
    """Read in a fresh interpreter: other tests register tasks and methods of their own."""
    paragraph = current_values()
    cases = json.loads(subprocess.run([sys.executable, "-c", BUILT_IN_VERSIONS], capture_output=True, text=True,
                                      check=True).stdout)
    for start, versions in cases.items():
        clause = sentence(paragraph, start)
        common = re.match(r'[a-z ]+"([^"]+)"', clause).group(1)
        named = set(re.findall(r"`([a-z0-9_]+)`", clause))
        assert named == {name for name, version in versions.items() if version != common}, start
        for name in named:  # each exception's version follows its name in the clause
            assert re.search(rf'`{name}`[^"]*"{re.escape(versions[name])}"', clause), name

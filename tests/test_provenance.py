"""Every method that names the authors' code it follows (`Method.authors_code`) has a one-step
faithfulness test, `test_one_step_<method>` in a tests/test_one_step_*.py module, and a row in
docs/methods.md's provenance table naming the same repository and commit; a method built without
public code names none and is listed as reconstructed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import baselines  # noqa: F401 - registers every baseline
from mubench.continual.methods import continual_methods
from mubench.methods import methods

TESTS = Path(__file__).parent
DOCS = TESTS.parent / "docs" / "methods.md"


def one_step_tests() -> set[str]:
    names = set()
    for module in TESTS.glob("test_one_step_*.py"):
        for node in ast.parse(module.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_one_step_"):
                names.add(node.name.removeprefix("test_one_step_"))
    return names


def every_method() -> dict[str, type]:
    """The baselines' unlearning and stream methods by name (stream methods as "stream <name>", as
    the docs list them); methods other tests register in the same run are not the benchmark's."""
    found: dict[str, type] = {name: methods.get(name) for name in methods.names()}
    found.update({f"stream {name}": continual_methods.get(name) for name in continual_methods.names()})
    return {name: cls for name, cls in found.items() if cls.__module__.startswith("baselines.")}


def with_code() -> dict[str, str]:
    return {name: cls.authors_code for name, cls in every_method().items() if cls.authors_code}


def provenance_rows() -> dict[str, str]:
    text = DOCS.read_text()
    table = text[text.index("## Provenance"):]
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| `([\w ]+)` \|.*$", table, re.MULTILINE)}


def test_every_method_with_authors_code_has_a_one_step_test():
    missing = sorted({name.removeprefix("stream ") for name in with_code()} - one_step_tests())
    assert not missing, f"no test_one_step_<method> in tests/test_one_step_*.py for: {missing}"


def test_one_step_tests_name_registered_methods():
    assert one_step_tests() <= set(methods.names()) | set(continual_methods.names())


def test_the_provenance_table_names_each_methods_code():
    rows = provenance_rows()
    assert set(every_method()) <= set(rows), sorted(set(every_method()) - set(rows))
    for name, code in with_code().items():
        pinned = re.findall(r"[\w.-]+/[\w.-]+@[0-9a-f]{7}", code)  # owner/repository@commit
        assert pinned, f"{name}.authors_code names no owner/repository@commit: {code!r}"
        for repository in pinned:
            assert repository in rows[name], (name, repository, rows[name])

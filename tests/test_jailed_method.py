"""`mubench submit` reads a method file in the jail (mubench.orchestration.jailed_method): the
file's module-level code never runs in the driver, the driver gets a validated description and a
stand-in class, and every run of the stand-in goes to the jail.

The two tests that start jails are in the slow tier (about 5 s per jail). Needs bubblewrap: skipped with the reason where it is missing, a failure under
MUBENCH_REQUIRE_JAIL=1 (set by .ci/run).
"""

from __future__ import annotations

import os
import textwrap

import pytest

import mubench.metrics
from helpers import require_jail
from mubench.access import Access
from mubench.errors import MubenchError
from mubench.methods import Method
from mubench.orchestration.jailed_method import MethodDescription, stand_in
from mubench.orchestration.sandbox import describe_in_jail, method_source
from mubench.tasks import tasks

HOSTILE = '''
    """A method whose module-level code attacks whichever process imports it."""
    import os
    import mubench.metrics

    def _forged(*args, **kwargs):
        return {"forget/acc": 0.0}

    mubench.metrics.compute_metrics = _forged  # every gap of its records would be 0
    os.environ["MUBENCH_PWNED"] = "1"
    try:
        open(PLANT, "w").write("planted by module-level code")
    except OSError:
        pass

    from mubench.methods import Access, Method


    class Quiet(Method):
        """Returns the original (Warnecke et al. 2023 call this the identity baseline)."""
        name = "jm_quiet"
        access = Access.RETAIN
        version = "3"
        space = {"lr": (0.01, [0.001, 0.01]), "epochs": (2, [1, 2])}
        profile_defaults = {"standard": {"epochs": 5}}
        targets = frozenset({"class"})
        def unlearn(self, model, request, hp):
            return model


    class NotAMethod:
        """Not a Method."""
'''


@pytest.fixture(scope="module")
def jail_ready() -> None:
    require_jail()


@pytest.fixture(scope="module")
def hostile_file(tmp_path_factory):
    base = tmp_path_factory.mktemp("jailed-method")
    plant = base / "planted.txt"
    source = base / "hostile.py"
    source.write_text(f"PLANT = {str(plant)!r}\n" + textwrap.dedent(HOSTILE))
    return source, plant


@pytest.mark.slow
def test_describing_a_file_runs_none_of_its_code_in_the_driver(jail_ready, hostile_file):
    source, plant = hostile_file
    original = mubench.metrics.compute_metrics
    cls, path, problems = describe_in_jail(f"{source}:Quiet")
    assert problems == [] and path == source
    assert mubench.metrics.compute_metrics is original  # the record builder is the harness's own
    assert "MUBENCH_PWNED" not in os.environ and not plant.exists()
    # what the driver knows of the method, as data: enough for sweeps, records and submissions
    assert issubclass(cls, Method) and cls.__name__ == "Quiet" and cls.name == "jm_quiet"
    assert cls.access is Access.RETAIN and cls.version == "3"
    assert cls.resolve(profile="standard") == {"lr": 0.01, "epochs": 5}
    assert cls.inapplicable(tasks.get("metr_la").spec) is not None  # a regression task: its targets say no
    assert cls.inapplicable(tasks.get("debug").spec) is None
    assert cls.source_digest() and method_source is not None
    with pytest.raises(MubenchError, match="runs only in the sandbox's jail"):
        cls().unlearn(None, None, {})


@pytest.mark.slow
def test_a_class_that_is_no_method_is_a_problem_named_with_the_file(jail_ready, hostile_file):
    source, _ = hostile_file
    cls, _, problems = describe_in_jail(f"{source}:NotAMethod")
    assert cls is None and len(problems) == 1
    assert problems[0].startswith(str(source)) and "not a subclass of mubench.methods.Method" in problems[0]
    _, _, missing = describe_in_jail(f"{source}:Nowhere")
    assert missing == [f"{source}: no class 'Nowhere' in it"]  # the jail's path never shows


def test_a_stand_in_runs_in_the_jail_by_its_file(tmp_path):
    """No jail needed: the stand-in names its file for the sandbox's child."""
    source = tmp_path / "m.py"
    source.write_text("# the method\n")
    description = MethodDescription(class_name="Mine", name="jm_mine", doc="Mine.", access=Access.FORGET,
                                    space={"lr": (0.1, [0.1, 0.2])}, inapplicable={"adult": "no"})
    cls = stand_in(description, source)
    assert cls.jailed_source == f"{source.resolve()}:Mine"
    assert cls.inapplicable(tasks.get("adult").spec) == "no"
    assert cls.space == {"lr": (0.1, [0.1, 0.2])} and cls.defaults() == {"lr": 0.1}


def test_a_description_out_of_bounds_is_refused():
    with pytest.raises(ValueError):
        MethodDescription(class_name="X", space={"lr": ("a", "not a list")})
    with pytest.raises(ValueError):
        MethodDescription(class_name="X", doc="x" * 30_000)
    with pytest.raises(ValueError):
        MethodDescription(class_name="X", kind="record")

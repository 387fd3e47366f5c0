"""A submitted method as the driver knows it without importing it: a description read in the
jail, and a stand-in class built from it.

Importing a method's file runs its module-level code, so `mubench submit` never imports it in
the driver: the sandbox's child loads the file in the jail (`describe`) and sends back what the
driver needs as data (`MethodDescription`: name, access level, hyper-parameter space, version,
texts, and for every registered task whether the method applies), which pydantic validates. The
driver then registers `stand_in(description, file)`, a `Method` subclass with those attributes
whose `unlearn` refuses to run: sweeps, tuning, record identities (the file's sha256) and
submissions read it like any method, and every run of it goes to the jail, which imports the
real class there (mubench.orchestration.sandbox.method_source names the file).

What the stand-in cannot carry is code: its `check` accepts every setting (the real class's
`check` runs in the jail, before `unlearn`, and a refused setting is a failed run) and its
`inapplicable` answers from the description's per-task reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mubench.access import Access
from mubench.errors import MubenchError
from mubench.hashing import sha256_file
from mubench.methods import HParams, HParamValue, Method, class_problems

MAX_TEXT = 20_000  # a docstring longer than this is no description


class MethodDescription(BaseModel):
    """What the jailed child read from a method class: plain data, validated here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(default="description", pattern="^description$")
    class_name: str = Field(min_length=1, max_length=200)
    problems: list[str] = Field(default_factory=list, max_length=50)  # what the child found wrong
    name: str = Field(default="", max_length=200)
    doc: str = Field(default="", max_length=MAX_TEXT)
    version: str = Field(default="1", max_length=200)
    paper: str = Field(default="", max_length=2000)
    authors: list[str] = Field(default_factory=list, max_length=100)
    access: Access = Access.FORGET
    space: dict[str, tuple[HParamValue, list[HParamValue]]] = Field(default_factory=dict)
    intensity: str | None = None
    mixed_precision: bool = True
    targets: list[str] = Field(default_factory=lambda: ["class", "regression"])
    profile_defaults: dict[str, dict[str, HParamValue]] = Field(default_factory=dict)
    abstract: bool = False
    inapplicable: dict[str, str] = Field(default_factory=dict)  # task name -> why the method does not apply


def describe(cls: object) -> MethodDescription:
    """The description of a loaded class (in the jail): its static problems (`class_problems`,
    all of them, as `mubench submit` lists them), else its attributes; what cannot be described
    is a problem too."""
    import inspect

    from mubench.tasks.base import tasks

    name = getattr(cls, "__name__", None) or type(cls).__name__
    problems = [problem[:2000] for problem in class_problems(cls)][:50]
    if problems or not (isinstance(cls, type) and issubclass(cls, Method)):
        return MethodDescription(class_name=str(name)[:200], problems=problems)
    space: dict[str, Any] = {str(key): entry for key, entry in cls.space.items()}
    inapplicable = {}
    for task_name in tasks.names():
        try:
            reason = cls.inapplicable(tasks.get(task_name).spec)
        except Exception as exc:  # noqa: BLE001 - the method's code: its failure is a problem, reported
            problems.append(f"inapplicable({task_name}) raised {type(exc).__name__}: {exc}"[:300])
            continue
        if reason is not None:
            inapplicable[task_name] = str(reason)
    fields = {"class_name": cls.__name__, "problems": problems, "name": cls.name or "", "doc": cls.__doc__ or "",
              "version": str(cls.version), "paper": cls.paper, "authors": list(getattr(cls, "authors", ())),
              "access": cls.access, "space": space, "intensity": cls.intensity,
              "mixed_precision": cls.mixed_precision, "targets": sorted(cls.targets),
              "profile_defaults": cls.profile_defaults, "abstract": inspect.isabstract(cls),
              "inapplicable": inapplicable}
    try:
        return MethodDescription.model_validate(fields)
    except ValueError as exc:
        return MethodDescription(class_name=cls.__name__[:200], problems=[*problems, f"the class's attributes: {exc}"[:2000]])


def stand_in(description: MethodDescription, path: Path) -> type[Method]:
    """A Method subclass with the description's attributes, for the driver (see the module
    docstring). `jailed_source` is the `file:Class` the sandbox's child loads."""
    digest = sha256_file(path)
    reasons = dict(description.inapplicable)

    def unlearn(self: Method, model: object, request: object, hp: HParams) -> Any:
        raise MubenchError(f"{description.class_name} is a submitted method: it runs only in the sandbox's jail "
                           "(mubench run --isolate, mubench submit)")

    def inapplicable(cls: type[Method], spec: Any) -> str | None:
        if spec.name in reasons:
            return reasons[spec.name]
        return Method.inapplicable.__func__(cls, spec)  # type: ignore[attr-defined]

    attributes: dict[str, Any] = {
        "__doc__": description.doc, "__module__": "mubench_jailed", "__qualname__": description.class_name,
        "name": description.name, "version": description.version, "paper": description.paper,
        "authors": tuple(description.authors), "access": description.access,
        "space": {key: (default, list(values)) for key, (default, values) in description.space.items()},
        "intensity": description.intensity, "mixed_precision": description.mixed_precision,
        "targets": frozenset(description.targets), "profile_defaults": description.profile_defaults,
        "jailed_source": f"{path.resolve()}:{description.class_name}", "unlearn": unlearn,
        "inapplicable": classmethod(inapplicable), "source_digest": classmethod(lambda cls: digest),
    }
    if description.abstract:
        del attributes["unlearn"]
    return type(description.class_name, (Method,), attributes)

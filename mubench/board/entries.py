"""What a leaderboard entry is built from: the checks a submitted method class must pass before
anything runs (interface, name, access, space, docstring, a smoke run on the debug task), its
description for the entry, and the baselines' own entries (`mubench leaderboard-data`).
"""

from __future__ import annotations

import inspect
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mubench.board.submission import MethodInfo, Submission
from mubench.errors import MubenchError
from mubench.hashing import sha256_file
from mubench.methods import Method, class_problems, methods, register_method

if TYPE_CHECKING:
    from mubench.orchestration.sandbox import Limits


def method_problems(cls: object) -> list[str]:
    """Every static problem of a submitted class (nothing is run): `class_problems`, then its
    name against the registry, where it is registered when it has no problem."""
    problems = class_problems(cls)
    if problems or not isinstance(cls, type):
        return problems
    name = cls.name  # type: ignore[attr-defined]
    if name and name in methods and methods.get(name) is not cls:
        problems.append(f"method name {name!r} is already registered by {methods.get(name)!r}; choose another")
    if not problems and name not in methods:
        try:
            register_method(name)(cls)  # type: ignore[arg-type]
        except (ValueError, TypeError, MubenchError) as exc:
            problems.append(str(exc))
    return problems


def smoke_problems(cls: type[Method], limits: Limits | None = None) -> list[str]:
    """A run on the debug task at the method's defaults must succeed (in a child process under `limits`, if given)."""
    from mubench.harness.record import RunConfig
    from mubench.harness.runner import Harness
    from mubench.tasks.base import tasks

    try:
        config = RunConfig(task="debug", task_version=tasks.get("debug").spec.version, scenario="class_0",
                           method=cls.name, method_version=str(cls.version), hparams=dict(cls.resolve()), seed=0,
                           profile="smoke")
    except (MubenchError, ValueError) as exc:
        return [f"hyper-parameters: {exc}"]
    if limits is not None:
        from mubench.orchestration.sandbox import run_in_sandbox

        record = run_in_sandbox(Harness(), config, limits)
    else:
        record = Harness().run(config)
    return [] if record.status == "ok" else [f"smoke run on the debug task failed: {record.error}"]


def method_info(cls: type[Method], path: Path, authors: list[str], profile: str | None = None) -> MethodInfo:
    """The submission's description of `cls`; its hyper-parameters are the defaults of the suite's `profile`."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    return MethodInfo(method=cls.name, version=str(cls.version), authors=authors or list(getattr(cls, "authors", ())),
                      paper=cls.paper, description=doc, source_file=path.name, class_name=cls.__name__,
                      source_sha256=sha256_file(path), access=cls.access, hparams=dict(cls.resolve(profile=profile)),
                      intensity=cls.intensity)


# ---- the baselines' own entries (`mubench leaderboard-data`, `make leaderboard-data`) ---------------

BASELINE_PACKAGE = "baselines"
BASELINE_AUTHORS = ("mubench baselines",)


def baseline_methods() -> list[type[Method]]:
    """The unlearning methods of the installed `baselines` package, by name. Its continual methods
    (`baselines.continual`) belong to the stream harness (`mubench stream`), have no suite of
    this kind and no submission format, and are left out."""
    return [cls for _, cls in methods.items()
            if cls.__module__.split(".")[0] == BASELINE_PACKAGE and cls.__module__ != f"{BASELINE_PACKAGE}.continual"]


def first_paragraph(text: str) -> str:
    """The first paragraph of a docstring, on one line."""
    return " ".join(inspect.cleandoc(text).split("\n\n")[0].split())


def baseline_info(cls: type[Method], profile: str | None = None) -> MethodInfo:
    """A baseline's MethodInfo, read from its class and module: source file `baselines/<module>.py`
    and its sha256, the class's version and `paper` (the baselines' citation convention), the first
    paragraph of the class docstring (else of the module's, where the baselines describe
    themselves) as description, the authors "mubench baselines", and the defaults of `profile`."""
    source = inspect.getsourcefile(cls)
    if source is None:
        raise MubenchError(f"baseline {cls.name!r}: {cls.__module__} has no Python source file")
    path = Path(source)
    package_root = Path(sys.modules[BASELINE_PACKAGE].__file__ or path).resolve().parent.parent
    try:
        shown = path.resolve().relative_to(package_root).as_posix()
    except ValueError:
        shown = path.name
    doc = cls.__doc__ or sys.modules[cls.__module__].__doc__ or ""
    return MethodInfo(method=cls.name, version=str(cls.version), authors=list(BASELINE_AUTHORS), paper=cls.paper,
                      description=first_paragraph(doc), source_file=shown, class_name=cls.__name__,
                      source_sha256=sha256_file(path), access=cls.access, hparams=dict(cls.resolve(profile=profile)),
                      intensity=cls.intensity)


def write_replacing(submission: Submission, folder: Path) -> Path:
    """Write `<folder>/<method>.json` atomically (a temporary file renamed over it), replacing any file there."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{submission.method}.json"
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=folder, prefix=f".{submission.method}.",
                                         suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(submission.model_dump_json(indent=1) + "\n")
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path

"""`mubench submit`, `mubench validate` and `mubench schema`: leaderboard submissions (mubench.submission).

`submit path/to/file.py:ClassName` loads the class from the file, checks it (interface, name,
hyper-parameter space, declared access, a smoke run on the debug task) and reports every problem
at once; then runs the suite through the harness, stores the records and writes a verified
submission file. Registered on the main app by an import at the end of mubench/cli.py.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from mubench import paths
from mubench.cli_options import StoreOption
from mubench.errors import MubenchError
from mubench.hashing import sha256_file
from mubench.methods import Access, Method, methods, register_method
from mubench.submission import (METHOD_NAME, MethodInfo, SubmissionError, build_submission, check_submission,
                                schema_json, submissions_folder, write_submission)

SCHEMA_PATH = Path("leaderboard") / "submission.schema.json"
OutOption = Annotated[Optional[Path], typer.Option("--out", help="submissions folder (default: $MUBENCH_SUBMISSIONS or leaderboard/submissions)")]


def load_method_class(spec: str) -> tuple[type[Method] | None, Path | None, list[str]]:
    """(the class, its source file, problems) for 'path/to/file.py:ClassName'."""
    file_part, _, class_name = spec.rpartition(":")
    if not file_part or not class_name:
        return None, None, [f"{spec!r}: expected path/to/file.py:ClassName"]
    path = Path(file_part)
    if not path.is_file():
        return None, None, [f"{path}: no such file"]
    module_name = f"mubench_submission_{sha256_file(path)[:16]}"  # same content: same module, registered once
    module = sys.modules.get(module_name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            return None, path, [f"{path}: not a Python file"]
        module = importlib.util.module_from_spec(loader_spec)
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:  # the user's code: any error is a problem to report, not a crash
            return None, path, [f"{path}: importing it raised {type(exc).__name__}: {exc}"]
        sys.modules[module_name] = module
    cls = getattr(module, class_name, None)
    if cls is None:
        return None, path, [f"{path}: no class {class_name!r} in it"]
    return cls, path, []


def method_problems(cls: object) -> list[str]:
    """Every static problem of a submitted class (nothing is run)."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        return [f"{cls!r} is not a subclass of mubench.methods.Method"]
    problems = []
    if inspect.isabstract(cls):
        problems.append(f"{cls.__name__} does not implement unlearn(model, request, hp)")
    name = cls.name
    if not name:
        problems.append(f"{cls.__name__} has no name: decorate it with @register_method(\"my_method\")")
    elif not re.fullmatch(METHOD_NAME, name):
        problems.append(f"method name {name!r} must match {METHOD_NAME} (lower-case letters, digits, '_')")
    if not isinstance(cls.access, Access):
        problems.append(f"access must be a mubench.methods.Access (FORGET, RETAIN, UNSEEN or COUNTERFACTUAL), not {cls.access!r}")
    for key, entry in cls.space.items():
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], list)):
            problems.append(f"space[{key!r}] must be (default, [sweep values])")
    if cls.intensity is not None and cls.intensity not in cls.space:
        problems.append(f"intensity {cls.intensity!r} is not in its space ({', '.join(cls.space) or 'empty'})")
    if not (cls.__doc__ or "").strip():
        problems.append(f"{cls.__name__} has no docstring: say what it does and cite its paper")
    texts = {"docstring": cls.__doc__ or "", "version": str(cls.version), "paper": cls.paper,
             "authors": " ".join(getattr(cls, "authors", ()))}
    problems += [f"{what} contains '<' or '>': texts are plain text, HTML is refused"
                 for what, text in texts.items() if re.search("[<>]", text)]
    if name and name in methods and methods.get(name) is not cls:
        problems.append(f"method name {name!r} is already registered by {methods.get(name)!r}; choose another")
    if not problems and name not in methods:
        try:
            register_method(name)(cls)
        except (ValueError, TypeError, MubenchError) as exc:
            problems.append(str(exc))
    return problems


def smoke_problems(cls: type[Method]) -> list[str]:
    """A run on the debug task at the method's defaults must succeed."""
    from mubench.record import RunConfig
    from mubench.runner import Harness
    from mubench.tasks.base import tasks

    try:
        config = RunConfig(task="debug", task_version=tasks.get("debug").spec.version, scenario="class_0",
                           method=cls.name, method_version=str(cls.version), hparams=dict(cls.resolve()), seed=0,
                           profile="smoke")
    except (MubenchError, ValueError) as exc:
        return [f"hyper-parameters: {exc}"]
    record = Harness().run(config)
    return [] if record.status == "ok" else [f"smoke run on the debug task failed: {record.error}"]


def method_info(cls: type[Method], path: Path, authors: list[str]) -> MethodInfo:
    doc = inspect.cleandoc(cls.__doc__ or "")
    return MethodInfo(method=cls.name, version=str(cls.version), authors=authors or list(getattr(cls, "authors", ())),
                      paper=cls.paper, description=doc, source_file=path.name, class_name=cls.__name__,
                      source_sha256=sha256_file(path), access=cls.access, hparams=dict(cls.resolve()),
                      intensity=cls.intensity)


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise MubenchError(f"--seeds {text!r}: expected integers separated by commas, e.g. 0,1,2") from None


def submit(
    target: Annotated[str, typer.Argument(help="path/to/file.py:ClassName", metavar="FILE.py:CLASS")],
    suite: Annotated[str, typer.Option("--suite", help="the preset grid to run (e.g. quick)")] = "quick",
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="seeds, e.g. 0,1,2 (default: the suite's)")] = None,
    sweep: Annotated[bool, typer.Option("--sweep", help="sweep the hyper-parameters (axes) and report hypervolumes")] = False,
    task: Annotated[Optional[list[str]], typer.Option("--task", help="restrict the suite to these tasks (repeatable)")] = None,
    author: Annotated[Optional[list[str]], typer.Option("--author", help="author (repeatable; default: the class's `authors`)")] = None,
    folder: OutOption = None,
    store: StoreOption = None,
) -> None:
    """Check a method, run the suite on it through the harness, and write its verified submission file."""
    from mubench.cli import _check_data, _run_with_progress, _tasks_with_data, err, out  # noqa: F401
    from mubench.runner import Harness
    from mubench.store import Store
    from mubench.sweep import GridSpec, expand_grid

    cls, path, problems = load_method_class(target)
    if not problems:
        problems = method_problems(cls)
    if not problems:
        problems = smoke_problems(cls)  # type: ignore[arg-type]
    if problems:
        raise SubmissionError(f"{target}: {len(problems)} problem(s):\n" + "\n".join(f"- {p}" for p in problems))
    assert cls is not None and path is not None
    destination = submissions_folder(folder) / f"{cls.name}.json"
    if destination.exists():
        raise SubmissionError(f"{destination} already exists; nothing was run or overwritten. Remove it to resubmit")
    grid = GridSpec.from_suite(suite)
    grid.methods, grid.sweep = [cls.name], "axes" if sweep else None
    grid.seeds = _parse_seeds(seeds) or grid.seeds
    grid.tasks = task or _tasks_with_data(grid.tasks)
    if task and isinstance(grid.scenarios, dict):  # a task outside the suite runs all its scenarios
        grid.scenarios = {name: grid.scenarios[name] for name in task if name in grid.scenarios} or None
    configs = expand_grid(grid)
    _check_data(list(grid.tasks))
    result_store = Store(store or paths.default_store())
    records = _run_with_progress(configs, result_store, Harness(device="cpu"), False)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    submission = build_submission(records, method_info(cls, path, list(author or [])), suite=suite,
                                  seeds=grid.seeds, sweep=grid.sweep, verified=True, created_at=created)
    written = write_submission(submission, folder)
    out.print(f"wrote {escape(str(written))} (verified; {len(submission.results)} task x scenario results, "
              f"{len(submission.failures)} failed runs)", highlight=False, soft_wrap=True)


def validate(
    file: Annotated[Path, typer.Argument(help="a submission file", metavar="FILE.json")],
    folder: OutOption = None,
    store: StoreOption = None,
) -> None:
    """Check a submission file: schema, registry (task versions, split ids), metric ranges, duplicates."""
    from mubench.cli import _check_data, _run_with_progress, _tasks_with_data, err, out  # noqa: F401
    result = check_submission(file, folder, store)
    for note in result.notes:
        err.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    if result.problems:
        err.print(f"{escape(str(file))}: {len(result.problems)} problem(s)", highlight=False, soft_wrap=True)
        for problem in result.problems:
            err.print(f"- {escape(problem)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    assert result.submission is not None
    state = "verified" if result.submission.verified else "self-reported"
    out.print(f"OK {escape(str(file))} ({result.submission.method}, {state})", highlight=False, soft_wrap=True)


def schema(
    check: Annotated[bool, typer.Option("--check", help="exit 1 if the committed schema differs from the model's")] = False,
    target: Annotated[Path, typer.Option("--path", help="where the schema lives")] = SCHEMA_PATH,
) -> None:
    """Write the submission file's JSON schema (generated from mubench.submission.Submission)."""
    from mubench.cli import _check_data, _run_with_progress, _tasks_with_data, err, out  # noqa: F401
    text = schema_json()
    if check:
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            err.print(f"stale: {escape(str(target))}; regenerate with `mubench schema`", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        out.print(f"{escape(str(target))} is up to date", highlight=False)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    out.print(f"wrote {escape(str(target))}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `submit`, `validate` and `schema` to the main app (mubench/cli.py calls this)."""
    for command in (submit, validate, schema):
        app.command()(command)

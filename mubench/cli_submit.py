"""`mubench submit`, `mubench validate` and `mubench schema`: leaderboard submissions (mubench.submission).

`submit path/to/file.py:ClassName` loads the class from the file, checks it (interface, name,
hyper-parameter space, declared access, a smoke run on the debug task) and reports every problem
at once; then runs the suite through the harness, stores the records and writes a verified
submission file. `submit --entry-point NAME` does the same for a method an installed package
publishes under the entry-point group `mubench.methods`.

`leaderboard-data` writes the baselines' own entries the same way (missing runs of the suite
first, then one verified file per baseline; `--replace` rewrites them atomically) and regenerates
the README's leaderboard block; `make leaderboard-data` runs it on the quick suite.
Registered on the main app by an import at the end of mubench/cli.py.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import os
import re
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from mubench import paths
from mubench.cli_options import StoreOption
from mubench.errors import MubenchError
from mubench.hashing import sha256_file
from mubench.methods import Access, Method, methods, register_method
from mubench.submission import (METHOD_NAME, MethodInfo, Submission, SubmissionError, build_submission,
                                check_submission, schema_json, submissions_folder, write_submission)

if TYPE_CHECKING:
    from mubench.sandbox import Limits

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


ENTRY_POINT_GROUP = "mubench.methods"


def load_entry_point_method(name: str) -> tuple[type[Method] | None, Path | None, list[str]]:
    """(the class, its source file, problems) for a method an installed package publishes under
    the entry-point group `mubench.methods` (issue 7). An entry point may name a class
    (`pkg.module:MyMethod`, matched by the entry point's name or the class's method name) or a
    module (`pkg`: importing it registers its methods; matched by method name among the classes of
    that module and its already imported submodules)."""
    found: dict[type, str] = {}
    errors: list[str] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as exc:  # another package's code: report it only if nothing is found
            errors.append(f"entry point {ep.name} = {ep.value}: loading it raised {type(exc).__name__}: {exc}")
            continue
        if inspect.isclass(loaded):
            if getattr(loaded, "name", None) == name or ep.name == name:
                found[loaded] = ep.value
            continue
        if inspect.ismodule(loaded):
            for cls in _method_classes_under(loaded.__name__):
                if cls.name == name:
                    found[cls] = ep.value
    if not found:
        names = sorted(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        return None, None, [f"no installed package publishes a method {name!r} under the entry-point group "
                            f"{ENTRY_POINT_GROUP!r} (entry points: {', '.join(names) or 'none'})"] + errors
    if len(found) > 1:
        return None, None, [f"method {name!r} is published by several entry points: "
                            + ", ".join(f"{value} ({cls.__module__}.{cls.__qualname__})" for cls, value in found.items())]
    cls = next(iter(found))
    source = inspect.getsourcefile(cls)
    if source is None:
        return None, None, [f"{cls.__module__}.{cls.__qualname__}: no Python source file (its sha256 goes in the entry)"]
    return cls, Path(source), []


def _method_classes_under(package: str) -> list[type[Method]]:
    """The Method subclasses defined in module `package` and its imported submodules."""
    classes = []
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == package or module_name.startswith(package + ".")):
            continue
        classes += [obj for obj in vars(module).values() if inspect.isclass(obj) and issubclass(obj, Method)
                    and obj is not Method and obj.__module__ == module_name]
    return classes


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


def smoke_problems(cls: type[Method], limits: Limits | None = None) -> list[str]:
    """A run on the debug task at the method's defaults must succeed (in a child process under `limits`, if given)."""
    from mubench.record import RunConfig
    from mubench.runner import Harness
    from mubench.tasks.base import tasks

    try:
        config = RunConfig(task="debug", task_version=tasks.get("debug").spec.version, scenario="class_0",
                           method=cls.name, method_version=str(cls.version), hparams=dict(cls.resolve()), seed=0,
                           profile="smoke")
    except (MubenchError, ValueError) as exc:
        return [f"hyper-parameters: {exc}"]
    if limits is not None:
        from mubench.sandbox import run_isolated

        record = run_isolated(config, limits)
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


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise MubenchError(f"--seeds {text!r}: expected integers separated by commas, e.g. 0,1,2") from None


def submit(
    target: Annotated[Optional[str], typer.Argument(help="path/to/file.py:ClassName", metavar="FILE.py:CLASS")] = None,
    entry_point: Annotated[Optional[str], typer.Option("--entry-point", help="instead of a file: the name of a method an installed package publishes under the entry-point group mubench.methods")] = None,
    suite: Annotated[str, typer.Option("--suite", help="the preset grid to run (e.g. quick)")] = "quick",
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="seeds, e.g. 0,1,2 (default: the suite's)")] = None,
    sweep: Annotated[bool, typer.Option("--sweep", help="sweep the hyper-parameters (axes) and report hypervolumes")] = False,
    task: Annotated[Optional[list[str]], typer.Option("--task", help="restrict the suite to these tasks (repeatable)")] = None,
    author: Annotated[Optional[list[str]], typer.Option("--author", help="author (repeatable; default: the class's `authors`)")] = None,
    folder: OutOption = None,
    store: StoreOption = None,
    isolate: Annotated[bool, typer.Option("--isolate/--no-isolate", help="run the method in child processes under the limits below (default: isolated)")] = True,
    time_limit: Annotated[float, typer.Option("--time-limit", min=0.001, help="seconds each run's method and evaluation may take")] = 3600.0,
    memory_limit: Annotated[Optional[int], typer.Option("--memory-limit", min=1, help="MB of address space the method may add")] = 16384,
) -> None:
    """Check a method, run the suite on it through the harness, and write its verified submission file."""
    from mubench.cli import _check_data, _run_with_progress, _tasks_with_data, err, out  # noqa: F401
    from mubench.runner import Harness
    from mubench.store import Store
    from mubench.sweep import GridSpec, expand_grid

    from mubench.sandbox import Limits

    limits = Limits(time_limit_s=time_limit, memory_limit_mb=memory_limit) if isolate else None
    if (target is None) == (entry_point is None):
        raise SubmissionError("name the method either as FILE.py:CLASS or with --entry-point NAME (one of the two)")
    cls, path, problems = load_entry_point_method(entry_point) if entry_point else load_method_class(target or "")
    target = target or f"entry point method {entry_point!r}"
    if not problems:
        problems = method_problems(cls)
    if not problems:
        problems = smoke_problems(cls, limits)  # type: ignore[arg-type]
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
    records = _run_with_progress(configs, result_store, Harness(device="cpu"), False, "local", limits)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    submission = build_submission(records, method_info(cls, path, list(author or []), grid.profile), suite=suite,
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


def leaderboard_data(
    suite: Annotated[str, typer.Option("--suite", help="the preset grid to run (quick on a CPU; standard on a GPU)")] = "quick",
    folder: OutOption = None,
    store: StoreOption = None,
    replace_: Annotated[bool, typer.Option("--replace", help="replace the baselines' existing entries (each atomically)")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, or auto")] = "cpu",
    readme: Annotated[Optional[Path], typer.Option("--readme", help="README whose leaderboard block is regenerated afterwards")] = Path("README.md"),
    no_readme: Annotated[bool, typer.Option("--no-readme", help="leave the README alone")] = False,
) -> None:
    """Run a suite for every baseline (missing runs only) and write each one's verified entry."""
    from mubench.cli import _check_data, _check_device, _run_with_progress, _tasks_with_data, err, out
    from mubench.cli_board import readme_block, replace_readme_block
    from mubench.runner import Harness
    from mubench.store import Store
    from mubench.sweep import GridSpec, expand_grid

    baselines = {cls.name: cls for cls in baseline_methods()}
    if not baselines:
        raise MubenchError(f"no method of the {BASELINE_PACKAGE!r} package is registered: is it installed (pip install -e .)?")
    grid = GridSpec.from_suite(suite)
    names = [name for name in (grid.methods or baselines) if name in baselines]
    if not names:
        raise MubenchError(f"suite {suite!r} runs no baseline method")
    grid.methods = names
    target = submissions_folder(folder)
    existing = [target / f"{name}.json" for name in names if (target / f"{name}.json").exists()]
    if existing and not replace_:
        raise SubmissionError(f"{len(existing)} entr{'y' if len(existing) == 1 else 'ies'} already exist "
                              f"({', '.join(str(p) for p in existing)}); nothing was run or overwritten. "
                              f"Pass --replace to regenerate them")
    if readme is not None and not no_readme and not readme.is_file():
        raise MubenchError(f"{readme}: no such file, so its leaderboard block cannot be regenerated; run from the "
                           f"checkout, or pass --readme PATH or --no-readme")
    _check_device(device)
    grid.tasks = _tasks_with_data(grid.tasks)
    configs = expand_grid(grid)
    _check_data(list(grid.tasks))
    result_store = Store(store or paths.default_store())
    records = _run_with_progress(configs, result_store, Harness(device=device), False)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    built, refused = [], []
    for name in names:
        try:
            built.append(build_submission(records, baseline_info(baselines[name], grid.profile), suite=suite,
                                          seeds=grid.seeds, sweep=None, verified=True, created_at=created))
        except SubmissionError as exc:
            refused.append(str(exc))
    for submission in built:  # every entry is built before the first one is written
        path = write_replacing(submission, target) if replace_ else write_submission(submission, target)
        out.print(f"wrote {escape(str(path))} ({len(submission.results)} task x scenario results, "
                  f"{len(submission.failures)} failed runs)", highlight=False, soft_wrap=True)
    for message in refused:
        err.print(f"[red]not written[/red] {escape(message)}", highlight=False, soft_wrap=True)
    if readme is not None and not no_readme:
        text = replace_readme_block(readme.read_text(encoding="utf-8"), readme_block(target), str(readme))
        staged = readme.with_name(f".{readme.name}.tmp")
        staged.write_text(text, encoding="utf-8")
        os.replace(staged, readme)
        out.print(f"updated the leaderboard block of {escape(str(readme))}", highlight=False, soft_wrap=True)
    err.print(f"{len(built)} baseline entries written to {target}, {len(refused)} not written; "
              f"{len(records)} runs, store: {result_store.path}", highlight=False, soft_wrap=True)
    if refused:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `submit`, `validate`, `schema` and `leaderboard-data` to the main app (mubench/cli.py calls this)."""
    for command in (submit, validate, schema):
        app.command()(command)
    app.command("leaderboard-data")(leaderboard_data)

"""A method class from where a user keeps it: a file (`path/to/file.py:ClassName`) or an
installed package's entry point (group `mubench.methods`).

Used by `mubench submit` to load a submission and by the sandbox's child process to load the same
class again, so both see one class under one module name (a file's module is named by the
sha256 of its content: the same file is one module, registered once).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import sys
from pathlib import Path

from mubench.hashing import sha256_file
from mubench.methods import Method

ENTRY_POINT_GROUP = "mubench.methods"


def load_method_class(spec: str) -> tuple[type[Method] | None, Path | None, list[str]]:
    """(the class, its source file, problems) for 'path/to/file.py:ClassName'."""
    path, class_name, problems = parse_method_spec(spec)
    if problems:
        return None, None, problems
    assert path is not None
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


def parse_method_spec(spec: str) -> tuple[Path | None, str, list[str]]:
    """(the file, the class name, problems) of 'path/to/file.py:ClassName'; the file must exist."""
    file_part, _, class_name = spec.rpartition(":")
    if not file_part or not class_name:
        return None, "", [f"{spec!r}: expected path/to/file.py:ClassName"]
    path = Path(file_part)
    if not path.is_file():
        return None, class_name, [f"{path}: no such file"]
    return path, class_name, []


def load_entry_point_method(name: str) -> tuple[type[Method] | None, Path | None, list[str]]:
    """(the class, its source file, problems) for a method an installed package publishes under
    the entry-point group `mubench.methods`. An entry point may name a class
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

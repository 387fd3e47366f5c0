"""One generic registry for tasks, scenarios, methods, metrics and profiles.

Modelled on lm-evaluation-harness: a wrong name gets a "did you mean", a duplicate name is
rejected, and objects published by installed packages under an entry-point group are loaded
lazily on first lookup, so `mubench` never imports the packages that extend it.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from mubench.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")
_VALID_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_/.-]*")


class Registry(Generic[T]):
    """A name -> object mapping with helpful errors.

    `kind` names the objects in messages ("task", "method"); `entry_point_group`, when set, is
    the importlib entry-point group whose members are imported before the first lookup (importing
    them is what registers their objects).
    """

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._items: dict[str, T] = {}
        self._entry_points_loaded = entry_point_group is None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@registry.register("name")` above a class or function."""

        def decorate(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorate

    def add(self, name: str, obj: T) -> None:
        if not _VALID_NAME.fullmatch(name):
            raise ValueError(f"invalid {self.kind} name {name!r}: use letters, digits, '_', '-' and '/'")
        existing = self._items.get(name)
        if existing is not None and existing is not obj:
            raise DuplicateNameError(f"{self.kind} {name!r} is already registered ({existing!r})")
        self._items[name] = obj

    def get(self, name: str) -> T:
        self._load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load_entry_points()
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items

    def __len__(self) -> int:
        self._load_entry_points()
        return len(self._items)

    def _unknown_message(self, name: str) -> str:
        return unknown_name_message(self.kind, name, self.names())

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True  # set first: a plugin may look itself up while loading
        for ep in entry_points(group=self.entry_point_group):
            loaded = ep.load()  # importing a module registers what it decorates
            already = any(obj is loaded for obj in self._items.values())
            if not _is_module(loaded) and not already:
                self.add(ep.name, loaded)


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    """'unknown task 'cmnst'. Did you mean 'cmnist'? Valid tasks: ...'"""
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}"


def _is_module(obj: object) -> bool:
    return isinstance(obj, types.ModuleType)

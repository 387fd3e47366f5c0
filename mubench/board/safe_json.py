"""Reading a JSON file someone else wrote (a leaderboard submission): bounded before it is parsed.

A submission is untrusted input read by `validate`, by the app for every file of a folder, and by
the duplicate check of every other file. Python's parser has no limits of its own: a file nested a
few thousand levels deep raises RecursionError (not a ValueError, so it escaped the callers'
handling and took down the whole folder and the app), `NaN` and `Infinity` are accepted as numbers,
and a 200 MB file is read whole. So `read_json` refuses, with a reason naming the file, a file
above `MAX_BYTES`, JSON nested deeper than `MAX_DEPTH` (measured by a linear scan before parsing)
and any non-finite number, and returns the parsed data otherwise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mubench.errors import MubenchError

MAX_BYTES = 16 * 2**20  # the committed entries are 50-200 kB; a file this large is not a submission
MAX_DEPTH = 32  # a submission nests 6 levels (results -> metrics -> summary -> per-seed values)


class UnsafeJsonError(MubenchError):
    """The file is not JSON a submission can be (the message says why)."""


def read_json(path: Path) -> Any:
    """The parsed content of `path`, refused (UnsafeJsonError) when too large, too deep, not UTF-8
    JSON, or holding NaN or an infinite number; OSError when it cannot be read."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise UnsafeJsonError(f"{size} bytes, above the {MAX_BYTES} a submission may hold")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeJsonError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise UnsafeJsonError(f"JSON nested {depth} levels deep, above the {MAX_DEPTH} a submission may use")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise UnsafeJsonError(f"malformed JSON: {exc}") from None


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def nesting_depth(text: str) -> int:
    """The deepest nesting of objects and arrays in JSON `text`, brackets inside strings ignored."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> float:
    raise UnsafeJsonError(f"the number {name} is not finite: every value must be a finite number")

"""Nothing in the repository points where a clone cannot follow: to design notes kept beside a
development checkout, to a development machine's absolute paths, or to issue numbers of a tracker
a user cannot see. What those notes said lives in docs/, and a test here fails on any such
reference in the code, the tests, the docs, the README or the committed leaderboard entries.

The data mirror's default location, `../shared/data`, is a setting of the product (mubench.paths)
and is allowed; any other path under `shared/` is not.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".toml", ".json", ".txt", ".cfg", ".yml", ".yaml", ".sh"}
TEXT_NAMES = {"Makefile", "run"}
# Each pattern is built in pieces so that this file does not match itself.
FORBIDDEN = {
    "a note outside the repository": re.compile(r"\.\./" + r"shared/(?!data\b)|\bshared/" + r"(design|methods|style)\.md"),
    "a section of an outside methods note": re.compile(r"methods\.md " + r"section"),
    "a development machine's absolute path": re.compile(r"(?<![\w.~-])/(" + "work|home|Users" + r")/\w"),
    "an issue number": re.compile(r"\b[Ii]ssues? " + r"#?\d+|\(#" + r"\d+\)"),
}


def repository_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.splitlines()
        files = [ROOT / name for name in listed]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked archive)
        files = [p for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts]
    return sorted(p for p in files if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES))


def references(text: str) -> list[str]:
    """'line N: what (the text)' for every forbidden reference in `text`."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in FORBIDDEN.items():
            match = pattern.search(line)
            if match:
                found.append(f"line {number}: {what} ({match.group(0)!r})")
    return found


@pytest.mark.parametrize("text, expected", [
    ("see ../" "shar" "ed/design.md", "a note outside the repository"),
    ("(methods.md " "section 4)", "a section of an outside methods note"),
    ("digests: /wo" "rk/shared/data/README.md", "a development machine's absolute path"),
    ("as in /ho" "me/alice/src", "a development machine's absolute path"),
    ("the target of iss" "ue 9", "an issue number"),
    ("fixed (#" "12)", "an issue number"),
])
def test_each_kind_of_reference_is_found(text: str, expected: str) -> None:
    assert [hit.split(": ", 1)[1].split(" (")[0] for hit in references(text)] == [expected]


@pytest.mark.parametrize("text", [
    "MUBENCH_MIRROR (default ../shared/data when present)",
    "see docs/design.md and docs/methods.md, fisher",
    "a file under ~/work/x or ./work/y, a URL https://example.org/home/page",
    "the issue's title; 3 issues",
])
def test_what_a_clone_can_follow_is_allowed(text: str) -> None:
    assert references(text) == []


def test_no_reference_outside_the_repository() -> None:
    files = repository_files()
    assert len(files) > 100  # the listing found the repository
    problems = [f"{path.relative_to(ROOT)} {hit}" for path in files
                for hit in references(path.read_text(encoding="utf-8", errors="replace"))]
    assert problems == [], "\n".join(problems)

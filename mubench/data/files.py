"""Locate official data files in the mirror or the home cache, verify them, download if allowed.

A file is found under `<mirror>/<folder>/<name>` for each mirror, then under
`<home>/raw/<folder>/<name>`. A file may come in several published forms (MNIST's IDX files
gzipped or not); each form has its own pinned sha256. When a file is absent everywhere and
downloads are allowed, it is fetched from its official URL into the home cache and verified
before it is used; otherwise the error names the file and every place that was searched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mubench import paths
from mubench.errors import CorruptDataError, MissingDataError
from mubench.hashing import sha256_file


@dataclass(frozen=True)
class FileForm:
    """One published form of a file: its name on disk and its pinned sha256."""

    name: str
    sha256: str


@dataclass(frozen=True)
class DataFile:
    """A file of a dataset, in one or more forms, with the URL of its first form (if any)."""

    folder: str
    forms: tuple[FileForm, ...]
    url: str | None = None

    @property
    def name(self) -> str:
        return self.forms[0].name


def search_dirs(folder: str) -> list[Path]:
    """Every directory searched for the files of `folder`, in order."""
    return [mirror / folder for mirror in paths.mirrors()] + [paths.home() / "raw" / folder]


def find(data_file: DataFile) -> tuple[Path, FileForm] | None:
    """The first existing form of `data_file`, or None."""
    for directory in search_dirs(data_file.folder):
        for form in data_file.forms:
            candidate = directory / form.name
            if candidate.is_file():
                return candidate, form
    return None


def locate(data_file: DataFile, verify: bool = True) -> tuple[Path, FileForm]:
    """Find (or download) `data_file` and check its sha256."""
    found = find(data_file)
    if found is None:
        found = _download(data_file)
    path, form = found
    if verify:
        actual = sha256_file(path)
        if actual != form.sha256:
            raise CorruptDataError(f"{path}: sha256 {actual} does not match the pinned {form.sha256}")
    return path, form


def missing_message(data_file: DataFile) -> str:
    places = "\n".join(f"  - {d}/{{{','.join(f.name for f in data_file.forms)}}}" for d in search_dirs(data_file.folder))
    how = f"download it from {data_file.url}" if data_file.url else "copy it from the official source"
    return (
        f"data file {data_file.name!r} not found. Looked in:\n{places}\n"
        f"Set MUBENCH_MIRROR to a folder holding {data_file.folder}/, or {how} into {paths.home() / 'raw' / data_file.folder}."
    )


def _download(data_file: DataFile) -> tuple[Path, FileForm]:
    if data_file.url is None or paths.offline():
        raise MissingDataError(missing_message(data_file))
    form = data_file.forms[0]
    target = paths.home() / "raw" / data_file.folder / form.name
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=form.name, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as sink, urllib.request.urlopen(data_file.url, timeout=20) as response:
            shutil.copyfileobj(response, sink)
        if sha256_file(tmp) != form.sha256:
            raise CorruptDataError(f"download of {data_file.url} does not match the pinned sha256 {form.sha256}")
        os.replace(tmp, target)
    except OSError as exc:
        raise MissingDataError(f"{missing_message(data_file)}\nDownload failed: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)  # nothing half-written or unverified is ever left behind
    return target, form

"""Locate official data files in the mirror or the home cache, verify them, download if allowed.

A file is found under `<mirror>/<folder>/<name>` for each mirror, then under
`<home>/raw/<folder>/<name>`. A file may come in several published forms (MNIST's IDX files
gzipped or not); each form has its own pinned sha256. When a file is absent everywhere and
downloads are allowed, it is fetched from its official URL into the home cache and verified
before it is used; otherwise the error names the file and every place that was searched.

Downloads (`download`, used by both `locate` and `mubench data fetch`) go to a partial file
`<home>/raw/<folder>/<name>.part` at a stable path, so an interrupted transfer resumes where it
stopped with an HTTP `Range: bytes=N-` request (RFC 9110, section 14): a 206 reply is appended, a
200 reply (a server that ignores ranges) restarts from zero, and a 416 reply (nothing left to send)
means the partial file is already whole or is not a prefix of the file. Only a complete file whose
sha256 matches the pinned digest is renamed (atomically) to its final name, so nothing unverified is
ever found there; a file that fails the check is removed. A lock on the folder keeps two processes
from appending to the same partial file.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mubench import paths
from mubench.errors import CorruptDataError, MissingDataError, MubenchError
from mubench.hashing import sha256_file

TIMEOUT_SECONDS = 30
CHUNK_BYTES = 1 << 20
Progress = Callable[[int, int | None], None]  # (bytes in the partial file, total bytes or None)


@dataclass(frozen=True)
class FileForm:
    """One published form of a file: its name on disk and its pinned sha256. None: no digest of
    the file is published anywhere (METR-LA's metr-la.h5); its loader then checks the content
    (shapes, ids, ranges) instead, and the data card says so."""

    name: str
    sha256: str | None


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
    if found is not None:
        if verify:
            check(*found)
        return found
    if data_file.url is None or paths.offline():
        raise MissingDataError(missing_message(data_file))
    try:
        return download(data_file)
    except MissingDataError as exc:
        raise MissingDataError(f"{missing_message(data_file)}\nDownload failed: {exc}") from None


def check(path: Path, form: FileForm) -> None:
    """Raise CorruptDataError naming the path and both digests when the file is not the pinned one."""
    if form.sha256 is None:
        return  # unpinned: the loader checks the content
    actual = sha256_file(path)
    if actual != form.sha256:
        hint = ""
        if path.is_relative_to(paths.home() / "raw"):
            hint = " Delete it and run `mubench data fetch` to download it again."
        raise CorruptDataError(f"{path}: sha256 {actual} does not match the pinned {form.sha256}.{hint}")


def missing_message(data_file: DataFile) -> str:
    places = "\n".join(f"  - {d}/{{{','.join(f.name for f in data_file.forms)}}}" for d in search_dirs(data_file.folder))
    how = (f"download it from {data_file.url} (`mubench data fetch TASK` does this for every file of a task)"
           if data_file.url else "copy it from the official source")
    return (
        f"data file {data_file.name!r} not found. Looked in:\n{places}\n"
        f"Set MUBENCH_MIRROR to a folder holding {data_file.folder}/, or {how} into {paths.home() / 'raw' / data_file.folder}."
    )


# ---- fetching every file of a task ----------------------------------------------------------------

@dataclass(frozen=True)
class FetchResult:
    """What `fetch` did with one file: found (verified where it was), downloaded, or failed."""

    data_file: DataFile
    state: Literal["found", "downloaded", "failed"]
    path: Path | None = None
    message: str = ""


def fetch(data_files: list[DataFile]) -> Iterator[FetchResult]:
    """Verify each file that is present and download each one that is not; never raise for one
    file's failure, so that every file is tried and every failure reported."""
    for data_file in data_files:
        try:
            found = find(data_file)
            if found is not None:
                check(*found)
                yield FetchResult(data_file, "found", found[0])
            elif data_file.url is None:
                yield FetchResult(data_file, "failed", message=f"no official download URL. {missing_message(data_file)}")
            else:
                yield FetchResult(data_file, "downloaded", download(data_file)[0])
        except MubenchError as exc:
            yield FetchResult(data_file, "failed", message=str(exc))


# ---- downloading one file ---------------------------------------------------------------------------

class _StartOver(Exception):
    """The partial file cannot be continued: delete it and download from byte zero."""


def download(data_file: DataFile) -> tuple[Path, FileForm]:
    """Download the first form of `data_file` into `<home>/raw/<folder>/`, resuming a partial
    download, and return it once its sha256 matches; see the module docstring."""
    url, form = data_file.url, data_file.forms[0]
    if url is None:
        raise MissingDataError(f"{form.name!r} has no official download URL")
    if paths.offline():
        raise MissingDataError(f"downloads are disabled (MUBENCH_OFFLINE=1): not fetching {form.name!r} from {url}")
    target = paths.home() / "raw" / data_file.folder / form.name
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(target.parent), _progress_display(form.name) as progress:
        if target.is_file():  # another process finished it while this one waited for the lock
            check(target, form)
            return target, form
        try:
            resumed_from = _transfer_with_restart(url, part, form, progress)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise MissingDataError(_failure_message(url, form.name, part, exc)) from None
        _verify_part(url, part, form, resumed_from)
        os.replace(part, target)
    return target, form


def _transfer_with_restart(url: str, part: Path, form: FileForm, progress: Progress) -> int:
    """Transfer until the reply ends; return the byte the kept partial file was continued from."""
    for _attempt in range(2):
        try:
            return _transfer(url, part, form, progress)
        except _StartOver:
            part.unlink(missing_ok=True)
    raise MissingDataError(f"{url} answered a range request from byte 0 with a partial or unsatisfiable reply")


def _transfer(url: str, part: Path, form: FileForm, progress: Progress) -> int:
    """One HTTP request: continue `part` from its size (or start it) until the reply ends; return
    the byte it continued from (0 when it started afresh)."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "mubench", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as exc:
        exc.close()  # an error reply holds its connection open until closed
        if exc.code == 416 and offset:  # nothing left after `offset`: whole already, or not a prefix
            if form.sha256 is None or sha256_file(part) == form.sha256:
                return offset
            raise _StartOver from None
        raise
    with response:
        if response.status == 206 and _range_start(response.headers.get("Content-Range")) != offset:
            raise _StartOver
        append = response.status == 206
        expected = response.headers.get("Content-Length")
        total = (offset if append else 0) + int(expected) if expected is not None else None
        with open(part, "ab" if append else "wb") as sink:
            received = 0
            while chunk := response.read(CHUNK_BYTES):
                sink.write(chunk)
                received += len(chunk)
                progress(sink.tell(), total)
    if expected is not None and received < int(expected):  # the connection closed early
        raise ConnectionError(f"the transfer stopped after {received} of {expected} bytes")
    return offset if append else 0


def _range_start(content_range: str | None) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (content_range or "").strip())
    return int(match.group(1)) if match else None


def _verify_part(url: str, part: Path, form: FileForm, resumed_from: int) -> None:
    if form.sha256 is None:
        return  # unpinned: the loader checks the content
    actual = sha256_file(part)
    if actual != form.sha256:
        part.unlink(missing_ok=True)  # never keep (or resume) bytes that failed the check
        resumed = f" (resumed from byte {resumed_from})" if resumed_from else ""
        raise CorruptDataError(
            f"download of {url}{resumed} does not match the pinned sha256: expected {form.sha256}, got {actual}. "
            f"The downloaded file was removed; if the source has changed, the task's pinned digest needs review.")


def _failure_message(url: str, name: str, part: Path, exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        reason = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        reason = f"cannot connect ({exc.reason})"
    else:
        reason = str(exc) or type(exc).__name__
    kept = part.stat().st_size if part.is_file() else 0
    resume = f" The {kept} bytes received are kept in {part}; run again to resume." if kept else ""
    return f"download of {name!r} from {url} failed: {reason}.{resume}"


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on `folder` (POSIX flock; released when the descriptor closes)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _progress_display(name: str) -> Iterator[Progress]:
    """A rich progress bar (on stderr) when stdout is a terminal; otherwise nothing is drawn."""
    if not sys.stdout.isatty():
        yield lambda done, total: None
        return
    from rich import progress as rich_progress
    from rich.console import Console

    columns = (rich_progress.TextColumn("{task.description}"), rich_progress.BarColumn(),
               rich_progress.DownloadColumn(), rich_progress.TransferSpeedColumn())
    with rich_progress.Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        row = bar.add_task(name, total=None)
        yield lambda done, total: bar.update(row, completed=done, total=total)

"""The records behind a leaderboard entry, committed beside it so that any clone can verify it.

`leaderboard/records/<method>.jsonl.gz` holds one Record (mubench.harness.record) per line,
sorted by id, gzip-compressed with a zero timestamp so that the same records always give the same
bytes (and the same sha256, which the entry states as `records_sha256`). A board entry's records
are a few hundred runs of about 2 kB each; compressed, about 0.5 kB per record.

Reading checks everything a record promises: every line parses as a Record (its id is the hash of
its config, its metrics finite), ids are unique, and the file's digest is the one the entry
states; a problem names the file, the line and the field.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from mubench.errors import MubenchError
from mubench.harness.record import Record

RECORDS_FOLDER = "records"  # beside the submissions folder: leaderboard/records
SUFFIX = ".jsonl.gz"
MAX_BYTES = 64 * 2**20  # a records file above this is refused before it is decompressed
MAX_UNPACKED_BYTES = 512 * 2**20  # and one that unpacks beyond this while it is (a compression bomb)


class RecordsFileError(MubenchError):
    """A records file that cannot be trusted: the message names the file, line and field."""


def records_path(submissions_folder: Path, method: str) -> Path:
    """Where an entry's records live: `<submissions folder>/../records/<method>.jsonl.gz`."""
    return Path(submissions_folder).parent / RECORDS_FOLDER / f"{method}{SUFFIX}"


def encode_records(records: Sequence[Record]) -> bytes:
    """The file's bytes: the records sorted by id, one JSON line each, gzip with mtime 0."""
    lines = "".join(r.model_dump_json() + "\n" for r in sorted(records, key=lambda r: r.id))
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as handle:
        handle.write(lines.encode("utf-8"))
    return buffer.getvalue()


def write_records(path: Path, records: Sequence[Record]) -> str:
    """Write the records file atomically; return its sha256."""
    data = encode_records(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)
    return hashlib.sha256(data).hexdigest()


def read_records(path: Path, expected_sha256: str | None = None) -> list[Record]:
    """The records of `path`, every one validated; RecordsFileError naming what is wrong."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise RecordsFileError(f"{path}: {size} bytes, above the {MAX_BYTES} a records file may hold")
        data = path.read_bytes()
    except OSError as exc:
        raise RecordsFileError(f"{path}: cannot read the records file ({exc.strerror or exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise RecordsFileError(f"{path}: sha256 {digest[:12]}, the entry's records_sha256 says {expected_sha256[:12]}: "
                               "the file was changed after the entry was written")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as unpacked:
            raw = unpacked.read(MAX_UNPACKED_BYTES + 1)  # bounded: a small file may unpack to gigabytes
        if len(raw) > MAX_UNPACKED_BYTES:
            raise RecordsFileError(f"{path}: unpacks to more than the {MAX_UNPACKED_BYTES} bytes a records file may hold")
        text = raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise RecordsFileError(f"{path}: not a gzip-compressed UTF-8 records file ({exc})") from None
    records: list[Record] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = Record.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise RecordsFileError(f"{path}: line {number}: malformed JSON ({exc.msg})") from None
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "(the record)"
            raise RecordsFileError(f"{path}: line {number}: {where}: {error['msg']}") from None
        if record.id in seen:
            raise RecordsFileError(f"{path}: line {number}: record {record.id[:12]} appears twice")
        seen.add(record.id)
        records.append(record)
    return records

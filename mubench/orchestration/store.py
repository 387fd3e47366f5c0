"""The SQLite result store: one file, written only by the driver process.

Each record is committed in its own transaction as soon as its run finishes, so a sweep killed
at any moment loses at most the run in flight; the primary key is the record id (the hash of
the run's config), so nothing is stored twice. A successful record is never overwritten; a
failed one is replaced when the run is attempted again.

The location is checked when the store is opened, before a sweep starts any work: its folder must
take a new file (a probe is created and removed: permission bits alone miss read-only mounts and
ACLs) and hold at least `MIN_FREE_BYTES`, so a read-only or full disk is one clear error up front,
not a failure after the first hour of training.

Each row carries the sha256 of its record's JSON body (`digest`), checked on every read: a record
edited outside mubench (a changed digit moves a method up the board, and SQLite's own integrity
check cannot see it) is refused, naming the record, rather than read. An existing file is never
replaced: an empty (0-byte) or truncated file is an error, not a new store. Stores of schema 1
(before the digest) are migrated when opened; their digests vouch for the rows from then on.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from mubench.errors import StoreError
from mubench.harness.record import Record
from mubench.hashing import sha256_text

SCHEMA_VERSION = 2
MIN_FREE_BYTES = 32 * 2**20  # records are a few kB each; below this the disk is as good as full
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL, scenario TEXT NOT NULL, method TEXT NOT NULL,
    seed INTEGER NOT NULL, profile TEXT NOT NULL, status TEXT NOT NULL,
    created_at TEXT NOT NULL, body TEXT NOT NULL, digest TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_task ON records (task, scenario, method);
"""


# the versions a record's metrics were computed under, as one SQL value of a row's JSON body
_VERSION = "json_extract({0}.body, '$.metrics_version') || '/' || json_extract({0}.body, '$.mia_spec_version')"


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._check_location()
        if self.path.exists() and self.path.stat().st_size == 0:
            raise StoreError(f"the result store {self.path} is an empty file (0 bytes): a store is never "
                             "recreated over an existing file; restore it from a backup, or move it away to start anew")
        try:
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "records" in tables:
                found = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
                if int(found) == 1:
                    self._migrate_from_1()
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._db.commit()
            found = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        except (sqlite3.Error, TypeError) as exc:
            raise StoreError(f"cannot open the result store {self.path}: {exc}") from None
        if int(found) != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: store schema v{found}, this mubench reads v{SCHEMA_VERSION}")

    def _migrate_from_1(self) -> None:
        """Schema 1 -> 2: the digest column, filled from the bodies as they are now."""
        with self._db:
            self._db.execute("ALTER TABLE records ADD COLUMN digest TEXT NOT NULL DEFAULT ''")
            rows = self._db.execute("SELECT id, body FROM records").fetchall()
            self._db.executemany("UPDATE records SET digest=? WHERE id=?",
                                 [(sha256_text(body), record_id) for record_id, body in rows])
            self._db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")

    def _check_location(self) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store's folder {directory}: {exc.strerror}") from None
        target = self.path if self.path.exists() else directory
        if not os.access(target, os.W_OK):
            raise StoreError(f"the result store {self.path} is not writable")
        try:
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".mubench-probe-"):
                pass
        except OSError as exc:
            raise StoreError(f"the result store's folder {directory} does not take new files "
                             f"({exc.strerror or exc}); choose another --store") from None
        free = shutil.disk_usage(directory).free
        if free < MIN_FREE_BYTES:
            raise StoreError(f"the result store's folder {directory} has {free / 2**20:.1f} MiB free, "
                             f"under the {MIN_FREE_BYTES // 2**20} MiB a sweep needs; free space or choose another --store")

    def put(self, record: Record) -> bool:
        """Store `record`; return False (and change nothing) if a successful one has its id,
        unless that one's metrics were computed under other metric or MIA spec versions and
        `record` succeeded: then it replaces the stale one (a rerun after a metrics change)."""
        cfg = record.config
        body = record.model_dump_json()
        try:
            with self._db:
                cursor = self._db.execute(
                    "INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                    "status=excluded.status, created_at=excluded.created_at, body=excluded.body, "
                    "digest=excluded.digest "
                    "WHERE records.status != 'ok' OR (excluded.status = 'ok' AND ("
                    f"{_VERSION.format('records')} IS NOT {_VERSION.format('excluded')}))",
                    (record.id, cfg.task, cfg.scenario, cfg.method, cfg.seed, cfg.profile, record.status,
                     record.created_at, body, sha256_text(body)))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to the result store {self.path}: {exc}") from None
        return cursor.rowcount > 0

    def completed_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT id FROM records WHERE status='ok'")}

    def get(self, record_id: str) -> Record | None:
        row = self._db.execute("SELECT id, body, digest FROM records WHERE id=?", (record_id,)).fetchone()
        return self._parse(row) if row else None

    def records(self, task: Iterable[str] | None = None, scenario: Iterable[str] | None = None,
                method: Iterable[str] | None = None, status: str | None = None) -> list[Record]:
        clauses, params = [], []
        for column, values in (("task", task), ("scenario", scenario), ("method", method)):
            if values:
                values = list(values)
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                params += values
        if status:
            clauses.append("status = ?")
            params.append(status)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(f"SELECT id, body, digest FROM records{where} ORDER BY created_at, id", params)
        return [self._parse(row) for row in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def _parse(self, row: tuple[str, str, str]) -> Record:
        if not isinstance(row[1], str) or sha256_text(row[1]) != row[2]:
            raise StoreError(f"{self.path}: record {row[0][:12]} was changed outside mubench (its body no longer "
                             "matches its digest); rerun it, or restore the store from a backup")
        try:
            return Record.model_validate_json(row[1])
        except ValidationError as exc:
            raise StoreError(f"{self.path}: record {row[0][:12]} is invalid: {exc.errors()[0]['msg']}") from None

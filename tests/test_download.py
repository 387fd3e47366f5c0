"""Downloading a missing file from its URL (mubench/data/files.py): resumed, verified, then renamed.

A local HTTP server on 127.0.0.1 plays the official source, so the tests need no internet. Python's
SimpleHTTPRequestHandler ignores Range headers, so `RangeServer` answers them itself (206 with a
Content-Range, 416 past the end), records every request, and can misbehave on purpose: ignore
ranges (200), or cut a reply short (a dropped connection).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mubench.data import files
from mubench.data.files import DataFile, FileForm, download, locate
from mubench.errors import CorruptDataError, MissingDataError

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RangeServer(http.server.ThreadingHTTPServer):
    """Serves the files of `root`; honours `Range: bytes=N-`; records (path, Range header) per request."""

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.ignore_ranges = False  # answer 200 with the whole file, as servers without range support do
        self.cut_next_after: int | None = None  # send only this many body bytes of the next reply, then close

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"

    def ranges(self) -> list[str | None]:
        return [header for _, header in self.requests]


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    server: RangeServer

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        header = self.headers.get("Range")
        self.server.requests.append((self.path, header))
        path = self.server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", header or "")
        start = int(match.group(1)) if match and not self.server.ignore_ranges else 0
        if match and not self.server.ignore_ranges:
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.cut_next_after is not None:
            body, self.server.cut_next_after = body[:self.server.cut_next_after], None
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(root: Path) -> Iterator[RangeServer]:
    root.mkdir(parents=True, exist_ok=True)
    server = RangeServer(root)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server(tmp_path):
    with serve(tmp_path / "served") as running:
        yield running


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_MIRROR", str(tmp_path / "empty_mirror"))
    monkeypatch.delenv("MUBENCH_OFFLINE", raising=False)


def published(server: RangeServer, name: str = "file.bin", data: bytes = PAYLOAD, digest: str | None = None) -> DataFile:
    (server.root / name).write_bytes(data)
    return DataFile("demo", (FileForm(name, digest or sha(data)),), server.url(name))


def raw(tmp_path: Path, name: str = "file.bin") -> Path:
    return tmp_path / "home" / "raw" / "demo" / name


def test_a_missing_file_is_downloaded_verified_and_then_found_locally(server, tmp_path):
    data_file = published(server)
    path, _ = locate(data_file)
    assert path == raw(tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.bin"]  # no partial file left
    assert server.ranges() == [None]
    (server.root / "file.bin").unlink()  # the second lookup must not need the server
    assert locate(data_file)[0] == path
    assert len(server.requests) == 1


def test_an_interrupted_download_keeps_its_part_and_the_next_call_resumes_it(server, tmp_path):
    data_file = published(server)
    server.cut_next_after = 3000
    with pytest.raises(MissingDataError) as caught:
        locate(data_file)
    message = str(caught.value)
    assert "stopped after 3000 of 10240 bytes" in message and "run again to resume" in message
    part = raw(tmp_path, "file.bin.part")
    assert part.read_bytes() == PAYLOAD[:3000]
    assert not raw(tmp_path).exists()  # nothing unverified under the final name
    path, _ = locate(data_file)
    assert server.ranges() == [None, "bytes=3000-"]
    assert path.read_bytes() == PAYLOAD and not part.exists()


def test_a_partial_file_left_behind_is_continued_with_a_range_request(server, tmp_path):
    data_file = published(server)
    part = raw(tmp_path, "file.bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:1234])
    path, _ = download(data_file)
    assert server.ranges() == ["bytes=1234-"]
    assert path.read_bytes() == PAYLOAD


def test_a_server_that_ignores_ranges_restarts_the_file_from_zero(server, tmp_path):
    data_file = published(server)
    part = raw(tmp_path, "file.bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:500])
    server.ignore_ranges = True
    path, _ = download(data_file)
    assert server.ranges() == ["bytes=500-"]
    assert path.read_bytes() == PAYLOAD  # replaced, not appended


def test_a_complete_partial_file_answered_416_is_verified_and_kept(server, tmp_path):
    data_file = published(server)
    part = raw(tmp_path, "file.bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD)
    path, _ = download(data_file)
    assert server.ranges() == [f"bytes={len(PAYLOAD)}-"]
    assert path.read_bytes() == PAYLOAD


def test_a_partial_file_longer_than_the_source_is_discarded_and_downloaded_again(server, tmp_path):
    data_file = published(server)
    part = raw(tmp_path, "file.bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * (len(PAYLOAD) + 10))
    path, _ = download(data_file)
    assert server.ranges() == [f"bytes={len(PAYLOAD) + 10}-", None]
    assert path.read_bytes() == PAYLOAD


def test_a_download_with_the_wrong_checksum_is_refused_and_not_kept(server, tmp_path):
    data_file = published(server, data=b"tampered", digest="0" * 64)
    with pytest.raises(CorruptDataError) as caught:
        locate(data_file)
    message = str(caught.value)
    assert "does not match the pinned sha256" in message
    assert data_file.url in message and "0" * 64 in message and sha(b"tampered") in message
    assert not list(raw(tmp_path).parent.iterdir())  # neither the final name nor a partial file


def test_a_bad_prefix_resumed_fails_the_check_is_removed_and_the_next_call_starts_afresh(server, tmp_path):
    data_file = published(server)
    part = raw(tmp_path, "file.bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 100)  # not the source's first 100 bytes
    with pytest.raises(CorruptDataError, match="resumed from byte 100"):
        download(data_file)
    assert not part.exists()
    assert download(data_file)[0].read_bytes() == PAYLOAD
    assert server.ranges() == ["bytes=100-", None]


def test_a_404_names_the_url_and_the_file(server, tmp_path):
    data_file = DataFile("demo", (FileForm("absent.bin", "0" * 64),), server.url("absent.bin"))
    with pytest.raises(MissingDataError) as caught:
        download(data_file)
    message = str(caught.value)
    assert "HTTP 404" in message and data_file.url in message and "'absent.bin'" in message
    assert not list(raw(tmp_path).parent.iterdir())


def test_locate_adds_every_searched_place_to_a_failed_download(server):
    data_file = DataFile("demo", (FileForm("absent.bin", "0" * 64),), server.url("absent.bin"))
    with pytest.raises(MissingDataError) as caught:
        locate(data_file)
    message = str(caught.value)
    assert "absent.bin" in message and "empty_mirror" in message and "Download failed" in message
    assert "HTTP 404" in message


def test_a_refused_connection_names_the_url():
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/file.bin"
    with pytest.raises(MissingDataError) as caught:
        download(DataFile("demo", (FileForm("file.bin", "0" * 64),), url))
    assert url in str(caught.value) and "cannot connect" in str(caught.value)


def test_offline_mode_never_downloads(server, monkeypatch):
    data_file = published(server)
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    with pytest.raises(MissingDataError, match="file.bin"):
        locate(data_file)
    with pytest.raises(MissingDataError, match="MUBENCH_OFFLINE=1"):
        download(data_file)
    assert server.requests == []


def test_a_file_found_in_the_mirror_is_not_downloaded(server, tmp_path, monkeypatch):
    data_file = published(server)
    mirror = tmp_path / "mirror"
    (mirror / "demo").mkdir(parents=True)
    (mirror / "demo" / "file.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("MUBENCH_MIRROR", str(mirror))
    results = list(files.fetch([data_file]))
    assert [(r.state, r.path) for r in results] == [("found", mirror / "demo" / "file.bin")]
    assert server.requests == []


def test_fetch_reports_each_file_and_goes_on_after_a_failure(server, tmp_path):
    good = published(server)
    absent = DataFile("demo", (FileForm("absent.bin", "0" * 64),), server.url("absent.bin"))
    no_url = DataFile("demo", (FileForm("manual.bin", "0" * 64),))
    results = list(files.fetch([absent, no_url, good]))
    assert [r.state for r in results] == ["failed", "failed", "downloaded"]
    assert "HTTP 404" in results[0].message and "no official download URL" in results[1].message
    assert results[2].path == raw(tmp_path)


def test_a_terminal_gets_a_progress_bar_and_the_same_file(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    data_file = published(server)
    assert download(data_file)[0].read_bytes() == PAYLOAD
    assert capsys.readouterr().out == ""  # the bar is drawn on stderr, never among the results on stdout

"""Downloading a missing file from its URL: verified against the pinned sha256 before it is used.

A local HTTP server on 127.0.0.1 plays the official source, so the test needs no internet.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest

from mubench.data.files import DataFile, FileForm, locate
from mubench.errors import CorruptDataError, MissingDataError


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_MIRROR", str(tmp_path / "empty_mirror"))
    monkeypatch.delenv("MUBENCH_OFFLINE", raising=False)


def test_a_missing_file_is_downloaded_verified_and_then_found_locally(server, tmp_path):
    root, url = server
    payload = b"official bytes" * 100
    (root / "file.bin").write_bytes(payload)
    data_file = DataFile("demo", (FileForm("file.bin", hashlib.sha256(payload).hexdigest()),), f"{url}/file.bin")
    path, _ = locate(data_file)
    assert path == tmp_path / "home" / "raw" / "demo" / "file.bin"
    assert path.read_bytes() == payload
    (root / "file.bin").unlink()  # the second lookup must not need the server
    assert locate(data_file)[0] == path


def test_a_download_with_the_wrong_checksum_is_refused_and_not_kept(server, tmp_path):
    root, url = server
    (root / "file.bin").write_bytes(b"tampered")
    data_file = DataFile("demo", (FileForm("file.bin", "0" * 64),), f"{url}/file.bin")
    with pytest.raises(CorruptDataError, match="does not match the pinned sha256"):
        locate(data_file)
    assert not list((tmp_path / "home" / "raw" / "demo").iterdir())


def test_an_unreachable_source_names_the_file_the_places_and_the_failure(server, monkeypatch):
    _, url = server
    data_file = DataFile("demo", (FileForm("absent.bin", "0" * 64),), f"{url}/absent.bin")
    with pytest.raises(MissingDataError) as caught:
        locate(data_file)
    message = str(caught.value)
    assert "absent.bin" in message and "empty_mirror" in message and "Download failed" in message


def test_offline_mode_never_downloads(server, monkeypatch):
    root, url = server
    (root / "file.bin").write_bytes(b"x")
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    data_file = DataFile("demo", (FileForm("file.bin", hashlib.sha256(b"x").hexdigest()),), f"{url}/file.bin")
    with pytest.raises(MissingDataError, match="file.bin"):
        locate(data_file)

"""Locating and verifying official files (mubench/data/files.py)."""

from __future__ import annotations

import hashlib
import os
import urllib.request

import pytest

from mubench.data import files
from mubench.data.files import DataFile, FileForm, find, locate, missing_message, search_dirs
from mubench.errors import CorruptDataError, MissingDataError

GZ_BYTES = b"gzipped form"
RAW_BYTES = b"raw form"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


DATA_FILE = DataFile("thing", (FileForm("thing.bin.gz", _sha(GZ_BYTES)), FileForm("thing.bin", _sha(RAW_BYTES))),
                     url="https://example.invalid/thing.bin.gz")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Home and two mirrors in tmp_path; no download may ever be attempted."""
    home, m1, m2 = tmp_path / "home", tmp_path / "mirror1", tmp_path / "mirror2"
    for d in (home, m1, m2):
        d.mkdir()
    monkeypatch.setenv("MUBENCH_HOME", str(home))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")
    monkeypatch.setenv("MUBENCH_MIRROR", os.pathsep.join([str(m1), str(m2)]))

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return home, m1, m2


def _put(directory, name, data):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)
    return directory / name


def test_data_file_name_is_its_first_form():
    assert DATA_FILE.name == "thing.bin.gz"


def test_search_dirs_order(env):
    home, m1, m2 = env
    assert search_dirs("thing") == [m1 / "thing", m2 / "thing", home / "raw" / "thing"]


def test_found_in_mirror(env):
    _, m1, _ = env
    path = _put(m1 / "thing", "thing.bin", RAW_BYTES)
    assert find(DATA_FILE) == (path, DATA_FILE.forms[1])
    assert locate(DATA_FILE) == (path, DATA_FILE.forms[1])


def test_found_in_second_mirror(env):
    _, _, m2 = env
    path = _put(m2 / "thing", "thing.bin.gz", GZ_BYTES)
    assert locate(DATA_FILE) == (path, DATA_FILE.forms[0])


def test_found_in_home_raw(env):
    home, _, _ = env
    path = _put(home / "raw" / "thing", "thing.bin.gz", GZ_BYTES)
    assert locate(DATA_FILE) == (path, DATA_FILE.forms[0])


def test_file_in_wrong_folder_is_not_found(env):
    _, m1, _ = env
    _put(m1, "thing.bin", RAW_BYTES)  # directly in the mirror, not in its `thing/` folder
    assert find(DATA_FILE) is None


def test_gz_form_preferred_in_the_same_directory(env):
    _, m1, _ = env
    _put(m1 / "thing", "thing.bin", RAW_BYTES)
    gz = _put(m1 / "thing", "thing.bin.gz", GZ_BYTES)
    assert locate(DATA_FILE) == (gz, DATA_FILE.forms[0])


def test_directory_order_beats_form_order(env):
    # a raw form in the first mirror wins over the gz form in the home cache
    home, m1, _ = env
    raw = _put(m1 / "thing", "thing.bin", RAW_BYTES)
    _put(home / "raw" / "thing", "thing.bin.gz", GZ_BYTES)
    assert locate(DATA_FILE) == (raw, DATA_FILE.forms[1])


def test_mirror_beats_home(env):
    home, m1, _ = env
    in_mirror = _put(m1 / "thing", "thing.bin.gz", GZ_BYTES)
    _put(home / "raw" / "thing", "thing.bin.gz", GZ_BYTES)
    assert locate(DATA_FILE)[0] == in_mirror


def test_sha256_mismatch_names_the_path(env):
    _, m1, _ = env
    path = _put(m1 / "thing", "thing.bin", RAW_BYTES + b"!")
    with pytest.raises(CorruptDataError) as info:
        locate(DATA_FILE)
    message = str(info.value)
    assert str(path) in message
    assert _sha(RAW_BYTES) in message  # the pinned digest
    assert _sha(RAW_BYTES + b"!") in message  # the actual digest


def test_form_digest_is_checked_per_form(env):
    # the raw bytes under the gz name fail against the gz digest
    _, m1, _ = env
    path = _put(m1 / "thing", "thing.bin.gz", RAW_BYTES)
    with pytest.raises(CorruptDataError, match=str(path)):
        locate(DATA_FILE)


def test_verify_false_skips_the_digest(env):
    _, m1, _ = env
    path = _put(m1 / "thing", "thing.bin", b"anything")
    assert locate(DATA_FILE, verify=False) == (path, DATA_FILE.forms[1])


def test_directory_with_the_file_name_is_not_a_file(env):
    _, m1, _ = env
    (m1 / "thing" / "thing.bin.gz").mkdir(parents=True)
    assert find(DATA_FILE) is None


def test_missing_file_names_file_and_every_searched_directory(env):
    home, m1, m2 = env
    with pytest.raises(MissingDataError) as info:
        locate(DATA_FILE)
    message = str(info.value)
    assert "'thing.bin.gz'" in message
    for directory in (m1 / "thing", m2 / "thing", home / "raw" / "thing"):
        assert f"{directory}/{{thing.bin.gz,thing.bin}}" in message
    assert "https://example.invalid/thing.bin.gz" in message
    assert message == missing_message(DATA_FILE)


def test_missing_file_without_url_says_where_to_copy_it(env):
    no_url = DataFile("thing", DATA_FILE.forms, url=None)
    with pytest.raises(MissingDataError) as info:
        locate(no_url)
    assert "copy it from the official source" in str(info.value)


def test_offline_values(env, monkeypatch):
    for value in ("1", "true", "YES"):
        monkeypatch.setenv("MUBENCH_OFFLINE", value)
        with pytest.raises(MissingDataError):
            files.locate(DATA_FILE)
    assert not (env[0] / "raw" / "thing").exists()  # nothing was created for a download

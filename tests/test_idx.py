"""IDX reader and writer (mubench/data/idx.py): round trips, exact bytes, and every refusal."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from mubench.data.idx import read_idx, write_idx
from mubench.errors import CorruptDataError


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MUBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUBENCH_OFFLINE", "1")


def _sample(shape=(2, 3, 4)) -> np.ndarray:
    return (np.arange(int(np.prod(shape)), dtype=np.int64) * 7 % 256).astype(np.uint8).reshape(shape)


# Hand-written IDX file of shape (2, 3, 4): magic 00 00 08 03, then 2, 3, 4 as big-endian int32.
_HEADER_2_3_4 = b"\x00\x00\x08\x03" b"\x00\x00\x00\x02" b"\x00\x00\x00\x03" b"\x00\x00\x00\x04"


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_round_trip_by_file_name(tmp_path, name):
    array = _sample()
    path = tmp_path / name
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.uint8
    assert back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)
    # the name decides the compression
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")


@pytest.mark.parametrize("shape", [(5,), (3, 28, 28), (1, 1, 1, 1)])
@pytest.mark.parametrize("compress", [True, False])
def test_round_trip_shapes_and_explicit_compression(tmp_path, shape, compress):
    array = _sample(shape)
    path = tmp_path / "x.idx"  # no .gz suffix: compression comes from the argument alone
    write_idx(path, array, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") is compress
    np.testing.assert_array_equal(read_idx(path), array)


def test_header_bytes_are_exact(tmp_path):
    array = _sample()
    path = tmp_path / "raw-idx3-ubyte"
    write_idx(path, array)
    raw = path.read_bytes()
    assert raw[:16] == _HEADER_2_3_4
    assert raw[16:] == array.tobytes()
    assert len(raw) == 16 + 24


def test_gzipped_file_decompresses_to_the_raw_bytes(tmp_path):
    array = _sample()
    write_idx(tmp_path / "a", array)
    write_idx(tmp_path / "a.gz", array)
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == (tmp_path / "a").read_bytes()
    # mtime=0: the gzip form is byte-for-byte reproducible (its sha256 can be pinned)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "b.gz").read_bytes() == (tmp_path / "a.gz").read_bytes()


def test_reads_a_hand_written_file(tmp_path):
    # a label file: magic 00 00 08 01, one dimension of 3, then the bytes 5 0 4
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x03\x05\x00\x04")
    labels = read_idx(path)
    assert labels.shape == (3,)
    assert labels.tolist() == [5, 0, 4]


def test_reads_big_endian_int32_type(tmp_path):
    # type 0x0C (int32, big-endian): the reader must return native-order values
    path = tmp_path / "ints"
    path.write_bytes(b"\x00\x00\x0c\x01\x00\x00\x00\x02" + (258).to_bytes(4, "big") + (-1).to_bytes(4, "big", signed=True))
    values = read_idx(path)
    assert values.tolist() == [258, -1]
    assert values.dtype == np.dtype(np.int32)


def test_write_refuses_non_uint8(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_idx(tmp_path / "x", np.zeros((2, 2), dtype=np.int32))
    assert not (tmp_path / "x").exists()


def _refused(path, *fragments):
    with pytest.raises(CorruptDataError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_wrong_magic(tmp_path):
    path = tmp_path / "bad-magic"
    path.write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x01\x07")
    _refused(path, "magic", "01000801")


def test_unsupported_type_code(tmp_path):
    path = tmp_path / "bad-type"
    path.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x07")
    _refused(path, "type code 0x07")


def test_truncated_payload(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(_HEADER_2_3_4 + bytes(23))
    _refused(path, "truncated", "23 bytes", "expected 24")


def test_trailing_bytes(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(_HEADER_2_3_4 + bytes(25))
    _refused(path, "trailing", "25 bytes", "expected 24")


@pytest.mark.parametrize("raw", [b"", b"\x00\x00\x08", _HEADER_2_3_4[:10], b"\x00\x00\x08\x00"],
                         ids=["empty", "3-bytes", "half-dims", "zero-dims"])
def test_truncated_header(tmp_path, raw):
    path = tmp_path / "header"
    path.write_bytes(raw)
    message = _refused(path)
    assert "short" in message or "truncated IDX header" in message


def test_truncated_payload_inside_gzip(tmp_path):
    # a well-formed gzip stream whose IDX content is short: refused as IDX, not as gzip
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(_HEADER_2_3_4 + bytes(20), mtime=0))
    _refused(path, "truncated")


def _gz_of_sample(tmp_path):
    write_idx(tmp_path / "good.gz", _sample((4, 28, 28)))
    return (tmp_path / "good.gz").read_bytes()


def test_damaged_gzip_cut_short(tmp_path):
    raw = _gz_of_sample(tmp_path)
    path = tmp_path / "cut.gz"
    path.write_bytes(raw[: len(raw) // 2])
    _refused(path, "damaged gzip")


def test_damaged_gzip_bad_crc(tmp_path):
    raw = _gz_of_sample(tmp_path)
    path = tmp_path / "crc.gz"
    path.write_bytes(raw[:-8] + bytes(b ^ 0xFF for b in raw[-8:-4]) + raw[-4:])
    _refused(path, "damaged gzip")


def test_damaged_gzip_corrupt_deflate_stream(tmp_path):
    # garbage inside the deflate stream makes zlib itself fail (zlib.error, not OSError)
    raw = _gz_of_sample(tmp_path)
    path = tmp_path / "garbage.gz"
    path.write_bytes(raw[:10] + b"\xff" * 20 + raw[30:])
    _refused(path, "damaged gzip")

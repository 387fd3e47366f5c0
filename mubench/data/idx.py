"""Reader for the IDX format of LeCun's MNIST files (gzipped or not).

Format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code (0x08 = unsigned byte),
the number of dimensions, each dimension as a big-endian int32, then the data in C order.
Every deviation (wrong magic, unsupported type, truncated or over-long payload) is refused with
the file's path.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from mubench.errors import CorruptDataError

_GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
           0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file into a numpy array of its native dtype."""
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise CorruptDataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise CorruptDataError(f"{path}: bad IDX magic number {raw[:4].hex()} (must start with 0000)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _DTYPES:
        raise CorruptDataError(f"{path}: unsupported IDX type code 0x{type_code:02x}")
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header_size:
        raise CorruptDataError(f"{path}: truncated IDX header (ndim={ndim}, {len(raw)} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(raw) - header_size
    if payload != expected:
        state = "truncated" if payload < expected else "has trailing bytes"
        raise CorruptDataError(f"{path}: IDX payload {state}: {payload} bytes for shape {shape}, expected {expected}")
    data = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write `array` (uint8) as IDX; gzip when `compress` or when the name ends in .gz."""
    if array.dtype != np.uint8:
        raise ValueError("write_idx writes uint8 arrays only")
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + np.ascontiguousarray(array).tobytes()
    compress = path.name.endswith(".gz") if compress is None else compress
    path.write_bytes(gzip.compress(raw, mtime=0) if compress else raw)


def _read_bytes(path: Path) -> bytes:
    raw = Path(path).read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptDataError(f"{path}: damaged gzip stream ({exc})") from None

"""Reading published pickle files without executing arbitrary code.

Some datasets are published only as pickles (CIFAR-10's python batches, DCRNN's `adj_mx.pkl`).
A pickle can name any importable callable, so `pickle.load` on a file from elsewhere can run
anything. Files are checked against their pinned sha256 before they are read, and are then
unpickled by `SafeUnpickler`, which resolves only the globals needed to rebuild numpy arrays;
any other global (e.g. `os.system`) is refused with an error naming the file.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from mubench.errors import CorruptDataError

ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 store bytes as codecs.encode(str, "latin1")
})


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that refuses every global outside `ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def load_pickle(path: Path, encoding: str = "ASCII") -> Any:
    """Unpickle `path` with `SafeUnpickler`; `encoding="latin1"` reads Python 2 pickles' str/bytes."""
    # From memory, not the open file: a crafted FRAME opcode can announce a frame of any length, and
    # reading that from a file allocates it first (MemoryError, or OverflowError past sys.maxsize);
    # from a BytesIO the read returns what is there and the unpickler reports the truncation.
    try:
        raw = io.BytesIO(Path(path).read_bytes())
        return SafeUnpickler(raw, encoding=encoding).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            OverflowError, MemoryError, KeyError, SystemError) as exc:
        raise CorruptDataError(f"{path}: not a readable data pickle ({exc})") from None

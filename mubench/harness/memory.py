"""Peak memory of a block of code: what the method itself added, not the process's high-water mark.

On CUDA, PyTorch's allocator statistics are exact (`torch.cuda.max_memory_allocated` after a
reset). On the CPU, a background thread samples every few milliseconds the bytes the C heap has
handed out (glibc's `mallinfo2`: in-use chunks plus mmapped blocks, where PyTorch's CPU tensors
live); the peak minus the value at entry is reported, a lower bound since allocations shorter
than the sampling interval can be missed. The resident set size (/proc/self/statm) is the
fallback without glibc; it misses memory the allocator reuses, so in a long sweep it reads low.
Where neither is available, the result is None and the metric is left out rather than guessed.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import torch

_STATM = Path("/proc/self/statm")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _load_mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        function = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    function.restype = _MallInfo2
    return function


_MALLINFO2 = _load_mallinfo2()


def heap_bytes() -> int | None:
    """Bytes currently allocated through malloc (glibc), or None without glibc >= 2.33."""
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return int(info.uordblks + info.hblkhd)


def resident_bytes() -> int | None:
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def cpu_bytes() -> int | None:
    value = heap_bytes()
    return value if value is not None else resident_bytes()


class PeakMemory:
    """`with PeakMemory(device) as peak: ...` then `peak.megabytes` (None when unmeasurable)."""

    def __init__(self, device: torch.device, interval_s: float = 0.002) -> None:
        self.device = device
        self.interval_s = interval_s
        self.megabytes: float | None = None
        self._stop = threading.Event()
        self._baseline: int | None = None
        self._peak = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._baseline = torch.cuda.memory_allocated(self.device)
            return self
        self._baseline = cpu_bytes()
        if self._baseline is not None:
            self._peak = self._baseline
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            current = cpu_bytes() or 0
            self._peak = max(self._peak, current)
            time.sleep(self.interval_s)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self._baseline is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, cpu_bytes() or 0)
        self.megabytes = max(0, peak - self._baseline) / 2**20

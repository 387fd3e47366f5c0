"""Host-to-device copies that do not stall the device, and clocks read only once it is done.

Every random draw of a run (a shuffle's permutation, crop offsets and flips, noise, random
labels) comes from a CPU `torch.Generator`, so that a run draws the same numbers on every device.
Moving such a draw to a GPU with a plain `tensor.to("cuda")` is a *blocking* copy: PyTorch queues
the copy on the stream and then waits for the stream to drain (`at::cuda::memcpy_and_sync`, a
cudaMemcpyAsync followed by cudaStreamSynchronize). Done once per step, that wait stops the host
from queueing the next step's kernels while the GPU runs this one, so Python's per-step overhead
and the GPU's work add up instead of overlapping; small models on a large GPU are bound by exactly
that overhead. Copied from pinned (page-locked) memory with `non_blocking=True`, the transfer is
queued in stream order and the host goes on; PyTorch's caching host allocator keeps the pinned
buffer alive until the copy has run, so the caller may drop it at once.

A loop that no longer waits for the device each step leaves work queued when it returns, so a
clock around it must `synchronize` before it is read. `recording_synchronisations` lists the
synchronising calls a piece of code makes on CUDA (`python -m mubench.bench.training
--sync-audit` runs it around every method).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch

from mubench.errors import MubenchError

SYNC_WARNING = "synchroniz"  # in the text of the warning torch.cuda.set_sync_debug_mode("warn") emits


def to_device(tensor: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`tensor` on `device` (cast to `dtype` if given). A CPU tensor bound for a CUDA device goes
    through pinned memory without a host-device synchronisation; anything else is a plain `.to`.
    The values are those of `tensor.to(device, dtype)` in every case."""
    device = torch.device(device)
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device=device, dtype=dtype)
    if dtype is not None:
        tensor = tensor.to(dtype)  # cast on the host: the draws moved this way are small
    return tensor.pin_memory().to(device, non_blocking=True)


def synchronize(device: torch.device | str) -> None:
    """Wait until `device` has run everything queued on it (a no-op off CUDA), so that a clock
    read next measures the work and not only its queueing."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def recording_synchronisations() -> Iterator[list[str]]:
    """`with recording_synchronisations() as sites: ...`: after the block, `sites` holds one
    "file:line" per synchronising CUDA call made inside it (the Python line that made it), from
    `torch.cuda.set_sync_debug_mode("warn")`, which PyTorch documents as covering most but not
    all synchronising operations. CUDA only: on a CPU nothing synchronises and nothing could be
    recorded, so it refuses rather than report zero."""
    if not torch.cuda.is_available():
        raise MubenchError("recording synchronisations needs CUDA (torch.cuda.set_sync_debug_mode); "
                           "this machine has no CUDA device")
    sites: list[str] = []
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield sites
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    sites.extend(f"{w.filename}:{w.lineno}" for w in caught if SYNC_WARNING in str(w.message))

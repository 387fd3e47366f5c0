"""mubench.transfer: host-made draws reach the device without a wait on it, loops built on it
draw the same batches as before, and clocks around them are read after the device is done.

The CUDA half (no synchronising call in the data paths, checked with PyTorch's own sync debug
mode) runs only where CUDA is; on the CPU the same paths are checked for their values."""

from __future__ import annotations

import pytest
import torch

from helpers import debug_config
from mubench.errors import MubenchError
from mubench.harness import runner
from mubench.harness.artifacts import ModelCache
from mubench.harness.runner import Harness
from mubench.harness.training import crop_flip
from mubench.methods import Access
from mubench.request import Request, Subset, shuffled
from mubench.transfer import recording_synchronisations, synchronize, to_device

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_to_device_gives_the_values_of_a_plain_to():
    draws = torch.randint(0, 10, (7, 3), generator=torch.Generator().manual_seed(0))
    moved = to_device(draws, "cpu", torch.float32)
    assert moved.dtype == torch.float32 and moved.device.type == "cpu"
    assert torch.equal(moved, draws.to(torch.float32))
    assert torch.equal(to_device(draws, torch.device("cpu")), draws)


def test_synchronize_off_cuda_is_a_no_op():
    synchronize("cpu")
    synchronize(torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_recording_synchronisations_refuses_without_cuda():
    with pytest.raises(MubenchError, match="needs CUDA"):
        with recording_synchronisations():
            pass


def _request(n: int = 23, device: str = "cpu", seed: int = 5) -> Request:
    x = torch.arange(n, dtype=torch.float32, device=device).view(n, 1)
    y = torch.arange(n, device=device)
    forget = Subset(x[:7], y[:7])
    return Request({"retain": Subset(x, y), "forget": forget}, Access.RETAIN, 10, torch.device(device), seed=seed)


def test_batches_are_the_permutations_of_the_request_generator():
    """Moving a pass's permutation once (instead of each batch's slice) keeps every batch: the
    same draws from the request's generator in the same order, zipped batches included."""
    request = _request()
    got = [(r[1].tolist(), f[1].tolist()) for r, f in request.batches("retain", "forget", batch_size=4, epochs=2)]
    generator = torch.Generator().manual_seed(5)
    retain_order = [torch.randperm(23, generator=generator)]
    forget_orders = [torch.randperm(7, generator=generator)]  # the cycled subset's first pass, drawn on first use
    retain_batches, forget_batches = [], []
    for epoch in range(2):
        if epoch:
            retain_order.append(torch.randperm(23, generator=generator))
        retain_batches += [b.tolist() for b in retain_order[-1].split(4)]
        while len(forget_batches) < len(retain_batches):
            if len(forget_batches) == sum(len(o.split(4)) for o in forget_orders):
                forget_orders.append(torch.randperm(7, generator=generator))
            forget_batches += [b.tolist() for b in forget_orders[-1].split(4)]
    assert got == list(zip(retain_batches, forget_batches[:len(retain_batches)]))


def test_shuffled_is_a_permutation_on_the_device():
    order = shuffled(50, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert sorted(order.tolist()) == list(range(50))
    assert torch.equal(order, torch.randperm(50, generator=torch.Generator().manual_seed(1)))


def test_the_method_clock_is_read_after_the_device_is_done(tmp_path, monkeypatch):
    """A method whose loop never waits on the GPU returns with work still queued: the harness
    synchronises the device before it reads the method's seconds."""
    events: list[str] = []
    monkeypatch.setattr(runner, "synchronize", lambda device: events.append(f"sync {torch.device(device).type}"))
    real_clock = runner.time.perf_counter

    class Clock:
        @staticmethod
        def perf_counter() -> float:
            events.append("clock")
            return real_clock()

    harness = Harness(cache=ModelCache(tmp_path / "models"))
    config = debug_config("finetune", epochs=1)
    prepared = harness.prepare(config.task, config.scenario, config.seed, config.profile)
    monkeypatch.setattr(runner, "time", Clock)
    harness.unlearn(config, prepared)
    assert events == ["clock", "sync cpu", "clock"]  # start, wait for the device, stop


@needs_cuda
def test_to_device_does_not_synchronise_on_cuda():
    draws = torch.randperm(1000, generator=torch.Generator().manual_seed(0))
    torch.cuda.synchronize()
    with recording_synchronisations() as sites:
        moved = to_device(draws, "cuda")
    assert sites == []
    with recording_synchronisations() as blocking:
        draws.to("cuda")  # the recorder does see a blocking copy
    assert blocking
    assert torch.equal(moved.cpu(), draws)


@needs_cuda
def test_batches_and_augmentation_do_not_synchronise_on_cuda():
    request = _request(device="cuda")
    images = torch.rand(16, 3, 8, 8, device="cuda")
    torch.cuda.synchronize()
    with recording_synchronisations() as sites:
        batches = list(request.batches("retain", "forget", batch_size=4, epochs=2))
        augmented = crop_flip(images, torch.Generator().manual_seed(0))
    assert sites == []
    assert len(batches) == 12 and augmented.shape == images.shape
    cpu = list(_request().batches("retain", "forget", batch_size=4, epochs=2))
    assert all(torch.equal(g[0][1].cpu(), c[0][1]) for g, c in zip(batches, cpu))  # the same batches as on the CPU

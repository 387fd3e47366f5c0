"""What every test shares: one model cache for the whole run, one torch thread per test, and a
word, once, on the data mirror.

- **One model cache.** `MUBENCH_CACHE` points every test's harness at one session folder for the
  content-addressed caches (trained originals and oracles, prepared tensors), while each test or
  module keeps its own `MUBENCH_HOME` (store, splits). Their keys hash everything that decides
  their content, so sharing changes no number: the debug original and oracle are trained once
  per run instead of once per test. A test of the cache itself asks for `private_model_cache`.
- **One torch thread.** The test models are tiny; on a 2-core machine two intra-op threads are
  many times slower.
- **The mirror.** Tests that need real data skip with a reason starting "data mirror:"
  (`helpers.needs_mirror`); the header says where the mirror was looked for, and the summary
  names, once, what was skipped for want of it and how to run it.

Helpers (plain functions and markers) live in tests/helpers.py and are imported as `helpers`:
pytest puts this folder on `sys.path` (rootdir conftest, "prepend" import mode), so a bare
`pytest` and `python -m pytest` both work.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import MIRROR_SKIP, REAL_MIRROR


@pytest.fixture(scope="session", autouse=True)
def session_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One content-addressed cache (models, prepared tensors) for every test of the run."""
    folder = tmp_path_factory.mktemp("session-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUBENCH_CACHE", str(folder))
        yield folder


@pytest.fixture
def private_model_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caches back under the test's own MUBENCH_HOME: for tests of caching itself (what is
    trained, what is loaded, what a corrupt file does), which must start from an empty cache."""
    monkeypatch.delenv("MUBENCH_CACHE", raising=False)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for the whole run, module fixtures' training included (restored at the end)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_report_header(config: pytest.Config) -> str:
    """Where the mirror was looked for and which dataset folders it holds (shown without -q)."""
    if not REAL_MIRROR.is_dir():
        return (f"data mirror: none at {REAL_MIRROR}; tests that need real data will be skipped "
                f"(set MUBENCH_MIRROR to a folder holding the official files)")
    held = sorted(p.name for p in REAL_MIRROR.iterdir() if p.is_dir())
    return f"data mirror: {REAL_MIRROR} ({', '.join(held) if held else 'empty'})"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    """Once, at the end: how many tests the missing mirror skipped, which folders they needed, where."""
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if isinstance(report.longrepr, tuple) and MIRROR_SKIP in str(report.longrepr[2])]
    if not skipped:
        return
    folders = sorted({str(report.longrepr[2]).split(MIRROR_SKIP, 1)[1].rsplit(" in ", 1)[0] for report in skipped})
    modules = sorted({report.nodeid.split("::")[0] for report in skipped})
    terminalreporter.write_sep("-", "data mirror", yellow=True)
    terminalreporter.write_line(
        f"{len(skipped)} tests in {len(modules)} modules were skipped because the data mirror at {REAL_MIRROR} "
        f"lacks {', '.join(folders)}. Set MUBENCH_MIRROR to a folder holding them to run those tests.")

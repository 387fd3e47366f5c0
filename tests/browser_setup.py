"""What the end-to-end leaderboard test needs outside Python: Debian's `chromium` and a Streamlit
server on a free local port that is always stopped.

Playwright drives the system browser through `executable_path`; `playwright install` is never
run, because it downloads browser builds from the internet (Microsoft's CDN), whereas apt
fetches a signed, distribution-maintained package. The tests install nothing: where chromium is
missing, `chromium_or_reason` says how to install it and the test skips, unless
MUBENCH_REQUIRE_BROWSER=1 (set by .ci/run, which installs it) makes a missing browser a failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox: containers and CI runners as root cannot create Chromium's user namespaces.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
APT_TIMEOUT_S = 240  # each apt-get call; pytest-timeout allows 600 s per test


def chromium_or_reason() -> tuple[Path | None, str]:
    """(path to chromium, "") when it is installed, else (None, what to do about it).

    The tests never install system packages: CI's .ci/run installs chromium before `make test`."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM, ""
    return None, (f"{CHROMIUM} is missing; install Debian's chromium (`sudo apt-get install chromium`, "
                  f"as .ci/run does) to run the leaderboard's browser test")


def free_port() -> int:
    """A port free on 127.0.0.1 now (the OS picks it; the tiny race until Streamlit binds is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def streamlit_command(app: Path, port: int) -> list[str]:
    """`streamlit run` headless on 127.0.0.1 only, no usage statistics (the flags of `mubench
    leaderboard`, plus headless and the loopback address)."""
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
            "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]


class Server:
    """A `streamlit run` process in its own process group (so that stopping it ends its children too)."""

    def __init__(self, app: Path, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(streamlit_command(app, self.port), env=env, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        """Until /_stcore/health answers "ok"; raises with the server's log if it exits or never does."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200 and answer.read().strip() == b"ok":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"streamlit not healthy after {timeout_s:.0f} s at {self.url}:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:] if self.log.is_file() else ""

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 10 s; safe to call twice."""
        if self.process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue

"""An operating-system jail for untrusted method code, built on bubblewrap (`bwrap`).

A submitted method is someone else's Python: hand-written checks inside the process that runs it
cannot stop it from reading what the process can read. The jail is the kernel's: `bwrap` starts
the child in new network, PID, IPC, UTS and mount namespaces whose file system holds only

- the Python installation and the environment's packages, read-only (what `import torch` and
  `import mubench` need; found from `sys.path`, so a virtual environment, an editable install and
  a pyenv interpreter all work),
- the system's shared libraries (`/usr`), read-only,
- a private scratch folder, the one writable place that outlives the run, and a small `/tmp`.

Nothing else exists in there: not `$MUBENCH_HOME` (the results store, the model and split caches),
not the data mirror, not the user's home, not the repository's leaderboard. The environment is
cleared (no `MUBENCH_HOME`, no tokens), the network namespace has only its own loopback, the child
cannot see or signal the driver's processes, and when the jail's first process ends the kernel
kills every process left in its PID namespace (`--die-with-parent` does the same if the driver
dies).

Limits. The driver bounds wall time (it kills the jail). The child's trusted prologue
(`enter`), run inside the jail before any submitted code is imported, sets hard resource limits
(processes, file size, open files; the address space is bounded later, just before the method
runs, by the sandbox) and gives up root: when the driver runs as root, the jail is entered
without a user namespace and `enter` switches to the unprivileged `nobody` user, so the kernel's
process limit applies (it exempts root) and no capability is left; otherwise the jail runs in an
unprivileged user namespace under the driver's own user. `PR_SET_NO_NEW_PRIVS` stops either from
gaining privileges back through a set-uid program.

Where the jail cannot be had (no `bwrap`, or a kernel that refuses namespaces), `unavailable()`
says why and the sandbox refuses isolated runs with that message rather than pretend: install it
with `apt-get install bubblewrap` (Debian, Ubuntu), `dnf install bubblewrap` (Fedora) or your
distribution's equivalent; `make install-jail` runs the Debian line.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mubench.errors import MubenchError

NOBODY = 65534  # the unprivileged user and group a root driver's jail runs as
SCRATCH = "/scratch"  # where the private scratch folder appears inside the jail
TMP_BYTES = 256 * 2**20  # the jail's /tmp (a tmpfs in memory)
INSTALL_HINT = ("install bubblewrap (`apt-get install bubblewrap` on Debian and Ubuntu, `dnf install bubblewrap` "
                "on Fedora; `make install-jail` runs the first as root)")
PR_SET_NO_NEW_PRIVS = 38


class JailUnavailableError(MubenchError):
    """Isolated runs need the jail, and this machine cannot provide it (the message says why)."""


@dataclass(frozen=True)
class JailLimits:
    """Hard resource limits set inside the jail before any submitted code runs (`enter`)."""

    processes: int = 256  # threads count too: torch's intra-op pool and a method's workers fit
    file_size_mb: int = 4096  # the largest file the method may write (its weights go to scratch)
    open_files: int = 1024

    def __post_init__(self) -> None:
        for name in ("processes", "file_size_mb", "open_files"):
            if getattr(self, name) < 1:
                raise ValueError(f"JailLimits.{name} must be at least 1, got {getattr(self, name)}")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why the jail cannot run here (None: it can). Tried once per process: a jailed `true`."""
    path = bwrap_path()
    if path is None:
        return f"the jail needs bubblewrap (`bwrap`), which is not on PATH: {INSTALL_HINT}"
    with tempfile.TemporaryDirectory(prefix="mubench-jail-probe-") as scratch:
        true = shutil.which("true") or "/bin/true"
        try:
            probe = subprocess.run(jail_argv([true], Path(scratch), readable=()), capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap ({path}) could not be started: {exc}"
    if probe.returncode != 0:
        why = probe.stderr.decode("utf-8", "replace").strip()[-300:]
        return (f"bubblewrap ({path}) cannot create the jail's namespaces on this machine: {why or 'no message'} "
                "(a container may forbid them; run the sandbox on a host or VM that allows user namespaces)")
    return None


def require() -> None:
    """Raise JailUnavailableError, naming the reason and the fix, where the jail cannot run."""
    reason = unavailable()
    if reason is not None:
        raise JailUnavailableError(f"isolated runs need the jail: {reason}")


def python_roots() -> list[Path]:
    """The folders the jailed interpreter must read: its installation (the base prefix and a
    virtual environment's), the environment's site-packages and the mubench package itself (an
    editable install maps it from its source folder), with symbolic links resolved; folders inside
    another listed one are dropped. Not the current folder or a repository around the package:
    what a method needs beyond them (its own file) the sandbox binds by name."""
    import site

    import mubench

    candidates = [Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent.parent,
                  Path(os.path.dirname(os.path.abspath(mubench.__file__)))]
    candidates += [Path(p) for p in site.getsitepackages()]
    candidates += plugin_package_dirs()
    resolved: set[Path] = set()
    for candidate in candidates:
        for path in (candidate, Path(os.path.realpath(candidate))):
            if path.is_dir() and path != Path("/"):
                resolved.add(path.absolute())
    return _outermost(resolved)


def plugin_package_dirs() -> list[Path]:
    """The folders of the installed packages mubench loads by entry point (the methods' group,
    the `baselines` package among them; groups named `mubench.*`): the registry imports them in the jail too, and an
    editable install keeps them outside site-packages."""
    import importlib.metadata
    import importlib.util

    folders = []
    entries = [entry for dist in importlib.metadata.distributions() for entry in dist.entry_points]
    for entry in entries:
        if not entry.group.startswith("mubench."):
            continue
        top = entry.value.split(":")[0].split(".")[0]
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        locations = list(spec.submodule_search_locations or [])
        folders += [Path(location) for location in locations] if locations else (
            [Path(spec.origin)] if spec.origin else [])
    return folders


def _outermost(paths: Iterable[Path]) -> list[Path]:
    kept: list[Path] = []
    for path in sorted(paths, key=lambda p: len(p.parts)):
        if not any(path == k or k in path.parents for k in kept):
            kept.append(path)
    return sorted(kept)


SYSTEM_READABLE = ("/usr", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                   "/sys/devices/system/cpu")
USR_MERGED = ("bin", "sbin", "lib", "lib32", "lib64")


def jail_argv(argv: Sequence[str], scratch: Path, readable: Iterable[Path] | None = None,
              env: Mapping[str, str] | None = None) -> list[str]:
    """The bwrap command line that runs `argv` in the jail with `scratch` writable at /scratch.
    `readable`: folders bound read-only at their own paths (default: `python_roots()`)."""
    path = bwrap_path() or "bwrap"
    args = [path, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv"]
    if os.geteuid() != 0:
        args.append("--unshare-user")  # an unprivileged driver's namespaces need a user namespace
    for name, value in {"PATH": "/usr/bin:/bin", "HOME": SCRATCH, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
                        "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}.items():
        args += ["--setenv", name, value]
    made: set[str] = {"/"}
    for system in SYSTEM_READABLE:
        if os.path.exists(system):
            args += _parents(system, made) + ["--ro-bind", system, system]
    for name in USR_MERGED:  # /bin -> usr/bin on merged-/usr systems; a real folder elsewhere
        top = f"/{name}"
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    # /tmp first: what is bound below may live under /tmp (a fresh clone's environment) and must
    # not be hidden by it
    args += ["--size", str(TMP_BYTES), "--perms", "1777", "--tmpfs", "/tmp"]
    made.add("/tmp")
    for folder in (python_roots() if readable is None else readable):
        text = str(folder)
        if text.startswith("/usr/") or text == "/usr":
            continue  # already bound with /usr
        args += _parents(text, made) + ["--ro-bind", text, text]
    args += ["--proc", "/proc", "--dev", "/dev", "--bind", str(scratch), SCRATCH, "--chdir", SCRATCH, "--", *argv]
    return args


def _parents(path: str, made: set[str]) -> list[str]:
    """`--dir` for each missing ancestor of `path`, world-traversable (bwrap would make them
    0700, which `nobody` cannot enter)."""
    args: list[str] = []
    parts = Path(path).parts[1:-1]
    current = ""
    for part in parts:
        current += "/" + part
        if current not in made:
            made.add(current)
            args += ["--perms", "0755", "--dir", current]
    return args


def make_scratch(prefix: str = "mubench-jail-") -> Path:
    """A private scratch folder, writable by the jail's user (`nobody` under a root driver)."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        os.chown(scratch, NOBODY, NOBODY)
    return scratch


def enter(limits: JailLimits) -> None:
    """The jailed child's trusted prologue, before any submitted code is imported: hard resource
    limits, then no root and no way back (see the module docstring)."""
    as_root = os.geteuid() == 0
    nproc = limits.processes
    if not as_root:  # the limit counts every process of this user on the machine, not only the jail's
        nproc += _processes_of(os.getuid())
    for which, value in ((resource.RLIMIT_NPROC, nproc), (resource.RLIMIT_FSIZE, limits.file_size_mb * 2**20),
                         (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0)):
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))
    if as_root:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def _processes_of(uid: int) -> int:
    """How many processes (threads included, as RLIMIT_NPROC counts them) `uid` runs, as far as
    this PID namespace shows; an unprivileged jail's driver passes its own count in (see `enter`)."""
    known = os.environ.get("MUBENCH_JAIL_USER_TASKS")
    if known is not None:
        return int(known)
    return user_tasks(uid)


def user_tasks(uid: int) -> int:
    """Threads of every process of `uid` visible in /proc (the driver's side, before the jail)."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            continue
    return count

"""One lock per tcall folder, so that processes changing the same file do not lose each other's work.

The app and the command line run at the same time: each store (contacts, settings, history) takes
this lock, re-reads its file, applies one change and writes the file atomically before letting go.
Nobody holds it between changes, so a long-running process never blocks another. The lock is an
fcntl.flock on `.tcall.lock` in the folder; the kernel drops it when a process dies.
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tcall.engine.errors import ConfigError, RelayUnreachable

LOCK_FILE = ".tcall.lock"
WAIT_S = 10.0

_held = threading.local()  # folder -> depth, for the thread holding it (the lock is re-entrant)


@contextmanager
def locked(folder: Path, wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold the lock of `folder` (re-entrant within a thread); ConfigError if it cannot be had."""
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    key = os.path.abspath(folder)
    if depth.get(key):
        depth[key] += 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    fd = _open(folder)
    try:
        _acquire(fd, folder, wait_s)
        depth[key] = 1
        try:
            yield
        finally:
            depth[key] = 0
    finally:
        os.close(fd)  # releases the flock


def _open(folder: Path, name: str = LOCK_FILE) -> int:
    path = folder / name
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot lock {folder} ({path}): {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"lock file {path} is not a regular file; remove it")
    return fd


def _acquire(fd: int, folder: Path, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"{folder} is locked by another tcall process for over {wait_s:.0f} s; "
                    "try again"
                ) from None
            time.sleep(0.005)
        except OSError as exc:
            raise ConfigError(f"cannot lock {folder}: {exc.strerror or exc}") from None


ONLINE_FILE = ".tcall.online"


class AlreadyOnline(RelayUnreachable):
    """Another process of this identity is signed in (exit 6, like any relay that will not have us)."""


def hold_online(folder: Path) -> int:
    """Claim the right to sign in to the relay as this identity, for as long as the returned file
    descriptor stays open (the kernel lets go when the process dies).

    A relay keeps one link per identity: a second tcall signing in would push the first one off,
    and each would then push the other off in turn. So the second one is told at once, before any
    traffic, and the first one goes on undisturbed. Calls that need no relay (the echo test) need
    no claim."""
    fd = _open(folder, ONLINE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyOnline(
            "tcall is already running with this identity (the app, `tcall listen` or a call): "
            "use that one, or stop it first"
        ) from None
    return fd

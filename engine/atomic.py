"""Reading and writing the files tcall keeps, safely.

Writes are atomic: a crash leaves either the old file or the new one, never half of either.

Reads refuse what could hang, exhaust memory or let another user change what tcall trusts: a
path that is not a regular file once opened (a FIFO, a device such as /dev/zero, a folder; opened
with O_NONBLOCK, so a FIFO never blocks), a file larger than the caller's cap, a file owned by
another user (root excepted, as ssh does), a file writable by group or others, and, for a secret
such as the identity key, a file readable by group or others. A symbolic link to a regular file
is followed (a user may keep a file elsewhere); a link whose target does not exist is refused
rather than read as "no file yet". Every refusal is a one-line ConfigError (exit 12).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path

from tcall.engine.errors import ConfigError

_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_owner_and_mode(path: Path, st: os.stat_result, what: str, *, secret: bool) -> None:
    """Refuse a file or folder another user could change (or, for a secret, read)."""
    is_dir = stat.S_ISDIR(st.st_mode)
    fix = f"chmod {'700' if is_dir else '600'} {path}"
    if st.st_uid not in (os.geteuid(), 0):
        raise ConfigError(f"{what} {path} is owned by another user (uid {st.st_uid}); refusing it")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise ConfigError(f"{what} {path} is writable by other users (mode {mode:04o}); run: {fix}")
    if secret and mode & 0o077:
        raise ConfigError(
            f"{what} {path} is accessible by other users (mode {mode:04o}); run: {fix}"
        )


def _open_for_reading(path: Path, what: str) -> int | None:
    """A descriptor for `path`, or None if nothing is there; ConfigError for a dangling link."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    # Another tcall process may create the file between a failed open and the look at what is
    # there (its rename lands in that gap): then the open is simply tried again.
    for _ in range(3):
        try:
            return os.open(path, flags)
        except FileNotFoundError:
            if not os.path.islink(path):
                if os.path.lexists(path):
                    continue  # it appeared just now
                return None
            try:
                target = os.readlink(path)
            except OSError:
                continue  # the link was just replaced or removed
            raise ConfigError(
                f"{what} {path} is a symbolic link to {target}, which does not exist; "
                "restore the target or remove the link"
            ) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ConfigError(f"{what} {path} is a symbolic link loop") from None
            raise ConfigError(f"cannot read {what} {path}: {_reason(exc)}") from None
    raise ConfigError(f"cannot read {what} {path}: it keeps changing; try again")


def read_file(path: Path, limit: int, what: str, *, secret: bool = False) -> bytes | None:
    """The bytes of the regular file at `path` (at most `limit`), or None if there is none.

    Raises ConfigError (one line) for anything else: see the module docstring.
    """
    fd = _open_for_reading(path, what)
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise ConfigError(f"{what} {path} is {kind}, not a regular file; refusing to read it")
        check_owner_and_mode(path, st, what, secret=secret)
        if st.st_size > limit:
            raise ConfigError(f"{what} {path} is too large ({st.st_size} bytes; at most {limit})")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ConfigError(f"{what} {path} is too large (more than {limit} bytes)")
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {_reason(exc)}") from None
    finally:
        os.close(fd)


def read_json_array(path: Path, limit: int, what: str) -> list[object]:
    """The JSON array in the file at `path` ([] if there is none); ConfigError (one line, naming
    `what`) when it is not one."""
    raw = read_file(path, limit, what)
    if raw is None:
        return []
    try:
        entries = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(f"{path}: unreadable {what} ({exc})") from None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: unreadable {what} (not a JSON array)")
    return entries


def write_atomic(path: Path, data: bytes, mode: int = 0o600, *, exclusive: bool = False) -> bool:
    """Write `data` to `path` through a synced temporary file in the same folder, then rename.

    With `exclusive`, the file is only created, never replaced (a hard link, which fails if the
    path exists, even as a dangling symlink): returns False when something was already there.
    An OS error (read-only folder, disk full, a folder in the way) is a one-line ConfigError.
    """
    try:
        return _write_atomic(path, data, mode, exclusive)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {_reason(exc)}") from None


def _write_atomic(path: Path, data: bytes, mode: int, exclusive: bool) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    created = True
    try:
        os.fchmod(fd, mode)  # before any byte is written, so a secret is never world-readable
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                created = False
            Path(tmp).unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return created

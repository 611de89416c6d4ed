"""Where tcall keeps its files: one folder under TCALL_HOME, or the platformdirs defaults.

A folder is created with mode 0700. An existing one must be a folder owned by the user (or root)
and not writable by group or others, as ssh requires of ~/.ssh: another user who could write there
could swap the identity key or the pinned keys of contacts. Anything else is a one-line
ConfigError (exit 12) that says how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from tcall.engine.atomic import check_owner_and_mode
from tcall.engine.errors import ConfigError

HOME_ENV = "TCALL_HOME"


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


def set_home(path: str | os.PathLike[str]) -> None:
    """Move every file tcall keeps into `path` (what `--home DIR` does)."""
    os.environ[HOME_ENV] = str(Path(path).expanduser().resolve())


def checked_folder(path: Path, what: str) -> Path:
    """`path`, created (0700) if missing; ConfigError if it is unusable or others may write it."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{what} {path} is not a folder; point it at a folder") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {what} {path}: {exc.strerror or exc}") from None
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"cannot use {what} {path}: {exc.strerror or exc}") from None
    check_owner_and_mode(path, st, what, secret=False)
    return path


def data_dir() -> Path:
    """Keys, contacts and history."""
    home = _home()
    if home:
        return checked_folder(home, f"tcall home ({HOME_ENV})")
    return checked_folder(platformdirs.user_data_path("tcall"), "tcall data folder")


def config_dir() -> Path:
    """config.toml."""
    home = _home()
    if home:
        return checked_folder(home, f"tcall home ({HOME_ENV})")
    return checked_folder(platformdirs.user_config_path("tcall"), "tcall config folder")

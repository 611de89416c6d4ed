"""Where tcall keeps its files: one folder under TCALL_HOME, or the platformdirs defaults."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "TCALL_HOME"


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


def set_home(path: str | os.PathLike[str]) -> None:
    """Move every file tcall keeps into `path` (what `--home DIR` does)."""
    os.environ[HOME_ENV] = str(Path(path).expanduser().resolve())


def data_dir() -> Path:
    """Keys, contacts and history."""
    home = _home()
    path = home if home else platformdirs.user_data_path("tcall")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def config_dir() -> Path:
    """config.toml."""
    home = _home()
    path = home if home else platformdirs.user_config_path("tcall")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path

"""Shared fixtures: every test gets its own TCALL_HOME, so no developer key or config leaks in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def tcall_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "tcall-home"
    home.mkdir()
    monkeypatch.setenv("TCALL_HOME", str(home))
    yield home

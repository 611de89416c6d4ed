"""Fixtures for calls between real tcall processes through a real `tcall serve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.calls.people import Relay, User, pair


@pytest.fixture
def relay() -> Iterator[Relay]:
    server = Relay()
    yield server
    server.stop()


@pytest.fixture
def people(tmp_path: Path, relay: Relay) -> tuple[User, User]:
    return pair(tmp_path, relay)

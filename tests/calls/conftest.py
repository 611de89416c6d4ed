"""Fixtures for calls between real tcall processes through a real `tcall serve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.relays import ServeProcess
from tests.support.users import User, pair, stop_leftovers


@pytest.fixture
def relay() -> Iterator[ServeProcess]:
    server = ServeProcess()
    yield server
    server.stop()


@pytest.fixture
def people(tmp_path: Path, relay: ServeProcess) -> tuple[User, User]:
    return pair(tmp_path, relay.url)


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    yield
    stop_leftovers()

"""Fixtures for relay tests: in-process relays on loopback, `tcall serve` processes, a redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tcall.engine.server.server import RelayConfig, RelayServer
from tests.support.relays import ServeProcess, StartRelay, in_process_relays
from tests.support.services import redis_server


@pytest.fixture
async def start_relay() -> AsyncIterator[StartRelay]:
    """Start in-process relays in the test's loop: `url, server = await start_relay(config)`."""
    async with in_process_relays() as start:
        yield start


@pytest.fixture
async def relay(start_relay: StartRelay) -> tuple[str, RelayServer]:
    return await start_relay(RelayConfig(hold_seconds=5.0))


@pytest.fixture
def serve() -> Iterator[Callable[..., ServeProcess]]:
    """Start `tcall serve --port 0 ARGS...` processes; all are stopped after the test."""
    procs: list[ServeProcess] = []

    def start(*args: str) -> ServeProcess:
        procs.append(ServeProcess(*args))
        return procs[-1]

    yield start
    for proc in procs:
        proc.stop()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port, keeping nothing on disk."""
    with redis_server(tmp_path) as url:
        yield url

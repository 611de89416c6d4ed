"""Fixtures for relay tests: in-process relays on loopback, `tcall serve` processes, a redis-server."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tcall.engine.server.server import RelayConfig, RelayServer, run
from tests.relay.helpers import free_port

StartRelay = Callable[..., Awaitable[tuple[str, RelayServer]]]
TCALL = [
    sys.executable,
    "-c",
    "import sys; from tui.cli import entry; sys.argv[0] = 'tcall'; entry()",
]


@pytest.fixture
async def start_relay() -> AsyncIterator[StartRelay]:
    """Start in-process relays in the test's loop: `url, server = await start_relay(config)`."""
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(
        config: RelayConfig | None = None, redis_url: str | None = None
    ) -> tuple[str, RelayServer]:
        server = RelayServer(config or RelayConfig(), redis_url)
        stop = asyncio.Event()
        url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(run("127.0.0.1", 0, server, url.set_result, stop))
        stops.append((stop, task))
        waiters: list[asyncio.Future[object]] = [url, task]  # type: ignore[list-item]
        await asyncio.wait(waiters, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # it failed to start: raise its error here
        return url.result(), server

    yield start
    for stop, _ in stops:
        stop.set()
    await asyncio.gather(*(task for _, task in stops), return_exceptions=True)


@pytest.fixture
async def relay(start_relay: StartRelay) -> tuple[str, RelayServer]:
    return await start_relay(RelayConfig(hold_seconds=5.0))


class ServeProcess:
    """A `tcall serve` subprocess; `url` is set once it printed its listening line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*TCALL, "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = self.proc.stdout.readline().strip()
        prefix = "tcall relay listening on "
        if not line.startswith(prefix):
            self.proc.kill()
            raise RuntimeError(f"tcall serve said {line!r}: {self.proc.stderr.read()}")
        self.url = line[len(prefix) :]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(10)
        finally:
            self.proc.kill()


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
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed: apt-get install redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)

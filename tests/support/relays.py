"""Relays for the tests: in-process relays in the test's event loop, `tcall serve` processes, and
free loopback ports for what cannot pick its own."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from tcall.engine.server.server import RelayConfig, RelayServer, run
from tests.support.cli import TCALL, loopback_env

StartRelay = Callable[..., Awaitable[tuple[str, RelayServer]]]

LISTENING = "tcall relay listening on "


def free_port() -> int:
    """A TCP port nothing listens on now. Only for servers that cannot take port 0 and report
    theirs; between the close here and the server's bind another process may take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def in_process_relays() -> AsyncIterator[StartRelay]:
    """`url, server = await start(config, redis_url)` starts a relay on a port the system picks, in
    the running loop; all of them stop when the block ends."""
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

    try:
        yield start
    finally:
        for stop, _ in stops:
            stop.set()
        await asyncio.gather(*(task for _, task in stops), return_exceptions=True)


class ServeProcess:
    """A `tcall serve ARGS` process on a port the system picks (so test workers never collide);
    `url` is set once it printed its listening line. `prefix` runs it elsewhere, e.g. on a test
    host: ["ip", "netns", "exec", NAME]."""

    def __init__(self, *args: str, host: str = "127.0.0.1", prefix: list[str] | None = None):
        self.proc = subprocess.Popen(
            [*(prefix or []), TCALL, "serve", "--host", host, "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=loopback_env(),
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith(LISTENING):
            self.proc.kill()
            raise RuntimeError(f"tcall serve said {line!r}: {self.proc.stderr.read()}")
        self.url = line[len(LISTENING) :]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(10)
        finally:
            self.proc.kill()

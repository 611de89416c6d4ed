"""`tcall serve`: run a relay that passes sealed signaling payloads between mailboxes."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import sys

import click
import uvloop

from tcall.engine.errors import ExitCode
from tcall.engine.relay import protocol
from tcall.engine.server.server import RelayConfig, RelayServer, run
from tcall.tui.cli import Bounded


def _raise_fd_limit() -> None:
    # Every link is a socket; the usual soft limit of 1024 would cap a relay far below its capacity.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _serve(host: str, port: int, server: RelayServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def listening(url: str) -> None:
        click.echo(f"tcall relay listening on {url}")
        sys.stdout.flush()

    await run(host, port, server, listening, stop)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=7711, show_default=True, help="0 picks one."
)
@click.option("--redis", "redis_url", default=None, help="Share routing with other relay nodes.")
@click.option(
    "--hold-seconds",
    type=Bounded(0, 3600),
    default=60.0,
    show_default=True,
    help="How long a payload for an offline mailbox is kept in memory.",
)
@click.option(
    "--rate",
    type=Bounded(1, 1e6),
    default=RelayConfig.rate,
    show_default=True,
    help="Messages a second each link may send, sustained.",
)
@click.option(
    "--burst",
    type=Bounded(1, 1e6),
    default=RelayConfig.burst,
    show_default=True,
    help="Messages a link may send in one burst.",
)
@click.option(
    "--hold-memory",
    type=click.IntRange(0, 1 << 20),
    default=RelayConfig.hold_max_bytes >> 20,
    show_default=True,
    help="MiB of memory payloads for offline mailboxes may take, in all.",
)
@click.option(
    "--public-url",
    "public_urls",
    multiple=True,
    help="A ws:// or wss:// URL clients reach this relay by, when behind a proxy (repeatable). "
    "Sign-ins are then accepted for these URLs only.",
)
def command(
    host: str,
    port: int,
    redis_url: str | None,
    hold_seconds: float,
    rate: float,
    burst: float,
    hold_memory: int,
    public_urls: tuple[str, ...],
) -> ExitCode:
    """Run a relay: it sees mailbox ids, sizes, times and IP addresses, and nothing else."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="tcall relay: %(message)s")
    try:
        origins = tuple(protocol.relay_origin(url) for url in public_urls)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--public-url") from exc
    _raise_fd_limit()
    config = RelayConfig(
        hold_seconds=hold_seconds,
        rate=rate,
        burst=burst,
        hold_max_bytes=hold_memory << 20,
        public_urls=origins,
    )
    # uvloop roughly halves the relay's CPU per message; asyncio's own loop also works.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(host, port, RelayServer(config, redis_url)))
    return ExitCode.OK

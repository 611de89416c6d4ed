"""`tcall serve`: run a relay that passes sealed signaling payloads between mailboxes, and hands
signed-in clients its STUN and TURN servers (`--stun`, `--turn` with `--turn-secret`, or a coturn
of its own with `--coturn`), over wss:// with `--cert` and `--key`."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import signal
import ssl
import sys
from pathlib import Path

import click
import uvloop

from tcall.engine import atomic
from tcall.engine.errors import ConfigError, ExitCode
from tcall.engine.relay import protocol
from tcall.engine.server.coturn import Coturn, CoturnOptions, peer_range
from tcall.engine.server.server import RelayConfig, RelayServer, run, tls_context
from tcall.engine.server.turn_credentials import DEFAULT_TTL, IceOffer, credentials_safe
from tcall.tui.cli import Bounded

log = logging.getLogger("tcall.relay")
_MIN_SECRET = 16  # characters of a --turn-secret: fewer could be guessed, and credentials forged
_MAX_SECRET_FILE = 4096


def _raise_fd_limit() -> None:
    # Every link is a socket; the usual soft limit of 1024 would cap a relay far below its capacity.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _serve(
    host: str,
    port: int,
    server: RelayServer,
    tls: ssl.SSLContext | None,
    coturn: Coturn | None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def listening(url: str) -> None:
        click.echo(f"tcall relay listening on {url}")
        sys.stdout.flush()

    try:
        if coturn is not None:
            await coturn.start()  # before "listening": a client then always gets working TURN
        await run(host, port, server, listening, stop, tls)
    finally:
        if coturn is not None:
            await coturn.stop()


def _ice_urls(urls: tuple[str, ...], option: str, schemes: tuple[str, ...]) -> tuple[str, ...]:
    for url in urls:
        if "@" in url or "//" in url:
            raise click.BadParameter(
                f"{url!r}: no user or password in the URL; write {schemes[0]}:HOST[:PORT]"
                " (TURN credentials are made for each client from --turn-secret)",
                param_hint=option,
            )
        try:
            protocol.check_ice_url(url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from None
        if url.split(":", 1)[0] not in schemes:
            raise click.BadParameter(
                f"{url!r} is not a {' or '.join(schemes)}: URL", param_hint=option
            )
    if len(urls) > protocol.MAX_ICE_URLS:
        raise click.BadParameter(f"at most {protocol.MAX_ICE_URLS} URLs", param_hint=option)
    return urls


def _read_secret(path: str) -> bytes:
    """The shared secret in FILE, refused like ssh refuses a key others may read (exit 12)."""
    data = atomic.read_file(Path(path), _MAX_SECRET_FILE, "TURN secret file", secret=True)
    if data is None:
        raise ConfigError(f"TURN secret file {path} does not exist")
    secret = data.strip()
    if len(secret) < _MIN_SECRET or not all(0x21 <= byte <= 0x7E for byte in secret):
        raise ConfigError(
            f"TURN secret file {path} must hold one line of at least {_MIN_SECRET} printable "
            "characters (coturn's static-auth-secret), e.g. from: openssl rand -hex 32"
        )
    return secret


def _tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise click.UsageError("--cert and --key go together")
    if atomic.read_file(Path(key), 1 << 20, "TLS key file", secret=True) is None:
        raise ConfigError(f"TLS key file {key} does not exist")
    return tls_context(cert, key)


def _address(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an IP address", param_hint=option) from None


def _coturn_options(
    host: str,
    coturn_port: int,
    coturn_ports: str,
    external_ip: str | None,
    relay_ip: str | None,
    allow_peers: tuple[str, ...],
) -> CoturnOptions:
    try:
        listen = ipaddress.ip_address(host)
    except ValueError:
        raise click.BadParameter(
            "with --coturn, --host is an IP address (0.0.0.0 for all)", param_hint="--host"
        ) from None
    low, dash, high = coturn_ports.partition("-")
    if not (dash and low.isdigit() and high.isdigit() and 1024 <= int(low) <= int(high) <= 65535):
        raise click.BadParameter(
            f"{coturn_ports!r} is not LOW-HIGH, 1024 to 65535", param_hint="--coturn-ports"
        )
    if external_ip is not None:
        public, _, private = external_ip.partition("/")
        _address(public, "--coturn-external-ip")
        if private:
            _address(private, "--coturn-external-ip")
    try:
        allowed = tuple(peer_range(peers) for peers in allow_peers)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--coturn-allow-peer") from None
    specific = None if listen.is_unspecified else str(listen)
    return CoturnOptions(
        port=coturn_port,
        listen_ip=specific,
        relay_ip=_address(relay_ip, "--coturn-relay-ip") or specific,
        external_ip=external_ip,
        min_port=int(low),
        max_port=int(high),
        allowed_peers=allowed,
    )


def _coturn_host(options: CoturnOptions, public_urls: tuple[str, ...]) -> str:
    """Where clients reach the coturn we run: its public address, else the relay's public
    name, else the address it listens on; BadParameter if none of them will do."""
    candidates = []
    if options.external_ip:
        candidates.append(options.external_ip.partition("/")[0])
    candidates += [url.split("://", 1)[1].rpartition(":")[0] for url in public_urls]
    if options.listen_ip:
        candidates.append(options.listen_ip)
    for host in candidates:
        try:
            protocol.check_ice_url(f"turn:{host}")
        except ValueError:
            continue
        return host
    raise click.BadParameter(
        "say where clients reach coturn: --turn turn:HOST:PORT, --coturn-external-ip, or "
        "--public-url (an IPv6 address will not do: aiortc cannot parse it)",
        param_hint="--coturn",
    )


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
@click.option(
    "--stun",
    "stun_urls",
    multiple=True,
    metavar="URL",
    help="A STUN server signed-in clients get: stun:HOST[:PORT] (repeatable).",
)
@click.option(
    "--turn",
    "turn_urls",
    multiple=True,
    metavar="URL",
    help="A TURN server signed-in clients get, with credentials of their own: "
    "turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT] (repeatable). "
    "Needs --turn-secret or --coturn.",
)
@click.option(
    "--turn-secret",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="The secret shared with coturn (its static-auth-secret), in a 0600 file.",
)
@click.option(
    "--turn-ttl",
    type=click.IntRange(protocol.MIN_ICE_TTL, protocol.MAX_ICE_TTL),
    default=DEFAULT_TTL,
    show_default=True,
    help="Seconds a client's TURN credentials work; new ones are sent at half of it.",
)
@click.option(
    "--coturn",
    "run_coturn",
    is_flag=True,
    help="Start coturn (turnserver) with a secret of its own, hand out its STUN and TURN, "
    "and stop it on exit.",
)
@click.option(
    "--coturn-port",
    type=click.IntRange(1, 65535),
    default=3478,
    show_default=True,
    help="coturn's UDP and TCP port.",
)
@click.option(
    "--coturn-ports",
    default="49152-65535",
    show_default=True,
    metavar="LOW-HIGH",
    help="coturn's relay ports (open them in the firewall, UDP).",
)
@click.option(
    "--coturn-external-ip",
    default=None,
    metavar="PUBLIC[/PRIVATE]",
    help="coturn's public address, when the host is behind a 1:1 NAT (cloud VMs).",
)
@click.option(
    "--coturn-relay-ip",
    default=None,
    metavar="IP",
    help="The address coturn relays media from (default: --host unless it is 0.0.0.0).",
)
@click.option(
    "--coturn-allow-peer",
    "allow_peers",
    multiple=True,
    metavar="IP[-IP]",
    help="Let coturn relay to these otherwise denied addresses (private, loopback; repeatable).",
)
@click.option(
    "--cert",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Serve wss://: the TLS certificate chain (PEM), with --key.",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="The TLS private key (PEM, a 0600 file), with --cert.",
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
    stun_urls: tuple[str, ...],
    turn_urls: tuple[str, ...],
    turn_secret: str | None,
    turn_ttl: int,
    run_coturn: bool,
    coturn_port: int,
    coturn_ports: str,
    coturn_external_ip: str | None,
    coturn_relay_ip: str | None,
    allow_peers: tuple[str, ...],
    cert: str | None,
    key: str | None,
) -> ExitCode:
    """Run a relay: it sees mailbox ids, sizes, times and IP addresses, and nothing else."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="tcall relay: %(message)s")
    try:
        origins = tuple(protocol.relay_origin(url) for url in public_urls)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--public-url") from exc
    stun_urls = _ice_urls(stun_urls, "--stun", ("stun",))
    turn_urls = _ice_urls(turn_urls, "--turn", ("turn", "turns"))
    if run_coturn and turn_secret is not None:
        raise click.UsageError("--coturn makes its own secret: leave out --turn-secret")
    if turn_urls and not (turn_secret or run_coturn):
        raise click.UsageError(
            "--turn needs --turn-secret FILE (coturn's static-auth-secret) or --coturn"
        )
    if turn_secret is not None and not turn_urls:
        raise click.UsageError("--turn-secret needs at least one --turn URL")
    coturn = None
    secret = b""
    if run_coturn:
        options = _coturn_options(
            host, coturn_port, coturn_ports, coturn_external_ip, coturn_relay_ip, allow_peers
        )
        if not turn_urls:
            where = f"{_coturn_host(options, origins)}:{options.port}"
            stun_urls = (*stun_urls, f"stun:{where}")[: protocol.MAX_ICE_URLS]
            turn_urls = (f"turn:{where}?transport=udp", f"turn:{where}?transport=tcp")
        coturn = Coturn(options)
        secret = coturn.secret.encode("ascii")
    elif turn_secret is not None:
        secret = _read_secret(turn_secret)
    tls = _tls(cert, key)
    try:
        ice = IceOffer(stun_urls, turn_urls, secret, turn_ttl) if stun_urls or turn_urls else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if turn_urls and tls is None and not _credentials_reach_all(host, origins):
        log.warning(
            "TURN credentials go only to clients that dialled wss:// or a loopback address: "
            "serve wss:// (--cert, --key) or behind a TLS proxy (--public-url wss://...)"
        )
    _raise_fd_limit()
    config = RelayConfig(
        hold_seconds=hold_seconds,
        rate=rate,
        burst=burst,
        hold_max_bytes=hold_memory << 20,
        public_urls=origins,
        ice=ice,
    )
    # uvloop roughly halves the relay's CPU per message; asyncio's own loop also works.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(host, port, RelayServer(config, redis_url), tls, coturn))
    return ExitCode.OK


def _credentials_reach_all(host: str, origins: tuple[str, ...]) -> bool:
    """Whether every client can get TURN credentials without TLS on this relay: it listens on
    loopback alone, or its public URLs are all wss://."""
    if origins:
        return all(credentials_safe(origin) for origin in origins)
    return credentials_safe(protocol.origin("ws", host, 80))

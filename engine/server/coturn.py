"""A real coturn (`turnserver`) started, watched and stopped by `tcall serve --coturn`.

coturn gets a secret of its own making (`secrets.token_hex(32)`), shared with the relay only,
which makes each signed-in client short-lived credentials from it (`turn_credentials`). Its
configuration is written 0600 into a private temporary folder (0700), never on the command line
where any local user could read it from /proc, and the folder is removed as soon as coturn
answers: its user database is in memory, so from then on nothing of it is on disk, even if the
relay is killed. The flags are the safe ones: no CLI, no TLS/DTLS listeners of its own, no
TCP relays, no peers on loopback, multicast or the private and reserved ranges in `DENIED_PEERS`
unless `allowed_peers` names them, per-user and total allocation quotas, a bandwidth cap per
session, short-lived nonces, no software version in answers. coturn prints the usernames and peer
addresses of its sessions; that output is read and dropped, and only its error lines are kept,
in memory, to say why it stopped.

If coturn dies, it is started again (1, 2, 4 ... 30 s later) and the death is logged. It runs in
a session of its own, so a terminal's Ctrl-C reaches the relay, which stops it; it is also told
to end (PR_SET_PDEATHSIG) if the relay process dies without a chance to stop it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ipaddress
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tcall.engine.errors import ConfigError

log = logging.getLogger("tcall.relay")

# Peer addresses coturn refuses to relay to: this host, private networks, link-local, carrier-grade
# NAT, benchmarking, IPv4-mapped and IPv6 unique-local ranges. A TURN server that relays there
# lets anyone on the internet reach the operator's internal network (a "TURN proxy" SSRF).
DENIED_PEERS = (
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.0.0.0-192.0.0.255",
    "192.168.0.0-192.168.255.255",
    "198.18.0.0-198.19.255.255",
    "240.0.0.0-255.255.255.255",
    "::1",
    "::ffff:0.0.0.0-::ffff:255.255.255.255",
    "64:ff9b::-64:ff9b::ffff:ffff",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
)
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_MAX_BACKOFF = 30.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class CoturnOptions:
    """How `tcall serve --coturn` runs coturn; README.md lists the same lines for running it
    separately."""

    port: int = 3478
    listen_ip: str | None = None  # None: every address of the host
    relay_ip: str | None = None  # the address relayed media leaves from; None: coturn's choice
    external_ip: str | None = None  # "PUBLIC[/PRIVATE]" behind a 1:1 NAT (cloud VMs)
    min_port: int = 49152  # relay ports
    max_port: int = 65535
    allowed_peers: tuple[str, ...] = ()  # ranges of DENIED_PEERS (or loopback) to allow anyway
    realm: str = "tcall"
    user_quota: int = 10  # allocations at once per username, i.e. per signed-in link
    total_quota: int = 1000
    max_bps: int = 1_000_000  # bytes a second per session: 8 Mbit/s, over any call's needs


def peer_range(text: str) -> str:
    """`text` if it is an address or an `A-B` range of addresses; ValueError otherwise."""
    ends = text.split("-")
    if len(ends) > 2:
        raise ValueError(f"{text!r} is not an address or a range A-B")
    try:
        addresses = [ipaddress.ip_address(end.strip()) for end in ends]
    except ValueError:
        raise ValueError(f"{text!r} is not an address or a range A-B") from None
    low, high = addresses[0], addresses[-1]
    if low.version != high.version or int(low) > int(high):
        raise ValueError(f"{text!r} is not a range of addresses, low to high")
    return "-".join(str(address) for address in addresses)


def config_lines(options: CoturnOptions, secret: str, folder: Path) -> list[str]:
    """The lines of the turnserver.conf this relay runs coturn with; `folder` is where it may
    write its pid file."""
    lines = [
        f"listening-port={options.port}",
        f"min-port={options.min_port}",
        f"max-port={options.max_port}",
    ]
    if options.listen_ip:
        lines.append(f"listening-ip={options.listen_ip}")
    if options.relay_ip:
        lines.append(f"relay-ip={options.relay_ip}")
    if options.external_ip:
        lines.append(f"external-ip={options.external_ip}")
    lines += [
        "use-auth-secret",
        f"static-auth-secret={secret}",
        f"realm={options.realm}",
        "fingerprint",
        "stale-nonce=600",
        f"user-quota={options.user_quota}",
        f"total-quota={options.total_quota}",
        f"max-bps={options.max_bps}",
        "no-cli",
        "no-tls",
        "no-dtls",
        "no-tcp-relay",
        "no-multicast-peers",
        "no-rfc5780",
        "no-software-attribute",
    ]
    lines += [f"denied-peer-ip={peers}" for peers in DENIED_PEERS]
    lines += [f"allowed-peer-ip={peers}" for peers in options.allowed_peers]
    if any(_is_loopback(peers) for peers in options.allowed_peers):
        lines.append("allow-loopback-peers")
    lines += [
        "userdb=:memory:",  # SQLite's: else coturn opens a shared file under /var/lib/turn
        f"pidfile={folder / 'turnserver.pid'}",
        "log-file=stdout",
        "simple-log",
    ]
    return lines


def _is_loopback(peers: str) -> bool:
    return any(ipaddress.ip_address(end).is_loopback for end in peers.split("-"))


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel to end coturn if the relay process dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, 0600 from the start."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _probe_address(options: CoturnOptions) -> tuple[str, int]:
    host = options.listen_ip or "127.0.0.1"
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, options.port


def _check_port_free(options: CoturnOptions) -> None:
    """ConfigError if something listens on coturn's port already: coturn binds with
    SO_REUSEPORT, so it would start anyway and share the port with whatever holds it."""
    host = options.listen_ip or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(family, kind) as sock:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, options.port))
            except OSError as exc:
                what = "UDP" if kind == socket.SOCK_DGRAM else "TCP"
                raise ConfigError(
                    f"coturn cannot listen on {host} {what} port {options.port}: "
                    f"{(exc.strerror or str(exc)).lower()}"
                ) from None


async def _stun_answers(address: tuple[str, int]) -> bool:
    """Whether a STUN Binding request to `address` gets a success answer within 0.2 s."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.connect(address)
            await loop.sock_sendall(sock, request)
            answer = await asyncio.wait_for(loop.sock_recv(sock, 2048), 0.2)
        except (OSError, TimeoutError):
            return False
    return answer[:2] == b"\x01\x01" and answer[8:20] == request[8:20]


class Coturn:
    """One supervised coturn: `await start()` (ConfigError if it cannot run), `await stop()`."""

    def __init__(self, options: CoturnOptions, binary: str = "turnserver") -> None:
        self.options = options
        self.binary = binary
        self.secret = secrets.token_hex(32)
        self.process: asyncio.subprocess.Process | None = None
        self._errors: collections.deque[str] = collections.deque(maxlen=3)
        self._output: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._started = 0.0  # loop time of the last launch

    async def start(self) -> None:
        """Start coturn and wait until it answers STUN; ConfigError (one line) if it does not."""
        path = shutil.which(self.binary)
        if path is None:
            raise ConfigError(
                f"coturn is not installed ({self.binary} not found): apt-get install coturn"
            )
        self.binary = path
        _check_port_free(self.options)
        try:
            await self._launch()
        except BaseException:
            await self.stop()
            raise
        self._watch = asyncio.create_task(self._supervise(), name="tcall-coturn")
        host, port = _probe_address(self.options)
        log.info("coturn is running on %s port %d (pid %d)", host, port, self.pid)

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    async def stop(self) -> None:
        """Stop coturn (SIGTERM, then SIGKILL after 5 s)."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._end_process()

    async def _end_process(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._output is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._output
            self._output = None

    async def _launch(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="tcall-coturn-"))  # 0700
        config = folder / "turnserver.conf"
        _write_private(config, "\n".join(config_lines(self.options, self.secret, folder)))
        self._errors.clear()
        self._started = asyncio.get_running_loop().time()
        try:
            self.process = await asyncio.create_subprocess_exec(
                self.binary,
                "-c",
                str(config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise ConfigError(f"cannot start coturn: {exc.strerror or exc}") from None
        self._output = asyncio.create_task(self._read_output(self.process))
        try:
            await self._wait_ready(self.process)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # read: the secret is in memory only

    async def _wait_ready(self, process: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT
        address = _probe_address(self.options)
        while not await _stun_answers(address):
            if process.returncode is not None or loop.time() > deadline:
                why = self._why()
                await self._end_process()
                raise ConfigError(f"coturn did not start: {why}")
            await asyncio.sleep(0.05)

    def _why(self) -> str:
        if self.process is not None and self.process.returncode is not None:
            said = "; ".join(self._errors) or "no error printed"
            return f"it exited with code {self.process.returncode} ({said})"
        return f"no STUN answer within {_START_TIMEOUT:g} s"

    async def _read_output(self, process: asyncio.subprocess.Process) -> None:
        # Every line is read (a full pipe would stall coturn) and dropped, but for errors.
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode("ascii", "replace").strip()
            if "error" in line.lower():
                self._errors.append(line.removeprefix("0: : ")[:200])

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 1.0
        while True:
            assert self.process is not None
            await self.process.wait()
            if self._stopping:
                return
            if loop.time() - self._started > 60:
                delay = 1.0  # it ran a good while: this is no crash loop
            log.error("coturn exited (%s); starting it again in %g s", self._why(), delay)
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF)
                try:
                    await self._launch()
                    break
                except ConfigError as exc:
                    log.error("%s; trying again in %g s", exc, delay)
            log.info("coturn is running again (pid %d)", self.pid)

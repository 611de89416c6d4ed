"""`tcall serve` hands signed-in clients STUN and TURN that a real coturn accepts: with the secret
shared with a coturn run apart (`--turn-secret`), or with a coturn it runs itself (`--coturn`),
which is gone when the relay is; and over wss:// (`--cert`, `--key`) with a test CA. Loopback
only: coturn relays from 127.0.0.1, and only allocations are made, never a peer reached."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nacl.signing
import pytest
from aioice import stun, turn
from aiortc import RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.rtcicetransport import RTCIceGatherer

from tcall.engine.errors import ExitCode, RelayUnreachable
from tcall.engine.relay.client import RELAY_CA_ENV, RelayClient
from tcall.engine.relay.protocol import IceServer
from tcall.engine.server.turn_credentials import rest_credential, rest_username
from tests.support import services
from tests.support.cli import TCALL, run_tcall
from tests.support.relays import ServeProcess, free_port
from tests.support.tls import make_pki

SECRET = "e2e0c0ffee0ddba11e2e0c0ffee0ddba11"
Serve = Callable[..., ServeProcess]


@pytest.fixture
def coturn_rest(tmp_path: Path) -> Iterator[int]:
    """A real coturn run apart from the relay, checking TURN REST credentials made with SECRET."""
    with services.coturn(tmp_path, secret=SECRET) as port:
        yield port


def secret_file(folder: Path, secret: str = SECRET) -> str:
    path = folder / "turn.secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return str(path)


async def relay_candidates(servers: tuple[IceServer, ...]) -> list[tuple[str, str]]:
    """What aiortc gathers through these servers with relay-only ICE: (type, address) pairs."""
    gatherer = RTCIceGatherer(
        iceServers=[
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in servers
        ],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )
    await asyncio.wait_for(gatherer.gather(), 10)
    return [(c.type, c.ip) for c in gatherer.getLocalCandidates()]


async def allocate(port: int, username: str, password: str, transport: str = "udp") -> str:
    """Allocate a relayed address on the coturn at 127.0.0.1:`port`; its address, or the error."""
    try:
        relayed, _ = await asyncio.wait_for(
            turn.create_turn_endpoint(
                asyncio.DatagramProtocol,
                ("127.0.0.1", port),
                username,
                password,
                transport=transport,
            ),
            10,
        )
    except stun.TransactionFailed as exc:
        code, _ = exc.response.attributes["ERROR-CODE"]
        return f"error {code}"
    try:
        address: str = relayed.get_extra_info("sockname")[0]
        return address
    finally:
        relayed.close()
        await asyncio.sleep(0)


def turn_server(client: RelayClient) -> IceServer:
    (found,) = [s for s in client.ice_servers if s.username is not None]
    return found


async def test_turn_secret_hands_out_credentials_coturn_accepts(
    serve: Serve, coturn_rest: int, tmp_path: Path
) -> None:
    where = f"127.0.0.1:{coturn_rest}"
    relay = serve(
        "--turn-secret",
        secret_file(tmp_path),
        "--turn",
        f"turn:{where}?transport=udp",
        "--turn",
        f"turn:{where}?transport=tcp",
        "--stun",
        f"stun:{where}",
        "--turn-ttl",
        "120",
    )
    client = await RelayClient.connect(relay.url, nacl.signing.SigningKey.generate())
    try:
        stun_server, turn_entry = client.ice_servers
        assert stun_server == IceServer((f"stun:{where}",))
        assert turn_entry.urls == (f"turn:{where}?transport=udp", f"turn:{where}?transport=tcp")
        assert turn_entry.username is not None and turn_entry.credential is not None
        expiry = int(turn_entry.username.split(":")[0])
        assert 100 < expiry - time.time() <= 120
        assert await relay_candidates(client.ice_servers) == [("relay", "127.0.0.1")]
        for transport in ("udp", "tcp"):
            address = await allocate(
                coturn_rest, turn_entry.username, turn_entry.credential, transport
            )
            assert address == "127.0.0.1"
        # The same scheme with another secret, or a past expiry, is refused by coturn itself.
        assert (
            await allocate(
                coturn_rest,
                turn_entry.username,
                rest_credential(b"another secret", turn_entry.username),
            )
            == "error 401"
        )
        expired = rest_username(int(time.time()) - 5, "0123456789abcdef")
        assert await allocate(coturn_rest, expired, rest_credential(SECRET.encode(), expired)) == (
            "error 401"
        )
        fresh = rest_username(int(time.time()) + 60, "0123456789abcdef")
        assert await allocate(coturn_rest, fresh, rest_credential(SECRET.encode(), fresh)) == (
            "127.0.0.1"
        )
    finally:
        await client.close()
    assert relay.stop() == 0
    stderr = relay.proc.stderr.read() if relay.proc.stderr else ""
    assert SECRET not in stderr and turn_entry.credential not in stderr
    assert "TURN credentials go only" not in stderr  # it listens on loopback: no warning


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def coturn_of(relay: ServeProcess, timeout: float = 10) -> int:
    """The pid of the coturn a `tcall serve --coturn` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in _children(relay.proc.pid):
            with_comm = Path(f"/proc/{pid}/comm")
            if with_comm.exists() and with_comm.read_text().strip() == "turnserver":
                return pid
        time.sleep(0.05)
    raise AssertionError("tcall serve runs no coturn")


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":  # a zombie waiting for its reaper: it runs no more
            return True
        time.sleep(0.05)
    return False


def coturn_args() -> list[str]:
    port = free_port()
    low = 49152 + (port % 2000) * 8
    return ["--coturn", "--coturn-port", str(port), "--coturn-ports", f"{low}-{low + 7}"]


async def test_coturn_is_started_hands_out_working_turn_and_stops_with_the_relay(
    serve: Serve,
) -> None:
    args = coturn_args()
    port = int(args[2])
    relay = serve(*args)
    pid = coturn_of(relay)
    config = Path(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[2].decode())
    assert not config.parent.exists()  # coturn read it: the secret is no longer on disk
    client = await RelayClient.connect(relay.url, nacl.signing.SigningKey.generate())
    try:
        where = f"127.0.0.1:{port}"
        stun_server, turn_entry = client.ice_servers
        assert stun_server.urls == (f"stun:{where}",)
        assert turn_entry.urls == (f"turn:{where}?transport=udp", f"turn:{where}?transport=tcp")
        assert await relay_candidates(client.ice_servers) == [("relay", "127.0.0.1")]
        assert turn_entry.username is not None and turn_entry.credential is not None
        assert await allocate(port, turn_entry.username, turn_entry.credential, "tcp") == (
            "127.0.0.1"
        )
        wrong = rest_credential(b"not coturn's secret", turn_entry.username)
        assert await allocate(port, turn_entry.username, wrong) == "error 401"
    finally:
        await client.close()
    relay.proc.send_signal(signal.SIGTERM)
    assert relay.proc.wait(15) == 0
    assert gone(pid)
    stderr = relay.proc.stderr.read() if relay.proc.stderr else ""
    assert "Traceback" not in stderr and turn_entry.credential not in stderr


async def test_a_dead_coturn_is_started_again(serve: Serve) -> None:
    args = coturn_args()
    port = int(args[2])
    relay = serve(*args)
    first = coturn_of(relay)
    client = await RelayClient.connect(relay.url, nacl.signing.SigningKey.generate())
    try:
        entry = turn_server(client)
        assert entry.username is not None and entry.credential is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 15
        second = first
        while second == first and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            second = next(iter(_children(relay.proc.pid)), first)
        assert second != first, "coturn was not started again"
        # The same secret: credentials handed out before still work with the new coturn.
        for _ in range(50):
            if await allocate(port, entry.username, entry.credential) == "127.0.0.1":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the restarted coturn refuses the credentials")
    finally:
        await client.close()
    assert relay.stop() == 0
    assert gone(second)
    stderr = relay.proc.stderr.read() if relay.proc.stderr else ""
    # Only the exit is asked for: "running again" is logged once the relay's own readiness poll
    # sees the new coturn, which may come after the allocation above (seen once in CI).
    assert "coturn exited (it exited with code -9" in stderr


def test_coturn_goes_when_the_relay_is_killed(serve: Serve) -> None:
    relay = serve(*coturn_args())
    pid = coturn_of(relay)
    config = Path(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[2].decode())
    relay.proc.kill()  # no chance to stop coturn itself
    relay.proc.wait(10)
    assert gone(pid), "coturn outlived its relay"
    assert not config.parent.exists()  # and nothing of it is left on disk


def test_coturn_that_cannot_listen_is_one_line() -> None:
    args = coturn_args()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", int(args[2])))
        result = run_tcall("serve", "--port", "0", *args, timeout=30)
    assert result.returncode == ExitCode.CONFIG
    assert result.stderr == (
        f"tcall: error: coturn cannot listen on 127.0.0.1 UDP port {args[2]}: "
        "address already in use\n"
    )
    assert result.stdout == ""


def test_coturn_missing_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [TCALL, "serve", "--port", "0", *coturn_args()],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PATH": str(tmp_path)},  # no turnserver there
    )
    assert result.returncode == ExitCode.CONFIG
    assert result.stderr == (
        "tcall: error: coturn is not installed (turnserver not found): apt-get install coturn\n"
    )


async def test_wss_relay_with_a_test_ca(
    serve: Serve, coturn_rest: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pki(tmp_path / "pki")
    relay = serve(
        "--cert",
        str(pki.cert),
        "--key",
        str(pki.key),
        "--turn-secret",
        secret_file(tmp_path),
        "--turn",
        f"turn:127.0.0.1:{coturn_rest}",
    )
    assert relay.url.startswith("wss://127.0.0.1:")
    monkeypatch.delenv(RELAY_CA_ENV, raising=False)
    with pytest.raises(RelayUnreachable) as caught:
        await RelayClient.connect(relay.url, nacl.signing.SigningKey.generate())
    assert str(caught.value) == (
        f"relay {relay.url} is unreachable: its TLS certificate is not trusted"
    )
    monkeypatch.setenv(RELAY_CA_ENV, str(pki.ca))
    client = await RelayClient.connect(relay.url, nacl.signing.SigningKey.generate())
    try:
        assert await relay_candidates(client.ice_servers) == [("relay", "127.0.0.1")]
    finally:
        await client.close()
    assert relay.stop() == 0

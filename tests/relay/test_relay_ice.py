"""The relay hands signed-in clients its ICE servers, in-process on loopback: right after sign-in,
renewed before they expire, only to clients that ask; a hostile ICE frame closes the link in words;
and wss:// with a test CA that the client trusts only when told to (TCALL_RELAY_CA)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import nacl.signing
import pytest

from tcall.engine.errors import ConfigError, RelayUnreachable
from tcall.engine.relay import protocol
from tcall.engine.relay.client import RELAY_CA_ENV, RelayClient
from tcall.engine.relay.protocol import IceServer
from tcall.engine.server import server as relay_server
from tcall.engine.server.server import RelayConfig, RelayServer, run, tls_context
from tcall.engine.server.turn_credentials import IceOffer, rest_credential
from tests.support.relay_links import raw_link
from tests.support.relays import StartRelay
from tests.support.tls import Pki, make_pki

SECRET = b"0123456789abcdef0123456789abcdef"
OFFER = IceOffer(
    ("stun:127.0.0.1:3478",),
    ("turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"),
    SECRET,
    ttl=600,
)


def new_key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


def turn_of(client: RelayClient) -> IceServer:
    (turn,) = [server for server in client.ice_servers if server.username is not None]
    return turn


async def test_a_client_has_the_ice_servers_when_it_is_signed_in(start_relay: StartRelay) -> None:
    url, _ = await start_relay(RelayConfig(ice=OFFER))
    before = time.time()
    a = await RelayClient.connect(url, new_key())
    b = await RelayClient.connect(url, new_key())
    try:
        stun, turn = a.ice_servers
        assert stun == IceServer(("stun:127.0.0.1:3478",))
        assert turn.urls == OFFER.turn_urls
        assert turn.username is not None and turn.credential is not None
        expiry, _, user = turn.username.partition(":")
        assert before + 600 <= int(expiry) + 1 and int(expiry) <= time.time() + 600
        assert len(user) == 16 and a.mailbox not in turn.username  # opaque: not the mailbox
        assert turn.credential == rest_credential(SECRET, turn.username)
        assert a.ice_expires is not None and 590 < a.ice_expires - time.monotonic() <= 600
        assert turn_of(b).username != turn.username  # every link has its own id
        await a.send(b.mailbox, b"still a relay")
        assert await b.receive() == b"still a relay"
    finally:
        await a.close()
        await b.close()


async def test_credentials_are_renewed_before_they_expire(start_relay: StartRelay) -> None:
    url, _ = await start_relay(RelayConfig(ice=OFFER, ice_renew=0.4))
    client = await RelayClient.connect(url, new_key())
    try:
        first, expires = turn_of(client), client.ice_expires
        assert first.username is not None and expires is not None
        renewed = first
        for _ in range(4):  # the expiry is in whole seconds: wait for one in a later second
            servers = await asyncio.wait_for(client.ice_changed(), 5)
            renewed = next(server for server in servers if server.username is not None)
            if renewed.username != first.username:
                break
        assert renewed.username is not None and renewed.username != first.username
        assert renewed.username.split(":")[1] == first.username.split(":")[1]  # same link, same id
        assert int(renewed.username.split(":")[0]) > int(first.username.split(":")[0])
        assert renewed.credential == rest_credential(SECRET, renewed.username)
        assert client.ice_expires is not None and client.ice_expires > expires
    finally:
        await client.close()
    with pytest.raises(RelayUnreachable):
        await client.ice_changed()


async def test_a_relay_without_servers_says_so(relay: tuple[str, RelayServer]) -> None:
    client = await RelayClient.connect(relay[0], new_key())
    try:
        assert client.ice_servers == () and client.ice_expires is None
        waiting = asyncio.ensure_future(client.ice_changed())
        await asyncio.sleep(0.1)
        assert not waiting.done()
    finally:
        await client.close()
    with pytest.raises(RelayUnreachable):
        await asyncio.wait_for(waiting, 5)


async def test_a_client_that_does_not_ask_gets_no_ice_frame(start_relay: StartRelay) -> None:
    # A client from before ICE frames offers no subprotocol: the relay must send it none.
    url, _ = await start_relay(RelayConfig(ice=OFFER))
    sender = await RelayClient.connect(url, new_key())
    try:
        async with raw_link(url) as old:
            assert old.ws.protocol is None
            mailbox = await old.sign_in(new_key())
            await sender.send(mailbox, b"hello, old client")
            frame = await old.frame()
            assert frame == protocol.encode_deliver(b"hello, old client")
    finally:
        await sender.close()


async def test_a_relay_from_before_ice_frames_still_serves_a_new_client(
    start_relay: StartRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Such a relay selects no subprotocol and never sends an ICE frame.
    plain = relay_server.upgrade_response
    monkeypatch.setattr(relay_server, "upgrade_response", lambda request, _=None: plain(request))
    monkeypatch.setattr(relay_server.Link, "send_ice", lambda link: None)
    url, _ = await start_relay(RelayConfig(ice=OFFER))
    a = await RelayClient.connect(url, new_key())
    b = await RelayClient.connect(url, new_key())
    try:
        assert a.ice_servers == () and a.ice_expires is None
        await a.send(b.mailbox, b"an old relay")
        assert await b.receive() == b"an old relay"
    finally:
        await a.close()
        await b.close()


async def test_a_hostile_ice_frame_fails_sign_in_in_words(start_relay: StartRelay) -> None:
    url, server = await start_relay(RelayConfig(ice=OFFER))
    bad = b'{"servers":[{"urls":["turn:evil.example"]}],"ttl":null}'
    server.ice_frame = lambda origin, user: (bytes((protocol.Kind.ICE,)) + bad, None)  # type: ignore[method-assign]
    with pytest.raises(RelayUnreachable) as caught:
        await RelayClient.connect(url, new_key())
    assert str(caught.value) == (
        f"relay {url} broke the protocol: bad ICE servers: "
        "a turn: server without a username and credential"
    )


async def test_a_hostile_renewal_closes_the_link_in_words(start_relay: StartRelay) -> None:
    url, server = await start_relay(RelayConfig(ice=OFFER, ice_renew=0.2))
    client = await RelayClient.connect(url, new_key())
    try:
        frame = bytes((protocol.Kind.ICE,)) + b'{"servers":[],"ttl":3600}'
        server.ice_frame = lambda origin, user: (frame, 0.2)  # type: ignore[method-assign]
        with pytest.raises(RelayUnreachable, match="bad ICE servers: a ttl without credentials"):
            await asyncio.wait_for(client.receive(), 5)
        with pytest.raises(RelayUnreachable, match="broke the protocol"):
            await client.ice_changed()
        assert len(turn_of(client).urls) == 2  # the last good servers stay as they were
    finally:
        await client.close()


# --- wss:// ------------------------------------------------------------------------------------


@asynccontextmanager
async def tls_relay(pki: Pki, config: RelayConfig | None = None) -> AsyncIterator[str]:
    server = RelayServer(config or RelayConfig())
    stop = asyncio.Event()
    url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    context = tls_context(str(pki.cert), str(pki.key))
    task = asyncio.create_task(run("127.0.0.1", 0, server, url.set_result, stop, context))
    try:
        yield await asyncio.wait_for(url, 10)
    finally:
        stop.set()
        await task


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


async def test_wss_with_the_test_ca_trusted(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RELAY_CA_ENV, str(pki.ca))
    async with tls_relay(pki, RelayConfig(ice=OFFER)) as url:
        assert url.startswith("wss://127.0.0.1:")
        port = url.rsplit(":", 1)[1]
        a = await RelayClient.connect(url, new_key())
        b = await RelayClient.connect(f"wss://localhost:{port}", new_key())  # the cert's name
        try:
            assert turn_of(a).credential is not None  # over TLS, credentials may travel
            await a.send(b.mailbox, b"over TLS")
            assert await b.receive() == b"over TLS"
        finally:
            await a.close()
            await b.close()


async def test_wss_refuses_a_certificate_it_does_not_trust(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RELAY_CA_ENV, raising=False)
    async with tls_relay(pki) as url:
        with pytest.raises(RelayUnreachable) as caught:
            await RelayClient.connect(url, new_key())
        assert (
            str(caught.value) == f"relay {url} is unreachable: its TLS certificate is not trusted"
        )
        monkeypatch.setenv(RELAY_CA_ENV, str(make_pki(tmp_path / "other", "another CA").ca))
        with pytest.raises(RelayUnreachable, match="its TLS certificate is not trusted"):
            await RelayClient.connect(url, new_key())
        monkeypatch.setenv(RELAY_CA_ENV, str(pki.ca))
        with pytest.raises(RelayUnreachable):  # the right CA, the wrong scheme
            await RelayClient.connect(url.replace("wss://", "ws://"), new_key())
        await (await RelayClient.connect(url, new_key())).close()


async def test_wss_to_a_plain_relay_says_so(
    relay: tuple[str, RelayServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RELAY_CA_ENV, raising=False)
    url = relay[0].replace("ws://", "wss://")
    with pytest.raises(
        RelayUnreachable, match=r"the TLS handshake failed \(is it really wss://\?\)"
    ):
        await RelayClient.connect(url, new_key())


async def test_an_unusable_relay_ca_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.pem"
    monkeypatch.setenv(RELAY_CA_ENV, str(missing))
    with pytest.raises(ConfigError, match=f"{RELAY_CA_ENV}={missing}: cannot use it"):
        await RelayClient.connect("wss://127.0.0.1:1", new_key())
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    monkeypatch.setenv(RELAY_CA_ENV, str(garbage))
    with pytest.raises(ConfigError, match="not a PEM file of CA certificates"):
        await RelayClient.connect("wss://127.0.0.1:1", new_key())

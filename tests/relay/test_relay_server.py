"""The relay server in-process on loopback, with real WebSocket clients: auth, delivery, hold, limits."""

from __future__ import annotations

import asyncio

import nacl.signing
import pytest

from tcall.engine.errors import ProtocolError, RelayUnreachable, UsageError
from tcall.engine.relay import protocol
from tcall.engine.relay.client import RelayClient
from tcall.engine.relay.protocol import ErrorCode, mailbox_id
from tcall.engine.server.server import RelayConfig, RelayServer, run
from tests.support.relay_links import raw_link
from tests.support.relays import StartRelay, free_port


def new_key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


async def test_payload_reaches_the_recipient_and_only_it(relay: tuple[str, RelayServer]) -> None:
    url, _ = relay
    key_a, key_b = new_key(), new_key()
    a = await RelayClient.connect(url, key_a)
    b = await RelayClient.connect(url, key_b)
    c = await RelayClient.connect(url, new_key())
    try:
        assert a.mailbox == mailbox_id(bytes(key_a.verify_key))
        big = bytes(range(256)) * (protocol.MAX_PAYLOAD // 256) + b"!" * (
            protocol.MAX_PAYLOAD % 256
        )
        for payload in (b"one", b"x" * 300, big):  # each WebSocket length encoding
            await a.send(b.mailbox, payload)
            assert await b.receive() == payload
        await a.send(b.mailbox, b"two")
        await a.send(b.mailbox, b"three")
        await b.send(a.mailbox, b"back")
        assert [await b.receive(), await b.receive()] == [b"two", b"three"]
        assert await a.receive() == b"back"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(c.receive(), 0.2)
    finally:
        for client in (a, b, c):
            await client.close()


async def test_mailbox_is_read_only_after_a_valid_signature(relay: tuple[str, RelayServer]) -> None:
    url, _ = relay
    victim = new_key()
    sender = await RelayClient.connect(url, new_key())
    await sender.send(mailbox_id(bytes(victim.verify_key)), b"for the victim only")
    async with raw_link(url) as link:
        hello = await link.frame()
        assert hello is not None and hello[0] == protocol.Kind.CHALLENGE
        forged = new_key().sign(protocol.auth_message(hello[2:], link.origin)).signature
        await link.ws.send_bytes(protocol.encode_auth(bytes(victim.verify_key), forged))
        assert await link.refusal() == ErrorCode.AUTH_FAILED
    async with raw_link(url) as link:
        await link.frame()
        await link.ws.send_bytes(protocol.encode_send(sender.mailbox, b"unsigned"))
        assert await link.refusal() == ErrorCode.UNEXPECTED
    owner = await RelayClient.connect(url, victim)
    assert await owner.receive() == b"for the victim only"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sender.receive(), 0.2)  # the unsigned SEND went nowhere
    await owner.close()
    await sender.close()


async def test_offline_mailbox_is_held_briefly_then_forgotten(start_relay: StartRelay) -> None:
    url, server = await start_relay(RelayConfig(hold_seconds=0.4))
    sender = await RelayClient.connect(url, new_key())
    late, never = new_key(), new_key()
    await sender.send(mailbox_id(bytes(late.verify_key)), b"held")
    await sender.send(mailbox_id(bytes(never.verify_key)), b"expires")
    receiver = await RelayClient.connect(url, late)
    assert await receiver.receive() == b"held"
    await asyncio.sleep(1.0)
    assert server.stats["expired"] == 1 and len(server.hold) == 0
    too_late = await RelayClient.connect(url, never)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(too_late.receive(), 0.2)
    for client in (sender, receiver, too_late):
        await client.close()


async def test_oversize_frames_disconnect_only_the_abuser(start_relay: StartRelay) -> None:
    url, server = await start_relay(RelayConfig(max_frame=1024))
    a = await RelayClient.connect(url, new_key())
    b = await RelayClient.connect(url, new_key())
    for size in (1025, 5000, 1 << 20):  # refused from the frame header, before the bytes
        async with raw_link(url) as abuser:
            await abuser.sign_in(new_key())
            await abuser.ws.send_bytes(protocol.encode_send(b.mailbox, b"x" * size))
            assert await abuser.refusal() == ErrorCode.TOO_LARGE
            assert abuser.ws.closed
    await a.send(b.mailbox, b"still fine")
    assert await b.receive() == b"still fine"
    assert server.stats["refused"] == 3
    await a.close()
    await b.close()


async def test_rate_limit_disconnects_only_the_abuser(start_relay: StartRelay) -> None:
    url, _ = await start_relay(RelayConfig(rate=5, burst=5))
    a = await RelayClient.connect(url, new_key())
    b = await RelayClient.connect(url, new_key())
    abuser = await RelayClient.connect(url, new_key())
    with pytest.raises(RelayUnreachable):
        for _ in range(50):
            await abuser.send(b.mailbox, b"spam")
            await asyncio.sleep(0)
        await abuser.receive()
    with pytest.raises(RelayUnreachable, match="too many messages"):
        await abuser.receive()
    spam = 0
    while True:
        try:
            assert await asyncio.wait_for(b.receive(), 0.2) == b"spam"
            spam += 1
        except TimeoutError:
            break
    assert spam == 5  # the burst went through, nothing after it
    await a.send(b.mailbox, b"fine")
    assert await b.receive() == b"fine"
    await a.close()
    await b.close()
    await abuser.close()


async def test_a_new_sign_in_replaces_the_old_link(relay: tuple[str, RelayServer]) -> None:
    url, server = relay
    key = new_key()
    first = await RelayClient.connect(url, key)
    second = await RelayClient.connect(url, key)
    with pytest.raises(RelayUnreachable, match="signed in again"):
        await first.receive()
    sender = await RelayClient.connect(url, new_key())
    await sender.send(second.mailbox, b"to the newest")
    assert await second.receive() == b"to the newest"
    assert len(server.peers) == 2
    for client in (first, second, sender):
        await client.close()


async def test_text_frames_and_silence_are_refused(start_relay: StartRelay) -> None:
    url, _ = await start_relay(RelayConfig(auth_timeout=0.3))
    async with raw_link(url) as link:
        await link.ws.send_str("hello")
        assert await link.refusal() == ErrorCode.UNSUPPORTED
    async with raw_link(url) as link:
        assert await link.refusal() == ErrorCode.AUTH_TIMEOUT


async def test_client_errors_are_one_line_tcall_errors(relay: tuple[str, RelayServer]) -> None:
    url, _ = relay
    with pytest.raises(RelayUnreachable) as caught:
        await RelayClient.connect(f"ws://127.0.0.1:{free_port()}", new_key(), timeout=2)
    assert "\n" not in str(caught.value) and "unreachable" in str(caught.value)
    with pytest.raises(UsageError):
        await RelayClient.connect("http://127.0.0.1:1", new_key())
    client = await RelayClient.connect(url, new_key())
    with pytest.raises(UsageError):
        await client.send("nobody", b"x")
    with pytest.raises(ProtocolError, match="payload"):
        await client.send(client.mailbox, b"x" * (protocol.MAX_PAYLOAD + 1))
    with pytest.raises(ProtocolError, match="payload"):
        await client.send(client.mailbox, b"")
    await client.close()
    with pytest.raises(RelayUnreachable):
        await client.receive()


async def test_client_sees_the_relay_stop() -> None:
    stop = asyncio.Event()
    url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(run("127.0.0.1", 0, RelayServer(), url.set_result, stop))
    client = await RelayClient.connect(await url, new_key())
    stop.set()
    await serving
    with pytest.raises(RelayUnreachable, match="relay is stopping"):
        await asyncio.wait_for(client.receive(), 5)
    with pytest.raises(RelayUnreachable):
        await client.send(client.mailbox, b"x")
    await client.close()


async def test_a_reader_that_stops_reading_is_dropped_not_waited_for(
    start_relay: StartRelay,
) -> None:
    url, server = await start_relay(RelayConfig(rate=10_000, burst=10_000, max_backlog=256 << 10))
    sender = await RelayClient.connect(url, new_key())
    bystander = await RelayClient.connect(url, new_key())
    async with raw_link(url) as stalled:
        mailbox = await stalled.sign_in(new_key())  # and never reads again
        chunk = b"x" * protocol.MAX_PAYLOAD
        for _ in range(1000):  # 64 MB: far more than loopback socket buffers hold
            await sender.send(mailbox, chunk)
            if mailbox not in server.peers:
                break
            await asyncio.sleep(0)
        assert mailbox not in server.peers
        assert server.stats["dropped"] >= 1
    await sender.send(bystander.mailbox, b"unaffected")
    assert await bystander.receive() == b"unaffected"
    await sender.close()
    await bystander.close()

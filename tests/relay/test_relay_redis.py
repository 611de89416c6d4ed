"""Relay nodes sharing routing through a real redis-server on loopback: `tcall serve` processes and
in-process nodes, and a sign-in whose messages race the Redis subscription."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nacl.signing
import pytest

from tcall.engine.errors import RelayUnreachable
from tcall.engine.relay import protocol
from tcall.engine.relay.client import RelayClient
from tcall.engine.relay.protocol import mailbox_id
from tcall.engine.server.server import RelayConfig
from tcall.engine.server.websocket import Opcode
from tests.support.relay_links import Wire
from tests.support.relays import ServeProcess, StartRelay

KEY = nacl.signing.SigningKey(bytes(range(32)))


def new_key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


async def test_two_serve_processes_route_through_redis(
    redis_url: str, serve: Callable[..., ServeProcess]
) -> None:
    node_a = serve("--redis", redis_url)
    node_b = serve("--redis", redis_url)
    alice = await RelayClient.connect(node_a.url, new_key())
    bob = await RelayClient.connect(node_b.url, new_key())
    await alice.send(bob.mailbox, b"from node A")
    assert await asyncio.wait_for(bob.receive(), 5) == b"from node A"
    await bob.send(alice.mailbox, b"from node B")
    assert await asyncio.wait_for(alice.receive(), 5) == b"from node B"
    await alice.close()
    await bob.close()


async def test_payload_held_on_one_node_reaches_a_mailbox_signing_in_on_another(
    redis_url: str, start_relay: StartRelay
) -> None:
    url_a, node_a = await start_relay(RelayConfig(hold_seconds=5), redis_url)
    url_b, node_b = await start_relay(RelayConfig(hold_seconds=5), redis_url)
    late = new_key()
    sender = await RelayClient.connect(url_a, new_key())
    await sender.send(mailbox_id(bytes(late.verify_key)), b"held on A")
    await asyncio.sleep(0.1)
    assert len(node_a.hold) == 1
    receiver = await RelayClient.connect(url_b, late)
    assert await asyncio.wait_for(receiver.receive(), 5) == b"held on A"
    assert len(node_a.hold) == 0 and len(node_b.hold) == 0
    await sender.close()
    await receiver.close()


async def test_one_link_per_mailbox_across_nodes(redis_url: str, start_relay: StartRelay) -> None:
    url_a, node_a = await start_relay(redis_url=redis_url)
    url_b, _ = await start_relay(redis_url=redis_url)
    key = new_key()
    first = await RelayClient.connect(url_a, key)
    second = await RelayClient.connect(url_b, key)
    with pytest.raises(RelayUnreachable, match="signed in again"):
        await asyncio.wait_for(first.receive(), 5)
    sender = await RelayClient.connect(url_a, new_key())
    await sender.send(key_mailbox := second.mailbox, b"to node B")
    assert await asyncio.wait_for(second.receive(), 5) == b"to node B"
    assert key_mailbox not in node_a.peers
    for client in (first, second, sender):
        await client.close()


async def test_sign_in_through_redis_keeps_messages_sent_before_ready(
    redis_url: str, start_relay: StartRelay
) -> None:
    url, server = await start_relay(redis_url=redis_url)
    receiver = await RelayClient.connect(url, nacl.signing.SigningKey.generate())
    wire = await Wire.open(url)
    challenge = await wire.upgrade()
    sends = [protocol.encode_send(receiver.mailbox, b"%d" % i) for i in range(5)]
    wire.writer.write(
        wire.auth(KEY, challenge) + b"".join(wire.frame_bytes(Opcode.BINARY, s) for s in sends)
    )
    assert (await wire.frame())[1][0] == protocol.Kind.READY
    assert [await receiver.receive() for _ in sends] == [b"%d" % i for i in range(5)]
    assert len(server.peers) == 2
    wire.close()
    await receiver.close()

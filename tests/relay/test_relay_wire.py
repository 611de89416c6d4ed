"""The live relay at the byte level, over raw sockets: HTTP answers, the opening handshake, and
WebSocket framing a browser may use (fragments, pings, pipelining, close) or break."""

from __future__ import annotations

import asyncio

import nacl.signing
import pytest

from tcall.engine.relay import protocol
from tcall.engine.relay.client import RelayClient
from tcall.engine.server.server import RelayConfig, RelayServer
from tcall.engine.server.websocket import Opcode
from tests.support.relay_links import Wire
from tests.support.relays import StartRelay

KEY = nacl.signing.SigningKey(bytes(range(32)))


@pytest.mark.parametrize(
    ("request_bytes", "status", "body"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"200 OK", b"tcall relay: point tcall"),
        (b"GET /secret HTTP/1.1\r\nHost: x\r\n\r\n", b"404 Not Found", b"404"),
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", b"405 Method Not Allowed", b"405"),
        (b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", b"426 Upgrade Required", b"426"),
        (b"\x16\x03\x01 TLS hello\r\n\r\n", b"400 Bad Request", b"400"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 9000, b"431 Request Header Fields Too Large", b"431"),
    ],
)
async def test_plain_http_gets_a_page_or_an_error_then_a_close(
    relay: tuple[str, RelayServer], request_bytes: bytes, status: bytes, body: bytes
) -> None:
    url, server = relay
    wire = await Wire.open(url)
    head, rest = await wire.http(request_bytes)
    assert head.startswith(b"HTTP/1.1 " + status + b"\r\n") and rest.startswith(body)
    wire.close()
    assert server.stats["links"] == 0


async def test_pipelined_and_fragmented_messages_and_pings(relay: tuple[str, RelayServer]) -> None:
    url, server = relay
    receiver = await RelayClient.connect(url, nacl.signing.SigningKey.generate())
    wire = await Wire.open(url)
    challenge = await wire.upgrade()
    send = protocol.encode_send(receiver.mailbox, b"split across three frames")
    # AUTH and what follows in one write, without waiting for READY: a SEND in three fragments
    # with a ping between them, then an empty ping.
    wire.writer.write(
        wire.auth(KEY, challenge)
        + wire.frame_bytes(Opcode.BINARY, send[:5], fin=False)
        + wire.frame_bytes(Opcode.PING, b"are you there")
        + wire.frame_bytes(Opcode.CONTINUATION, send[5:20], fin=False)
        + wire.frame_bytes(Opcode.CONTINUATION, send[20:])
        + wire.frame_bytes(Opcode.PING, b"")
    )
    assert await wire.frame() == (
        Opcode.BINARY,
        protocol.encode_ready(protocol.mailbox_id(bytes(KEY.verify_key))),
    )
    assert await wire.frame() == (Opcode.PONG, b"are you there")
    assert await wire.frame() == (Opcode.PONG, b"")
    assert await receiver.receive() == b"split across three frames"
    wire.writer.write(wire.frame_bytes(Opcode.CLOSE, (1000).to_bytes(2, "big")))
    assert await wire.frame() == (Opcode.CLOSE, (1000).to_bytes(2, "big"))
    assert await wire.frame() == (-1, b"")
    wire.close()
    await receiver.close()
    assert server.stats["refused"] == 0


@pytest.mark.parametrize(
    "bad",
    [
        b"\x82\x05hello",  # unmasked
        b"\xc2\x80\x00\x00\x00\x00",  # a compression bit nobody negotiated
        b"\x89\xfe\x00\x80" + bytes(4 + 128),  # a ping over 125 bytes
    ],
)
async def test_broken_framing_gets_malformed_and_a_close(
    relay: tuple[str, RelayServer], bad: bytes
) -> None:
    url, server = relay
    wire = await Wire.open(url)
    await wire.upgrade()
    wire.writer.write(bad)
    opcode, error = await wire.frame()
    assert opcode == Opcode.BINARY and error[:2] == bytes(
        (protocol.Kind.ERROR, protocol.ErrorCode.MALFORMED)
    )
    assert (await wire.frame())[0] == Opcode.CLOSE
    wire.close()
    assert server.stats["refused"] == 1


async def test_a_silent_link_is_pinged_then_dropped(start_relay: StartRelay) -> None:
    url, server = await start_relay(RelayConfig(heartbeat=0.2))
    lively = await RelayClient.connect(url, nacl.signing.SigningKey.generate())  # answers pings
    wire = await Wire.open(url)
    wire.writer.write(wire.auth(KEY, await wire.upgrade()))
    assert (await wire.frame())[0] == Opcode.BINARY  # READY; from now on, it never says a word
    pings = 0
    async with asyncio.timeout(3):
        while (frame := await wire.frame()) != (-1, b""):
            assert frame == (Opcode.PING, b"")
            pings += 1
    assert pings >= 1
    await asyncio.sleep(0.5)
    assert list(server.peers) == [lively.mailbox]
    await lively.send(lively.mailbox, b"still here")
    assert await lively.receive() == b"still here"
    await lively.close()
    wire.close()

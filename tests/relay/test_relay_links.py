"""Relay links driven by hand through a fake transport: the moments real sockets rarely hit."""

from __future__ import annotations

import asyncio
import os

import nacl.signing

from tcall.engine.relay import protocol
from tcall.engine.server.server import Link, RelayConfig, RelayServer
from tcall.engine.server.websocket import Opcode, client_frame

OPENING = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:7711\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class FakeTransport:
    """Records writes; `closing` is what uvloop reports between closing and telling us."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        if self.closing:
            raise RuntimeError("unable to perform operation: the handler is closed")
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 7711) if name == "sockname" else None

    def abort(self) -> None:
        self.aborted = self.closing = True

    def close(self) -> None:
        self.closing = True


def _signed_in(server: RelayServer, key: nacl.signing.SigningKey) -> tuple[Link, FakeTransport]:
    link, transport = Link(server), FakeTransport()
    link.connection_made(transport)  # type: ignore[arg-type]
    link.data_received(OPENING)
    challenge = link._conn.challenge
    auth = protocol.encode_auth(
        bytes(key.verify_key),
        key.sign(protocol.auth_message(challenge, "ws://127.0.0.1:7711")).signature,
    )
    link.data_received(client_frame(Opcode.BINARY, auth, os.urandom(4)))
    assert link.mailbox == protocol.mailbox_id(bytes(key.verify_key))
    return link, transport


async def test_a_payload_for_a_link_closing_unreported_is_held_and_the_sender_unharmed() -> None:
    server = RelayServer(RelayConfig(hold_seconds=5))
    await server.start()
    try:
        receiver_key = nacl.signing.SigningKey.generate()
        sender, sender_transport = _signed_in(server, nacl.signing.SigningKey.generate())
        receiver, receiver_transport = _signed_in(server, receiver_key)
        receiver_transport.closing = True  # closed, but connection_lost is still a tick away
        send = protocol.encode_send(receiver.mailbox, b"for later")
        sender.data_received(client_frame(Opcode.BINARY, send, os.urandom(4)))
        assert not sender_transport.closing and sender.mailbox in server.peers
        assert len(server.hold) == 1 and server.stats["dropped"] == 0
        receiver.connection_lost(None)
        _, transport = _signed_in(server, receiver_key)
        deliver = protocol.encode_deliver(b"for later")
        assert transport.written[-1].endswith(deliver) and len(server.hold) == 0
    finally:
        await server.stop()


async def test_heartbeat_passes_over_a_link_closing_unreported() -> None:
    server = RelayServer(RelayConfig(heartbeat=0.02))
    await server.start()
    try:
        _, closing = _signed_in(server, nacl.signing.SigningKey.generate())
        closing.closing = True  # a ping written to it would raise inside the heartbeat task
        await asyncio.sleep(0.08)
        silent, transport = _signed_in(server, nacl.signing.SigningKey.generate())
        await asyncio.sleep(0.15)
        assert b"\x89\x00" in transport.written  # still pinging: the heartbeat task lives on
        assert transport.aborted and silent.mailbox not in server.peers  # and then dropped
    finally:
        await server.stop()

"""Clients that speak to a relay only as far as a test tells them: raw WebSocket links that can send
anything, and a byte-level socket that writes exactly the bytes given."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import nacl.signing

from tcall.engine.relay import protocol
from tcall.engine.relay.client import relay_ws_url
from tcall.engine.server.websocket import Opcode, accept_key, client_frame


class RawLink:
    """A WebSocket link to a relay that speaks the protocol only when told to."""

    def __init__(
        self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, origin: str
    ):
        self.session = session
        self.ws = ws
        self.origin = origin  # what a sign-in is signed for

    async def frame(self, timeout: float = 5.0) -> bytes | None:
        """The next binary frame, or None once the relay has closed the link."""
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        if msg.type == aiohttp.WSMsgType.BINARY:
            data: bytes = msg.data
            return data
        return None

    async def sign_in(self, key: nacl.signing.SigningKey) -> str:
        """Answer the challenge with `key`; returns our mailbox."""
        conn = protocol.ClientConnection(key, self.origin)
        while not conn.ready:
            data = await self.frame()
            assert data is not None, "relay closed the link during sign-in"
            event = conn.receive(data)
            assert not isinstance(event, protocol.Refused), event
            for out in conn.data_to_send():
                await self.ws.send_bytes(out)
        return conn.mailbox

    async def refusal(self, timeout: float = 5.0) -> protocol.ErrorCode | None:
        """Read until the relay closes; the code of its ERROR frame, if it sent one."""
        code = None
        while (data := await self.frame(timeout)) is not None:
            if data[0] == protocol.Kind.ERROR:
                code = protocol.ErrorCode(data[1])
        return code


@asynccontextmanager
async def raw_link(url: str) -> AsyncIterator[RawLink]:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(relay_ws_url(url), max_msg_size=0, compress=0)
        try:
            yield RawLink(session, ws, protocol.relay_origin(url))
        finally:
            await ws.close()


class Wire:
    """A hand-driven client socket: write exactly these bytes, read server frames."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: str = ""
    ) -> None:
        self.reader, self.writer = reader, writer
        self.mask = os.urandom(4)
        self.url = url
        self.host = url.removeprefix("ws://")  # the Host header: what the URL names

    @classmethod
    async def open(cls, url: str) -> Wire:
        host, port = url.removeprefix("ws://").rsplit(":", 1)
        return cls(*await asyncio.open_connection(host.strip("[]"), int(port)), url)

    async def http(self, request: bytes) -> tuple[bytes, bytes]:
        """Send a request; the response head and everything after it until the server closes."""
        self.writer.write(request)
        data = await asyncio.wait_for(self.reader.read(), 5)
        head, _, body = data.partition(b"\r\n\r\n")
        return head, body

    async def upgrade(self) -> bytes:
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            f"GET /ws HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert f"Sec-WebSocket-Accept: {accept_key(key)}\r\n".encode() in head
        opcode, challenge = await self.frame()
        assert opcode == Opcode.BINARY and challenge[0] == protocol.Kind.CHALLENGE
        return challenge

    def auth(
        self, key: nacl.signing.SigningKey, challenge: bytes, origin: str | None = None
    ) -> bytes:
        """The AUTH frame answering `challenge` (the relay's whole CHALLENGE message), signed
        for `origin` (by default the relay this wire was opened to)."""
        origin = origin if origin is not None else protocol.relay_origin(self.url)
        signature = key.sign(protocol.auth_message(challenge[2:], origin)).signature
        return self.frame_bytes(
            Opcode.BINARY, protocol.encode_auth(bytes(key.verify_key), signature)
        )

    def frame_bytes(self, opcode: int, payload: bytes, fin: bool = True) -> bytes:
        return client_frame(opcode, payload, self.mask, fin)

    async def frame(self) -> tuple[int, bytes]:
        """The next server frame (never masked); (-1, b"") once the server has closed."""
        try:
            first, second = await asyncio.wait_for(self.reader.readexactly(2), 5)
            assert not second & 0x80, "server frames are never masked"
            size = second & 0x7F
            if size >= 126:
                size = int.from_bytes(await self.reader.readexactly(2 if size == 126 else 8), "big")
            return first & 0x0F, await self.reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return -1, b""

    def close(self) -> None:
        self.writer.close()

"""Helpers for relay tests: raw WebSocket links that can send anything, and free loopback ports."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import nacl.signing

from engine.relay import protocol
from engine.relay.client import relay_ws_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RawLink:
    """A WebSocket link to a relay that speaks the protocol only when told to."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.session = session
        self.ws = ws

    async def frame(self, timeout: float = 5.0) -> bytes | None:
        """The next binary frame, or None once the relay has closed the link."""
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        if msg.type == aiohttp.WSMsgType.BINARY:
            data: bytes = msg.data
            return data
        return None

    async def sign_in(self, key: nacl.signing.SigningKey) -> str:
        """Answer the challenge with `key`; returns our mailbox."""
        conn = protocol.ClientConnection(key)
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
            yield RawLink(session, ws)
        finally:
            await ws.close()

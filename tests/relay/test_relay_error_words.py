"""Issue #13, "Rough": why a relay cannot be reached, in words, not aiohttp's text."""

from __future__ import annotations

import asyncio
import socket

import nacl.signing
import pytest

from tcall.engine.errors import RelayUnreachable
from tcall.engine.relay.client import RelayClient


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def reason(url: str) -> str:
    with pytest.raises(RelayUnreachable) as refused:
        await RelayClient.connect(url, nacl.signing.SigningKey.generate(), timeout=5)
    return str(refused.value)


async def test_nothing_listening() -> None:
    url = f"ws://127.0.0.1:{closed_port()}"
    assert await reason(url) == (
        f"relay {url} is unreachable: nothing is listening there (connection refused)"
    )


async def test_a_web_server_that_is_not_a_relay_and_a_wss_url_for_a_plain_server() -> None:
    async def not_a_relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)  # a request, or a TLS hello that gets plain HTTP back
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_a_relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        url = f"ws://127.0.0.1:{port}"
        assert await reason(url) == (
            f"relay {url} is unreachable: it is not a tcall relay (the server answered HTTP 404)"
        )
        url = f"wss://127.0.0.1:{port}"
        assert await reason(url) == (
            f"relay {url} is unreachable: the TLS handshake failed (is it really wss://?)"
        )

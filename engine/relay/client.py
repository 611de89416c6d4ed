"""The relay client the call flow uses: sign in to a `tcall serve` relay, send and receive payloads.

The wire logic lives in `protocol.ClientConnection`; this module owns the socket, the deadlines and
one reader task that turns relay frames into a queue of payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import aiohttp
import nacl.signing
import yarl

from tcall.engine.errors import ProtocolError, RelayUnreachable, UsageError
from tcall.engine.relay import protocol

_HEARTBEAT = 30.0


def relay_ws_url(url: str) -> str:
    """The WebSocket endpoint of a relay URL: `ws://host:port` means `ws://host:port/ws`."""
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"not a relay URL: {url!r}") from exc
    if parsed.scheme not in ("ws", "wss") or not parsed.host:
        raise UsageError(f"not a relay URL (want ws://HOST:PORT): {url!r}")
    if parsed.path in ("", "/"):
        parsed = parsed.with_path(protocol.WS_PATH)
    return str(parsed)


class RelayClient:
    """One signed-in link to a relay. Make it with `await RelayClient.connect(...)`."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        conn: protocol.ClientConnection,
    ) -> None:
        self.url = url
        self._session = session
        self._ws = ws
        self._conn = conn
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closed_reason: str | None = None
        self.replaced = False  # the relay closed us because this identity signed in elsewhere
        self._reader = asyncio.create_task(self._read(), name="tcall-relay-client")

    @property
    def mailbox(self) -> str:
        """Our mailbox id, the hash of our public key."""
        return self._conn.mailbox

    @classmethod
    async def connect(
        cls, url: str, signing_key: nacl.signing.SigningKey, timeout: float = 5.0
    ) -> RelayClient:
        """Connect and prove we hold `signing_key`; RelayUnreachable if down or refused."""
        endpoint = relay_ws_url(url)
        # Our AUTH is signed for this relay's origin: no other relay can pass it on as its own.
        conn = protocol.ClientConnection(signing_key, protocol.relay_origin(endpoint))
        session = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(timeout):
                ws = await session.ws_connect(
                    endpoint,
                    max_msg_size=2 * protocol.MAX_FRAME,
                    compress=0,
                    heartbeat=_HEARTBEAT,
                    autoping=True,
                )
                await _sign_in(ws, conn, url)
        except RelayUnreachable:
            await session.close()
            raise
        except TimeoutError as exc:
            await session.close()
            raise RelayUnreachable(f"relay {url} did not answer within {timeout:g} s") from exc
        except (aiohttp.ClientError, OSError, protocol.RelayProtocolError) as exc:
            await session.close()
            raise RelayUnreachable(f"relay {url} is unreachable: {_describe(exc)}") from exc
        return cls(url, session, ws, conn)

    async def send(self, to_mailbox: str, payload: bytes) -> None:
        """Pass `payload` to `to_mailbox` through the relay (held briefly if it is offline)."""
        try:
            protocol.mailbox_bytes(to_mailbox)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        if not 0 < len(payload) <= protocol.MAX_PAYLOAD:
            raise ProtocolError(f"a relay payload has 1 to {protocol.MAX_PAYLOAD} bytes")
        if self._closed_reason is not None:
            raise RelayUnreachable(self._closed_reason)
        self._conn.send(to_mailbox, payload)
        try:
            for frame in self._conn.data_to_send():
                await self._ws.send_bytes(frame)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise RelayUnreachable(f"relay {self.url} dropped the link: {_describe(exc)}") from exc

    async def receive(self) -> bytes:
        """The next payload delivered to our mailbox; RelayUnreachable once the link is gone."""
        payload = await self._inbox.get()
        if payload is None:
            self._inbox.put_nowait(None)  # every later receive() fails the same way
            raise RelayUnreachable(self._closed_reason or f"relay {self.url} dropped the link")
        return payload

    async def close(self) -> None:
        if self._closed_reason is None:
            self._closed_reason = f"link to relay {self.url} is closed"
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError, TimeoutError):
            await asyncio.wait_for(self._ws.close(), 2.0)
        await self._session.close()
        self._inbox.put_nowait(None)

    async def _read(self) -> None:
        reason = f"relay {self.url} dropped the link"
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    reason = f"relay {self.url} sent a text frame"
                    break
                event = self._conn.receive(msg.data)
                if isinstance(event, protocol.Delivered):
                    self._inbox.put_nowait(event.payload)
                elif isinstance(event, protocol.Refused):
                    self.replaced = event.code == protocol.ErrorCode.REPLACED
                    reason = f"relay {self.url} closed the link: {event.reason}"
                    break
        except protocol.RelayProtocolError as exc:
            reason = f"relay {self.url} broke the protocol: {exc.reason}"
        except (aiohttp.ClientError, ConnectionError) as exc:
            reason = f"relay {self.url} dropped the link: {_describe(exc)}"
        if self._closed_reason is None:
            self._closed_reason = reason
        self._inbox.put_nowait(None)
        with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError, TimeoutError):
            await asyncio.wait_for(self._ws.close(), 2.0)


async def _sign_in(
    ws: aiohttp.ClientWebSocketResponse, conn: protocol.ClientConnection, url: str
) -> None:
    while not conn.ready:
        msg = await ws.receive()
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise RelayUnreachable(f"relay {url} closed the link during sign-in")
        event = conn.receive(msg.data)
        if isinstance(event, protocol.Refused):
            raise RelayUnreachable(f"relay {url} refused us: {event.reason}")
        for frame in conn.data_to_send():
            await ws.send_bytes(frame)


def _describe(exc: BaseException) -> str:
    """Why a link failed, in words: aiohttp's own text quotes reprs, SSL contexts and C files."""
    match exc:
        case aiohttp.ClientConnectorDNSError():
            return "its host name was not found"
        case aiohttp.ClientConnectorCertificateError():
            return "its TLS certificate is not trusted"
        case aiohttp.ClientSSLError():
            return "the TLS handshake failed (is it really wss://?)"
        case aiohttp.ClientConnectorError():
            return _describe_os_error(exc.os_error)
        case aiohttp.WSServerHandshakeError():
            return f"it is not a tcall relay (the server answered HTTP {exc.status})"
        case aiohttp.ServerDisconnectedError():
            return "the server closed the connection"
        case OSError():
            return _describe_os_error(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "nothing is listening there (connection refused)"
    if isinstance(exc, ConnectionResetError):
        return "the connection was reset"
    if exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return "the connection failed"

"""The relay client the call flow uses: sign in to a `tcall serve` relay, send and receive payloads.

The wire logic lives in `protocol.ClientConnection`; this module owns the socket, the deadlines and
one reader task that turns relay frames into a queue of payloads.

It also asks the relay for its ICE servers (`protocol.ICE_SUBPROTOCOL`): a relay that has them
sends them right after sign-in, so `connect` returns with `ice_servers` set, and sends fresh
TURN credentials before the old ones expire (`ice_changed()` waits for them). A wss:// relay's
certificate is checked against the system's trust store, plus the CA certificates in the PEM file
named by TCALL_RELAY_CA, if set (a private CA, or the tests' own).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time

import aiohttp
import nacl.signing
import yarl

from tcall.engine.errors import ConfigError, ProtocolError, RelayUnreachable, UsageError
from tcall.engine.relay import protocol

_HEARTBEAT = 30.0
RELAY_CA_ENV = "TCALL_RELAY_CA"  # a PEM file of CA certificates trusted for wss:// relays, too


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


def tls_context() -> ssl.SSLContext | bool:
    """How a wss:// relay's certificate is checked: the system's trust store (True: aiohttp's
    default), plus the CA certificates in $TCALL_RELAY_CA if set; ConfigError if it is unusable."""
    cafile = os.environ.get(RELAY_CA_ENV)
    if not cafile:
        return True
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=cafile)
    except ssl.SSLError:
        reason = "not a PEM file of CA certificates"
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
    else:
        return context
    raise ConfigError(f"{RELAY_CA_ENV}={cafile}: cannot use it: {reason}")


class RelayClient:
    """One signed-in link to a relay. Make it with `await RelayClient.connect(...)`.

    `ice_servers` holds the newest ICE servers the relay gave (STUN and TURN, in WebRTC's
    RTCIceServer shape), empty if it gave none or speaks no ICE frames; `ice_expires` is the
    `time.monotonic()` by which their TURN credentials stop working (None: they have none). The
    relay sends new ones at half their lifetime; `await ice_changed()` waits for them.
    """

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        conn: protocol.ClientConnection,
        ice: protocol.IceServers | None = None,
    ) -> None:
        self.url = url
        self._session = session
        self._ws = ws
        self._conn = conn
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closed_reason: str | None = None
        self.replaced = False  # the relay closed us because this identity signed in elsewhere
        self.ice_servers: tuple[protocol.IceServer, ...] = ()
        self.ice_expires: float | None = None
        self._ice_next: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if ice is not None:
            self._take_ice(ice)
        self._reader = asyncio.create_task(self._read(), name="tcall-relay-client")

    @property
    def mailbox(self) -> str:
        """Our mailbox id, the hash of our public key."""
        return self._conn.mailbox

    def _take_ice(self, event: protocol.IceServers) -> None:
        self.ice_servers = event.servers
        self.ice_expires = None if event.ttl is None else time.monotonic() + event.ttl
        waiters, self._ice_next = self._ice_next, asyncio.get_running_loop().create_future()
        waiters.set_result(None)

    async def ice_changed(self) -> tuple[protocol.IceServer, ...]:
        """Wait for the relay's next ICE servers (fresh credentials) and return them;
        RelayUnreachable once the link is gone."""
        if self._closed_reason is None:
            await asyncio.shield(self._ice_next)  # one waiter's cancel must not end the others'
        if self._closed_reason is not None:
            raise RelayUnreachable(self._closed_reason)
        return self.ice_servers

    @classmethod
    async def connect(
        cls, url: str, signing_key: nacl.signing.SigningKey, timeout: float = 5.0
    ) -> RelayClient:
        """Connect and prove we hold `signing_key`; RelayUnreachable if down or refused."""
        endpoint = relay_ws_url(url)
        origin = protocol.relay_origin(endpoint)
        tls = tls_context() if origin.startswith("wss:") else True
        session = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(timeout):
                ws = await session.ws_connect(
                    endpoint,
                    max_msg_size=2 * protocol.MAX_FRAME,
                    compress=0,
                    heartbeat=_HEARTBEAT,
                    autoping=True,
                    protocols=(protocol.ICE_SUBPROTOCOL,),
                    ssl=tls,
                )
                # Our AUTH is signed for this relay's origin: no other relay can pass it on.
                ice = ws.protocol == protocol.ICE_SUBPROTOCOL
                conn = protocol.ClientConnection(signing_key, origin, ice)
                first_ice = await _sign_in(ws, conn, url)
        except RelayUnreachable:
            await session.close()
            raise
        except protocol.RelayProtocolError as exc:
            await session.close()
            raise RelayUnreachable(f"relay {url} broke the protocol: {exc.reason}") from exc
        except TimeoutError as exc:
            await session.close()
            raise RelayUnreachable(f"relay {url} did not answer within {timeout:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            await session.close()
            raise RelayUnreachable(f"relay {url} is unreachable: {_describe(exc)}") from exc
        return cls(url, session, ws, conn, first_ice)

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
        if not self._ice_next.done():
            self._ice_next.set_result(None)

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
                elif isinstance(event, protocol.IceServers):
                    self._take_ice(event)
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
        if not self._ice_next.done():
            self._ice_next.set_result(None)  # ice_changed() raises from now on
        with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError, TimeoutError):
            await asyncio.wait_for(self._ws.close(), 2.0)


async def _sign_in(
    ws: aiohttp.ClientWebSocketResponse, conn: protocol.ClientConnection, url: str
) -> protocol.IceServers | None:
    """Answer the challenge; returns once READY, and the ICE servers if they follow it, are in."""
    ice = None
    while not conn.ready or conn.awaiting_ice:
        msg = await ws.receive()
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise RelayUnreachable(f"relay {url} closed the link during sign-in")
        event = conn.receive(msg.data)
        if isinstance(event, protocol.Refused):
            raise RelayUnreachable(f"relay {url} refused us: {event.reason}")
        if isinstance(event, protocol.IceServers):
            ice = event
        for frame in conn.data_to_send():
            await ws.send_bytes(frame)
    return ice


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

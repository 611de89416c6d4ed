"""The relay server behind `tcall serve`: an aiohttp WebSocket endpoint at `/ws` routing payloads.

It holds live links and, for a mailbox that is offline, a few payloads for a short while, all in
memory. It writes nothing to disk and logs only counts and errors, never who wrote to whom.
Every link has its own limits (frame size, token-bucket message rate, delivery backlog); a link that
breaks one is closed, after an ERROR frame unless its backlog is what is full, and nobody else
notices.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import Callable

from aiohttp import WSMsgType, web

from engine.errors import UsageError
from engine.relay import protocol
from engine.relay.hold import MailboxHold
from engine.relay.limits import TokenBucket
from engine.relay.protocol import ErrorCode, RelayProtocolError
from engine.relay.redisbus import RedisBus

log = logging.getLogger("tcall.relay")


@dataclasses.dataclass(frozen=True)
class RelayConfig:
    """The relay's limits; defaults suit signaling, which is a handful of small messages a call."""

    hold_seconds: float = 60.0
    hold_per_mailbox: int = 32
    hold_max_bytes: int = 32 << 20
    max_frame: int = protocol.MAX_FRAME
    rate: float = 50.0  # messages a second, sustained, per link
    burst: float = 100.0
    auth_timeout: float = 10.0
    max_backlog: int = 1 << 20  # unsent bytes to a link that does not read, before it is dropped
    heartbeat: float = 30.0
    close_timeout: float = 2.0
    stats_interval: float = 60.0


def _frame_header(size: int) -> bytes:
    """The header of one unmasked, final, binary WebSocket frame (RFC 6455, section 5.2)."""
    if size < 126:
        return bytes((0x82, size))
    if size < 1 << 16:
        return bytes((0x82, 126)) + size.to_bytes(2, "big")
    return bytes((0x82, 127)) + size.to_bytes(8, "big")


class Peer:
    """One authenticated link.

    Deliveries are written straight to the socket as whole WebSocket frames, from whichever task
    routes them: no queue and no task hop, which is most of a relay's cost per message. A sender
    never waits for a slow reader; when a reader's unsent backlog passes `max_backlog` bytes, its
    link is dropped instead.
    """

    __slots__ = ("mailbox", "ws", "claim", "closing", "goodbye", "_transport", "_max_backlog")

    def __init__(
        self, mailbox: str, ws: web.WebSocketResponse, request: web.Request, max_backlog: int
    ) -> None:
        self.mailbox = mailbox
        self.ws = ws
        self.claim = 0  # its sign-in's place in the order Redis gives them
        self.closing = False
        self.goodbye: asyncio.Task[None] | None = None
        self._transport = request.transport
        self._max_backlog = max_backlog

    def deliver(self, frame: bytes) -> bool:
        """Write one relay frame; False if the link is closing or its backlog is full."""
        transport = self._transport
        if self.closing or self.ws.closed or transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > self._max_backlog:
            return False
        # One write per frame keeps frames whole beside aiohttp's own pings and close frames.
        transport.write(_frame_header(len(frame)) + frame)
        return True

    def kick(self, code: ErrorCode, reason: str) -> None:
        """Send an ERROR, then close the link; `goodbye` is the task doing it."""
        if self.closing:
            return
        self.closing = True
        self.goodbye = asyncio.create_task(self._say_goodbye(protocol.encode_error(code, reason)))

    def abort(self) -> None:
        """Drop the link at once: for a client that stopped reading, a polite close would wait."""
        self.closing = True
        if self._transport is not None:
            self._transport.abort()

    async def _say_goodbye(self, frame: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_bytes(frame)
        await _close(self.ws)


async def _close(ws: web.WebSocketResponse, timeout: float = 2.0) -> None:
    # ws.close() drains and waits for the client's close frame; a hostile client may never send it.
    with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
        await asyncio.wait_for(ws.close(), timeout)


class RelayServer:
    """Routes payloads between mailboxes; `app()` gives the aiohttp application to serve."""

    def __init__(self, config: RelayConfig | None = None, redis_url: str | None = None) -> None:
        self.config = config or RelayConfig()
        self.redis_url = redis_url
        self.peers: dict[str, Peer] = {}
        self.hold = MailboxHold(
            self.config.hold_seconds, self.config.hold_per_mailbox, self.config.hold_max_bytes
        )
        self.stats: collections.Counter[str] = collections.Counter()
        self.bus: RedisBus | None = None
        self._background: list[asyncio.Task[None]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(protocol.WS_PATH, self._handle)
        app.on_startup.append(self._startup)
        app.on_shutdown.append(self._shutdown)
        app.on_cleanup.append(self._cleanup)
        return app

    # --- lifecycle ------------------------------------------------------------------------------

    async def _startup(self, _app: web.Application) -> None:
        if self.redis_url:
            self.bus = RedisBus(self.redis_url, self._from_bus, self._online_elsewhere)
            await self.bus.start()
        self._background.append(asyncio.create_task(self._sweep()))
        self._background.append(asyncio.create_task(self._report()))

    async def _shutdown(self, _app: web.Application) -> None:
        for peer in list(self.peers.values()):
            peer.kick(ErrorCode.SHUTTING_DOWN, "relay is stopping")
        tasks = [peer.goodbye for peer in self.peers.values() if peer.goodbye is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.close_timeout)

    async def _cleanup(self, _app: web.Application) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.bus is not None:
            await self.bus.close()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        interval = min(1.0, max(0.05, self.config.hold_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            self.stats["expired"] += self.hold.expire(loop.time())

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval)
            s = self.stats
            log.info(
                "%d links, %d routed, %d held, %d expired, %d dropped, %d refused",
                len(self.peers),
                s["routed"],
                s["held"],
                s["expired"],
                s["dropped"],
                s["refused"],
            )

    # --- one link -------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        cfg = self.config
        ws = web.WebSocketResponse(
            # aiohttp's own cap is a backstop; frames between the two caps get a TOO_LARGE ERROR.
            max_msg_size=2 * cfg.max_frame,
            heartbeat=cfg.heartbeat,
            compress=False,
            timeout=cfg.close_timeout,
        )
        await ws.prepare(request)
        self.stats["links"] += 1
        conn = protocol.ServerConnection(max_frame=cfg.max_frame)
        peer: Peer | None = None
        try:
            await ws.send_bytes(conn.hello())
            mailbox = await self._authenticate(ws, conn)
            if mailbox is not None:
                peer = await self._register(mailbox, ws, request)
                await self._serve(ws, conn, peer)
        except RelayProtocolError as exc:
            self.stats["refused"] += 1
            if peer is None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_bytes(exc.frame())
                await _close(ws, cfg.close_timeout)
            else:
                peer.kick(exc.code, exc.reason)
                if peer.goodbye is not None:
                    await asyncio.wait([peer.goodbye], timeout=cfg.close_timeout + 1)
        except (ConnectionError, RuntimeError):
            pass  # the client went away mid-write
        finally:
            if peer is not None:
                await self._unregister(peer)
        return ws

    async def _receive(self, ws: web.WebSocketResponse) -> bytes | None:
        """The next binary frame, or None once the link is closing or closed."""
        msg = await ws.receive()
        if msg.type == WSMsgType.BINARY:
            data: bytes = msg.data
            return data
        if msg.type == WSMsgType.TEXT:
            raise RelayProtocolError(ErrorCode.UNSUPPORTED, "the relay speaks binary frames only")
        if msg.type == WSMsgType.ERROR:
            # aiohttp already closed the link: over its size backstop, or broken WebSocket framing.
            self.stats["refused"] += 1
        return None

    async def _authenticate(
        self, ws: web.WebSocketResponse, conn: protocol.ServerConnection
    ) -> str | None:
        try:
            data = await asyncio.wait_for(self._receive(ws), self.config.auth_timeout)
        except TimeoutError as exc:
            raise RelayProtocolError(ErrorCode.AUTH_TIMEOUT, "no AUTH in time") from exc
        if data is None:
            return None
        event = conn.receive(data)
        assert isinstance(event, protocol.Authenticated)
        return event.mailbox

    async def _serve(
        self, ws: web.WebSocketResponse, conn: protocol.ServerConnection, peer: Peer
    ) -> None:
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(self.config.rate, self.config.burst, loop.time())
        while not peer.closing:
            data = await self._receive(ws)
            if data is None or peer.closing:
                return
            if not bucket.take(loop.time()):
                raise RelayProtocolError(ErrorCode.RATE_LIMITED, "too many messages")
            event = conn.receive(data)
            assert isinstance(event, protocol.Route)
            await self.route(peer.mailbox, event.to_mailbox, event.payload)

    async def _register(
        self, mailbox: str, ws: web.WebSocketResponse, request: web.Request
    ) -> Peer:
        old = self.peers.get(mailbox)
        if old is not None:
            old.kick(ErrorCode.REPLACED, "this mailbox signed in again")
        peer = Peer(mailbox, ws, request, self.config.max_backlog)
        self.peers[mailbox] = peer
        if self.bus is not None:
            # READY only once the other nodes have been told, so a client that signs in again
            # elsewhere right after is always the newer claim.
            peer.claim = await self.bus.claim(mailbox)
        peer.deliver(protocol.encode_ready(mailbox))
        for payload in self.hold.take(mailbox, asyncio.get_running_loop().time()):
            self._deliver_local(peer, payload)
        return peer

    async def _unregister(self, peer: Peer) -> None:
        peer.closing = True
        if self.peers.get(peer.mailbox) is peer:
            del self.peers[peer.mailbox]
            if self.bus is not None:
                await self.bus.release(peer.mailbox)

    # --- routing --------------------------------------------------------------------------------

    async def route(self, sender: str, to_mailbox: str, payload: bytes) -> None:
        """Pass `payload` from the link of `sender` to `to_mailbox`: here, through Redis, or into
        the hold. `sender` is unused by the honest relay; a test relay that misbehaves uses it."""
        self.stats["routed"] += 1
        peer = self.peers.get(to_mailbox)
        if peer is not None:
            self._deliver_local(peer, payload)
        elif self.bus is None or await self.bus.publish(to_mailbox, payload) == 0:
            self._hold(to_mailbox, payload)

    def _deliver_local(self, peer: Peer, payload: bytes) -> None:
        if not peer.deliver(protocol.encode_deliver(payload)):
            self.stats["dropped"] += 1
            if not peer.closing:
                peer.abort()  # its backlog is full: an ERROR frame would only queue behind it

    def _hold(self, mailbox: str, payload: bytes) -> None:
        if self.hold.put(mailbox, payload, asyncio.get_running_loop().time()):
            self.stats["held"] += 1
        else:
            self.stats["dropped"] += 1

    async def _from_bus(self, mailbox: str, payload: bytes) -> None:
        peer = self.peers.get(mailbox)
        if peer is not None:
            self._deliver_local(peer, payload)

    async def _online_elsewhere(self, mailbox: str, claim: int) -> None:
        peer = self.peers.get(mailbox)
        if peer is not None and peer.claim < claim:
            del self.peers[mailbox]
            peer.kick(ErrorCode.REPLACED, "this mailbox signed in again")
            assert self.bus is not None
            await self.bus.release(mailbox)
        held = self.hold.take(mailbox, asyncio.get_running_loop().time())
        for payload in held:
            assert self.bus is not None
            if await self.bus.publish(mailbox, payload) == 0:
                self._hold(mailbox, payload)


async def run(
    host: str,
    port: int,
    server: RelayServer,
    listening: Callable[[str], None],
    stop: asyncio.Event,
) -> None:
    """Serve until `stop` is set; `listening` gets the relay's ws:// URL once it accepts links."""
    runner = web.AppRunner(server.app(), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        listening(f"ws://{shown}:{bound[1]}")
        await stop.wait()
    finally:
        await runner.cleanup()

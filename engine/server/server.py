"""The relay server behind `tcall serve`: WebSocket links at `/ws`, routing payloads between them.

Each TCP connection is one `Link`, an `asyncio.Protocol`. It reads the HTTP request and answers the
WebSocket opening handshake for `/ws`, a static page from `pages` for a plain GET, or an HTTP error;
then it parses frames with `websocket.FrameParser` and relay messages with
`protocol.ServerConnection`. A payload is routed inside `data_received` and written to the
recipient's socket as one frame with one `transport.write`: no task, queue or message object per
frame. (The aiohttp server this replaces took ~55-75 us of CPU per message at 10k links and ~300
MiB; this one ~33-40 us, 40 % of it in the kernel, and 70 MiB: see bench/relay.py. A web page for
browsers is a `pages` entry.)

A link whose client offered `protocol.ICE_SUBPROTOCOL` gets the relay's ICE servers right after
READY, with TURN credentials of its own (`turn_credentials`) when it dialled wss:// or a loopback
address, and fresh ones at half their lifetime. With an `ssl` context `run` serves wss://.

It holds live links and, for a mailbox that is offline, a few payloads for a short while, all in
memory. It writes nothing to disk and logs only counts and errors, never who wrote to whom.
Every link has its own limits (message size, token-bucket message rate, delivery backlog); a link
that breaks one is closed, after an ERROR frame unless its backlog is what is full, and nobody else
notices.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import ipaddress
import logging
import secrets
import socket
import ssl
import struct
import time
from collections.abc import Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any, cast

from tcall.engine.errors import ConfigError, UsageError
from tcall.engine.relay import protocol
from tcall.engine.relay.protocol import ErrorCode, RelayProtocolError, Route
from tcall.engine.server.hold import MailboxHold
from tcall.engine.server.limits import TokenBucket
from tcall.engine.server.redisbus import RedisBus
from tcall.engine.server.turn_credentials import IceOffer, credentials_safe
from tcall.engine.server.websocket import (
    MAX_FRAGMENTS,
    MAX_HEAD,
    CloseCode,
    FrameParser,
    HttpError,
    Opcode,
    Request,
    WebSocketError,
    encode_close,
    frame_header,
    http_response,
    parse_request,
    upgrade_response,
)

log = logging.getLogger("tcall.relay")


@dataclasses.dataclass(frozen=True)
class RelayConfig:
    """The relay's limits; defaults suit signaling, which is a handful of small messages a call."""

    hold_seconds: float = 60.0
    hold_per_mailbox: int = 32
    hold_max_bytes: int = 32 << 20  # memory the hold may take, entries' own cost included
    hold_max_entries: int = 100_000
    hold_per_sender_bytes: int = 1 << 20  # of that memory, what one sending mailbox may take
    hold_per_sender_share: int = 8  # slots of one mailbox one sender may hold
    max_frame: int = protocol.MAX_FRAME
    max_fragments: int = MAX_FRAGMENTS  # frames one message may be split into
    rate: float = 50.0  # messages a second, sustained, per link
    burst: float = 100.0
    auth_timeout: float = 10.0
    max_backlog: int = 1 << 20  # unsent bytes to a link that does not read, before it is dropped
    heartbeat: float = 30.0  # a link silent this long is pinged; silent twice as long, dropped
    close_timeout: float = 2.0
    stats_interval: float = 60.0
    public_urls: tuple[str, ...] = ()  # `protocol.relay_origin`s clients reach us by (a proxy)
    ice: IceOffer | None = None  # STUN/TURN servers for clients that ask (ICE_SUBPROTOCOL)
    ice_renew: float | None = None  # seconds between a link's ICE frames; None: half their ttl


@dataclasses.dataclass(frozen=True)
class Page:
    """A static answer to `GET <path>`."""

    content_type: str
    body: bytes


DEFAULT_PAGES: Mapping[str, Page] = {
    "/": Page("text/plain; charset=utf-8", b"tcall relay: point tcall at ws://this-host:port\n"),
}

_CLOSE_CODES = {
    ErrorCode.SHUTTING_DOWN: CloseCode.GOING_AWAY,
    ErrorCode.TOO_LARGE: CloseCode.TOO_BIG,
    ErrorCode.MALFORMED: CloseCode.PROTOCOL_ERROR,
}
_WS_ERRORS = {CloseCode.TOO_BIG: ErrorCode.TOO_LARGE, CloseCode.POLICY: ErrorCode.RATE_LIMITED}
_PING_FRAME = frame_header(Opcode.PING, 0)
_BINARY, _TEXT, _PING, _CLOSE = (
    int(Opcode.BINARY),
    int(Opcode.TEXT),
    int(Opcode.PING),
    int(Opcode.CLOSE),
)
_DELIVER_HEAD = struct.Struct(">BBHB")  # FIN+binary, 16-bit length, length, DELIVER kind


class Link(asyncio.Protocol):
    """One client connection: HTTP request, then WebSocket, then the relay protocol."""

    # Slots: attribute reads on the per-message path skip a dict, and 10k links take less memory.
    __slots__ = (
        "server",
        "mailbox",
        "claim",
        "closing",
        "last_heard",
        "transport",
        "_head",
        "_frames",
        "_conn",
        "_bucket",
        "_timer",
        "_waiting",
        "_ice_user",
        "_ice_timer",
    )

    def __init__(self, server: RelayServer) -> None:
        self.server = server
        self.mailbox = ""  # set once signed in and registered
        self.claim = 0  # its sign-in's place in the order Redis gives them
        self.closing = False  # a close frame went out, or the connection is going away
        self.last_heard = 0.0
        self.transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._frames: FrameParser | None = None  # None until the WebSocket is open
        self._conn = protocol.ServerConnection(max_frame=server.config.max_frame)
        self._bucket: TokenBucket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: list[tuple[int, bytes]] | None = None  # messages during a Redis sign-in
        self._ice_user = ""  # this link's opaque id in its TURN usernames
        self._ice_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        server.links.add(self)
        self.last_heard = server.loop.time()
        self._timer = server.loop.call_later(server.config.auth_timeout, self._auth_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
        self.server.forget(self)

    def data_received(self, data: bytes) -> None:
        now = self.server.loop.time()
        self.last_heard = now
        frames = self._frames
        if frames is None:
            if not self.closing:
                self._http(data)
            return
        parsed = frames.frames
        try:
            messages = frames.feed(data)
            # Every frame costs a token, not only whole messages: fragments, pings and closes too.
            extra = frames.frames - parsed - len(messages)
            bucket = self._bucket
            if extra and bucket is not None and not bucket.take(now, extra):
                raise WebSocketError(CloseCode.POLICY, "too many frames")
        except WebSocketError as exc:
            if not self.closing:
                self.server.stats["refused"] += 1
                code = _WS_ERRORS.get(exc.code, ErrorCode.MALFORMED)
                self.kick(code, exc.reason)
            # What follows a broken frame cannot be framed: ignore it until the client hangs up.
            self._frames = None
            self.closing = True
            return
        if self._waiting is not None:
            self._waiting += messages
        else:
            self._handle(messages, now)

    # --- what the server calls ------------------------------------------------------------------

    def deliver(self, payload: bytes) -> bool:
        """Write one DELIVER frame; False if the link is closing or its backlog is full."""
        transport = self.transport
        # uvloop closes a transport at once but reports it a tick later, and a write in between
        # raises: into the *sender's* data_received, which would then lose its own link.
        if self.closing or transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > self.server.config.max_backlog:
            return False
        size = len(payload) + 1
        if 126 <= size < 1 << 16:  # a sealed signaling message: skip frame_header's call
            transport.write(_DELIVER_HEAD.pack(0x82, 126, size, protocol.Kind.DELIVER) + payload)
        else:
            transport.write(frame_header(Opcode.BINARY, size) + protocol.encode_deliver(payload))
        return True

    def send(self, message: bytes) -> None:
        """Write one relay message as a binary frame."""
        if self.transport is not None and not self.closing and not self.transport.is_closing():
            self.transport.write(frame_header(Opcode.BINARY, len(message)) + message)

    def send_ice(self) -> None:
        """Send the ICE servers, if this link asked for them; again before they expire."""
        self._ice_timer = None
        if not self._conn.ice or self.closing or self.server.peers.get(self.mailbox) is not self:
            return
        if not self._ice_user:
            self._ice_user = secrets.token_hex(8)
        frame, renew = self.server.ice_frame(self._conn.origin, self._ice_user)
        self.send(frame)
        if renew is not None:
            self._ice_timer = self.server.loop.call_later(renew, self.send_ice)

    def stop_ice(self) -> None:
        if self._ice_timer is not None:
            self._ice_timer.cancel()
            self._ice_timer = None

    def kick(self, code: ErrorCode, reason: str) -> None:
        """Send an ERROR and a close frame; the link closes on the client's answer, or soon."""
        if self.closing or self.transport is None:
            return
        if self.transport.is_closing():
            self.abort()
            return
        self.transport.write(_error_frames(code, reason))
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.server.loop.call_later(self.server.config.close_timeout, self.abort)

    def abort(self) -> None:
        """Drop the connection at once: for a client that stopped reading, a close would wait."""
        self.closing = True
        if self.transport is not None:
            self.transport.abort()
        self.server.forget(self)

    def resume(self) -> None:
        """Carry on after a Redis sign-in, with the messages that came meanwhile."""
        messages, self._waiting = self._waiting or [], None
        if self.transport is not None and not self.closing and not self.transport.is_closing():
            self.transport.resume_reading()
            self._handle(messages, self.server.loop.time())

    def ping(self, now: float) -> None:
        """Ping a link that has been silent a while; drop one that stayed silent after that."""
        transport = self.transport
        if self._frames is None or self.closing or transport is None or transport.is_closing():
            return
        silent = now - self.last_heard
        if silent > 2 * self.server.config.heartbeat:
            self.abort()
        elif silent >= self.server.config.heartbeat:
            transport.write(_PING_FRAME)

    # --- inside -----------------------------------------------------------------------------------

    def _http(self, data: bytes) -> None:
        head = self._head
        head += data
        end = head.find(b"\r\n\r\n")
        transport = self.transport
        assert transport is not None
        try:
            if not head[:1].isalpha():  # not HTTP: a TLS ClientHello to ws://, say; don't wait
                raise HttpError(HTTPStatus.BAD_REQUEST)
            if end < 0 and len(head) <= MAX_HEAD:
                return
            if end < 0 or end > MAX_HEAD:
                raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            request = parse_request(bytes(head[:end]))
            if request.path != protocol.WS_PATH:
                self._answer(self.server.page(request))
                return
            ice = protocol.ICE_SUBPROTOCOL in request.tokens("sec-websocket-protocol")
            answer = upgrade_response(request, protocol.ICE_SUBPROTOCOL if ice else None)
            origin = self.server.origin(request, transport)
            self._conn.ice = ice
        except HttpError as exc:
            self._answer(http_response(exc.status, headers=exc.headers))
            return
        rest = bytes(head[end + 4 :])
        self._head = bytearray()
        if isinstance(origin, str):
            self._open(answer, origin, rest)
        else:  # a host name: see that it is ours before the link opens
            transport.pause_reading()
            self.server.spawn(self._resolved(answer, origin, rest))

    async def _resolved(
        self, answer: bytes, origin: Coroutine[Any, Any, str | None], rest: bytes
    ) -> None:
        name = await origin
        if self.closing or self.transport is None or self.transport.is_closing():
            return
        if name is None:
            self._answer(http_response(HTTPStatus.MISDIRECTED_REQUEST))
            return
        self.transport.resume_reading()
        self._open(answer, name, rest)

    def _open(self, answer: bytes, origin: str, rest: bytes) -> None:
        transport = self.transport
        assert transport is not None
        self._conn.origin = origin
        config = self.server.config
        self._frames = FrameParser(config.max_frame, config.max_fragments)
        # The rate limit holds from the first frame, before sign-in too (a ping flood, say).
        self._bucket = TokenBucket(config.rate, config.burst, self.server.loop.time())
        self.server.stats["links"] += 1
        hello = self._conn.hello()
        transport.write(answer + frame_header(Opcode.BINARY, len(hello)) + hello)
        if rest:
            self.data_received(rest)

    def _answer(self, response: bytes) -> None:
        assert self.transport is not None
        self.transport.write(response)
        self.closing = True
        self.transport.close()

    def _handle(self, messages: list[tuple[int, bytes]], now: float) -> None:
        transport = self.transport
        assert transport is not None
        bucket, receive, route = self._bucket, self._conn.receive, self.server.route
        # The pongs this batch owes go out in one write after it. Written one by one, a ping
        # flood's pongs cost the relay half as much again as their bytes in small objects: ten
        # links that never read peaked at 13.3-16.8 MiB over the relay's start for their 1 MiB
        # backlogs (17.4 MiB was left once in CI), and 9.2-10.9 MiB in one write a batch.
        pongs = bytearray()
        try:
            # Opcodes as plain ints: this loop runs once per message, and enum lookups add up.
            for index, (opcode, payload) in enumerate(messages):
                if self.closing:
                    if opcode == _CLOSE:
                        transport.close()  # the client answered our close frame
                        return
                    continue
                try:
                    if bucket is not None and not bucket.take(now):
                        raise RelayProtocolError(ErrorCode.RATE_LIMITED, "too many messages")
                    if opcode == _BINARY:
                        event = receive(payload)
                        if isinstance(event, Route):
                            route(self.mailbox, event.to_mailbox, event.payload)
                        elif not self._sign_in(event.mailbox, now):
                            self._waiting = messages[index + 1 :]
                            transport.pause_reading()
                            return
                        else:
                            bucket = self._bucket
                    elif opcode == _PING:
                        backlog = transport.get_write_buffer_size() + len(pongs)
                        if backlog > self.server.config.max_backlog:
                            self.abort()  # it sends pings and reads no pongs
                            return
                        pongs += frame_header(Opcode.PONG, len(payload)) + payload
                    elif opcode == _CLOSE:
                        transport.write(encode_close(CloseCode.NORMAL))
                        self.closing = True
                        transport.close()
                        return
                    elif opcode == _TEXT:
                        raise RelayProtocolError(
                            ErrorCode.UNSUPPORTED, "the relay speaks binary frames only"
                        )
                except RelayProtocolError as exc:
                    self.server.stats["refused"] += 1
                    self.kick(exc.code, exc.reason)
        finally:
            if pongs and not self.closing and not transport.is_closing():
                transport.write(bytes(pongs))

    def _sign_in(self, mailbox: str, now: float) -> bool:
        """True once registered; False while Redis confirms the claim (then `resume` follows)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        config = self.server.config
        self._bucket = TokenBucket(config.rate, config.burst, now)  # a full burst once signed in
        return self.server.sign_in(self, mailbox)

    def _auth_timeout(self) -> None:
        self._timer = None
        if self._frames is None:
            self.abort()  # not even an HTTP request in time
        else:
            self.server.stats["refused"] += 1
            self.kick(ErrorCode.AUTH_TIMEOUT, "no AUTH in time")


def _split_host(value: str) -> tuple[str, int | None]:
    """Host and port of a Host header ("name", "name:80", "[::1]:80"); ("", None) if broken."""
    value = value.strip()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return "", None
        port_text = rest[1:]
    else:
        host, _, port_text = value.partition(":")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return "", None
    return host, int(port_text)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _same_address(a: str, b: str) -> bool:
    try:
        x, y = ipaddress.ip_address(a.split("%")[0]), ipaddress.ip_address(b.split("%")[0])
    except ValueError:
        return False
    x = getattr(x, "ipv4_mapped", None) or x
    y = getattr(y, "ipv4_mapped", None) or y
    return x == y


def _error_frames(code: ErrorCode, reason: str) -> bytes:
    """An ERROR message and the close frame after it: always a link's last words."""
    message = protocol.encode_error(code, reason)
    close = encode_close(_CLOSE_CODES.get(code, CloseCode.POLICY))
    return frame_header(Opcode.BINARY, len(message)) + message + close


class RelayServer:
    """Routes payloads between mailboxes; serve it with `run`."""

    loop: asyncio.AbstractEventLoop  # set by `start`, before any link exists
    scheme = "ws"  # "wss" when `run` serves TLS

    def __init__(
        self,
        config: RelayConfig | None = None,
        redis_url: str | None = None,
        pages: Mapping[str, Page] = DEFAULT_PAGES,
    ) -> None:
        self.config = config or RelayConfig()
        self.redis_url = redis_url
        self.pages = pages
        self.links: set[Link] = set()
        self.peers: dict[str, Link] = {}
        config = self.config
        self.hold = MailboxHold(
            config.hold_seconds,
            config.hold_per_mailbox,
            config.hold_max_bytes,
            config.hold_max_entries,
            config.hold_per_sender_bytes,
            config.hold_per_sender_share,
        )
        self.stats: collections.Counter[str] = collections.Counter()
        self.bus: RedisBus | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._names: dict[str, tuple[float, frozenset[str]]] = {}  # host name: until, addresses

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Redis if asked (ConfigError if it cannot be used) and start the timers."""
        self.loop = asyncio.get_running_loop()
        if self.redis_url:
            self.bus = RedisBus(self.redis_url, self._from_bus, self._online_elsewhere, self._hold)
            await self.bus.start()
        self.spawn(self._sweep())
        self.spawn(self._heartbeat())
        self.spawn(self._report())

    async def close_links(self) -> None:
        """Tell every link the relay is stopping, and wait a little for them to hang up."""
        for link in list(self.links):
            if link.mailbox:
                link.kick(ErrorCode.SHUTTING_DOWN, "relay is stopping")
            else:
                link.abort()
        deadline = self.loop.time() + self.config.close_timeout
        while self.links and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        for link in list(self.links):
            link.abort()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.bus is not None:
            await self.bus.close()

    def spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sweep(self) -> None:
        # Expiry pops only what is due (put() expires too), so sweeping often costs little.
        interval = min(0.25, max(0.05, self.config.hold_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            self.stats["expired"] += self.hold.expire(self.loop.time())

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat / 2)
            now = self.loop.time()
            for link in list(self.links):
                link.ping(now)

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

    # --- links ----------------------------------------------------------------------------------

    def origin(
        self, request: Request, transport: asyncio.Transport
    ) -> str | Coroutine[Any, Any, str | None]:
        """This relay's origin as the client named it (the Host header), which its AUTH must be
        signed for; HttpError (421) if the header names another relay. A host name is checked
        by resolving it (the coroutine returned), an address against the socket's own.

        With `public_urls` (behind a proxy) only those are the relay's names. Without, the Host
        must carry the port the client reached and name the address it reached: a relay that
        passes another's challenge on cannot name that relay's address in its own clients' URL.
        """
        host, port = _split_host(request.headers.get("host", ""))
        public = self.config.public_urls
        if public:
            for url in public:
                scheme = url.split(":", 1)[0]
                if url == protocol.origin(scheme, host, port):
                    return url
            raise HttpError(HTTPStatus.MISDIRECTED_REQUEST)
        local = transport.get_extra_info("sockname")
        port = port or (443 if self.scheme == "wss" else 80)
        if not host or not local or port != local[1]:
            raise HttpError(HTTPStatus.MISDIRECTED_REQUEST)
        name = protocol.origin(self.scheme, host, port)
        if _is_address(host):
            if not _same_address(host, local[0]):
                raise HttpError(HTTPStatus.MISDIRECTED_REQUEST)
            return name
        return self._name_is_ours(host, local[0], name)

    async def _name_is_ours(self, host: str, address: str, name: str) -> str | None:
        now = self.loop.time()
        cached = self._names.get(host)
        if cached is None or cached[0] < now:
            try:
                infos = await self.loop.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
                found = frozenset(str(info[4][0]) for info in infos)
            except OSError:
                found = frozenset()
            if len(self._names) > 1024:
                self._names.clear()
            cached = self._names[host] = (now + 60.0, found)
        return name if any(_same_address(a, address) for a in cached[1]) else None

    def page(self, request: Request) -> bytes:
        """The whole HTTP answer to a request that is not a WebSocket opening."""
        if request.method != "GET":
            return http_response(HTTPStatus.METHOD_NOT_ALLOWED, headers=(("Allow", "GET"),))
        page = self.pages.get(request.path)
        if page is None:
            return http_response(HTTPStatus.NOT_FOUND)
        return http_response(HTTPStatus.OK, page.body, page.content_type)

    def sign_in(self, link: Link, mailbox: str) -> bool:
        """Register a link that proved its key; False while Redis confirms (then `link.resume`)."""
        if self.bus is None:
            self._register(link, mailbox, 0)
            return True
        self.spawn(self._claim(link, mailbox))
        return False

    async def _claim(self, link: Link, mailbox: str) -> None:
        assert self.bus is not None
        # READY only once the other nodes have been told, so a client that signs in again
        # elsewhere right after is always the newer claim.
        claim = await self.bus.claim(mailbox)
        if link.closing:
            if mailbox not in self.peers:
                await self.bus.release(mailbox)
            return
        self._register(link, mailbox, claim)
        link.resume()

    def _register(self, link: Link, mailbox: str, claim: int) -> None:
        old = self.peers.get(mailbox)
        if old is not None and old is not link:
            old.kick(ErrorCode.REPLACED, "this mailbox signed in again")
        link.mailbox, link.claim = mailbox, claim
        self.peers[mailbox] = link
        link.send(protocol.encode_ready(mailbox))
        link.send_ice()
        for payload in self.hold.take(mailbox, self.loop.time()):
            self._deliver_local(link, payload)

    def ice_frame(self, origin: str, user: str) -> tuple[bytes, float | None]:
        """The ICE frame for a link that dialled `origin`, with TURN credentials for `user` if
        they may travel there; and when to send the next, or None if nothing expires."""
        offer = self.config.ice
        if offer is None:
            return protocol.encode_ice((), None), None
        servers, ttl = offer.servers(user, time.time(), credentials_safe(origin))
        if ttl is None:
            return protocol.encode_ice(servers, None), None
        return protocol.encode_ice(servers, ttl), self.config.ice_renew or ttl / 2

    def forget(self, link: Link) -> None:
        """A link is gone: it no longer receives anything (safe to call more than once)."""
        link.stop_ice()
        self.links.discard(link)
        if link.mailbox and self.peers.get(link.mailbox) is link:
            del self.peers[link.mailbox]
            if self.bus is not None:
                self.spawn(self.bus.release(link.mailbox))

    # --- routing --------------------------------------------------------------------------------

    def route(self, sender: str, to_mailbox: str, payload: bytes) -> None:
        """Pass `payload` from the link of `sender` to `to_mailbox`: here, through Redis, or into
        the hold. `sender` is unused by the honest relay; a test relay that misbehaves uses it."""
        self.stats["routed"] += 1
        peer = self.peers.get(to_mailbox)
        if peer is not None:
            self._deliver_local(peer, payload, sender)
        elif self.bus is None:
            self._hold(to_mailbox, payload, sender)
        elif not self.bus.offer(to_mailbox, payload, sender):
            self.stats["dropped"] += 1

    def _deliver_local(self, peer: Link, payload: bytes, sender: str = "") -> None:
        if peer.deliver(payload):
            return
        if peer.closing or peer.transport is None or peer.transport.is_closing():
            # It is going away: keep it for its next sign-in.
            self._hold(peer.mailbox, payload, sender)
        else:
            self.stats["dropped"] += 1
            peer.abort()  # its backlog is full: an ERROR frame would only queue behind it

    def _hold(self, mailbox: str, payload: bytes, sender: str = "") -> None:
        if self.hold.put(mailbox, payload, self.loop.time(), sender):
            self.stats["held"] += 1
        else:
            self.stats["dropped"] += 1

    def _from_bus(self, mailbox: str, payload: bytes) -> None:
        peer = self.peers.get(mailbox)
        if peer is not None:
            self._deliver_local(peer, payload)
        else:
            self._hold(mailbox, payload)  # it signed out, or is still signing in, here

    async def _online_elsewhere(self, mailbox: str, claim: int) -> None:
        assert self.bus is not None
        peer = self.peers.get(mailbox)
        if peer is not None and peer.claim < claim:
            del self.peers[mailbox]
            peer.kick(ErrorCode.REPLACED, "this mailbox signed in again")
            await self.bus.release(mailbox)
        for payload in self.hold.take(mailbox, self.loop.time()):
            if not self.bus.offer(mailbox, payload):
                self.stats["dropped"] += 1


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """The server side of wss://: TLS 1.2 or later with this certificate chain and key;
    ConfigError (one line) if they cannot be used."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        reason = (exc.reason or "not a PEM certificate and key").replace("_", " ")
    except OSError as exc:
        reason = exc.strerror or str(exc)
    else:
        return context
    raise ConfigError(f"cannot use TLS certificate {cert} with key {key}: {reason.lower()}")


async def run(
    host: str,
    port: int,
    server: RelayServer,
    listening: Callable[[str], None],
    stop: asyncio.Event,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Serve until `stop` is set; `listening` gets the relay's URL (ws://, or wss:// with `tls`)
    once it accepts links."""
    server.scheme = "wss" if tls is not None else "ws"
    await server.start()
    try:
        loop = asyncio.get_running_loop()
        try:
            # A deep accept queue: thousands of clients may connect at once after a restart.
            listener = await loop.create_server(
                lambda: Link(server),
                host,
                port,
                backlog=4096,
                ssl=tls,
                ssl_handshake_timeout=10.0 if tls is not None else None,
            )
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        try:
            bound = listener.sockets[0].getsockname()
            shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            listening(f"{server.scheme}://{shown}:{bound[1]}")
            await stop.wait()
        finally:
            listener.close()
            await server.close_links()
    finally:
        await server.stop()

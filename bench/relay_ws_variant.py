"""The relay with `websockets`' sans-I/O `ServerProtocol` as its WebSocket layer: bench only.

`bench/relay.py --variant websockets` (or `both`) runs this beside `tcall serve`, to weigh swapping
engine/server/websocket.py for the library. `WsLink` is the product's `Link` (same asyncio.Protocol
on uvloop, same `RelayServer`, relay protocol, hold and limits) with only the WebSocket layer
replaced: the handshake by `ServerProtocol.receive_data()` / `accept()` / `send_response()`, frames
by `receive_data()` + `events_received()` with `max_size` = the relay's 64 KiB message limit (the
library bounds it across fragments), pings and closes answered by the library, and every write by
`send_binary()` + `data_to_send()`. What the library leaves to its I/O layer is done here as
`Link` does it: fragments joined (at most `max_fragments` a message), one rate-limit token per
frame, the output backlog cap (PONGs included), and the heartbeat ping.

    python bench/relay_ws_variant.py [--host 127.0.0.1] [--port 0] [--rate 50] [--burst 100]
"""

from __future__ import annotations

import argparse
import asyncio
import collections.abc
import resource
import signal
import sys
from http import HTTPStatus
from typing import Any, cast

import uvloop
from websockets.frames import Frame, Opcode
from websockets.protocol import SEND_EOF
from websockets.server import ServerProtocol

from tcall.engine.relay import protocol
from tcall.engine.relay.protocol import ErrorCode, RelayProtocolError, Route
from tcall.engine.server.limits import TokenBucket
from tcall.engine.server.server import Link as _Link
from tcall.engine.server.server import RelayConfig, RelayServer
from tcall.engine.server.websocket import CloseCode, HttpError, Request, http_response

_BINARY, _TEXT, _CONT = Opcode.BINARY, Opcode.TEXT, Opcode.CONT
_PING, _CLOSE = Opcode.PING, Opcode.CLOSE
_CLOSE_CODES = {
    ErrorCode.SHUTTING_DOWN: CloseCode.GOING_AWAY,
    ErrorCode.TOO_LARGE: CloseCode.TOO_BIG,
    ErrorCode.MALFORMED: CloseCode.PROTOCOL_ERROR,
}


class WsLink(_Link):
    """`Link` with `websockets.server.ServerProtocol` in place of websocket.py."""

    __slots__ = ("_ws", "_open_", "_parts", "_first")

    def __init__(self, server: RelayServer) -> None:
        super().__init__(server)
        self._ws = ServerProtocol(max_size=server.config.max_frame)
        self._open_ = False
        self._parts: list[bytes] | None = None  # fragments of an unfinished message
        self._first = _BINARY

    # --- asyncio.Protocol -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        now = self.server.loop.time()
        self.last_heard = now
        ws = self._ws
        if not self._open_:
            if not self.closing:
                ws.receive_data(data)
                self._handshake(ws.events_received())
            return
        if ws.parser_exc is not None:
            return  # what follows a broken frame: ignore it until the client hangs up
        ws.receive_data(data)
        frames = cast(list[Frame], ws.events_received())
        if ws.parser_exc is not None:  # the library queued a close frame and EOF already
            if not self.closing:
                self.server.stats["refused"] += 1
                big = ws.close_code == CloseCode.TOO_BIG
                code = ErrorCode.TOO_LARGE if big else ErrorCode.MALFORMED
                self._write([_binary(protocol.encode_error(code, str(ws.parser_exc)))])
            self.closing = True
            self._flush()
            return
        messages = self._messages(frames, now)
        if messages is None:
            return
        if ws.writes and not self._flush():  # PONGs, a close echo
            return
        if self._waiting is not None:
            self._waiting += messages
        elif messages:
            self._handle(messages, now)

    # --- what the server calls ------------------------------------------------------------------

    def deliver(self, payload: bytes) -> bool:
        transport = self.transport
        if self.closing or transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > self.server.config.max_backlog:
            return False
        ws = self._ws
        ws.send_binary(protocol.encode_deliver(payload))
        for chunk in ws.data_to_send():
            transport.write(chunk)
        return True

    def send(self, message: bytes) -> None:
        if self.transport is not None and not self.closing and not self.transport.is_closing():
            self._ws.send_binary(message)
            self._flush()

    def kick(self, code: ErrorCode, reason: str) -> None:
        if self.closing or self.transport is None:
            return
        if self.transport.is_closing() or not self._open_:
            self.abort()
            return
        ws = self._ws
        ws.send_binary(protocol.encode_error(code, reason))
        ws.send_close(_CLOSE_CODES.get(code, CloseCode.POLICY), "")
        self._flush()
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.server.loop.call_later(self.server.config.close_timeout, self.abort)

    def ping(self, now: float) -> None:
        transport = self.transport
        if not self._open_ or self.closing or transport is None or transport.is_closing():
            return
        silent = now - self.last_heard
        if silent > 2 * self.server.config.heartbeat:
            self.abort()
        elif silent >= self.server.config.heartbeat:
            self._ws.send_ping(b"")
            self._flush()

    # --- inside -----------------------------------------------------------------------------------

    def _flush(self) -> bool:
        """Write what the library queued; False if that ended the connection."""
        transport = self.transport
        assert transport is not None
        chunks = self._ws.data_to_send()
        if not chunks:
            return True
        if SEND_EOF in chunks:  # the closing handshake is done
            self._write([c for c in chunks if c])
            self.closing = True
            transport.close()
            return False
        self._write(chunks)
        return True

    def _write(self, chunks: list[bytes]) -> None:
        transport = self.transport
        assert transport is not None
        if not transport.is_closing():
            transport.write(b"".join(chunks) if len(chunks) > 1 else chunks[0])

    def _handshake(self, events: list[Any]) -> None:
        transport = self.transport
        assert transport is not None
        ws = self._ws
        if not events:
            if ws.data_to_send():  # a broken request: the library answered it
                self._answer(http_response(HTTPStatus.BAD_REQUEST))
            return
        request = events[0]
        if request.path != protocol.WS_PATH:
            self._answer(self.server.page(Request(request.method, request.path, {})))
            return
        try:
            origin = self.server.origin(request, transport)
        except HttpError as exc:
            self._answer(http_response(exc.status, headers=exc.headers))
            return
        response = ws.accept(request)
        if response.status_code != 101:
            ws.send_response(response)
            self._answer(b"".join(c for c in ws.data_to_send() if c))
            return
        if isinstance(origin, str):
            self._accept(response, origin, events[1:])
        else:
            transport.pause_reading()
            self.server.spawn(self._resolved_ws(response, origin, events[1:]))

    async def _resolved_ws(
        self,
        response: Any,
        origin: collections.abc.Coroutine[Any, Any, str | None],
        frames: list[Frame],
    ) -> None:
        name = await origin
        if self.closing or self.transport is None or self.transport.is_closing():
            return
        if name is None:
            self._answer(http_response(HTTPStatus.MISDIRECTED_REQUEST))
            return
        self.transport.resume_reading()
        self._accept(response, name, frames)

    def _accept(self, response: Any, origin: str, frames: list[Frame]) -> None:
        config = self.server.config
        self._conn.origin = origin
        self._open_ = True
        now = self.server.loop.time()
        self._bucket = TokenBucket(config.rate, config.burst, now)
        self.server.stats["links"] += 1
        ws = self._ws
        ws.send_response(response)
        ws.send_binary(self._conn.hello())
        self._flush()  # the 101 and the challenge in one write
        if frames:
            messages = self._messages(frames, now)
            if messages and self._flush():
                self._handle(messages, now)

    def _messages(self, frames: list[Frame], now: float) -> list[tuple[int, bytes]] | None:
        """Whole messages from `frames`; None if the link was closed (rate, fragments, backlog)."""
        messages: list[tuple[int, bytes]] = []
        extra = pings = 0  # frames that are not whole data messages; each costs a token too
        for frame in frames:
            opcode = frame.opcode
            if opcode is _BINARY or opcode is _TEXT:
                if frame.fin:
                    messages.append((opcode, frame.data))  # type: ignore[arg-type]
                else:
                    self._parts, self._first = [frame.data], opcode  # type: ignore[list-item]
                    extra += 1
            elif opcode is _CONT:
                parts = self._parts
                assert parts is not None  # the library refuses a continuation of nothing
                if len(parts) >= self.server.config.max_fragments:
                    self.server.stats["refused"] += 1
                    self.kick(ErrorCode.TOO_LARGE, "message in too many frames")
                    return None
                parts.append(frame.data)  # type: ignore[arg-type]
                if frame.fin:
                    messages.append((self._first, b"".join(parts)))
                    self._parts = None
                else:
                    extra += 1
            else:
                extra += 1
                pings += opcode is _PING
        bucket = self._bucket
        if extra and bucket is not None and not bucket.take(now, extra):
            self.server.stats["refused"] += 1
            self.kick(ErrorCode.RATE_LIMITED, "too many frames")
            return None
        if pings:
            transport = self.transport
            assert transport is not None
            if transport.get_write_buffer_size() > self.server.config.max_backlog:
                self.abort()  # it sends pings and reads no pongs
                return None
        return messages

    def _handle(self, messages: list[tuple[int, bytes]], now: float) -> None:
        transport = self.transport
        assert transport is not None
        bucket, receive, route = self._bucket, self._conn.receive, self.server.route
        for index, (opcode, payload) in enumerate(messages):
            if self.closing:
                return
            try:
                if bucket is not None and not bucket.take(now):
                    raise RelayProtocolError(ErrorCode.RATE_LIMITED, "too many messages")
                if opcode is _BINARY:
                    event = receive(payload)
                    if isinstance(event, Route):
                        route(self.mailbox, event.to_mailbox, event.payload)
                    elif not self._sign_in(event.mailbox, now):
                        self._waiting = messages[index + 1 :]
                        transport.pause_reading()
                        return
                    else:
                        bucket = self._bucket
                else:
                    raise RelayProtocolError(
                        ErrorCode.UNSUPPORTED, "the relay speaks binary frames only"
                    )
            except RelayProtocolError as exc:
                self.server.stats["refused"] += 1
                self.kick(exc.code, exc.reason)

    def _auth_timeout(self) -> None:
        self._timer = None
        if not self._open_:
            self.abort()
        else:
            self.server.stats["refused"] += 1
            self.kick(ErrorCode.AUTH_TIMEOUT, "no AUTH in time")


def _binary(message: bytes) -> bytes:
    return Frame(_BINARY, message).serialize(mask=False)


async def _serve(host: str, port: int, server: RelayServer) -> None:
    """`engine.server.server.run` with `WsLink` in place of `Link`."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    try:
        listener = await loop.create_server(lambda: WsLink(server), host, port, backlog=4096)
        try:
            bound = listener.sockets[0].getsockname()
            print(f"tcall relay (websockets variant) listening on ws://{bound[0]}:{bound[1]}")
            sys.stdout.flush()
            await stop.wait()
        finally:
            listener.close()
            await server.close_links()
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=RelayConfig.rate)
    parser.add_argument("--burst", type=float, default=RelayConfig.burst)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    config = RelayConfig(rate=args.rate, burst=args.burst)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(args.host, args.port, RelayServer(config)))


if __name__ == "__main__":
    main()

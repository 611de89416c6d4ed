"""RFC 6455 WebSocket, server side, sans-I/O: the opening handshake and the framing, no sockets.

The relay's server (`server.py`) owns the socket and feeds bytes in. It gets back the parsed HTTP
request (to answer with `upgrade_response` or a plain `http_response`) and then whole messages
from `FrameParser`. What the server sends it builds with `frame_header` and `encode_close`: server
frames are never masked, client frames always are (section 5.1), and `client_frame` builds those
for tests and the benchmark. Only what the relay needs is here: no extensions, one subprotocol at
most (the relay's own, selected by `upgrade_response`), no text validation (the relay refuses text
messages), no HTTP keep-alive.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
from dataclasses import dataclass
from http import HTTPStatus

import numpy as np

MAX_HEAD = 8192  # bytes of HTTP request head before the relay gives up on a client
MAX_FRAGMENTS = 16  # frames one fragmented message may take; browsers and aiohttp send one
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_CONTROL = 125


class Opcode(enum.IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


_DATA = (Opcode.TEXT, Opcode.BINARY)
_KNOWN = frozenset(int(op) for op in Opcode)


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    POLICY = 1008
    TOO_BIG = 1009


class WebSocketError(Exception):
    """A client broke the framing; `code` is what the close frame should say."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class HttpError(Exception):
    """A request the server answers with `status` and closes; `headers` go with the answer."""

    def __init__(self, status: HTTPStatus, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{status.value} {status.phrase}")
        self.status = status
        self.headers = headers


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case; a repeated header keeps its values, comma-joined

    def tokens(self, name: str) -> set[str]:
        """The comma-separated, case-insensitive tokens of header `name`."""
        return {t.strip().lower() for t in self.headers.get(name, "").split(",") if t.strip()}


def parse_request(head: bytes) -> Request:
    """Parse an HTTP/1.1 request head (without its final blank line); HttpError if it is broken."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST) from None
    if version != "HTTP/1.1" or not target.startswith("/"):
        raise HttpError(HTTPStatus.BAD_REQUEST)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(HTTPStatus.BAD_REQUEST)
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return Request(method, target.split("?", 1)[0], headers)


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept answer to a client's Sec-WebSocket-Key (section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def upgrade_response(request: Request, subprotocol: str | None = None) -> bytes:
    """The 101 answer that opens a WebSocket; HttpError if `request` is not a valid opening.
    `subprotocol`: one the client offered that the server selects (section 4.2.2)."""
    if request.method != "GET":
        raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, (("Allow", "GET"),))
    if "websocket" not in request.tokens("upgrade") or "upgrade" not in request.tokens(
        "connection"
    ):
        raise HttpError(HTTPStatus.UPGRADE_REQUIRED, (("Upgrade", "websocket"),))
    if request.headers.get("sec-websocket-version") != "13":
        raise HttpError(HTTPStatus.UPGRADE_REQUIRED, (("Sec-WebSocket-Version", "13"),))
    key = request.headers.get("sec-websocket-key", "")
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise HttpError(HTTPStatus.BAD_REQUEST)
    selected = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n{selected}\r\n"
    ).encode("ascii")


def http_response(
    status: HTTPStatus,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A complete HTTP/1.1 response after which the server closes the connection."""
    if not body and status != HTTPStatus.OK:
        body = f"{status.value} {status.phrase}\n".encode("ascii")
    lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "Cache-Control: no-store",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --- frames -------------------------------------------------------------------------------------


def frame_header(opcode: int, size: int) -> bytes:
    """The header of one final, unmasked server frame carrying `size` bytes (section 5.2)."""
    if size < 126:
        return bytes((0x80 | opcode, size))
    if size < 1 << 16:
        return bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
    return bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")


def encode_close(code: CloseCode, reason: str = "") -> bytes:
    """A whole server close frame."""
    body = code.to_bytes(2, "big") + reason.encode("utf-8")[: _MAX_CONTROL - 2]
    return frame_header(Opcode.CLOSE, len(body)) + body


def unmask(data: bytes, mask: bytes) -> bytes:
    """XOR `data` with the 4-byte `mask`, repeated (section 5.3); masking is the same operation."""
    # numpy does the XOR in C: a big-int XOR costs ~8 times as much per 2 KiB frame, a loop more.
    key = np.frombuffer((mask * ((len(data) >> 2) + 1))[: len(data)], np.uint8)
    return (np.frombuffer(data, np.uint8) ^ key).tobytes()


def client_frame(opcode: int, payload: bytes, mask: bytes, fin: bool = True) -> bytes:
    """One masked client frame, as a browser would send it: for tests and the benchmark."""
    size = len(payload)
    first = (0x80 if fin else 0) | opcode
    if size < 126:
        head = bytes((first, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + mask + unmask(payload, mask)


class FrameParser:
    """Masked client frames in, whole messages out: `feed(data)` returns `(opcode, payload)` pairs.

    Fragmented messages come out whole, with the opcode of their first frame; control frames come
    out as they arrive, even between fragments. A frame whose header breaks the RFC, a message over
    `max_message` bytes, or one in more than `max_fragments` frames raises WebSocketError as soon as
    its header is in. What a link can make the server keep is bounded in bytes, whatever the
    frames: one frame's worth of unparsed bytes (`max_message` + 14) and one message's fragments,
    joined as they come into one buffer (`max_message`): never a Python object per fragment.
    `frames` counts every frame parsed, fragments and control frames included, so the caller can
    charge each against its rate limit.
    """

    def __init__(self, max_message: int, max_fragments: int = MAX_FRAGMENTS) -> None:
        self.max_message = max_message
        self.max_fragments = max_fragments
        self.frames = 0
        self._pending = bytearray()
        self._need = 2  # bytes `_pending` must hold before parsing is worth another try
        self._fragments = bytearray()
        self._fragment_count = 0  # frames of the message being joined; 0 when there is none
        self._fragment_opcode = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need:
                return []
            data = bytes(self._pending)
            self._pending.clear()
        out: list[tuple[int, bytes]] = []
        pos, end = 0, len(data)
        frames = 0
        try:
            while True:
                if end - pos < 2:
                    self._need = 2
                    break
                first, second = data[pos], data[pos + 1]
                size = second & 0x7F
                start = pos + (2 if size < 126 else 4 if size == 126 else 10)
                if end < start:
                    self._need = start - pos
                    break
                if size >= 126:
                    size = int.from_bytes(data[pos + 2 : start], "big")
                # The usual frame, one whole masked binary message, skips the checks' method call.
                if (
                    first != 0x82
                    or second < 0x80
                    or size > self.max_message
                    or self._fragment_count
                ):
                    self._check(first, second, size)
                if end - start - 4 < size:
                    self._need = start + 4 + size - pos
                    break
                mask = data[start : start + 4]
                pos = start + 4 + size
                frames += 1
                # `unmask`, inlined with an offset: no slice copy and no call, once per message.
                key = np.frombuffer((mask * ((size >> 2) + 1))[:size], np.uint8)
                payload = (np.frombuffer(data, np.uint8, size, start + 4) ^ key).tobytes()
                if first == 0x82 and not self._fragment_count:
                    out.append((2, payload))
                elif (message := self._message(first, payload)) is not None:
                    out.append(message)
        finally:
            self.frames += frames
        if pos < end:
            self._pending += data[pos:]
        return out

    def _check(self, first: int, second: int, size: int) -> None:
        opcode = first & 0x0F
        if first & 0x70:
            raise WebSocketError(CloseCode.PROTOCOL_ERROR, "reserved bits set")
        if opcode not in _KNOWN:
            raise WebSocketError(CloseCode.PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if not second & 0x80:
            raise WebSocketError(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
        if opcode >= Opcode.CLOSE:
            if not first & 0x80 or size > _MAX_CONTROL:
                raise WebSocketError(CloseCode.PROTOCOL_ERROR, "bad control frame")
            return
        if opcode == Opcode.CONTINUATION:
            if not self._fragment_count:
                raise WebSocketError(CloseCode.PROTOCOL_ERROR, "continuation of nothing")
            if self._fragment_count >= self.max_fragments:
                raise WebSocketError(
                    CloseCode.TOO_BIG, f"message in more than {self.max_fragments} frames"
                )
        elif self._fragment_count:
            raise WebSocketError(CloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
        if len(self._fragments) + size > self.max_message:
            raise WebSocketError(CloseCode.TOO_BIG, f"message over {self.max_message} bytes")

    def _message(self, first: int, payload: bytes) -> tuple[int, bytes] | None:
        opcode, fin = first & 0x0F, first & 0x80
        if opcode >= Opcode.CLOSE or (fin and not self._fragment_count):
            return opcode, payload
        if opcode in _DATA:
            self._fragment_opcode = opcode
        self._fragments += payload
        self._fragment_count += 1
        if not fin:
            return None
        whole = bytes(self._fragments)
        self._fragments = bytearray()
        self._fragment_count = 0
        return self._fragment_opcode, whole

"""The sans-I/O WebSocket layer: handshake and frame parser, exact cases and hypothesis fuzzing."""

from __future__ import annotations

import os
from http import HTTPStatus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcall.engine.server.websocket import (
    CloseCode,
    FrameParser,
    HttpError,
    Opcode,
    WebSocketError,
    accept_key,
    client_frame,
    encode_close,
    frame_header,
    http_response,
    parse_request,
    unmask,
    upgrade_response,
)

OPENING = (
    b"GET /ws?x=1 HTTP/1.1\r\nHost: relay\r\nUpgrade: WebSocket\r\n"
    b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13"
)


def test_accept_key_is_the_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_valid_opening_gets_101_with_the_accept_hash() -> None:
    request = parse_request(OPENING)
    assert (request.method, request.path) == ("GET", "/ws")
    answer = upgrade_response(request)
    assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in answer
    assert answer.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ((b"GET /ws", b"POST /ws"), HTTPStatus.METHOD_NOT_ALLOWED),
        ((b"Upgrade: WebSocket", b"Upgrade: h2c"), HTTPStatus.UPGRADE_REQUIRED),
        ((b"keep-alive, Upgrade", b"keep-alive"), HTTPStatus.UPGRADE_REQUIRED),
        ((b"Version: 13", b"Version: 8"), HTTPStatus.UPGRADE_REQUIRED),
        ((b"dGhlIHNhbXBsZSBub25jZQ==", b"c2hvcnQ="), HTTPStatus.BAD_REQUEST),
        ((b"dGhlIHNhbXBsZSBub25jZQ==", b"not base64!"), HTTPStatus.BAD_REQUEST),
        ((b"HTTP/1.1", b"HTTP/1.0"), HTTPStatus.BAD_REQUEST),
        ((b"Host: relay", b"Host relay"), HTTPStatus.BAD_REQUEST),
        ((b"Host: relay", b" Host: relay"), HTTPStatus.BAD_REQUEST),
    ],
)
def test_a_bad_opening_gets_an_http_error(change: tuple[bytes, bytes], status: HTTPStatus) -> None:
    with pytest.raises(HttpError) as caught:
        upgrade_response(parse_request(OPENING.replace(*change, 1)))
    assert caught.value.status == status


def test_http_response_is_complete_and_closes() -> None:
    answer = http_response(HTTPStatus.NOT_FOUND)
    head, body = answer.split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 Not Found\r\n") and b"Connection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head and body == b"404 Not Found\n"


@given(st.binary(max_size=300))
def test_any_request_head_parses_or_is_a_clean_http_error(head: bytes) -> None:
    try:
        request = parse_request(head)
    except HttpError as exc:
        assert exc.status == HTTPStatus.BAD_REQUEST
        return
    try:
        upgrade_response(request)
    except HttpError as exc:
        assert exc.status.value >= 400


@given(st.binary(max_size=5000), st.binary(min_size=4, max_size=4))
def test_unmask_is_its_own_inverse_and_matches_the_rfc(data: bytes, mask: bytes) -> None:
    masked = unmask(data, mask)
    assert masked == bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert unmask(masked, mask) == data


def test_server_frames_use_the_shortest_length_encoding() -> None:
    assert frame_header(Opcode.BINARY, 125) == b"\x82\x7d"
    assert frame_header(Opcode.BINARY, 126) == b"\x82\x7e\x00\x7e"
    assert frame_header(Opcode.BINARY, 1 << 16) == b"\x82\x7f" + (1 << 16).to_bytes(8, "big")
    assert encode_close(CloseCode.GOING_AWAY) == b"\x88\x02\x03\xe9"


Message = tuple[int, bytes, list[int]]  # opcode, payload, where to split it into fragments


@st.composite
def _messages(draw: st.DrawFn) -> Message:
    opcode = draw(st.sampled_from([Opcode.BINARY, Opcode.TEXT, Opcode.PING, Opcode.PONG]))
    limit = 125 if opcode >= Opcode.CLOSE else 70_000
    payload = draw(st.binary(max_size=limit) | st.just(os.urandom(draw(st.integers(0, limit)))))
    cuts = (
        [] if opcode >= Opcode.CLOSE else draw(st.lists(st.integers(0, len(payload)), max_size=3))
    )
    return opcode, payload, sorted(cuts)


def _wire(messages: list[Message], mask: bytes) -> bytes:
    out = []
    for opcode, payload, cuts in messages:
        bounds = [0, *cuts, len(payload)]
        pieces = [payload[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        for i, piece in enumerate(pieces):
            op = opcode if i == 0 else Opcode.CONTINUATION
            out.append(client_frame(op, piece, mask, fin=i == len(pieces) - 1))
    return b"".join(out)


@given(
    st.lists(_messages(), max_size=6),
    st.binary(min_size=4, max_size=4),
    st.lists(st.integers(1, 4000), max_size=20),
)
def test_parser_returns_every_message_whole_however_the_bytes_arrive(
    messages: list[Message], mask: bytes, chunks: list[int]
) -> None:
    wire = _wire(messages, mask)
    parser = FrameParser(max_message=70_000)
    got: list[tuple[int, bytes]] = []
    pos = 0
    for size in [*chunks, len(wire)]:
        got += parser.feed(wire[pos : pos + size])
        pos += size
    assert got == [(opcode, payload) for opcode, payload, _ in messages]


def test_ping_between_fragments_comes_out_first() -> None:
    mask = b"\x01\x02\x03\x04"
    wire = (
        client_frame(Opcode.BINARY, b"ab", mask, fin=False)
        + client_frame(Opcode.PING, b"p", mask)
        + client_frame(Opcode.CONTINUATION, b"cd", mask)
    )
    assert FrameParser(100).feed(wire) == [(Opcode.PING, b"p"), (Opcode.BINARY, b"abcd")]


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (b"\x82\x03abc", CloseCode.PROTOCOL_ERROR),  # unmasked
        (b"\xc2\x80" + bytes(4), CloseCode.PROTOCOL_ERROR),  # RSV1 without an extension
        (b"\x83\x80" + bytes(4), CloseCode.PROTOCOL_ERROR),  # unknown opcode
        (b"\x80\x80" + bytes(4), CloseCode.PROTOCOL_ERROR),  # continuation of nothing
        (b"\x09\x80" + bytes(4), CloseCode.PROTOCOL_ERROR),  # fragmented ping
        (b"\x89\xfe\x00\x7e" + bytes(4), CloseCode.PROTOCOL_ERROR),  # ping over 125 bytes
        (b"\x02\x80" + bytes(4) + b"\x82\x80" + bytes(4), CloseCode.PROTOCOL_ERROR),
        (b"\x82\xff" + (1 << 62).to_bytes(8, "big") + bytes(4), CloseCode.TOO_BIG),
        (b"\x02\xfe\x00\x50" + bytes(84) + b"\x80\xfe\x00\x50" + bytes(4), CloseCode.TOO_BIG),
    ],
)
def test_broken_frames_raise_from_the_header(wire: bytes, code: CloseCode) -> None:
    with pytest.raises(WebSocketError) as caught:
        FrameParser(max_message=100).feed(wire)
    assert caught.value.code == code


def test_a_frame_fed_byte_by_byte_waits_then_parses() -> None:
    wire = client_frame(Opcode.BINARY, b"x" * 300, b"\x00\xff\x10\x20")
    parser = FrameParser(1000)
    assert all(parser.feed(wire[i : i + 1]) == [] for i in range(len(wire) - 1))
    assert parser.feed(wire[-1:]) == [(Opcode.BINARY, b"x" * 300)]


@given(st.lists(st.binary(max_size=200), max_size=8))
def test_any_bytes_give_messages_or_a_websocket_error(chunks: list[bytes]) -> None:
    parser = FrameParser(max_message=1000)
    try:
        for chunk in chunks:
            for opcode, payload in parser.feed(chunk):
                assert opcode in {int(op) for op in Opcode} and len(payload) <= 1000
    except WebSocketError as exc:
        assert exc.code in (CloseCode.PROTOCOL_ERROR, CloseCode.TOO_BIG)

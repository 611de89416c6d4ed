"""The relay wire format and its sans-I/O state machines, with no loop and no network."""

from __future__ import annotations

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcall.engine.relay import protocol
from tcall.engine.relay.protocol import (
    ClientConnection,
    ErrorCode,
    RelayProtocolError,
    ServerConnection,
    mailbox_id,
)
from tests.support.fuzz import examples

KEY_A = nacl.signing.SigningKey(bytes(range(32)))
KEY_B = nacl.signing.SigningKey(bytes(range(1, 33)))


def signed_in_pair() -> tuple[ServerConnection, ClientConnection]:
    server, client = ServerConnection(), ClientConnection(KEY_A)
    assert client.receive(server.hello()) is None
    (auth,) = client.data_to_send()
    assert server.receive(auth) == protocol.Authenticated(client.mailbox)
    assert client.receive(server.ready()) == protocol.Ready(client.mailbox)
    return server, client


def refusal(server: ServerConnection, frame: bytes) -> ErrorCode:
    with pytest.raises(RelayProtocolError) as caught:
        server.receive(frame)
    return caught.value.code


def test_mailbox_id_is_a_personalised_blake2b_128_of_the_key() -> None:
    mailbox = mailbox_id(bytes(KEY_A.verify_key))
    assert len(mailbox) == 32 and int(mailbox, 16) >= 0
    assert mailbox == mailbox_id(bytes(KEY_A.verify_key))
    assert mailbox != mailbox_id(bytes(KEY_B.verify_key))
    assert protocol.mailbox_bytes(mailbox).hex() == mailbox
    with pytest.raises(ValueError):
        mailbox_id(b"short")
    with pytest.raises(ValueError):
        protocol.mailbox_bytes(mailbox.upper())


def test_sign_in_then_send_and_deliver() -> None:
    server, client = signed_in_pair()
    to = mailbox_id(bytes(KEY_B.verify_key))
    client.send(to, b"sealed")
    (frame,) = client.data_to_send()
    assert server.receive(frame) == protocol.Route(to, b"sealed")
    assert client.receive(protocol.encode_deliver(b"sealed")) == protocol.Delivered(b"sealed")


def test_send_before_auth_is_refused() -> None:
    frame = protocol.encode_send(mailbox_id(bytes(KEY_B.verify_key)), b"x")
    assert refusal(ServerConnection(), frame) == ErrorCode.UNEXPECTED


def test_auth_signed_by_another_key_is_refused() -> None:
    server = ServerConnection()
    signature = KEY_B.sign(protocol.auth_message(server.challenge, "")).signature
    frame = protocol.encode_auth(bytes(KEY_A.verify_key), signature)
    assert refusal(server, frame) == ErrorCode.AUTH_FAILED
    assert server.mailbox is None


def test_auth_without_the_domain_prefix_is_refused() -> None:
    server = ServerConnection()
    signature = KEY_A.sign(server.challenge).signature
    assert refusal(server, protocol.encode_auth(bytes(KEY_A.verify_key), signature)) == (
        ErrorCode.AUTH_FAILED
    )


def test_auth_for_another_challenge_cannot_be_replayed() -> None:
    first, client = ServerConnection(), ClientConnection(KEY_A)
    client.receive(first.hello())
    (auth,) = client.data_to_send()
    assert refusal(ServerConnection(), auth) == ErrorCode.AUTH_FAILED


def test_size_and_shape_limits() -> None:
    server, _ = signed_in_pair()
    to = mailbox_id(bytes(KEY_B.verify_key))
    assert refusal(server, b"") == ErrorCode.MALFORMED
    assert refusal(server, protocol.encode_send(to, b"x" * protocol.MAX_PAYLOAD + b"x")) == (
        ErrorCode.TOO_LARGE
    )
    assert server.receive(protocol.encode_send(to, b"x" * protocol.MAX_PAYLOAD)) == (
        protocol.Route(to, b"x" * protocol.MAX_PAYLOAD)
    )
    assert refusal(server, bytes([protocol.Kind.SEND]) + bytes(16)) == ErrorCode.MALFORMED
    assert refusal(server, bytes([protocol.Kind.AUTH]) + bytes(96)) == ErrorCode.UNEXPECTED
    assert refusal(ServerConnection(), bytes([protocol.Kind.AUTH]) + bytes(5)) == (
        ErrorCode.MALFORMED
    )


def test_client_rejects_a_relay_that_breaks_the_protocol() -> None:
    client = ClientConnection(KEY_A)
    with pytest.raises(RelayProtocolError) as caught:
        client.receive(bytes((protocol.Kind.CHALLENGE, 99)) + bytes(32))
    assert caught.value.code == ErrorCode.UNSUPPORTED
    client.receive(ServerConnection().hello())
    with pytest.raises(RelayProtocolError):
        client.receive(protocol.encode_ready(mailbox_id(bytes(KEY_B.verify_key))))
    with pytest.raises(RelayProtocolError):
        client.receive(protocol.encode_deliver(b"before ready"))
    with pytest.raises(RuntimeError):
        ClientConnection(KEY_A).send(mailbox_id(bytes(KEY_B.verify_key)), b"x")


def test_client_sees_the_refusal_reason() -> None:
    event = ClientConnection(KEY_A).receive(protocol.encode_error(ErrorCode.REPLACED, "again"))
    assert event == protocol.Refused(ErrorCode.REPLACED, "again")


def test_client_validates_what_it_sends() -> None:
    _, client = signed_in_pair()
    with pytest.raises(ValueError, match="mailbox"):
        client.send("not-a-mailbox", b"x")
    with pytest.raises(ValueError, match="payload"):
        client.send(mailbox_id(bytes(KEY_B.verify_key)), b"")
    assert client.data_to_send() == []


@given(st.text(max_size=400))
def test_error_reasons_are_cut_to_valid_utf8(reason: str) -> None:
    frame = protocol.encode_error(ErrorCode.MALFORMED, reason)
    assert len(frame) <= 2 + protocol.MAX_REASON
    text = frame[2:].decode("utf-8")
    assert reason.startswith(text)


# --- fuzzing: the only outcome allowed for garbage is a clean RelayProtocolError ----------------


def _valid_frames() -> list[bytes]:
    server = ServerConnection(challenge=bytes(32))
    client = ClientConnection(KEY_A)
    client.receive(server.hello())
    (auth,) = client.data_to_send()
    return [
        auth,
        protocol.encode_send(mailbox_id(bytes(KEY_B.verify_key)), b"payload"),
        server.hello(),
        protocol.encode_ready(client.mailbox),
        protocol.encode_deliver(b"x"),
        protocol.encode_error(ErrorCode.RATE_LIMITED, "slow down"),
    ]


VALID = _valid_frames()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "grow"]))
        if op == "flip" and frame:
            i = draw(st.integers(0, len(frame) - 1))
            frame[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            frame = frame[: draw(st.integers(0, len(frame)))]
        else:
            frame += draw(st.binary(max_size=40))
    return bytes(frame)


FRAMES = st.one_of(st.binary(max_size=200), mutated())


@settings(max_examples=examples(400))
@given(st.lists(FRAMES, max_size=6))
def test_fuzz_server_connection(frames: list[bytes]) -> None:
    server = ServerConnection(challenge=bytes(32))
    for frame in frames:
        try:
            event = server.receive(frame)
        except RelayProtocolError as exc:
            assert isinstance(exc.code, ErrorCode)
            return
        if isinstance(event, protocol.Authenticated):
            # Only the untouched AUTH of KEY_A for this challenge may ever sign in.
            assert frame == VALID[0] and event.mailbox == mailbox_id(bytes(KEY_A.verify_key))
        else:
            assert server.mailbox is not None and len(event.payload) > 0


@settings(max_examples=examples(400))
@given(st.lists(FRAMES, max_size=6))
def test_fuzz_client_connection(frames: list[bytes]) -> None:
    client = ClientConnection(KEY_A)
    for frame in frames:
        try:
            event = client.receive(frame)
        except RelayProtocolError:
            return
        if isinstance(event, protocol.Refused):
            return
        if isinstance(event, protocol.Ready):
            assert event.mailbox == client.mailbox
        client.data_to_send()

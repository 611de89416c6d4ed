"""Contact requests on the wire (issue #13 item 6): a `request` message carries the sender's relay
URL and suggested name, an offer may carry the relay; the wire refuses either of the wrong shape."""

from __future__ import annotations

import json
from typing import Any

import nacl.public
import pytest

from tcall.engine.identity import Identity
from tcall.engine.wire import (
    MAX_NAME_CHARS,
    MAX_RELAY_CHARS,
    MalformedMessage,
    SenderStatus,
    seal_message,
    sign_and_seal,
)
from tests.support.wire_pair import CALL_ID, SDP, ConnectionPair

DAVE = Identity.from_seed(b"\x0d" * 32)  # has bob's address; bob never added him
RELAY = "ws://relay.example:7711"


def stranger(key: bytes) -> SenderStatus:
    return SenderStatus.unknown()


def _fields(pair: ConnectionPair, kind: str, **extra: Any) -> dict[str, Any]:
    """A valid message's signed fields, to change and sign again."""
    sealed = seal_message(DAVE, pair.bob.public_key, kind, extra.pop("call_id"), pair.now, **extra)
    opened = nacl.public.SealedBox(pair.bob.box_private_key()).decrypt(sealed)
    fields: dict[str, Any] = json.loads(opened)
    del fields["sig"]
    return fields


def _open(pair: ConnectionPair, fields: dict[str, Any]) -> Any:
    data = sign_and_seal(DAVE, pair.bob.public_key, fields)
    return pair.deliver(pair.bob, data, lookup=stranger, allow_unknown=True).message


def test_a_request_carries_relay_and_name_from_a_stranger() -> None:
    pair = ConnectionPair()
    data = seal_message(
        DAVE, pair.bob.public_key, "request", "", pair.now, relay=RELAY, name="dave"
    )
    received = pair.deliver(pair.bob, data, lookup=stranger, allow_unknown=True)
    assert received.contact is None
    message = received.message
    assert (message.kind, message.sender, message.relay, message.name) == (
        "request",
        DAVE.public_key,
        RELAY,
        "dave",
    )


def test_a_request_may_say_no_relay_and_no_name() -> None:
    pair = ConnectionPair()
    data = seal_message(DAVE, pair.bob.public_key, "request", "", pair.now, relay="", name="")
    message = pair.deliver(pair.bob, data, lookup=stranger, allow_unknown=True).message
    assert (message.relay, message.name) == ("", "")


def test_an_offer_may_carry_the_relay_and_still_opens_without_it() -> None:
    pair = ConnectionPair()
    with_relay = pair.send(pair.alice, "offer", sdp=SDP, video=True, relay=RELAY)
    assert (with_relay.message.relay, with_relay.message.name) == (RELAY, None)
    without = pair.send(pair.alice, "offer", sdp=SDP, video=True)
    assert (without.message.relay, without.message.name) == (None, None)


def test_an_offer_carries_no_name() -> None:
    pair = ConnectionPair()
    with pytest.raises(MalformedMessage):
        pair.seal(pair.alice, "offer", sdp=SDP, video=True, relay=RELAY, name="alice")


@pytest.mark.parametrize(
    "change",
    [
        {"name": "d" * (MAX_NAME_CHARS + 1)},  # oversized
        {"name": 7},
        {"name": None},
        {"relay": "http://relay.example"},
        {"relay": "ws://relay.example/\x1b]0;owned\x07"},
        {"relay": "ws://" + "r" * MAX_RELAY_CHARS},
        {"relay": ["ws://relay.example"]},
        {"call_id": CALL_ID},  # a request belongs to no call
    ],
)
def test_a_request_with_a_card_of_the_wrong_shape_is_refused(change: dict[str, Any]) -> None:
    pair = ConnectionPair()
    fields = _fields(pair, "request", call_id="", relay=RELAY, name="dave") | change
    with pytest.raises(MalformedMessage):
        _open(pair, fields)


@pytest.mark.parametrize("missing", ["relay", "name"])
def test_a_request_needs_both_fields(missing: str) -> None:
    pair = ConnectionPair()
    fields = _fields(pair, "request", call_id="", relay=RELAY, name="dave")
    del fields[missing]
    with pytest.raises(MalformedMessage):
        _open(pair, fields)


@pytest.mark.parametrize("kind", ["answer", "ring", "hangup"])
def test_only_offers_and_requests_carry_a_relay(kind: str) -> None:
    pair = ConnectionPair()
    extra: dict[str, Any] = {"sdp": SDP, "video": True} if kind == "answer" else {}
    fields = _fields(pair, kind, call_id=CALL_ID, **extra) | {"relay": RELAY}
    with pytest.raises(MalformedMessage):
        _open(pair, fields)


def test_a_name_too_long_is_refused_when_sealing_too() -> None:
    pair = ConnectionPair()
    with pytest.raises(MalformedMessage):
        seal_message(DAVE, pair.bob.public_key, "request", "", pair.now, relay="", name="d" * 65)

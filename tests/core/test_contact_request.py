"""What an offer or a request from someone who is not a contact asks of our contacts (issue #13
item 6): a stranger's makes a contact request, whatever policy does with the call; a contact's,
blocked or not, makes none; a suggested name is kept only if it is a free, valid contact name."""

from __future__ import annotations

import pytest

from tcall.engine.contacts import Contact
from tcall.engine.core.switchboard import contact_request
from tcall.engine.requests import suggested_name
from tcall.engine.wire import Message

ME = b"m" * 32
DAVE = b"d" * 32
BOB = Contact("bob", b"b" * 32)
BLOCKED = Contact("eve", b"e" * 32, blocked=True)
RELAY = "ws://relay.example:7711"


def message(kind: str, sender: bytes, **fields: object) -> Message:
    call_id = "" if kind == "request" else "call-1"
    return Message(kind, call_id, sender, ME, b"n" * 16, 0.0, **fields)  # type: ignore[arg-type]


def test_a_strangers_request_makes_a_request() -> None:
    request = contact_request(message("request", DAVE, relay=RELAY, name="dave"), None, {"bob"}, 5)
    assert request is not None
    assert (request.public_key, request.name, request.relay_url, request.received_at) == (
        DAVE,
        "dave",
        RELAY,
        5,
    )
    assert request.label == "dave"


def test_a_strangers_first_call_makes_a_request_with_their_relay() -> None:
    request = contact_request(message("offer", DAVE, relay=RELAY), None, {"bob"}, 5.0)
    assert request is not None
    assert (request.public_key, request.name, request.relay_url) == (DAVE, "", RELAY)


def test_an_offer_without_a_card_is_a_request_by_key_alone() -> None:
    request = contact_request(message("offer", DAVE), None, (), 5.0)
    assert request is not None and (request.name, request.relay_url) == ("", "")
    assert request.label == f"unknown {request.fingerprint[:19]}"


@pytest.mark.parametrize("contact", [BOB, BLOCKED])
def test_a_contacts_request_makes_none(contact: Contact) -> None:
    msg = message("request", contact.public_key, relay=RELAY, name="x")
    assert contact_request(msg, contact, {"bob", "eve"}, 5.0) is None


@pytest.mark.parametrize("kind", ["answer", "hangup", "ring", "busy", "decline", "video"])
def test_other_messages_make_none(kind: str) -> None:
    assert contact_request(message(kind, DAVE), None, (), 5.0) is None


@pytest.mark.parametrize(
    "name",
    [
        "bob",  # one of our contacts is called that: someone else, or bob with a new key
        "\x1b]0;owned\x07",  # a terminal escape
        "[b]alice[/b]",  # markup
        "dave\u202e",  # a bidi override
        "a b",
        "-dave",
        "d" * 65,
        "",
    ],
)
def test_a_name_that_is_not_a_free_contact_name_is_dropped(name: str) -> None:
    assert suggested_name(name, {"bob"}) == ""
    request = contact_request(message("request", DAVE, relay="", name=name), None, {"bob"}, 1.0)
    assert request is not None and request.name == ""


def test_a_valid_name_is_kept() -> None:
    assert suggested_name("dave.k-2", {"bob"}) == "dave.k-2"

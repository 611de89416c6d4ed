"""The group call's messages on the wire (issue #17): the roster an invitation carries, and the
join, added and leave kinds, read as an adversary's words."""

from __future__ import annotations

from typing import Any

import pytest

from tcall.engine.core.group import MAX_MEMBERS, Roster, RosterEntry
from tcall.engine.wire import MalformedMessage, sign_and_seal
from tests.support.wire_pair import SDP, ConnectionPair
from tests.wire.test_wire_protocol import _valid_fields

GROUP = "9r0up1d000000001"


def roster(pair: ConnectionPair, extra: int = 1) -> Roster:
    members = [RosterEntry(pair.alice.public_key, ""), RosterEntry(pair.bob.public_key, "")]
    members += [RosterEntry(bytes([n]) * 32, "wss://relay.example") for n in range(extra)]
    return Roster(GROUP, True, tuple(members))


def test_an_invitation_carries_the_roster_under_the_signature() -> None:
    pair = ConnectionPair()
    sent = roster(pair)
    message = pair.send(pair.alice, "offer", sdp=SDP, video=True, group=sent).message
    assert message.group == sent


@pytest.mark.parametrize("kind", ["join", "leave"])
def test_join_and_leave_carry_nothing_but_the_group_id(kind: str) -> None:
    pair = ConnectionPair()
    message = pair.send(pair.alice, kind, call_id=GROUP).message
    assert (message.kind, message.call_id, message.group, message.member) == (
        kind,
        GROUP,
        None,
        None,
    )


def forged(pair: ConnectionPair, **fields: Any) -> bytes:
    """An offer whose fields a peer chose (signed by alice, so only the shape can refuse it)."""
    valid = _valid_fields(pair)
    valid.update(fields)
    return sign_and_seal(pair.alice, pair.bob.public_key, valid)


def wire_roster(**change: Any) -> dict[str, Any]:
    pair = ConnectionPair()
    return {**roster(pair).to_wire(), **change}


KEY = roster(ConnectionPair()).to_wire()["members"][0]


@pytest.mark.parametrize(
    "group",
    [
        "not a roster",
        wire_roster(id="../../etc"),
        wire_roster(open="yes"),
        wire_roster(members=[KEY]),  # one member is no group
        wire_roster(members=[KEY, KEY]),  # twice the same
        wire_roster(members=[{**KEY, "key": "AAAA"}, KEY]),
        wire_roster(
            members=[{**KEY, "relay": "http://evil.example"}, {**KEY, "key": "A" * 43 + "="}]
        ),
        wire_roster(members=[{"key": KEY["key"]}, KEY]),
        wire_roster(extra=1),
        roster(ConnectionPair(), extra=MAX_MEMBERS - 1).to_wire(),  # seven
    ],
)
def test_a_malformed_roster_is_refused_as_malformed(group: Any) -> None:
    pair = ConnectionPair()
    with pytest.raises(MalformedMessage):
        pair.deliver(pair.bob, forged(pair, group=group))


def test_added_needs_exactly_one_well_formed_member() -> None:
    pair = ConnectionPair()
    fields = _valid_fields(pair, "hangup")
    fields.update(type="added", call_id=GROUP)
    for member in ({"key": "AAAA", "relay": ""}, [KEY], None):
        with pytest.raises(MalformedMessage):
            pair.deliver(
                pair.bob,
                sign_and_seal(pair.alice, pair.bob.public_key, {**fields, "member": member}),
            )
    with pytest.raises(MalformedMessage, match="wrong fields"):
        pair.deliver(pair.bob, sign_and_seal(pair.alice, pair.bob.public_key, fields))


def test_only_an_offer_carries_a_roster() -> None:
    pair = ConnectionPair()
    fields = _valid_fields(pair, "answer")
    fields["group"] = roster(pair).to_wire()
    with pytest.raises(MalformedMessage, match="wrong fields"):
        pair.deliver(pair.bob, sign_and_seal(pair.alice, pair.bob.public_key, fields))

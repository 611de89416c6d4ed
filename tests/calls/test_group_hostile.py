"""A relay that tampers with a group call (issue #17): a swapped fingerprint on any one pair is
refused on that pair, with no media between those two, and a forged roster change is refused by
every member. The relay here is omniscient (it opens mail with its recipients' keys), so it is
stronger than any real relay: it knows the group's id and every pair's call id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tcall.engine.core.group import RosterEntry
from tcall.engine.identity import Identity, load_identity
from tcall.engine.relay.protocol import mailbox_id
from tcall.engine.wire import seal_message
from tests.support.hostile import HostileRelay, peek, substitute
from tests.support.users import User

ANSWER = ("--auto-answer", "--once", "--duration")  # and how long each stays
SMALL = ["--resolution", "160x120", "--fps", "10", "--camera", "on"]


def identity_of(user: User) -> Identity:
    return load_identity(user.home / "identity.key")


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[HostileRelay, dict[str, User], User]]:
    with HostileRelay() as relay:
        users = {n: User(n, tmp_path / n, relay.url) for n in ("alice", "bob", "carol")}
        for user in users.values():
            for other in users.values():
                if other is not user:
                    user.add(other)
        mallory = User("mallory", tmp_path / "mallory", relay.url)
        yield relay, users, mallory


def frames(listener: Any) -> dict[str, int]:
    summary = [e for e in listener.events if e["event"] == "summary"][-1]
    return {m["member"]: m.get("frames_received", 0) for m in summary["members"]}


@pytest.mark.parametrize("pair", [("alice", "bob"), ("bob", "carol")])
def test_a_swapped_fingerprint_on_one_pair_is_refused_there_and_the_rest_talk(
    hostile: tuple[HostileRelay, dict[str, User], User], pair: tuple[str, str]
) -> None:
    """The relay replaces the answer of one pair with one that carries mallory's fingerprint,
    signed by mallory (it cannot sign as the member)."""
    relay, users, mallory = hostile
    ids = {name: identity_of(user) for name, user in users.items()}
    mailboxes = {mailbox_id(i.public_key): name for name, i in ids.items()}
    offerer, answerer = pair  # the smaller key offers: whichever it is, both directions are tried
    swapped: list[str] = []

    def swap_answer(to: str, payload: bytes) -> bytes:
        name = mailboxes.get(to)
        if name not in pair:
            return payload
        message = peek(ids[name], payload)
        other = answerer if name == offerer else offerer
        if message is None or message.kind != "answer" or message.sender != ids[other].public_key:
            return payload
        swapped.append(message.call_id)
        return seal_message(
            identity_of(mallory),
            ids[name].public_key,
            "answer",
            message.call_id,
            time.time(),
            sdp=message.sdp,
            video=True,
        )

    relay.on_route = substitute(swap_answer)
    listeners = {n: users[n].listen(*ANSWER, "6", *SMALL) for n in ("bob", "carol")}
    caller = users["alice"].start_call("bob", "carol", "--duration", "6", *SMALL)
    caller.finish(60)
    for listener in listeners.values():
        listener.finish(30)
    everyone = {"alice": caller, **listeners}
    assert swapped, "the relay never saw the pair's answer"
    a, b = pair
    assert frames(everyone[a]).get(b, 0) == 0 and frames(everyone[b]).get(a, 0) == 0
    refusals = [
        e for lst in (everyone[a], everyone[b]) for e in lst.events if e["event"] == "refused"
    ]
    assert refusals and "signed by another key" in refusals[0]["message"]
    # The pairs the relay left alone carry media.
    for name, listener in everyone.items():
        for other, count in frames(listener).items():
            if {name, other} != set(pair):
                assert count > 10, (name, other, count)


def test_a_forged_roster_change_is_refused_by_every_member(
    hostile: tuple[HostileRelay, dict[str, User], User],
) -> None:
    """mallory (or a relay with her key) adds herself to the roster, says she joined, and offers
    a pair: every member refuses each, nobody connects with her, and the group code stays."""
    relay, users, mallory = hostile
    ids = {name: identity_of(user) for name, user in users.items()}
    mallory_id = identity_of(mallory)
    group_ids: list[str] = []

    def learn_group(to: str, payload: bytes) -> list[tuple[str, bytes]]:
        for identity in ids.values():
            if to == mailbox_id(identity.public_key):
                message = peek(identity, payload)
                if message is not None and message.group is not None and not group_ids:
                    group_ids.append(message.group.group_id)
        return [(to, payload)]

    relay.on_route = learn_group
    listeners = {n: users[n].listen(*ANSWER, "8", *SMALL) for n in ("bob", "carol")}
    caller = users["alice"].start_call("bob", "carol", "--duration", "8", *SMALL)
    for listener in listeners.values():
        listener.wait_for("joined", timeout=20, member="alice")
    caller.wait_for("joined", timeout=20, member="carol")
    group = group_ids[0]
    me = RosterEntry(mallory_id.public_key, relay.url)
    for identity in ids.values():
        key = identity.public_key
        box = mailbox_id(key)
        relay.inject(box, seal_message(mallory_id, key, "added", group, time.time(), member=me))
        relay.inject(box, seal_message(mallory_id, key, "join", group, time.time()))
    caller.finish(60)
    for listener in listeners.values():
        listener.finish(30)
    for listener in (caller, *listeners.values()):
        refused = [e for e in listener.events if e["event"] == "refused"]
        assert len(refused) >= 2, listener.events
        assert all(e["reason"] == "identity" for e in refused[:2])
        assert "mallory" not in str(frames(listener)) and all(
            not m.startswith("unknown") for m in frames(listener)
        )
        codes = {e["code"] for e in listener.events if e["event"] in ("joined", "left")}
        assert len([e for e in listener.events if e["event"] == "joined"]) == 2, codes


def test_an_invitation_that_comes_after_a_members_join_still_joins_everyone(
    hostile: tuple[HostileRelay, dict[str, User], User],
) -> None:
    """A slow relay (or a slow inviter: each invitation waits for its own ICE gathering) lets one
    invitee's `join` reach the other before alice's invitation does, and a join for a call not
    known yet is dropped. The member with the smaller key offers each pair, so when that is the
    late one, it must still learn that the other is in. Before the fix each waited for ever."""
    relay, users, _ = hostile
    ids = {name: identity_of(user) for name, user in users.items()}
    # `late` gets its invitation after the other's join; it has the smaller key of the two, so
    # it is the one who must offer their pair.
    late, early = sorted(("bob", "carol"), key=lambda n: ids[n].public_key)
    late_box = mailbox_id(ids[late].public_key)
    held: list[bytes] = []
    order: list[str] = []

    def invitation_after_join(to: str, payload: bytes) -> list[tuple[str, bytes]]:
        if to != late_box:
            return [(to, payload)]
        message = peek(ids[late], payload)
        if message is None:
            return [(to, payload)]
        sender = next((n for n, i in ids.items() if i.public_key == message.sender), "?")
        if (
            message.kind == "offer"
            and message.group is not None
            and sender == "alice"
            and not order
        ):
            held.append(payload)  # the invitation waits...
            return []
        if message.kind == "join" and sender == early and held:
            order.extend(["join", "invitation"])  # ...until the other's join has gone first
            return [(to, payload), (to, held.pop())]
        return [(to, payload)]

    relay.on_route = invitation_after_join
    listeners = {n: users[n].listen(*ANSWER, "10", *SMALL) for n in ("bob", "carol")}
    caller = users["alice"].start_call("bob", "carol", "--duration", "10", *SMALL)
    caller.finish(60)
    for listener in listeners.values():
        listener.finish(30)
    assert order == ["join", "invitation"], "the relay never held the invitation back"
    # The early join is an ordinary race, not an attack: nothing is shown as refused.
    assert not [e for e in listeners[late].events if e["event"] == "refused"]
    everyone = {"alice": caller, **listeners}
    for name, listener in everyone.items():
        received = frames(listener)
        assert set(received) == set(everyone) - {name}, (name, received)
        assert all(count > 10 for count in received.values()), (name, received)

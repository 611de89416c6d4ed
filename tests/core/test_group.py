"""The group call's roster rules (engine/core/group.py), driven without I/O: members as cores,
messages delivered in any order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcall.engine.core.group import (
    MAX_MEMBERS,
    SWITCH_DB,
    Changed,
    ClosePair,
    End,
    GroupCore,
    Member,
    OpenPair,
    Roster,
    RosterEntry,
    SendGroup,
    group_code,
    loudest,
    pair_id,
)
from tcall.engine.errors import IdentityError, ProtocolError

GROUP = "g" * 32


def keys(n: int) -> list[bytes]:
    return [bytes([i + 1]) * 32 for i in range(n)]


def roster(members: list[bytes], open_: bool = True) -> Roster:
    return Roster(GROUP, open_, tuple(RosterEntry(k, "") for k in members))


class Mesh:
    """Members exchanging the group's messages in an order a test chooses. Invitations are
    answered at once; `offers` counts who offered to whom."""

    def __init__(self, members: list[bytes], blocked: dict[bytes, set[bytes]] | None = None):
        self.blocked = blocked or {}
        self.cores: dict[bytes, GroupCore] = {}
        self.pending: list[tuple[bytes, bytes, object]] = []  # (from, to, what)
        self.offers: list[tuple[bytes, bytes]] = []
        creator = self.core(members[0], roster(members))
        self.run(members[0], creator.create())

    def core(self, me: bytes, r: Roster) -> GroupCore:
        core = GroupCore(r, me, lambda k, me=me: k in self.blocked.get(me, set()))
        self.cores[me] = core
        return core

    def run(self, me: bytes, actions: list) -> None:
        for action in actions:
            if isinstance(action, OpenPair):
                self.offers.append((me, action.to.key))
                self.pending.append((me, action.to.key, action))
            elif isinstance(action, SendGroup):
                self.pending.append((me, action.to.key, action))

    def deliver(self, index: int) -> None:
        sender, to, what = self.pending.pop(index)
        if isinstance(what, OpenPair):
            if what.invite and to not in self.cores:
                core = self.core(to, self.cores[sender].roster)
                self.run(to, core.accepted(sender))
            else:
                self.run(to, self.cores[to].pair_offered(sender))
            # The answer goes back, and media connects at both ends (in either order).
            self.pending += [(sender, to, "connected"), (to, sender, "connected")]
        elif what == "connected":
            self.run(to, self.cores[to].pair_connected(sender))
        elif isinstance(what, SendGroup) and what.kind == "join" and to in self.cores:
            self.run(to, self.cores[to].peer_joined(sender))
        # A join to someone whose invitation has not arrived yet is lost: a join for no call of
        # theirs is dropped (engine/phone.py _group_message), as the relay delivered it.

    def settle(self, rng: random.Random) -> None:
        for _ in range(10_000):
            if not self.pending:
                return
            self.deliver(rng.randrange(len(self.pending)))
        raise AssertionError("the mesh never settled")


@given(st.integers(2, MAX_MEMBERS), st.randoms(use_true_random=False))
def test_every_pair_gets_exactly_one_offer_whatever_the_order(n, rng) -> None:
    members = keys(n)
    mesh = Mesh(members)
    mesh.settle(rng)
    pairs = [frozenset(p) for p in mesh.offers]
    assert sorted(map(sorted, pairs)) == sorted(map(sorted, set(pairs)))  # no pair twice
    assert len(set(pairs)) == n * (n - 1) // 2  # and every pair once
    codes = {core.code() for core in mesh.cores.values()}
    assert len(codes) == 1, "every member's screen shows the same group code"


def test_the_smaller_key_offers_between_members_who_joined() -> None:
    a, b, c = keys(3)
    mesh = Mesh([a, b, c])
    mesh.settle(random.Random(1))
    assert (a, b) in mesh.offers and (a, c) in mesh.offers  # the creator invites
    assert (b, c) in mesh.offers and (c, b) not in mesh.offers


def test_group_code_depends_on_members_and_group_not_order() -> None:
    a, b, c = keys(3)
    assert group_code(GROUP, [a, b, c]) == group_code(GROUP, [c, a, b])
    assert group_code(GROUP, [a, b, c]) != group_code(GROUP, [a, b])
    assert group_code(GROUP, [a, b]) != group_code("h" * 32, [a, b])
    assert len(group_code(GROUP, [a, b]).replace(" ", "")) == 30


def test_the_code_changes_when_someone_joins_and_leaves() -> None:
    a, b, c = keys(3)
    core = GroupCore(roster([a, b, c]), a, lambda k: False)
    core.create()
    alone = core.code()
    core.peer_joined(b)
    with_b = core.code()
    core.peer_left(b)
    assert alone != with_b and core.code() == alone


def test_pair_ids_are_the_same_at_both_ends_and_the_first_pair_keeps_the_group_id() -> None:
    a, b, c = keys(3)
    first = frozenset((a, b))
    assert pair_id(GROUP, first, a, b) == GROUP
    assert pair_id(GROUP, first, b, c) == pair_id(GROUP, first, c, b) != GROUP
    assert pair_id(GROUP, first, a, c) != pair_id(GROUP, first, b, c)


def test_a_join_from_someone_not_in_the_roster_is_an_identity_error() -> None:
    a, b, c = keys(3)
    core = GroupCore(roster([a, b]), a, lambda k: False)
    core.create()
    with pytest.raises(IdentityError):
        core.peer_joined(c)
    with pytest.raises(IdentityError):
        core.pair_offered(c)


def test_only_a_member_in_the_call_who_may_invite_changes_the_roster() -> None:
    a, b, c, d = keys(4)
    closed = GroupCore(roster([a, b, c], open_=False), c, lambda k: False)
    closed.accepted(a)
    with pytest.raises(IdentityError):  # b is a member, but the creator did not let members invite
        closed.added(b, RosterEntry(d, ""))
    with pytest.raises(IdentityError):  # a stranger
        closed.added(d, RosterEntry(bytes([9]) * 32, ""))
    assert [k for k in closed.states] == [a, b]
    actions = closed.added(a, RosterEntry(d, ""))  # the creator always may
    assert closed.states[d] is Member.INVITED and actions


def test_a_roster_never_grows_past_six() -> None:
    members = keys(MAX_MEMBERS)
    core = GroupCore(roster(members), members[0], lambda k: False)
    core.create()
    with pytest.raises(ProtocolError):
        core.invite(RosterEntry(bytes([99]) * 32, ""))
    core.peer_joined(members[1])
    with pytest.raises(ProtocolError):
        core.added(members[1], RosterEntry(bytes([99]) * 32, ""))


def test_a_blocked_member_gets_no_pair_with_us_but_the_others_connect() -> None:
    a, b, c = keys(3)
    mesh = Mesh([a, b, c], blocked={b: {c}})
    mesh.settle(random.Random(3))
    offered = {frozenset(p) for p in mesh.offers}
    assert frozenset((b, c)) not in offered
    assert frozenset((a, c)) in offered and frozenset((a, b)) in offered
    assert mesh.cores[b].states[c] is Member.BLOCKED
    with pytest.raises(IdentityError):
        mesh.cores[b].pair_offered(c)


def test_members_leave_and_the_last_one_ends() -> None:
    a, b, c = keys(3)
    core = GroupCore(roster([a, b, c]), a, lambda k: False)
    core.create()
    core.peer_joined(b)
    core.peer_joined(c)
    assert ClosePair(b) in core.peer_left(b)
    assert End() not in core.peer_left(b)  # said twice: nothing more
    assert End() in core.peer_left(c, "lost")


def test_leaving_tells_the_members_we_have_no_pair_with_and_closes_the_rest() -> None:
    a, b, c = keys(3)
    core = GroupCore(roster([a, b, c]), b, lambda k: False)
    core.accepted(a)  # c has not joined yet: we have no pair with them
    actions = core.leave()
    assert ClosePair(a) in actions
    assert SendGroup("leave", RosterEntry(c, "")) in actions
    assert actions[-1] == End()


def test_declining_tells_the_inviter_only_by_the_pair_and_the_others_by_a_leave() -> None:
    """The inviter hears our decline on the invitation's pair; a leave beside it could reach
    them first, and they would show us as "left" instead of "declined" (seen in CI)."""
    a, b, c = keys(3)
    core = GroupCore(roster([a, b, c]), c, lambda k: False)
    actions = core.leave(told=frozenset({a}))
    assert SendGroup("leave", RosterEntry(a, "")) not in actions
    assert SendGroup("leave", RosterEntry(b, "")) in actions
    assert actions[-1] == End()


def test_a_roster_that_does_not_name_us_is_refused() -> None:
    a, b, c = keys(3)
    with pytest.raises(IdentityError):
        GroupCore(roster([a, b]), c, lambda k: False)


@pytest.mark.parametrize(
    "wire",
    [
        None,
        {"id": GROUP, "open": True},
        {"id": GROUP, "open": 1, "members": []},
        {"id": "bad id!", "open": True, "members": []},
        {"id": GROUP, "open": True, "members": [{"key": "AAAA", "relay": ""}] * 2},
        {"id": GROUP, "open": True, "members": [roster(keys(1)).to_wire()["members"][0]] * 2},
        roster(keys(MAX_MEMBERS + 1)).to_wire(),
        {"id": GROUP, "open": True, "members": [{"key": 5, "relay": ""}] * 2},
    ],
)
def test_malformed_rosters_are_protocol_errors(wire) -> None:
    with pytest.raises(ProtocolError):
        Roster.from_wire(wire, lambda text: text == GROUP)


def test_an_invitee_who_answered_may_invite_before_their_media_connects() -> None:
    """The answer comes through the relay before anything the invitee sends after it."""
    a, b, c, d = keys(4)
    core = GroupCore(roster([a, b, c]), a, lambda k: False)
    core.create()
    with pytest.raises(IdentityError):
        core.added(b, RosterEntry(d, ""))  # b has not answered
    core.pair_answered(b)
    assert core.added(b, RosterEntry(d, "")) == [Changed(d, Member.INVITED)]


def test_an_invitee_we_stopped_waiting_for_may_still_join_but_a_leaver_may_not() -> None:
    a, b, c, d = keys(4)
    core = GroupCore(roster([a, b, c, d]), b, lambda k: False)
    core.accepted(a)
    assert Changed(c, Member.LEFT, "no_answer") in core.invite_expired(c)
    assert core.invite_expired(c) == []  # once
    assert Changed(c, Member.JOINED) in core.peer_joined(
        c
    )  # the inviter rang longer than we waited
    core.peer_joined(d)
    core.peer_left(d)
    with pytest.raises(ProtocolError):
        core.peer_joined(d)  # left: only a new invitation brings them back


def test_the_highlight_goes_to_the_loudest_and_stays_until_someone_is_clearly_louder() -> None:
    a, b, c = keys(3)
    assert loudest({a: -60.0, b: -70.0}, None) is None  # nobody above the speaking level
    assert loudest({a: -20.0, b: -30.0, c: -60.0}, None) == a
    # Two at about the same level: whoever has it keeps it, whichever is a hair louder now.
    assert loudest({a: -20.0, b: -19.0}, a) == a
    assert loudest({a: -19.0, b: -20.0}, b) == b
    assert loudest({a: -20.0, b: -20.0 + SWITCH_DB}, a) == b  # clearly louder takes it
    assert loudest({a: -60.0, b: -30.0}, a) == b  # the one who had it stopped
    assert loudest({b: -30.0}, a) == b  # the one who had it left

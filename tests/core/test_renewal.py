"""Media brought back over a new path under the same call id (issue #16): the caller re-offers a
fresh connection when media stalls or an address changes, the callee answers or asks for one, and
attempt numbers keep a late answer from being applied to a newer attempt."""

from __future__ import annotations

from tcall.engine.core.call import (
    STALL_S,
    AddressesChanged,
    ApplyReanswer,
    CreateReanswer,
    CreateReoffer,
    HangUp,
    MediaCount,
    PeerMessage,
    SendFailed,
    Timer,
)
from tcall.engine.core.outcome import Outcome
from tcall.engine.errors import RelayUnreachable
from tcall.engine.events import Notice, Refused
from tests.core.pair import CorePair, Side, answered_call, states


def stall(pair: CorePair, side: Side) -> None:
    """Nothing arrives at `side` for STALL_S."""
    pair.apply(side, MediaCount(100, pair.now))
    pair.apply(side, MediaCount(100, pair.now + STALL_S))


def kinds_in_flight(pair: CorePair) -> list[tuple[str, str]]:
    return [(w.to, w.message.kind) for w in pair.network]


def test_a_stalled_caller_re_offers_and_the_fresh_connection_brings_the_call_back() -> None:
    pair = answered_call()
    stall(pair, pair.alice)
    assert states(pair.alice)[-1] == "reconnecting"
    assert kinds_in_flight(pair) == [("bob", "reoffer")]
    assert pair.network[0].message.attempt == 1
    pair.deliver()
    assert [a for a in pair.bob.actions if isinstance(a, CreateReanswer)][-1].attempt == 1
    assert kinds_in_flight(pair) == [("alice", "reanswer")]
    pair.deliver()
    assert [a for a in pair.alice.actions if isinstance(a, ApplyReanswer)][-1].attempt == 1
    pair.connect_renewal()
    assert states(pair.alice)[-2:] == ["reconnecting", "connected"]
    assert states(pair.bob)[-1] == "connected"
    assert Timer.RENEW not in pair.alice.timers and Timer.RECONNECT not in pair.alice.timers
    pair.advance(60.0)  # nothing left to fire: no retry, no reconnect timeout
    assert not pair.alice.finishes and not pair.network
    pair.apply(pair.alice, HangUp())
    assert pair.alice.finishes[0].outcome is Outcome.ANSWERED
    assert len(pair.alice.records) == 1 and pair.alice.records[0].connected


def test_a_stalled_callee_asks_the_caller_to_re_offer() -> None:
    pair = answered_call()
    stall(pair, pair.bob)
    assert states(pair.bob)[-1] == "reconnecting"
    assert kinds_in_flight(pair) == [("alice", "reconnect")]
    pair.deliver()
    assert kinds_in_flight(pair) == [("bob", "reoffer")]
    assert states(pair.alice)[-1] == "connected"  # alice's media still arrives
    pair.deliver_all()
    pair.connect_renewal()
    assert states(pair.bob)[-2:] == ["reconnecting", "connected"]


def test_a_re_offer_under_way_is_not_restarted_by_the_callees_request() -> None:
    """Both sides notice a cut at about the same time; the callee's request must not replace the
    caller's attempt, or a path that takes longer than the request interval never connects."""
    pair = answered_call()
    stall(pair, pair.alice)
    stall(pair, pair.bob)
    assert sorted(kinds_in_flight(pair)) == [("alice", "reconnect"), ("bob", "reoffer")]
    pair.deliver_all()
    offers = [a for a in pair.alice.actions if isinstance(a, CreateReoffer)]
    assert [a.attempt for a in offers] == [1]


def test_an_attempt_that_does_not_connect_is_tried_again_and_a_late_answer_is_ignored() -> None:
    pair = answered_call(renew_after=5.0)
    stall(pair, pair.alice)
    first = pair.network.pop()  # attempt 1's re-offer is slow
    pair.advance(5.0)
    assert [a.attempt for a in pair.alice.actions if isinstance(a, CreateReoffer)] == [1, 2]
    pair.deliver()  # attempt 2 reaches bob first
    pair.replay(first)  # then attempt 1: older than what bob answered, so ignored
    assert [a.attempt for a in pair.bob.actions if isinstance(a, CreateReanswer)] == [2]
    answer_2 = pair.network.pop()
    late = PeerMessage("reanswer", "v=0 reanswer 1", False, 1)
    pair.apply(pair.alice, late)  # the answer to an attempt alice gave up on
    assert not [a for a in pair.alice.actions if isinstance(a, ApplyReanswer)]
    pair.replay(answer_2)
    assert [a.attempt for a in pair.alice.actions if isinstance(a, ApplyReanswer)] == [2]
    pair.connect_renewal()
    assert states(pair.alice)[-1] == "connected"
    assert not pair.alice.finishes


def test_the_reconnect_timeout_still_ends_a_call_whose_re_offers_never_connect() -> None:
    pair = answered_call(reconnect_timeout=30.0, renew_after=5.0)
    stall(pair, pair.alice)
    start = pair.now
    pair.advance(29.0)
    assert len([a for a in pair.alice.actions if isinstance(a, CreateReoffer)]) == 6
    pair.advance(1.5)
    assert pair.now - start >= 30.0
    assert pair.alice.finishes[0].outcome is Outcome.FAILED


def test_an_address_change_re_offers_at_once_without_waiting_for_a_stall() -> None:
    pair = answered_call()
    pair.apply(pair.alice, AddressesChanged())
    assert states(pair.alice)[-1] == "connected"  # media may still flow meanwhile
    assert kinds_in_flight(pair) == [("bob", "reoffer")]
    pair.deliver_all()
    pair.connect_renewal()
    assert Timer.RENEW not in pair.alice.timers
    assert states(pair.alice)[-1] == "connected" and not pair.alice.finishes


def test_the_callees_address_change_asks_for_a_re_offer() -> None:
    pair = answered_call()
    pair.apply(pair.bob, AddressesChanged())
    assert kinds_in_flight(pair) == [("alice", "reconnect")]
    pair.deliver()
    assert kinds_in_flight(pair) == [("bob", "reoffer")]


def test_a_relay_out_of_reach_is_said_and_the_re_offer_tried_again() -> None:
    pair = answered_call(renew_after=5.0)
    stall(pair, pair.alice)
    pair.network.clear()
    pair.apply(pair.alice, SendFailed("reoffer", RelayUnreachable("relay down")))
    notices = [e for e in pair.alice.events if isinstance(e, Notice)]
    assert "relay is out of reach" in notices[-1].message
    assert states(pair.alice)[-1] == "reconnecting" and not pair.alice.finishes
    pair.advance(5.0)
    assert kinds_in_flight(pair) == [("bob", "reoffer")]


def test_a_renewal_message_from_the_wrong_side_ends_the_call_as_out_of_order() -> None:
    """Only the caller re-offers: a re-offer from the callee is a broken or forged peer."""
    pair = answered_call()
    pair.apply(pair.alice, PeerMessage("reoffer", "v=0", True, 1))
    assert any(isinstance(e, Refused) and e.reason == "out_of_order" for e in pair.alice.events)
    assert pair.alice.finishes[0].outcome is Outcome.PROTOCOL_ERROR


def test_renewal_messages_before_the_call_connected_change_nothing() -> None:
    pair = CorePair()
    pair.deliver_all()  # offer, ring
    assert pair.bob.core is not None
    pair.apply(pair.bob, PeerMessage("reoffer", "v=0", True, 1))
    pair.apply(pair.alice, PeerMessage("reconnect"))
    assert not pair.alice.finishes and not pair.bob.finishes
    assert states(pair.alice)[-1] == "ringing"


def test_a_call_that_cannot_renew_only_waits_for_its_media() -> None:
    """The echo test runs in-process over loopback: nothing to re-offer to."""
    pair = answered_call(renew=False, reconnect_timeout=30.0)
    stall(pair, pair.alice)
    assert states(pair.alice)[-1] == "reconnecting"
    assert not pair.network and Timer.RENEW not in pair.alice.timers
    pair.advance(31.0)
    assert pair.alice.finishes[0].outcome is Outcome.FAILED


def test_a_stall_after_an_address_change_keeps_the_re_offer_under_way() -> None:
    """The address change re-offered at once; the silence that follows must not start over."""
    pair = answered_call()
    pair.apply(pair.alice, AddressesChanged())
    stall(pair, pair.alice)
    assert states(pair.alice)[-1] == "reconnecting"
    assert [a.attempt for a in pair.alice.actions if isinstance(a, CreateReoffer)] == [1]


def test_an_address_change_re_offer_that_never_connects_does_not_block_a_later_one() -> None:
    """A new interface appeared, the re-offer over it never connected, and the old path went on
    working; when that path dies later, the stall re-offers afresh and keeps retrying."""
    pair = answered_call(renew_after=5.0)
    pair.apply(pair.alice, AddressesChanged())
    pair.network.clear()  # attempt 1 is lost
    pair.advance(6.0)
    assert states(pair.alice)[-1] == "connected"
    stall(pair, pair.alice)
    pair.advance(5.0)
    assert [a.attempt for a in pair.alice.actions if isinstance(a, CreateReoffer)] == [1, 2, 3]

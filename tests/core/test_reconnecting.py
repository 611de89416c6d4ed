"""A connected call whose media stops: `reconnecting` within STALL_S, `connected` when anything
arrives again, and `failed` when nothing does within reconnect_timeout (issue #16)."""

from __future__ import annotations

from tcall.engine.core.call import (
    STALL_S,
    CountMedia,
    HangUp,
    MediaCount,
    MediaFailed,
    Timer,
)
from tcall.engine.core.outcome import Outcome, exit_code
from tcall.engine.errors import ExitCode
from tests.core.pair import CorePair, Side, answered_call, states


def count(pair: CorePair, side: Side, received: int, at: float) -> None:
    pair.apply(side, MediaCount(received, at))


def test_the_watch_asks_for_a_count_twice_a_second_while_connected() -> None:
    pair = answered_call()
    pair.advance(2.0)
    asked = [a for a in pair.alice.actions if isinstance(a, CountMedia)]
    assert len(asked) == 4


def test_silence_for_the_stall_time_is_reconnecting_and_arrivals_bring_it_back() -> None:
    pair = answered_call()
    count(pair, pair.alice, 100, 10.0)
    count(pair, pair.alice, 150, 11.0)  # flowing
    count(pair, pair.alice, 150, 11.0 + STALL_S - 0.5)  # quiet, not yet suspect
    assert states(pair.alice)[-1] == "connected"
    count(pair, pair.alice, 150, 11.0 + STALL_S)
    assert states(pair.alice)[-1] == "reconnecting"
    assert Timer.RECONNECT in pair.alice.timers
    count(pair, pair.alice, 151, 15.0)  # one packet back
    assert states(pair.alice)[-2:] == ["reconnecting", "connected"]
    assert Timer.RECONNECT not in pair.alice.timers
    # The call went on: hanging up now is an answered call, with its history record connected.
    pair.apply(pair.alice, HangUp())
    assert pair.alice.finishes[0].outcome is Outcome.ANSWERED
    assert pair.alice.records[0].connected


def test_media_that_never_comes_back_fails_the_call_after_the_reconnect_timeout() -> None:
    pair = answered_call(reconnect_timeout=30.0)
    count(pair, pair.alice, 100, 0.0)
    count(pair, pair.alice, 100, STALL_S)
    assert states(pair.alice)[-1] == "reconnecting"
    pair.advance(29.0)
    assert not pair.alice.finishes
    pair.advance(1.5)
    (finish,) = pair.alice.finishes
    assert finish.outcome is Outcome.FAILED
    assert exit_code(finish.outcome) is ExitCode.CALL_FAILED
    assert finish.reason is not None and "30 s" in finish.reason
    assert pair.alice.records[0].connected  # one record, with the call's whole length
    assert pair.alice.sent()[-1] == "hangup"  # the peer, if it can hear, knows


def test_the_old_connection_giving_up_while_reconnecting_leaves_it_to_the_timer() -> None:
    """aiortc closes a dead path's connection after 24-36 s; a re-offer may still bring the call
    back until the reconnect timeout, which alone ends it."""
    pair = answered_call(reconnect_timeout=30.0)
    count(pair, pair.alice, 5, 0.0)
    count(pair, pair.alice, 5, 3.0)
    pair.apply(pair.alice, MediaFailed())
    assert not pair.alice.finishes
    pair.advance(31.0)
    assert pair.alice.finishes[0].outcome is Outcome.FAILED


def test_the_stats_and_the_duration_keep_running_while_reconnecting() -> None:
    pair = answered_call(duration=10.0)
    count(pair, pair.alice, 5, 0.0)
    count(pair, pair.alice, 5, 3.0)
    assert states(pair.alice)[-1] == "reconnecting"
    pair.advance(10.5)
    stats = [a for a in pair.alice.actions if type(a).__name__ == "EmitStats"]
    assert len(stats) >= 9
    assert pair.alice.finishes[0].outcome is Outcome.ANSWERED


def test_counts_before_connecting_or_after_the_end_change_nothing() -> None:
    pair = CorePair()
    assert pair.alice.core is not None
    assert pair.alice.core.handle(MediaCount(0, 0.0)) == []
    assert pair.alice.core.handle(MediaCount(0, 100.0)) == []
    done = answered_call()
    done.apply(done.alice, HangUp())
    assert done.alice.core is not None
    assert done.alice.core.handle(MediaCount(0, 100.0)) == []

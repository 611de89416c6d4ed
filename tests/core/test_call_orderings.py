"""Any order, loss, duplicate or replay of the peer's messages, with timers and media events
(media stalling and flowing again, addresses changing, re-offered connections taking over) mixed
in: the core never raises on them, every call ends exactly once, only a call that
connected is `answered`, and nothing waits forever before it connects."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from tcall.engine.core.call import (
    STALL_S,
    Accept,
    AddressesChanged,
    CallSettings,
    Decline,
    HangUp,
    Interrupt,
    MediaConnected,
    MediaCount,
    MediaFailed,
)
from tcall.engine.core.outcome import EXIT_CODES, Outcome
from tcall.engine.errors import ExitCode, TcallError
from tcall.engine.events import CallPhase
from tests.core.pair import CorePair, Side
from tests.support.fuzz import examples

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("deliver"), st.integers(0, 5)),
        st.tuples(st.just("drop"), st.integers(0, 5)),
        st.tuples(st.just("duplicate"), st.integers(0, 5)),
        st.tuples(st.just("replay"), st.integers(0, 10)),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 3.0, 14.0, 31.0])),
        st.tuples(st.just("connect"), st.just(0)),
        st.tuples(st.just("renewed"), st.just(0)),
        st.tuples(
            st.sampled_from(["alice", "bob"]),
            st.sampled_from(
                [
                    "accept",
                    "audio",
                    "decline",
                    "hangup",
                    "interrupt",
                    "media_failed",
                    "media_connected",
                    "flow",
                    "stall",
                    "addresses",
                ]
            ),
        ),
    ),
    max_size=30,
)
COMMANDS = {
    "accept": Accept(video=True),
    "audio": Accept(video=False),
    "decline": Decline(),
    "hangup": HangUp(),
    "interrupt": Interrupt(),
    "media_failed": MediaFailed(),
    "media_connected": MediaConnected(),
    "addresses": AddressesChanged(),
}


def run(steps: list[tuple[str, object]]) -> CorePair:
    pair = CorePair(CallSettings(duration=None), CallSettings())
    packets = {"alice": 0, "bob": 0}
    for step, arg in steps:
        if step == "deliver" and pair.network:
            pair.deliver(int(arg) % len(pair.network))  # type: ignore[call-overload]
        elif step == "drop" and pair.network:
            pair.network.pop(int(arg) % len(pair.network))  # type: ignore[call-overload]
        elif step == "duplicate" and pair.network:
            pair.network.append(pair.network[int(arg) % len(pair.network)])  # type: ignore[call-overload]
        elif step == "replay" and pair.delivered:
            pair.replay(pair.delivered[int(arg) % len(pair.delivered)])  # type: ignore[call-overload]
        elif step == "advance":
            pair.advance(float(arg))  # type: ignore[arg-type]
        elif step == "connect":
            pair.connect_media()
        elif step == "renewed":
            pair.connect_renewal()
        elif step in ("alice", "bob") and arg in ("flow", "stall"):
            side = pair.side(step)
            if side.core is not None:
                packets[step] += arg == "flow"
                at = pair.now + (STALL_S if arg == "stall" else 0.0)
                pair.apply(side, MediaCount(packets[step], at))
        elif step in ("alice", "bob"):
            side = pair.side(step)
            if side.core is not None:
                # A local command that makes no sense now is refused to its caller.
                with contextlib.suppress(TcallError):
                    pair.apply(side, COMMANDS[str(arg)])
    return pair


def check(side: Side) -> None:
    if side.core is None:
        return
    finishes = side.finishes
    assert len(finishes) <= 1
    if side.core.ended:
        assert len(finishes) == 1 and len(side.records) == 1
        index = side.actions.index(finishes[0])
        assert side.actions[index + 1 :] == [], "actions after the call ended"
        connected = CallPhase.CONNECTED in side.core.history
        if finishes[0].outcome is Outcome.ANSWERED:
            assert connected
        if EXIT_CODES[finishes[0].outcome] == ExitCode.OK:
            assert connected, "a call that never connected exits 0"
        assert side.records[0].connected == (
            connected and side.core.history[-2] in (CallPhase.CONNECTED, CallPhase.RECONNECTING)
        )
    else:
        assert not finishes


@settings(max_examples=examples(400), deadline=None)
@given(STEPS)
def test_any_ordering_ends_each_call_once_and_honestly(steps: list[tuple[str, object]]) -> None:
    pair = run(steps)
    check(pair.alice)
    check(pair.bob)


@settings(max_examples=examples(200), deadline=None)
@given(STEPS)
def test_no_call_waits_forever_before_it_connects(steps: list[tuple[str, object]]) -> None:
    pair = run(steps)
    pair.advance(100.0)
    for side in (pair.alice, pair.bob):
        if side.core is not None:
            assert side.core.ended or side.core.phase is CallPhase.CONNECTED, side.core.history
        check(side)

"""The call core driven pairwise: every way a call goes, ends and is named, with a fake clock."""

from __future__ import annotations

import pytest

from tcall.engine.core.call import (
    Accept,
    AllowVideo,
    CallSettings,
    CameraTrack,
    CloseMedia,
    Decline,
    Failed,
    HangUp,
    Interrupt,
    MediaFailed,
    Microphone,
    PeerMessage,
    Send,
    SetCamera,
    SetMuted,
    ShowVideo,
)
from tcall.engine.core.outcome import EXIT_CODES, Outcome, exit_code
from tcall.engine.errors import ExitCode, IdentityError, ProtocolError, RelayUnreachable, TcallError
from tcall.engine.events import CallPhase, IncomingCall, PeerVideo, Refused, VideoRequest
from tests.core.pair import CorePair, Side, answered_call, states


def outcome(side: Side) -> Outcome:
    (finish,) = side.finishes
    return finish.outcome


def test_a_call_rings_connects_and_hangs_up() -> None:
    pair = answered_call()
    assert states(pair.alice) == ["calling", "ringing", "connecting", "connected"]
    assert states(pair.bob) == ["connecting", "connected"]
    incoming = [e for e in pair.bob.events if isinstance(e, IncomingCall)]
    assert incoming == [IncomingCall("call-1", "alice", False, True)]
    pair.apply(pair.alice, HangUp())
    pair.deliver_all()
    assert outcome(pair.alice) is outcome(pair.bob) is Outcome.ANSWERED
    assert states(pair.alice)[-1] == states(pair.bob)[-1] == "closed"
    assert [r.outcome for r in pair.alice.records + pair.bob.records] == ["answered", "answered"]
    assert pair.alice.records[0].connected and pair.alice.records[0].outgoing
    assert pair.bob.sent() == ["ring", "answer"]  # bob heard the hangup: nothing back
    assert pair.alice.sent() == ["offer", "hangup"]


def test_stats_each_second_while_connected_and_duration_ends_the_call() -> None:
    pair = answered_call(duration=3.0)
    pair.advance(2.5)
    stats = [a for a in pair.alice.actions if type(a).__name__ == "EmitStats"]
    assert len(stats) == 2
    pair.advance(1.0)
    assert outcome(pair.alice) is Outcome.ANSWERED


def test_the_callee_hanging_up_before_media_connected_is_a_failure_not_exit_0() -> None:
    """The bug seen across two NAT routers: the callee gave up in "connecting" and hung up; the
    caller reported `cancelled` and exited 0, though the call never connected."""
    pair = CorePair(CallSettings(connect_timeout=30.0), CallSettings(connect_timeout=15.0))
    pair.deliver_all()
    assert pair.bob.core is not None
    pair.apply(pair.bob, Accept())
    pair.deliver_all()  # the answer: both sides connecting, ICE never completes
    pair.advance(15.0)  # bob's connect timer
    assert outcome(pair.bob) is Outcome.TIMEOUT
    pair.deliver_all()  # bob's hangup reaches alice, still connecting
    assert outcome(pair.alice) is Outcome.FAILED
    assert exit_code(outcome(pair.alice)) == ExitCode.CALL_FAILED
    assert "hung up before the call connected" in str(pair.alice.finishes[0].reason)


def test_no_outcome_of_a_call_that_never_connected_exits_0() -> None:
    assert [o for o, code in EXIT_CODES.items() if code == ExitCode.OK] == [Outcome.ANSWERED]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("decline", Outcome.DECLINED), ("busy", Outcome.BUSY)],
)
def test_decline_and_busy_end_the_caller_without_a_hangup_back(
    reply: str, expected: Outcome
) -> None:
    pair = CorePair()
    pair.deliver()  # the offer
    pair.apply(pair.alice, PeerMessage(reply))
    assert outcome(pair.alice) is expected
    assert pair.alice.sent() == ["offer"]
    assert pair.alice.records[0].outcome == str(expected)


def test_nobody_answers() -> None:
    pair = CorePair(CallSettings(ring_timeout=30.0), CallSettings(ring_timeout=30.0))
    pair.deliver_all()
    pair.advance(30.0)
    assert outcome(pair.alice) is Outcome.NO_ANSWER
    assert exit_code(Outcome.NO_ANSWER) == ExitCode.NO_ANSWER
    assert pair.alice.sent() == ["offer", "hangup"]  # a courtesy: bob stops ringing
    assert outcome(pair.bob) is Outcome.MISSED
    assert [r.outcome for r in pair.bob.records] == ["missed"]


def test_the_caller_cancelling_while_it_rings_is_a_missed_call_there() -> None:
    pair = CorePair()
    pair.deliver_all()
    pair.apply(pair.alice, HangUp())
    pair.deliver_all()
    assert outcome(pair.alice) is Outcome.CANCELLED
    assert exit_code(Outcome.CANCELLED) != ExitCode.OK
    assert outcome(pair.bob) is Outcome.MISSED
    assert pair.bob.records[0].outcome == "missed" and not pair.bob.records[0].connected


def test_declining_here() -> None:
    pair = CorePair()
    pair.deliver_all()
    assert pair.bob.core is not None
    pair.apply(pair.bob, Decline())
    pair.deliver_all()
    assert outcome(pair.bob) is Outcome.DECLINED and outcome(pair.alice) is Outcome.DECLINED
    assert pair.bob.sent() == ["ring", "decline"]


def test_ctrl_c_is_interrupted_in_any_phase_and_tells_the_peer() -> None:
    pair = answered_call()
    pair.apply(pair.alice, Interrupt())
    assert outcome(pair.alice) is Outcome.INTERRUPTED
    assert pair.alice.sent()[-1] == "hangup"
    pair.deliver_all()
    assert outcome(pair.bob) is Outcome.ANSWERED


def test_media_failing_before_it_connects_is_a_failure() -> None:
    pair = CorePair()
    pair.deliver_all()
    assert pair.bob.core is not None
    pair.apply(pair.bob, Accept())
    pair.deliver_all()
    pair.apply(pair.alice, MediaFailed())
    assert outcome(pair.alice) is Outcome.FAILED


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (IdentityError("bad signature"), Outcome.IDENTITY_ERROR),
        (ProtocolError("garbage"), Outcome.PROTOCOL_ERROR),
        (RelayUnreachable("relay gone"), Outcome.RELAY_UNREACHABLE),
    ],
)
def test_errors_name_the_outcome(error: TcallError, expected: Outcome) -> None:
    pair = CorePair()
    pair.apply(pair.alice, Failed(error))
    assert outcome(pair.alice) is expected
    assert pair.alice.finishes[0].reason == str(error)
    assert pair.alice.sent() == ["offer", "hangup"]


def test_out_of_order_messages_end_the_call_with_a_protocol_error() -> None:
    pair = CorePair()
    pair.apply(pair.alice, PeerMessage("hangup"))  # hangup while calling: nothing ever rang
    assert outcome(pair.alice) is Outcome.PROTOCOL_ERROR
    assert any(isinstance(e, Refused) and e.reason == "out_of_order" for e in pair.alice.events)


def test_inputs_after_the_end_change_nothing() -> None:
    pair = answered_call()
    pair.apply(pair.alice, HangUp())
    assert pair.apply(pair.alice, PeerMessage("answer", "v=0", True)) == []
    assert pair.apply(pair.alice, HangUp()) == []
    assert len(pair.alice.finishes) == 1


# --- video consent, camera and microphone -----------------------------------------------------


def test_answering_with_video_shows_the_callers_video_and_the_camera_stays_off() -> None:
    pair = CorePair(bob_settings=CallSettings(answer_with_camera=False))
    pair.deliver_all()
    assert pair.bob.core is not None
    actions = pair.apply(pair.bob, Accept(video=True))
    plan = next(a.plan for a in actions if type(a).__name__ == "CreateAnswer")
    assert plan.send_video and plan.receive_video and not plan.camera_on  # privacy default
    assert ShowVideo(True) in actions  # the caller's camera was on in the offer


def test_ask_before_video_withholds_the_peers_new_video_until_allowed() -> None:
    pair = CorePair(CallSettings(ask_before_video=True))
    pair.deliver_all()
    assert pair.bob.core is not None
    pair.apply(pair.bob, Accept(video=True))
    pair.deliver_all()  # bob answered with his camera off
    assert ShowVideo(False) in pair.alice.actions
    pair.connect_media()
    pair.apply(pair.bob, SetCamera(True))
    assert pair.bob.actions[-2:] == [CameraTrack(True), Send("video", video=True)]
    pair.deliver_all()
    assert pair.alice.events[-1] == VideoRequest("call-1", "bob")
    pair.apply(pair.alice, AllowVideo())
    assert pair.alice.actions[-2:] == [ShowVideo(True), *pair.alice.actions[-1:]]
    assert pair.alice.events[-1] == PeerVideo("call-1", True)


def test_mute_and_an_audio_only_call_has_no_camera() -> None:
    pair = answered_call()
    assert pair.apply(pair.alice, SetMuted(True)) == [Microphone(True)]
    assert pair.alice.core is not None
    pair.alice.core.video_allowed = False
    with pytest.raises(TcallError, match="no camera"):
        pair.apply(pair.alice, SetCamera(True))


def test_a_call_ends_by_closing_its_media_once() -> None:
    pair = answered_call()
    pair.apply(pair.bob, HangUp())
    pair.deliver_all()
    for side in (pair.alice, pair.bob):
        assert sum(isinstance(a, CloseMedia) for a in side.actions) == 1
        assert side.core is not None and side.core.phase is CallPhase.CLOSED

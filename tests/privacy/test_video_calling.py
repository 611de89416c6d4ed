"""`video_calling = off`: an incoming video call is offered as audio-only (tcall's documented
choice, rather than declining it); no video flows either way, audio flows both ways."""

from __future__ import annotations

from tests.support.users import RING, User, history, sent_by


def test_video_off_answers_audio_only_both_ways(people: tuple[User, User]) -> None:
    alice, bob = people
    bob.set("video_calling", "off")
    bob.set("answer_with_camera", "on")  # even so: with video calling off no camera is sent
    listener = bob.listen("--auto-answer", "--once")
    code, out, err = alice.call("bob", "--duration", "3", *RING)
    assert code == 0, err
    assert listener.finish() == 0
    assert listener.wait_for("incoming", **sent_by("alice"))["video"] is False

    mine = out[-1]
    theirs = [e for e in listener.events if e["event"] == "summary"][-1]
    assert mine["outcome"] == theirs["outcome"] == "answered"
    assert mine["frames_received"] == 0  # bob sent no video
    assert theirs["frames_received"] == 0 and theirs["frames_sent"] == 0  # nor took alice's
    for side in (out, listener.events):
        kbps = [e["kbps_received"] for e in side if e["event"] == "stats"]
        assert kbps and max(kbps) > 10  # but audio reached each side
    assert [(r["outcome"], r["video"]) for r in history(bob)] == [("answered", False)]

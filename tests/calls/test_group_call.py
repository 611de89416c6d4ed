"""Group calls between real tcall processes through a real relay (issue #17): everyone sees
everyone, the group code is the same everywhere, members come and go."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.support.relays import ServeProcess
from tests.support.users import Listener, User

NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")
ANSWER = ("--auto-answer", "--once")
SMALL = [
    "--resolution",
    "160x120",
    "--fps",
    "10",
    "--camera",
    "on",
]  # six processes share two cores


def people(tmp_path: Path, relay: ServeProcess, count: int) -> list[User]:
    """`count` people who all have each other as contacts."""
    users = [User(name, tmp_path / name, relay.url) for name in NAMES[:count]]
    for user in users:
        for other in users:
            if other is not user:
                user.add(other)
    return users


def summary(listener: Listener) -> dict[str, Any]:
    return [e for e in listener.events if e["event"] == "summary"][-1]


def frames_from(event: dict[str, Any]) -> dict[str, int]:
    return {m["member"]: m.get("frames_received", 0) for m in event["members"]}


def test_three_members_see_each_other_and_share_one_code(
    tmp_path: Path, relay: ServeProcess
) -> None:
    alice, bob, carol = people(tmp_path, relay, 3)
    listeners = [u.listen(*ANSWER, "--duration", "8", *SMALL) for u in (bob, carol)]
    caller = alice.start_call("bob", "carol", "--duration", "8", *SMALL)
    assert caller.finish(60) == 0, caller.stderr()
    for listener in listeners:
        assert listener.finish(30) == 0, listener.stderr()
    everyone = [caller, *listeners]
    for listener, user in zip(everyone, (alice, bob, carol), strict=True):
        frames = frames_from(summary(listener))
        others = {"alice", "bob", "carol"} - {user.name}
        assert set(frames) == others
        assert all(count > 20 for count in frames.values()), (user.name, frames)
    # Every screen showed the same code once all three were in (it is in each joined event).
    full = {e["code"] for listener in everyone for e in listener.events if e["event"] == "joined"}
    codes_with_everyone = [
        [e["code"] for e in listener.events if e["event"] == "joined"][-1] for listener in everyone
    ]
    assert len(set(codes_with_everyone)) == 1, full
    invitations = [e for e in listeners[0].events if e["event"] == "incoming"]
    assert invitations[0]["from"] == "alice" and invitations[0]["members"] == ["carol"]


def test_a_stranger_brought_in_by_a_contact_is_shown_unverified_and_connects(
    tmp_path: Path, relay: ServeProcess
) -> None:
    """bob and carol do not know each other; alice, a contact of both, calls them together."""
    alice = User("alice", tmp_path / "alice", relay.url)
    bob = User("bob", tmp_path / "bob", relay.url)
    carol = User("carol", tmp_path / "carol", relay.url)
    for user in (bob, carol):
        alice.add(user)
        user.add(alice)
    listeners = [u.listen(*ANSWER, "--duration", "6", *SMALL) for u in (bob, carol)]
    caller = alice.start_call("bob", "carol", "--duration", "6", *SMALL)
    assert caller.finish(60) == 0, caller.stderr()
    for listener in listeners:
        assert listener.finish(30) == 0, listener.stderr()
    joined = [e for e in listeners[0].events if e["event"] == "joined"]
    stranger = [e for e in joined if e["member"] != "alice"]
    assert stranger and stranger[0]["member"].startswith("unknown ")
    assert stranger[0]["verified"] is False
    assert all(count > 10 for count in frames_from(summary(listeners[0])).values())


def test_a_member_we_blocked_gets_no_media_from_us_and_the_others_go_on(
    tmp_path: Path, relay: ServeProcess
) -> None:
    alice, bob, carol = people(tmp_path, relay, 3)
    bob.run("contacts", "block", "carol")
    listeners = [u.listen(*ANSWER, "--duration", "6", *SMALL) for u in (bob, carol)]
    caller = alice.start_call("bob", "carol", "--duration", "6", *SMALL)
    assert caller.finish(60) == 0, caller.stderr()
    for listener in listeners:
        listener.finish(30)
    bob_frames, carol_frames = (frames_from(summary(lst)) for lst in listeners)
    assert bob_frames["alice"] > 10 and carol_frames["alice"] > 10
    assert bob_frames.get("carol", 0) == 0 and carol_frames.get("bob", 0) == 0
    assert all(count > 10 for count in frames_from(summary(caller)).values())
    notices = [e["message"] for e in listeners[0].events if e["event"] == "notice"]
    assert any("carol joined the call, whom you blocked" in n for n in notices)


def test_do_not_disturb_keeps_an_invitation_from_ringing_and_the_rest_talk(
    tmp_path: Path, relay: ServeProcess
) -> None:
    alice, bob, carol = people(tmp_path, relay, 3)
    bob.set("do_not_disturb", "on")
    listeners = [u.listen(*ANSWER, "--duration", "5", *SMALL) for u in (bob, carol)]
    caller = alice.start_call("bob", "carol", "--duration", "5", "--ring-timeout", "3", *SMALL)
    assert caller.finish(60) == 0, caller.stderr()
    listeners[1].finish(30)
    bob_view = listeners[0]
    bob_view.wait_for("missed", reason="do not disturb", **{"from": "alice"})
    bob_view.stop()
    assert not [e for e in bob_view.events if e["event"] == "incoming"]
    frames = frames_from(summary(caller))
    assert frames["carol"] > 10 and frames.get("bob", 0) == 0
    left = [e for e in caller.events if e["event"] == "left" and e["member"] == "bob"]
    assert left and left[0]["reason"] == "no_answer"


def test_four_members_come_and_go_in_any_order(tmp_path: Path, relay: ServeProcess) -> None:
    """bob answers at once and leaves first, carol answers late, dave stays to the end."""
    alice, bob, carol, dave = people(tmp_path, relay, 4)
    bob_listens = bob.listen(*ANSWER, "--duration", "4", *SMALL)
    carol_listens = carol.listen("--once", "--duration", "5", *SMALL, stdin=subprocess.PIPE)
    dave_listens = dave.listen(*ANSWER, "--duration", "12", *SMALL)
    caller = alice.start_call("bob", "carol", "dave", "--duration", "12", *SMALL)
    carol_listens.wait_for("incoming", timeout=20)
    caller.wait_for("left", timeout=20, member="bob")  # carol answers after bob has gone
    carol_listens.send("accept")
    assert caller.finish(60) == 0, caller.stderr()
    for listener in (bob_listens, carol_listens, dave_listens):
        assert listener.finish(30) == 0, listener.stderr()
    kinds = [(e["event"], e["member"]) for e in caller.events if e["event"] in ("joined", "left")]
    assert kinds.index(("joined", "carol")) > kinds.index(("joined", "dave"))
    assert ("left", "bob") in kinds
    for listener, user in ((caller, alice), (carol_listens, carol), (dave_listens, dave)):
        frames = frames_from(summary(listener))
        met = set(frames) - ({"bob"} if user is carol else set())  # bob left before carol came
        assert all(frames[name] > 5 for name in met), (user.name, frames)
    # carol came after bob had left: the code she and dave saw then leaves bob out
    carol_sees = [e["code"] for e in carol_listens.events if e["event"] == "joined"][-1]
    dave_sees = [
        e["code"] for e in dave_listens.events if e["event"] == "joined" and e["member"] == "carol"
    ]
    assert dave_sees == [carol_sees]


def test_a_member_killed_is_noticed_and_the_rest_keep_talking(
    tmp_path: Path, relay: ServeProcess
) -> None:
    alice, bob, carol = people(tmp_path, relay, 3)
    bob_listens = bob.listen(*ANSWER, "--duration", "16", *SMALL)
    carol_listens = carol.listen(*ANSWER, "--duration", "16", *SMALL)
    caller = alice.start_call("bob", "carol", "--duration", "16", *SMALL)
    caller.wait_for("joined", timeout=20, member="carol")
    bob_listens.wait_for("joined", timeout=20, member="carol")
    os.kill(carol_listens.process.pid, signal.SIGKILL)
    left = caller.wait_for("left", timeout=25, member="carol")
    assert left["reason"] == "failed", left
    # alice and bob still receive each other after carol is gone
    while (event := caller.read_one()) is not None and event.get("member") != "bob":
        pass
    assert event is not None and event["event"] == "stats" and event["fps_received"] > 3
    assert caller.finish(60) == 0, caller.stderr()
    assert bob_listens.finish(30) == 0
    assert frames_from(summary(bob_listens))["alice"] > 50


def test_six_members_each_receive_every_other(tmp_path: Path, relay: ServeProcess) -> None:
    users = people(tmp_path, relay, 6)
    listeners = [u.listen(*ANSWER, "--duration", "10", *SMALL) for u in users[1:]]
    caller = users[0].start_call(*NAMES[1:6], "--duration", "10", *SMALL)
    assert caller.finish(90) == 0, caller.stderr()
    for listener in listeners:
        assert listener.finish(30) == 0, listener.stderr()
    for listener, user in zip([caller, *listeners], users, strict=True):
        frames = frames_from(summary(listener))
        assert set(frames) == set(NAMES) - {user.name}
        assert all(count > 10 for count in frames.values()), (user.name, frames)
        # One encode per captured frame for all five pairs (the last one may still be on its way).
        captured, encoded = summary(listener)["frames_sent"], summary(listener)["video_encodes"]
        assert 0 <= captured - encoded <= 1 and captured > 50, (user.name, captured, encoded)


def test_a_member_brings_in_a_fourth_whom_everyone_then_sees(
    tmp_path: Path, relay: ServeProcess
) -> None:
    alice, bob, carol, dave = people(tmp_path, relay, 4)
    bob_listens = bob.listen(*ANSWER, "--duration", "10", *SMALL, stdin=subprocess.PIPE)
    carol_listens = carol.listen(*ANSWER, "--duration", "10", *SMALL)
    dave_listens = dave.listen(*ANSWER, "--duration", "6", *SMALL)
    caller = alice.start_call("bob", "carol", "--duration", "10", *SMALL)
    bob_listens.wait_for("joined", timeout=20, member="carol")
    bob_listens.send("invite dave")
    invitation = dave_listens.wait_for("incoming", timeout=20)
    assert invitation["from"] == "bob" and sorted(invitation["members"]) == ["alice", "carol"]
    for listener in (caller, carol_listens):
        listener.wait_for("joined", timeout=20, member="dave")
    for listener in (caller, bob_listens, carol_listens, dave_listens):
        assert listener.finish(60) == 0, listener.stderr()
    dave_frames = frames_from(summary(dave_listens))
    assert set(dave_frames) == {"alice", "bob", "carol"}
    assert all(count > 10 for count in dave_frames.values()), dave_frames
    assert frames_from(summary(caller))["dave"] > 10


def test_when_the_creator_says_no_invites_a_member_cannot_bring_anyone(
    tmp_path: Path, relay: ServeProcess
) -> None:
    alice, bob, carol, dave = people(tmp_path, relay, 4)
    bob_listens = bob.listen(*ANSWER, "--duration", "5", *SMALL, stdin=subprocess.PIPE)
    carol_listens = carol.listen(*ANSWER, "--duration", "5", *SMALL)
    dave_listens = dave.listen(*ANSWER, *SMALL)
    caller = alice.start_call("bob", "carol", "--no-invites", "--duration", "5", *SMALL)
    bob_listens.wait_for("joined", timeout=20, member="carol")
    bob_listens.send("invite dave")
    refused = bob_listens.wait_for("notice", timeout=10, message=NO_INVITES)
    assert refused
    for listener in (caller, bob_listens, carol_listens):
        assert listener.finish(60) == 0, listener.stderr()
    dave_listens.stop()
    assert not [e for e in dave_listens.events if e["event"] == "incoming"]
    # The refused invitation changed nothing: bob and alice still talked.
    assert frames_from(summary(bob_listens))["alice"] > 10


NO_INVITES = "cannot invite dave: the call's creator does not let members invite"


def test_a_declined_invitation_leaves_every_roster_at_once(
    tmp_path: Path, relay: ServeProcess
) -> None:
    alice, bob, carol = people(tmp_path, relay, 3)
    bob_listens = bob.listen(*ANSWER, "--duration", "6", *SMALL)
    carol_listens = carol.listen("--once", *SMALL, stdin=subprocess.PIPE)
    caller = alice.start_call("bob", "carol", "--duration", "6", "--ring-timeout", "20", *SMALL)
    carol_listens.wait_for("incoming", timeout=20)
    carol_listens.send("decline")
    assert caller.wait_for("left", timeout=10, member="carol")["reason"] == "declined"
    assert bob_listens.wait_for("left", timeout=10, member="carol")["reason"] == "left"
    assert caller.finish(60) == 0 and bob_listens.finish(30) == 0
    carol_listens.finish(30)
    assert frames_from(summary(caller))["bob"] > 10


def test_an_invitation_nobody_answers_ends_as_a_missed_call(
    tmp_path: Path, relay: ServeProcess
) -> None:
    alice, bob, carol = people(tmp_path, relay, 3)
    bob_listens = bob.listen("--once", *SMALL)  # rings, nobody answers
    carol_listens = carol.listen(*ANSWER, "--duration", "4", *SMALL)
    caller = alice.start_call("bob", "carol", "--duration", "4", "--ring-timeout", "3", *SMALL)
    assert bob_listens.finish(30) == 10  # missed, as a 1:1 call nobody took
    assert summary(bob_listens)["outcome"] == "missed"
    assert caller.finish(60) == 0 and carol_listens.finish(30) == 0
    left = [e for e in caller.events if e["event"] == "left" and e["member"] == "bob"]
    assert left[0]["reason"] == "no_answer"


def test_a_member_never_waits_for_ever_for_an_invitee_who_never_answers(
    tmp_path: Path, relay: ServeProcess
) -> None:
    """carol is offline; alice leaves; bob, alone with carol's unanswered invitation, ends the
    call once an invitation would have rung out (his ring timeout and a grace of 5 s)."""
    alice, bob, _ = people(tmp_path, relay, 3)
    bob_listens = bob.listen(*ANSWER, "--ring-timeout", "3", *SMALL)
    caller = alice.start_call("bob", "carol", "--duration", "3", "--ring-timeout", "3", *SMALL)
    assert caller.finish(60) == 0, caller.stderr()
    assert bob_listens.finish(30) == 0, bob_listens.stderr()
    left = {e["member"]: e["reason"] for e in bob_listens.events if e["event"] == "left"}
    assert left == {"alice": "left", "carol": "no_answer"}

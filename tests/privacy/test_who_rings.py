"""Who may ring: strangers are silenced or ring as policy says, a declined caller is told so, and
auto-answer picks up only the contacts listed in `auto_answer_from`, never anyone else."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from tests.support.relays import ServeProcess
from tests.support.users import RING, User, history, sent_by


def _states(out: list[dict[str, object]]) -> list[object]:
    return [e["state"] for e in out if e["event"] == "state"]


@pytest.mark.parametrize(
    ("who_can_call", "silence_unknown", "reason"),
    [
        ("contacts", "off", "not a contact"),
        ("everyone", "on", "unknown caller"),
    ],
)
def test_a_stranger_is_silenced(
    people: tuple[User, User],
    carol: User,
    who_can_call: str,
    silence_unknown: str,
    reason: str,
) -> None:
    _, bob = people
    bob.set("who_can_call", who_can_call)
    bob.set("silence_unknown", silence_unknown)
    listener = bob.listen(*RING)
    try:
        code, out, _ = carol.call("bob", *RING)
        silenced = listener.wait_for("silenced", reason=reason)
    finally:
        listener.stop()
    assert (code, out[-1]["outcome"]) == (10, "no_answer")
    assert "ringing" not in _states(out)
    assert not [e for e in listener.events if e["event"] == "incoming"]
    assert silenced["from"].startswith("unknown ")
    [record] = history(bob)
    assert (record["contact"], record["direction"], record["outcome"]) == (
        silenced["from"],
        "incoming",
        "silenced",
    )


def test_a_stranger_rings_when_everyone_may_call_and_unknown_is_not_silenced(
    people: tuple[User, User], carol: User
) -> None:
    _, bob = people
    bob.set("who_can_call", "everyone")
    bob.set("silence_unknown", "off")
    listener = bob.listen(*RING)
    try:
        code, out, _ = carol.call("bob", *RING)
        incoming = listener.wait_for("incoming")
        listener.wait_for("summary", outcome="missed")
    finally:
        listener.stop()
    assert (code, out[-1]["outcome"]) == (10, "no_answer")
    assert "ringing" in _states(out)
    assert incoming["from"].startswith("unknown ") and incoming["verified"] is False
    assert [(r["direction"], r["outcome"]) for r in history(bob)] == [("incoming", "missed")]


def test_declined_call(people: tuple[User, User]) -> None:
    alice, bob = people
    listener = bob.listen("--once", stdin=subprocess.PIPE)

    def decline() -> None:
        listener.wait_for("incoming", **sent_by("alice"))
        listener.send("decline")

    thread = threading.Thread(target=decline)
    thread.start()
    code, out, err = alice.call("bob", "--duration", "1", *RING)
    thread.join()
    assert code == 8, err
    assert out[-1]["outcome"] == "declined" and out[-1]["frames_received"] == 0
    assert "ringing" in _states(out)
    assert listener.finish() == 8
    assert [(r["contact"], r["direction"], r["outcome"]) for r in history(alice)] == [
        ("bob", "outgoing", "declined")
    ]
    assert [(r["contact"], r["direction"], r["outcome"]) for r in history(bob)] == [
        ("alice", "incoming", "declined")
    ]


def test_auto_answer_picks_up_listed_contacts_only(
    tmp_path: Path, relay: ServeProcess, people: tuple[User, User], carol: User
) -> None:
    alice, bob = people
    dave = User("dave", tmp_path / "dave", relay.url)  # a contact, not in auto_answer_from
    dave.add(bob)
    bob.add(dave)
    bob.set("auto_answer", "contacts")
    bob.set("auto_answer_from", "alice")
    bob.set("who_can_call", "everyone")  # let the stranger carol ring, to show she is not
    bob.set("silence_unknown", "off")  # auto-answered either
    listener = bob.listen(*RING)  # no --auto-answer: the settings alone decide
    try:
        code, out, err = alice.call("bob", "--duration", "1", *RING)
        assert code == 0, err
        assert out[-1]["outcome"] == "answered"
        # answer_with_camera is off by default: auto-answer never switches bob's camera on
        assert out[-1]["frames_received"] == 0
        answered = listener.wait_for("summary", peer="alice")
        assert answered["outcome"] == "answered" and answered["frames_received"] > 0
        for caller in (dave, carol):
            code, out, _ = caller.call("bob", *RING)
            assert (code, out[-1]["outcome"]) == (10, "no_answer"), caller.name
            assert "ringing" in _states(out)
        stranger = f"unknown {carol.json('id', '--json')['fingerprint'][:19]}"
        for peer in ("dave", stranger):
            listener.wait_for("summary", outcome="missed", peer=peer)
    finally:
        listener.stop()
    assert [e["from"] for e in listener.events if e["event"] == "incoming"] == [
        "alice",
        "dave",
        stranger,
    ]
    assert [(r["direction"], r["outcome"]) for r in history(bob)] == [
        ("incoming", "missed"),
        ("incoming", "missed"),
        ("incoming", "answered"),
    ]

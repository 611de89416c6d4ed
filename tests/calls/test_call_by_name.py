"""Two real tcall processes call each other by name through a real relay."""

from __future__ import annotations

from tests.support.relays import ServeProcess
from tests.support.users import User


def test_call_and_answer_with_media_both_ways(people: tuple[User, User]) -> None:
    alice, bob = people
    listener = bob.listen("--auto-answer", "--once")
    code, out, err = alice.call("bob", "--duration", "4")
    assert code == 0, err
    states = [e["state"] for e in out if e["event"] == "state"]
    assert states[:3] == ["calling", "ringing", "connecting"]
    summary = out[-1]
    assert summary["outcome"] == "answered"
    assert summary["frames_received"] > 50  # bob's video reached alice
    assert {e["route"] for e in out if e["event"] == "stats"} == {"host/host"}
    assert listener.finish() == 0
    incoming = [e for e in listener.events if e["event"] == "incoming"]
    assert incoming and incoming[0]["from"] == "alice" and incoming[0]["verified"] is False
    bob_summary = [e for e in listener.events if e["event"] == "summary"][-1]
    assert bob_summary["outcome"] == "answered"
    assert bob_summary["frames_received"] > 50  # alice's video reached bob


def test_callee_hangs_up_and_both_sides_end(people: tuple[User, User]) -> None:
    alice, bob = people
    listener = bob.listen("--auto-answer", "--once", "--duration", "3")
    code, out, err = alice.call("bob", "--duration", "30")
    assert code == 0, err
    summary = out[-1]
    assert summary["outcome"] == "answered"
    assert summary["frames_received"] > 30
    assert listener.finish() == 0
    assert [e for e in listener.events if e["event"] == "summary"][-1]["outcome"] == "answered"


def test_decline_by_the_callee(people: tuple[User, User]) -> None:
    alice, bob = people
    listener = bob.listen("--once", stdin=__import__("subprocess").PIPE)
    import threading

    def decline() -> None:
        listener.wait_for("incoming", timeout=30)
        listener.send("decline")

    thread = threading.Thread(target=decline)
    thread.start()
    code, out, err = alice.call("bob", "--duration", "5")
    thread.join()
    assert code == 8, err
    assert out[-1]["outcome"] == "declined"
    assert out[-1]["frames_received"] == 0
    assert listener.finish() == 8


def test_no_answer_when_nobody_listens(people: tuple[User, User]) -> None:
    alice, _ = people
    code, out, _ = alice.call("bob", "--ring-timeout", "2")
    assert code == 10
    assert out[-1]["outcome"] == "no_answer"


def test_an_offline_callee_is_said_at_once_and_still_rings_when_they_come_online(
    people: tuple[User, User],
) -> None:
    """Issue #13: "bob appears to be offline" within seconds, not after the whole ring time, and
    the call still connects when bob comes online before it gives up (the relay held the offer)."""
    alice, bob = people
    calling = alice.start_call("bob", "--ring-timeout", "20", "--duration", "1")
    offline = "bob appears to be offline; ringing for 18 s more in case they come online"
    calling.wait_for("notice", timeout=10, message=offline)
    assert [e["state"] for e in calling.events if e["event"] == "state"] == ["calling"]
    listener = bob.listen("--auto-answer", "--once")
    assert calling.finish() == 0
    assert calling.events[-1]["outcome"] == "answered"
    assert listener.finish() == 0
    # bob online: the call rings, and nothing says he is offline
    listener = bob.listen("--once")
    calling = alice.start_call("bob", "--ring-timeout", "3")
    listener.wait_for("incoming")
    calling.finish()
    assert "ringing" in [e.get("state") for e in calling.events]
    assert not [e for e in calling.events if "offline" in e.get("message", "")]
    listener.stop()


def test_unknown_contact_and_garbled_address_and_relay_down(
    people: tuple[User, User], relay: ServeProcess
) -> None:
    alice, _ = people
    result = alice.run("call", "carol", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["tcall: error: unknown contact: carol"]
    result = alice.run("contacts", "add", "carol", "tcall:notanaddress#123", check=False)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "garbled address" in result.stderr
    relay.stop()
    code, out, err = alice.call("bob")
    assert code == 6
    assert out[-1]["outcome"] == "relay_unreachable"
    assert "Traceback" not in err

"""`tcall listen` never goes deaf (issue #12, item 10): after the relay restarts it signs in again
by itself (capped backoff) and takes calls; with --exit-on-relay-loss it exits 6 instead."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.relays import ServeProcess
from tests.support.users import Listener, User


def relay_events(listener: Listener, state: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (
        sum(e == {"event": "relay", "state": state, "url": e.get("url")} for e in listener.events)
        < count
    ):
        assert time.monotonic() < deadline, listener.events
        assert listener.read_one() is not None, listener.stderr()


def test_listen_signs_in_again_after_a_relay_restart(
    people: tuple[User, User], relay: ServeProcess
) -> None:
    alice, bob = people
    listener = bob.listen("--auto-answer", "--once")
    port = str(urlsplit(relay.url).port)
    relay.stop()
    relay_events(listener, "offline", 1)
    restarted = ServeProcess("--port", port)
    try:
        relay_events(listener, "online", 2)
        code, out, err = alice.call("bob", "--duration", "2")
        assert code == 0, err
        assert listener.finish() == 0
    finally:
        restarted.stop()


def test_listen_can_exit_6_when_the_relay_link_drops(
    people: tuple[User, User], relay: ServeProcess
) -> None:
    _, bob = people
    listener = bob.listen("--exit-on-relay-loss")
    relay.stop()
    assert listener.finish() == 6


def test_the_same_identity_signing_in_elsewhere_ends_listen_without_a_tug_of_war(
    people: tuple[User, User], relay: ServeProcess, tmp_path: Path
) -> None:
    """Bob's key copied to another machine (another home: on the same one, the second tcall is
    refused before it signs in, see test_one_identity_once.py)."""
    _, bob = people
    elsewhere = tmp_path / "bob-elsewhere"
    elsewhere.mkdir(mode=0o700)
    shutil.copy2(bob.home / "identity.key", elsewhere / "identity.key")
    twin = User("bob", elsewhere, relay.url)
    first = bob.listen()
    second = twin.listen()
    assert first.finish() == 6
    online = [e for e in first.events if e["event"] == "relay" and e["state"] == "online"]
    assert len(online) == 1  # it did not come back to push the other one off
    second.stop()


def test_a_call_in_progress_does_not_depend_on_the_relay(
    people: tuple[User, User], relay: ServeProcess
) -> None:
    """Issue #16: media is peer to peer, so the relay going away mid-call is not a reconnect: the
    call goes on and never says `reconnecting`; both sign in again once it is back."""
    alice, bob = people
    listener = bob.listen("--auto-answer", "--once")
    caller = alice.start_call("bob")
    caller.wait_for("state", state="connected")
    port = str(urlsplit(relay.url).port)
    relay.stop()
    relay_events(listener, "offline", 1)
    relay_events(caller, "offline", 1)
    gone_at = time.monotonic()
    while time.monotonic() - gone_at < 4.0:  # twice the silence that would say `reconnecting`
        event = caller.read_one()
        assert event is not None, caller.stderr()
    restarted = ServeProcess("--port", port)
    try:
        relay_events(listener, "online", 2)
        stats = [e for e in caller.events if e["event"] == "stats"][-3:]
        assert all(s["fps_received"] > 10 for s in stats), stats  # bob's pattern, all along
        caller.send("hangup")
        assert caller.finish() == 0, caller.stderr()
        assert listener.finish() == 0
    finally:
        restarted.stop()
    states = [e["state"] for e in caller.events + listener.events if e["event"] == "state"]
    assert "reconnecting" not in states, states
    assert caller.wait_for("summary")["outcome"] == "answered"

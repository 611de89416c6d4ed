"""`tcall listen` never goes deaf (issue #12, item 10): after the relay restarts it signs in again
by itself (capped backoff) and takes calls; with --exit-on-relay-loss it exits 6 instead."""

from __future__ import annotations

import time
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
    people: tuple[User, User],
) -> None:
    _, bob = people
    first = bob.listen()
    second = bob.listen()
    assert first.finish() == 6
    online = [e for e in first.events if e["event"] == "relay" and e["state"] == "online"]
    assert len(online) == 1  # it did not come back to push the other one off
    second.stop()

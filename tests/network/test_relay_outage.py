"""A call that needs a new path while its relay is down (issue #16): the relay is killed mid-call,
then the caller's address changes, so the media can only come back through a re-offer, and the
re-offer can only cross the relay. The caller says the relay is out of reach and keeps trying; once
the relay is back (same port, as after a restart), the re-offer goes through and media flows. Real
`tcall` processes in namespaces (tests/support/lossy_link.py), the relay on the router."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.lossy_link import ROUTER_A_IP, Link, lossy_link
from tests.support.relays import ServeProcess
from tests.support.roaming import move_alice
from tests.support.users import Listener, User, stop_leftovers

# Re-offers are tried every 5 s; bob's relay link comes back with its own backoff (1-2 s first);
# a fresh connection connects in about a second; a loaded CI machine on top.
MEDIA_BACK_WITHIN_S = 20.0


@pytest.fixture
def link() -> Iterator[Link]:
    with lossy_link() as built:
        yield built


def next_event(who: Listener, kind: str, timeout: float, **match: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = who.read_one()
        assert event is not None, f"the process ended; stderr: {who.stderr()}"
        if event["event"] == kind and all(event.get(k) == v for k, v in match.items()):
            return event
    raise AssertionError(f"no {kind} {match} within {timeout} s; saw {who.events[-8:]}")


def test_a_re_offer_waits_for_the_relay_says_so_and_goes_through_when_it_is_back(
    link: Link, tmp_path: Path
) -> None:
    relay = ServeProcess(host=ROUTER_A_IP, prefix=link.router)
    port = str(urlsplit(relay.url).port)
    restarted: ServeProcess | None = None
    env = {"TCALL_ICE_ADDRESSES": ""}
    try:
        alice = User("alice", tmp_path / "alice", relay.url, env, link.alice)
        bob = User("bob", tmp_path / "bob", relay.url, env, link.bob)
        alice.add(bob)
        bob.add(alice)
        listener = bob.listen("--auto-answer", "--once")
        caller = alice.start_call("bob", "--connect-timeout", "20")
        try:
            caller.wait_for("state", state="connected")
            listener.wait_for("state", state="connected")
            relay.stop()
            next_event(listener, "relay", 10, state="offline")
            move_alice(link)
            # Both, in either order: the call is reconnecting, and it says why it cannot yet.
            seen: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + 15
            while len(seen) < 2:
                assert time.monotonic() < deadline, caller.events[-8:]
                event = caller.read_one()
                assert event is not None, caller.stderr()
                if event == {**event, "event": "state", "state": "reconnecting"}:
                    seen["reconnecting"] = event
                elif event["event"] == "notice" and "relay is out of reach" in event["message"]:
                    seen["notice"] = event
            assert seen["notice"]["call_id"] == seen["reconnecting"]["call_id"]
            restarted = ServeProcess("--port", port, host=ROUTER_A_IP, prefix=link.router)
            back_at = time.monotonic()
            next_event(caller, "state", MEDIA_BACK_WITHIN_S, state="connected")
            while next_event(listener, "stats", MEDIA_BACK_WITHIN_S)["fps_received"] <= 10:
                assert time.monotonic() - back_at < MEDIA_BACK_WITHIN_S, listener.events[-6:]
            caller.send("hangup")
            summary = caller.wait_for("summary")
            assert caller.finish() == 0, caller.stderr()
        finally:
            caller.finish()
            listener.finish()
        assert summary["outcome"] == "answered"
        print(f"\nmedia back {time.monotonic() - back_at:.1f} s after the relay restarted")
    finally:
        stop_leftovers()
        relay.stop()
        if restarted is not None:
            restarted.stop()

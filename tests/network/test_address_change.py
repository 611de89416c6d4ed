"""The caller's address changes mid-call (issue #16), as on a Wi-Fi roam: the old address goes
away for good, so nothing can come back over the path the call used. tcall notices the change
within its half-second watch, re-offers a fresh connection under the same call id over a fresh
relay link, and media flows again. Two real `tcall` processes in namespaces with a router between
them (tests/support/lossy_link.py), the relay on the router. The old address never answers again
(the test checks), so only a new path can bring the media back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.lossy_link import ROUTER_A_IP, Link, lossy_link
from tests.support.relays import ServeProcess
from tests.support.roaming import move_alice, old_address_answers
from tests.support.users import Listener, User, history, stop_leftovers

# The watch looks twice a second; a fresh connection gathers, crosses the relay and connects in
# about a second here; a loaded CI machine on top.
MEDIA_BACK_WITHIN_S = 10.0


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


def test_the_callers_address_changes_and_the_call_goes_on(link: Link, tmp_path: Path) -> None:
    relay = ServeProcess(host=ROUTER_A_IP, prefix=link.router)
    env = {"TCALL_ICE_ADDRESSES": ""}  # each host offers its own addresses, as a user's would
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
            assert max(next_event(listener, "stats", 5)["fps_received"] for _ in range(2)) > 10
            move_alice(link)
            moved_at = time.monotonic()
            # alice's video reaches bob again (bob answers with his camera off) ...
            while True:
                stats = next_event(listener, "stats", MEDIA_BACK_WITHIN_S)
                if stats["fps_received"] > 10 and time.monotonic() - moved_at > 1.0:
                    break
                assert time.monotonic() - moved_at < MEDIA_BACK_WITHIN_S, listener.events[-6:]
            back_after = time.monotonic() - moved_at
            assert not old_address_answers(link)  # the old path is gone for good
            # ... and bob's audio reaches alice.
            heard = next_event(caller, "stats", 5)["audio_packets_received"]
            assert next_event(caller, "stats", 5)["audio_packets_received"] > heard + 20
            caller.send("hangup")
            summary = caller.wait_for("summary")
            assert caller.finish() == 0, caller.stderr()
        finally:
            caller.finish()
            listener.finish()
        assert summary["outcome"] == "answered"
        # One history record for the whole call, on each side, however many connections it had.
        for user in (alice, bob):
            (record,) = history(user)
            assert record["outcome"] == "answered" and record["duration_s"] >= back_after
        print(f"\nmedia back {back_after:.2f} s after the address changed")
    finally:
        stop_leftovers()
        relay.stop()

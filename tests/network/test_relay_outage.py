"""A call that needs a new path while its relay is down (issue #16): the relay is killed mid-call,
then the caller's address changes, so the media can only come back through a re-offer, and the
re-offer can only cross the relay. The caller says the relay is out of reach and keeps trying; once
the relay is back (same port, as after a restart), the re-offer goes through and media flows. Real
`tcall` processes in namespaces (tests/support/link_call.py), the relay on the router."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.link_call import call_across, next_event
from tests.support.lossy_link import ROUTER_A_IP, Link
from tests.support.relays import ServeProcess
from tests.support.roaming import move_alice

# Re-offers are tried every 5 s; bob's relay link comes back with its own backoff (1-2 s first);
# a fresh connection connects in about a second; a loaded CI machine on top.
MEDIA_BACK_WITHIN_S = 20.0


def test_a_re_offer_waits_for_the_relay_says_so_and_goes_through_when_it_is_back(
    link: Link, tmp_path: Path
) -> None:
    restarted: ServeProcess | None = None
    try:
        with call_across(link, tmp_path) as call:
            caller = call.caller
            port = str(urlsplit(call.relay.url).port)
            call.relay.stop()
            next_event(call.listener, "relay", 10, state="offline")
            move_alice(link)
            # Both, in either order: the call is reconnecting, and it says why it cannot yet.
            seen: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + 15
            while len(seen) < 2:
                assert time.monotonic() < deadline, caller.events[-8:]
                event = caller.read_one()
                assert event is not None, caller.stderr()
                if event.get("event") == "state" and event.get("state") == "reconnecting":
                    seen["reconnecting"] = event
                elif event["event"] == "notice" and "relay is out of reach" in event["message"]:
                    seen["notice"] = event
            assert seen["notice"]["call_id"] == seen["reconnecting"]["call_id"]
            restarted = ServeProcess("--port", port, host=ROUTER_A_IP, prefix=link.router)
            back_at = time.monotonic()
            next_event(caller, "state", MEDIA_BACK_WITHIN_S, state="connected")
            while next_event(call.listener, "stats", MEDIA_BACK_WITHIN_S)["fps_received"] <= 10:
                assert time.monotonic() - back_at < MEDIA_BACK_WITHIN_S, call.listener.events[-6:]
            back_after = time.monotonic() - back_at
            assert call.hang_up()["outcome"] == "answered"
    finally:
        if restarted is not None:
            restarted.stop()
    print(f"\nmedia back {back_after:.1f} s after the relay restarted")

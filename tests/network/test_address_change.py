"""The caller's address changes mid-call (issue #16), as on a Wi-Fi roam: the old address goes
away for good, so nothing can come back over the path the call used. tcall notices the change
within its half-second watch, re-offers a fresh connection under the same call id over a fresh
relay link, and media flows again. Two real `tcall` processes in namespaces with a router between
them (tests/support/link_call.py). The old address never answers again (the test checks), so
only a new path can bring the media back.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.link_call import call_across, next_event
from tests.support.lossy_link import Link
from tests.support.roaming import move_alice, old_address_answers
from tests.support.users import history

# The watch looks twice a second; a fresh connection gathers, crosses the relay and connects in
# about a second here; a loaded CI machine on top.
MEDIA_BACK_WITHIN_S = 10.0


def test_the_callers_address_changes_and_the_call_goes_on(link: Link, tmp_path: Path) -> None:
    with call_across(link, tmp_path) as call:
        bob = call.listener
        assert max(next_event(bob, "stats", 5)["fps_received"] for _ in range(2)) > 10
        move_alice(link)
        moved_at = time.monotonic()
        # alice's video reaches bob again (bob answers with his camera off) ...
        while True:
            stats = next_event(bob, "stats", MEDIA_BACK_WITHIN_S)
            if stats["fps_received"] > 10 and time.monotonic() - moved_at > 1.0:
                break
            assert time.monotonic() - moved_at < MEDIA_BACK_WITHIN_S, bob.events[-6:]
        back_after = time.monotonic() - moved_at
        assert not old_address_answers(link)  # the old path is gone for good
        # ... and bob's audio reaches alice.
        heard = next_event(call.caller, "stats", 5)["audio_packets_received"]
        assert next_event(call.caller, "stats", 5)["audio_packets_received"] > heard + 20
        assert call.hang_up()["outcome"] == "answered"
        # One history record for the whole call, on each side, however many connections it had.
        for user in (call.alice, call.bob):
            (record,) = history(user)
            assert record["outcome"] == "answered" and record["duration_s"] >= back_after
    print(f"\nmedia back {back_after:.2f} s after the address changed")

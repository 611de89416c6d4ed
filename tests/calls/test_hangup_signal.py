"""SIGHUP (a closed terminal, a dropped SSH session, a killed tmux session) ends `listen` like
Ctrl-C: the peer is told, history is recorded, the summary printed, exit 130. (`call`: see
test_echo_call.py.)"""

from __future__ import annotations

import signal
import time

from tests.support.users import User, history


def test_sighup_ends_a_listen_call_and_tells_the_caller(people: tuple[User, User]) -> None:
    alice, bob = people
    listening = bob.listen("--auto-answer")
    calling = alice.start_call("bob", "--duration", "30")
    listening.wait_for("stats")
    listening.process.send_signal(signal.SIGHUP)
    assert listening.finish() == 130
    summaries = [e for e in listening.events if e["event"] == "summary"]
    assert [s["outcome"] for s in summaries] == ["interrupted"]
    # The caller is hung up on at once, not left staring at a frozen picture for 30 s.
    started = time.monotonic()
    calling.finish(timeout=20)
    assert time.monotonic() - started < 15
    assert calling.events[-1]["event"] == "summary"
    assert [r["outcome"] for r in history(bob)][:1] == ["answered"]

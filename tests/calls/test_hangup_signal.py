"""SIGHUP (a closed terminal, a dropped SSH session, a killed tmux session) ends `call` and
`listen` like Ctrl-C: the peer is told, history is recorded, the summary printed, exit 130."""

from __future__ import annotations

import signal
import subprocess
import time

from tests.support.cli import TCALL, events, loopback_env
from tests.support.users import User, history


def test_sighup_ends_an_echo_call_with_a_summary() -> None:
    process = subprocess.Popen(
        [TCALL, "call", "echo", "--video", "pattern", "--audio", "sine"]
        + ["--duration", "30", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=loopback_env(),
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    for line in process.stdout:  # wait until media is flowing
        if '"stats"' in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGHUP)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    summary = events(out)[-1]
    assert summary["event"] == "summary"
    assert summary["outcome"] == "interrupted"
    assert summary["frames_received"] > 0
    assert "Traceback" not in err


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

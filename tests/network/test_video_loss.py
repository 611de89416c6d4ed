"""A call with 10% random loss on one side (issue #16): the call stays up, audio is concealed and
video keeps moving. Two real `tcall` processes in network namespaces, the router between them
losing 10% of the UDP it forwards to bob (alice's video and audio, and whatever else reaches him);
the relay on the router (tests/support/link_call.py). bob answers with his camera off, so video goes from alice to bob.

Each of bob's stats seconds must show video at a good rate (a stall of a lost retransmission, as
aiortc had it, cost 0.5-2.5 s: a second at a few fps) and at a low delay (the backlog after such a
stall, which aiortc drained one frame per packet, kept the delay up for seconds)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.link_call import call_across
from tests.support.lossy_link import Link
from tests.support.users import Listener

LOSS = 0.10
SECONDS = 6  # stats seconds measured under loss
# alice sends 30 fps. Measured here (load average 3.5-4.5, other tests running), 4 calls: each
# second 20-34 fps (mostly 29-31), the delay's median 5-19 ms. The bounds leave room for a 2-core
# CI machine running other tests.
MEAN_FPS = 20
MIN_FPS = 12  # in any one second: a freeze of half a second would fail it
MAX_LATENCY_MS = 250  # the median glass-to-glass delay of any one second


def stats_seconds(who: Listener, count: int, timeout: float) -> list[dict[str, Any]]:
    """The next `count` stats events; every other event on the way too (the call's states)."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while sum(e["event"] == "stats" for e in seen) < count:
        assert time.monotonic() < deadline, f"no {count} stats within {timeout} s: {seen}"
        event = who.read_one()
        assert event is not None, f"the process ended; stderr: {who.stderr()}"
        seen.append(event)
    return seen


@pytest.mark.timeout(90)
def test_ten_percent_loss_towards_bob_keeps_video_moving_and_audio_concealed(
    link: Link, tmp_path: Path
) -> None:
    with call_across(link, tmp_path) as call:
        before = stats_seconds(call.listener, 2, 10)[-1]  # the first frames are in
        with link.random_loss_towards("bob", LOSS):
            seen = stats_seconds(call.listener, SECONDS + 1, SECONDS + 10)
        summary = call.hang_up()
    seconds = [e for e in seen if e["event"] == "stats"][1:]  # the first began before the loss
    states = [e["state"] for e in seen if e["event"] == "state"]
    fps = [e["fps_received"] for e in seconds]
    latency = [e["latency_ms"] for e in seconds]
    last = seconds[-1]
    lost = last["audio_packets_lost"] - before["audio_packets_lost"]
    concealed = last["audio_concealed"] - before["audio_concealed"]
    recovered = last["audio_fec_recovered"] - before["audio_fec_recovered"]
    heard = last["audio_packets_received"] - before["audio_packets_received"]
    print(
        f"\nbob under {LOSS:.0%} loss: fps {fps}, median delay {latency} ms, video packets lost "
        f"{last['packets_lost']}; audio: {heard} packets, {lost} lost, {recovered} by FEC, "
        f"{concealed} concealed"
    )
    assert states == [], f"the call left 'connected': {states}"
    assert summary["outcome"] == "answered"
    # Video keeps moving, at a low delay.
    assert statistics.mean(fps) >= MEAN_FPS, fps
    assert min(fps) >= MIN_FPS, fps
    assert all(ms is not None and ms <= MAX_LATENCY_MS for ms in latency), latency
    # The loss was real, and audio went on through it, its losses made up for.
    assert last["packets_lost"] > 0
    assert heard >= 40 * SECONDS, heard  # 50 packets a second
    assert lost > 0 and recovered + concealed > 0, (lost, recovered, concealed)

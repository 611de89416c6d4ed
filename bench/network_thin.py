"""Keyframes at a steady link and a call through a 300 kbit/s cap (issue #16), for bench/network.py.

- keyframes: a 10 s steady call from an in-process Session (the pattern at 640x480, 30 fps) to
  headless Chromium on loopback, counted by Chromium (keyFramesDecoded, pliCount); tcall's video
  encoders beside aiortc's own (bare aiortc) in the same run, VP8 and H.264. Needs chromium.
- cap: two `tcall` processes across tests/support/lossy_link.py, the relay on the router; after 4
  s at full rate the router caps both ways at 300 kbit/s (tbf, a 200 ms buffer) for 12 s: bob's
  stats seconds of the last 8 give alice's audio packets heard (of 50 a second), her video's fps
  and its glass-to-glass delay (the pattern's timecode). Needs root (namespaces). The bare aiortc
  column is not measured for this row (bench/network_cuts.py's bare peers report gaps, not fps,
  delay or audio counts).

    sudo .venv/bin/python bench/network_thin.py     (standalone: prints its figures)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import keyframes_to_chromium  # noqa: E402
from tests.support.lossy_link import ROUTER_A_IP, lossy_link  # noqa: E402
from tests.support.relays import ServeProcess  # noqa: E402
from tests.support.users import Listener, User, stop_leftovers  # noqa: E402

CAP_KBIT = 300
SETTLE_S, CAPPED_S = 4, 8


def keyframes(codec: str, bare: bool) -> dict[str, Any]:
    """Chromium's counts over a 10 s steady call; `bare`: with aiortc's own encoders."""
    import aiortc.codecs
    import aiortc.rtcrtpsender

    from tcall.engine import compat

    os.environ["TCALL_ICE_ADDRESSES"] = "127.0.0.1"
    compat.install()
    install = compat.encoder._install_encoder
    if bare:
        aiortc.rtcrtpsender.get_encoder = aiortc.codecs.get_encoder
        compat.encoder._install_encoder = lambda: None  # a Session installs compat again
    try:
        return asyncio.run(keyframes_to_chromium(codec, 10.0))
    finally:
        compat.encoder._install_encoder = install
        install()


def _stats(who: Listener) -> dict[str, Any]:
    while (event := who.read_one()) is not None:
        if event["event"] == "stats":
            return event
    raise RuntimeError(f"the call ended: {who.stderr()}")


def capped_call() -> dict[str, Any]:
    """bob's view of alice's media through the cap."""
    with lossy_link() as link, tempfile.TemporaryDirectory() as folder:
        relay = ServeProcess(host=ROUTER_A_IP, prefix=link.router)
        try:
            env = {"TCALL_ICE_ADDRESSES": ""}
            alice = User("alice", Path(folder) / "alice", relay.url, env, link.alice)
            bob = User("bob", Path(folder) / "bob", relay.url, env, link.bob)
            alice.add(bob)
            bob.add(alice)
            listener = bob.listen("--auto-answer", "--once")
            caller = alice.start_call("bob", "--connect-timeout", "20")
            try:
                caller.wait_for("state", state="connected")
                listener.wait_for("state", state="connected")
                for _ in range(4):
                    _stats(listener)
                with link.cap(CAP_KBIT):
                    settled = [_stats(listener) for _ in range(SETTLE_S)][-1]
                    seconds = [_stats(listener) for _ in range(CAPPED_S)]
                caller.send("hangup")
            finally:
                caller.finish()
                listener.finish()
        finally:
            stop_leftovers()
            relay.stop()
    heard = seconds[-1]["audio_packets_received"] - settled["audio_packets_received"]
    latency = [s["latency_ms"] for s in seconds if s["latency_ms"] is not None]
    return {
        "audio_kept": round(heard / (50 * CAPPED_S), 3),
        "fps": round(statistics.mean(s["fps_received"] for s in seconds), 1),
        "min_fps": min(s["fps_received"] for s in seconds),
        "g2g_ms": max(latency) if latency else None,
        "kbps": round(statistics.mean(s["kbps_received"] for s in seconds)),
        "resolution": seconds[-1]["resolution"],
    }


def measure() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for codec in ("vp8", "h264"):
        for bare in (False, True):
            figures[f"keyframes_{codec}_{'bare' if bare else 'tcall'}"] = keyframes(codec, bare)
    figures["cap_tcall"] = capped_call()
    return figures


def rows(args: argparse.Namespace) -> list[Any]:
    from bench.network import Row  # the driver's; imported here so this module also runs alone

    started = time.monotonic()
    f = measure()

    def kf(key: str) -> str:
        counts = f[key]
        return f"{counts['keyframes']} ({counts['plis']} asked, {counts['frames']} frames)"

    cap = f["cap_tcall"]
    return [
        Row(
            figure=f"keyframes sent in 10 s at a steady link, {codec.upper()} to Chromium",
            goal="<= 1 after the first",
            tcall=kf(f"keyframes_{codec}_tcall"),
            baseline=kf(f"keyframes_{codec}_bare"),
            note="Chromium's keyFramesDecoded; the first one included",
        )
        for codec in ("vp8", "h264")
    ] + [
        Row(
            figure="at a 300 kbit/s cap: audio kept, video fps, g2g",
            goal="audio >= 95% of packets, video >= 10 fps, g2g <= 400 ms",
            tcall=(
                f"audio {cap['audio_kept']:.0%}, {cap['fps']} fps (min {cap['min_fps']}), "
                f"g2g max {cap['g2g_ms']} ms, {cap['kbps']} kbps at {cap['resolution']}"
            ),
            baseline="not measured",
            note=f"the last {CAPPED_S} s of {SETTLE_S + CAPPED_S} s capped; run {time.monotonic() - started:.0f} s",
        )
    ]


if __name__ == "__main__":
    print(json.dumps(measure(), indent=1))

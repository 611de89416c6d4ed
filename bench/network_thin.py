"""Keyframes at a steady link and a call through a 300 kbit/s cap (issue #16), for bench/network.py.

- keyframes: a 10 s steady call from an in-process Session (the pattern at 640x480, 30 fps) to
  headless Chromium on loopback, counted by Chromium (keyFramesDecoded, pliCount); tcall's video
  encoders beside aiortc's own (bare aiortc) in the same run, VP8 and H.264. Needs chromium. And
  between two in-process Sessions (VP8, aiortc's receiver estimating), counted at the sender.
- cap: two `tcall` processes across tests/support/lossy_link.py, the relay on the router; after 4
  s at full rate the router caps both ways at 300 kbit/s (tbf, a 200 ms buffer) for 12 s: bob's
  stats seconds of the last 8 give alice's audio packets heard (of 50 a second), her video's fps
  and its glass-to-glass delay (the pattern's timecode). Bare aiortc: the same pattern and a tone
  from two plain aiortc peers in the same hosts (offer and answer over TCP), bob printing the same
  figures each second. Needs root (namespaces).

    sudo .venv/bin/python bench/network_thin.py     (standalone: prints its figures)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import bare_peers  # noqa: E402
from bench.bare_peers import BarePeer, exchange, say  # noqa: E402
from tests.support.browser import chromium, keyframes_to_chromium  # noqa: E402
from tests.support.link_call import call_across  # noqa: E402
from tests.support.lossy_link import Link, lossy_link  # noqa: E402
from tests.support.users import Listener  # noqa: E402

CAP_KBIT = 300
SETTLE_S, CAPPED_S = 4, 8
BARE_PORT = 7817


@contextlib.contextmanager
def encoders(bare: bool) -> Iterator[None]:
    """aiortc's senders look up tcall's video encoders, or (`bare`) aiortc's own, while the block
    runs; the lookup then stays as set (a Session installs compat again as it starts: held off)."""
    import aiortc.codecs
    import aiortc.rtcrtpsender

    from tcall.engine import compat

    os.environ["TCALL_ICE_ADDRESSES"] = "127.0.0.1"
    compat.install()
    install = compat.encoder._install_encoder
    if bare:
        aiortc.rtcrtpsender.get_encoder = aiortc.codecs.get_encoder
    compat.encoder._install_encoder = lambda: None
    try:
        yield
    finally:
        compat.encoder._install_encoder = install
        aiortc.rtcrtpsender.get_encoder = aiortc.codecs.get_encoder
        install()


def keyframes(codec: str, bare: bool) -> dict[str, Any]:
    """Chromium's counts over a 10 s steady call; `bare`: with aiortc's own encoders."""
    with encoders(bare):
        return asyncio.run(keyframes_to_chromium(codec, 10.0))


async def _keyframes_between_sessions(seconds: float) -> dict[str, Any]:
    """A VP8 call between two in-process Sessions on loopback (the pattern one way): the keyframes
    the sender's encoder gives out over `seconds` from its first, the first included."""
    import aiortc.rtcrtpsender
    from aiortc.codecs.vpx import vp8_depayload

    from tcall.engine.ice import IceSettings
    from tcall.engine.session import Session
    from tests.support.sessions import pattern_session

    sent: list[float] = []
    lookup = aiortc.rtcrtpsender.get_encoder

    def counting(codec: Any) -> Any:
        encoder = lookup(codec)
        encode = encoder.encode

        def counted(frame: Any, force_keyframe: bool = False) -> Any:
            payloads, timestamp = encode(frame, force_keyframe)
            if payloads and not vp8_depayload(payloads[0])[0] & 1:  # RFC 6386 9.1
                sent.append(time.monotonic())
            return payloads, timestamp

        encoder.encode = counted
        return encoder

    aiortc.rtcrtpsender.get_encoder = counting
    caller = pattern_session(640, 480, lambda state: None)
    callee = Session(
        ice=IceSettings(), video=None, audio=None, audio_sink=None, on_state=lambda state: None
    )
    try:
        await caller.accept_answer(await callee.create_answer(await caller.create_offer()))
        await caller.wait_connected(10)
        deadline = time.monotonic() + 10
        while not sent:
            assert time.monotonic() < deadline, "no keyframe within 10 s"
            await asyncio.sleep(0.05)
        await asyncio.sleep(seconds)
        return {"keyframes": sum(at <= sent[0] + seconds for at in sent)}
    finally:
        aiortc.rtcrtpsender.get_encoder = lookup
        await caller.close()
        await callee.close()


def keyframes_between_sessions(bare: bool) -> dict[str, Any]:
    with encoders(bare):  # the counting wrapper goes over the lookup it sets
        return asyncio.run(_keyframes_between_sessions(10.0))


def _stats(who: Listener) -> dict[str, Any]:
    while (event := who.read_one()) is not None:
        if event["event"] == "stats":
            return event
    raise RuntimeError(f"the call ended: {who.stderr()}")


def capped_call() -> dict[str, Any]:
    """bob's view of alice's media through the cap."""
    with (
        lossy_link() as link,
        tempfile.TemporaryDirectory() as folder,
        call_across(link, Path(folder)) as call,
    ):
        for _ in range(4):
            _stats(call.listener)
        with link.cap(CAP_KBIT):
            settled = [_stats(call.listener) for _ in range(SETTLE_S)][-1]
            seconds = [_stats(call.listener) for _ in range(CAPPED_S)]
        call.caller.send("hangup")
    heard = seconds[-1]["audio_packets_received"] - settled["audio_packets_received"]
    return _capped_figures(
        heard,
        [s["fps_received"] for s in seconds],
        [s["latency_ms"] for s in seconds],
        [s["kbps_received"] for s in seconds],
        seconds[-1]["resolution"],
    )


def _capped_figures(
    heard: int, fps: list[float], latency: list[float | None], kbps: list[float], size: str
) -> dict[str, Any]:
    delays = [ms for ms in latency if ms is not None]
    return {
        "audio_kept": round(heard / (50 * CAPPED_S), 3),
        "fps": round(statistics.mean(fps), 1),
        "min_fps": min(fps),
        "g2g_ms": max(delays) if delays else None,
        "kbps": round(statistics.mean(kbps)),
        "resolution": size,
    }


# --- bare aiortc through the cap ------------------------------------------------------------------


async def bare_peer(role: str) -> None:
    """One plain aiortc side, run inside a host: alice sends the pattern and a tone, bob a tone;
    bob prints, each second, the video frames he received, their median glass-to-glass delay, the
    audio packets received so far and the kbps received."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    from tcall.engine.media.audio import PacedAudioSource, sine_blocks
    from tcall.engine.media.sinks import LatestFrameSink, median
    from tcall.engine.media.tracks import AudioSourceTrack, VideoSourceTrack
    from tcall.engine.media.video import PatternSource

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # host candidates only
    if role == "caller":
        pc.addTrack(VideoSourceTrack(PatternSource(640, 480, 30)))
    pc.addTrack(AudioSourceTrack(PacedAudioSource("sine", sine_blocks())))
    sink = LatestFrameSink()  # counts frames and reads their timecodes; aiortc's path untouched
    pc.on("connectionstatechange", lambda: say(state=pc.connectionState))
    pc.on("track", lambda track: track.kind == "video" and sink.consume(track))
    await exchange(pc, role, BARE_PORT)
    if role == "callee":
        frames = latencies = received = 0
        while True:
            await asyncio.sleep(1.0)
            audio = kbytes = 0
            for item in (await pc.getStats()).values():
                if item.type == "inbound-rtp" and item.kind == "audio":
                    audio = item.packetsReceived
                elif item.type == "transport":
                    kbytes = item.bytesReceived
            say(
                fps=sink.frames_received - frames,
                g2g_ms=median(sink.latencies_ms[latencies:]),
                audio_packets=audio,
                kbps=round((kbytes - received) * 8 / 1000),
                size=f"{sink.width}x{sink.height}",
            )
            frames, latencies, received = sink.frames_received, len(sink.latencies_ms), kbytes
    else:
        await asyncio.sleep(3600)  # until terminated


@contextlib.contextmanager
def bare_call(link: Link) -> Iterator[BarePeer]:
    """bob's side of a bare aiortc call from alice, connected, media flowing."""
    with bare_peers.bare_call(link, str(Path(__file__)), settle_s=4.0) as (_alice, bob):
        yield bob


def capped_call_bare() -> dict[str, Any]:
    with lossy_link() as link, bare_call(link) as bob:
        with link.cap(CAP_KBIT):
            time.sleep(SETTLE_S)
            settled = time.monotonic()
            time.sleep(CAPPED_S + 0.5)
        seconds = [line for line in bob.lines if "fps" in line and line["at"] > settled]
        seconds = seconds[:CAPPED_S]
        before = [line for line in bob.lines if "fps" in line and line["at"] <= settled][-1]
    return _capped_figures(
        seconds[-1]["audio_packets"] - before["audio_packets"],
        [line["fps"] for line in seconds],
        [line["g2g_ms"] for line in seconds],
        [line["kbps"] for line in seconds],
        seconds[-1]["size"],
    )


def measure() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for codec in ("vp8", "h264"):
        for bare in (False, True):
            key = f"keyframes_{codec}_{'bare' if bare else 'tcall'}"
            figures[key] = keyframes(codec, bare) if chromium() else None
    for bare in (False, True):
        key = f"keyframes_tcall_to_tcall_{'bare' if bare else 'tcall'}"
        figures[key] = keyframes_between_sessions(bare)
    figures["cap_tcall"] = capped_call()
    figures["cap_bare"] = capped_call_bare()
    return figures


def rows(args: argparse.Namespace) -> list[Any]:
    from bench.network import Row  # the driver's; imported here so this module also runs alone

    started = time.monotonic()
    f = measure()

    def kf(key: str) -> str:
        counts = f[key]
        if counts is None:
            return "chromium is not installed"
        return f"{counts['keyframes']} ({counts['plis']} asked, {counts['frames']} frames)"

    def capped(figures: dict[str, Any]) -> str:
        return (
            f"audio {figures['audio_kept']:.0%}, {figures['fps']} fps (min {figures['min_fps']}), "
            f"g2g max {figures['g2g_ms']} ms, {figures['kbps']} kbps at {figures['resolution']}"
        )

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
            figure="keyframes sent in 10 s at a steady link, VP8 tcall to tcall (loopback)",
            goal="<= 1 after the first",
            tcall=str(f["keyframes_tcall_to_tcall_tcall"]["keyframes"]),
            baseline=str(f["keyframes_tcall_to_tcall_bare"]["keyframes"]),
            note="counted at the sender's encoder; the first one included; aiortc's own REMB",
        ),
        Row(
            figure="at a 300 kbit/s cap: audio kept, video fps, g2g",
            goal="audio >= 95% of packets, video >= 10 fps, g2g <= 400 ms",
            tcall=capped(f["cap_tcall"]),
            baseline=capped(f["cap_bare"]),
            note=f"the last {CAPPED_S} s of {SETTLE_S + CAPPED_S} s capped; run {time.monotonic() - started:.0f} s",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bare", choices=["caller", "callee"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        asyncio.run(bare_peer(args.bare))
        return
    print(json.dumps(measure(), indent=1))


if __name__ == "__main__":
    main()

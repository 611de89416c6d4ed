"""Video under 5% random loss (issue #16): fps and the longest freeze, tcall beside bare aiortc in
one run, for bench/network.py.

The network is tests/support/lossy_link.py's: alice and bob on either side of a router that drops
5% of the UDP it forwards, both ways (media, RTCP, the NACKs and keyframe requests too). alice
sends the test pattern at 640x480, 30 fps, and a tone; bob only receives, and times every decoded
video frame. Both stacks run the same two programs (this file, `--peer`), their offer and answer
over a TCP connection between the hosts:

- tcall: an engine Session at each end (tcall's receive path: engine/media/video_receive.py);
- bare aiortc: two plain RTCPeerConnections, aiortc's own jitter buffer and NACK generator.

bob measures MEASURE_S seconds from WARM_S after his first frame: frames decoded, the longest
gap between two of them (a freeze), and the glass-to-glass delay of the pattern's timecode.
The calls alternate tcall, bare, tcall, bare... so that a busy moment of the machine falls on both.

Also the issue's own case: headless Chromium sending (its fake camera, 640x480 at up to 30 fps) to
tcall's engine with 3% of the UDP to tcall lost, both in a namespace of their own on loopback
(tests/support/browser.py, `chromium_under_loss`): tcall's receive path beside aiortc's own in
the same engine (Session(low_latency=False)), CHROMIUM_S seconds a call. Needs chromium.

    sudo .venv/bin/python bench/network_loss.py [--runs 2] [--codecs vp8,h264]   (prints its rows)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import chromium, chromium_under_loss  # noqa: E402
from tests.support.lossy_link import BOB_IP, Link, loopback_namespace, lossy_link  # noqa: E402
from tests.support.services import stop_process  # noqa: E402

LOSS = 0.05
WARM_S, MEASURE_S = 2.0, 10.0
PORT = 7817
CHROMIUM_LOSS, CHROMIUM_S, TCALL_ADDRESS = 0.03, 10.0, "127.0.0.2"
STACKS = ("tcall", "bare")
REPAIRS = (
    "asked",
    "asked_again",
    "repaired",
    "skipped",
    "keyframe_requests",
)  # summed for the note


# --- one side of a call, run inside a host ------------------------------------------------------


class Watch:
    """bob's clock on the video he decodes."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.latencies: list[tuple[float, float]] = []  # (arrival, glass-to-glass ms)
        self.size = ""

    def frame(self, frame: Any) -> None:
        from tcall.engine.media import timecode
        from tcall.engine.media.sinks import top_luma

        now = time.monotonic()
        self.arrivals.append(now)
        self.size = f"{frame.width}x{frame.height}"
        stamp = timecode.read(top_luma(frame))
        if stamp is not None:
            self.latencies.append((now, timecode.age_ms(stamp)))

    def figures(self, start: float, end: float) -> dict[str, Any]:
        window = [t for t in self.arrivals if start <= t <= end]
        edges = [start, *window, end]
        delays = sorted(ms for t, ms in self.latencies if start <= t <= end)
        return {
            "frames": len(window),
            "fps": round(len(window) / (end - start), 1),
            "freeze_ms": round(1000 * max(b - a for a, b in zip(edges, edges[1:], strict=False))),
            "g2g_p95_ms": round(delays[int(0.95 * len(delays))]) if delays else None,
            "size": self.size,
        }


async def tcall_side(role: str, codec: str, watch: Watch) -> Any:
    from tcall.engine.ice import IceSettings
    from tcall.engine.media.audio import PacedAudioSource, sine_blocks
    from tcall.engine.media.sinks import AudioSink
    from tcall.engine.media.video import PatternSource
    from tcall.engine.session import Session

    sending = role == "caller"
    session = Session(
        ice=IceSettings(),  # host candidates only (TCALL_ICE_ADDRESSES="": the host's own)
        video=PatternSource(640, 480, 30) if sending else None,
        audio=PacedAudioSource("sine", sine_blocks()) if sending else None,
        audio_sink=AudioSink(),
        on_state=lambda state: None,
        codec=codec,
    )
    accept = session.video_sink.accept

    def timed(frame: Any) -> None:
        watch.frame(frame)
        accept(frame)

    session.video_sink.accept = timed  # type: ignore[method-assign]
    return session


async def bare_side(role: str, codec: str, watch: Watch) -> Any:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender
    from aiortc.mediastreams import MediaStreamError

    from tcall.engine.media.audio import PacedAudioSource, sine_blocks
    from tcall.engine.media.tracks import AudioSourceTrack, VideoSourceTrack
    from tcall.engine.media.video import PatternSource

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # host candidates only
    if role == "caller":
        video = pc.addTransceiver(VideoSourceTrack(PatternSource(640, 480, 30)), "sendrecv")
        wanted = {f"video/{codec}", "video/rtx"}
        video.setCodecPreferences(
            [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType.lower() in wanted
            ]
        )
        pc.addTransceiver(AudioSourceTrack(PacedAudioSource("sine", sine_blocks())), "sendrecv")

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def read() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame = await track.recv()
                    if track.kind == "video":
                        watch.frame(frame)

        asyncio.ensure_future(read())

    return pc


async def peer(stack: str, role: str, codec: str) -> None:
    """alice (caller) offers and sends until terminated; bob (callee) answers, measures, prints
    his figures as one JSON line and ends."""
    from aiortc import RTCSessionDescription

    watch = Watch()
    side = await (tcall_side if stack == "tcall" else bare_side)(role, codec, watch)
    if role == "callee":
        ready: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()
        server = await asyncio.start_server(lambda r, w: ready.set_result((r, w)), BOB_IP, PORT)
        print(json.dumps({"ready": True}), flush=True)
        reader, writer = await ready
        offer = json.loads(await reader.readline())["sdp"]
        if stack == "tcall":
            answer = await side.create_answer(offer)
        else:
            await side.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await side.setLocalDescription(await side.createAnswer())
            answer = side.localDescription.sdp
        writer.write(json.dumps({"sdp": answer}).encode() + b"\n")
        await writer.drain()
        server.close()
        deadline = time.monotonic() + 30
        while not watch.arrivals and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not watch.arrivals:
            print(json.dumps({"error": "no video within 30 s"}), flush=True)
            return
        start = watch.arrivals[0] + WARM_S
        await asyncio.sleep(start + MEASURE_S - time.monotonic())
        figures = watch.figures(start, start + MEASURE_S)
        if stack == "tcall":
            from tcall.engine import compat

            counts = compat.aiortc.video_receive_counts(side.pc)
            figures["receive_path"] = None if counts is None else vars(counts)
        print(json.dumps(figures), flush=True)
        writer.close()
    else:
        reader, writer = await asyncio.open_connection(BOB_IP, PORT)
        if stack == "tcall":
            offer = await side.create_offer()
        else:
            await side.setLocalDescription(await side.createOffer())
            offer = side.localDescription.sdp
        writer.write(json.dumps({"sdp": offer}).encode() + b"\n")
        await writer.drain()
        answer = json.loads(await reader.readline())["sdp"]
        if stack == "tcall":
            await side.accept_answer(answer)
        else:
            await side.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await reader.read()  # until bob is done
    await side.close()


# --- the bench, on the host ----------------------------------------------------------------------


def one_call(link: Link, stack: str, codec: str) -> dict[str, Any]:
    env_prefix = ["env", "TCALL_ICE_ADDRESSES="]  # each host offers its own address
    command = [sys.executable, str(Path(__file__)), "--peer", stack]

    def start(host: list[str], role: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*host, *env_prefix, *command, role, codec],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )

    callee = start(link.bob, "callee")
    caller = None
    try:
        assert callee.stdout is not None
        assert json.loads(callee.stdout.readline()).get("ready"), "bob did not start"
        caller = start(link.alice, "caller")
        line = callee.stdout.readline()
        return dict(json.loads(line)) if line else {"error": "bob printed nothing"}
    finally:
        for process in (caller, callee):
            stop_process(process)


def measure(runs: int, codecs: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{codec: {stack: [bob's figures per call]}}"""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        codec: {stack: [] for stack in STACKS} for codec in codecs
    }
    with lossy_link() as link, link.random_loss(LOSS):
        for _ in range(runs):
            for codec in codecs:
                for stack in STACKS:
                    results[codec][stack].append(one_call(link, stack, codec))
    return results


def from_chromium(runs: int, codecs: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{codec: {stack: [tcall's figures per call]}}: Chromium sending through 3% loss."""
    import os

    os.environ["TCALL_ICE_ADDRESSES"] = TCALL_ADDRESS
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        codec: {stack: [] for stack in STACKS} for codec in codecs
    }
    with loopback_namespace() as namespace:
        for _ in range(runs):
            for codec in codecs:
                for stack in STACKS:
                    seen = namespace.run(
                        lambda c=codec, s=stack: chromium_under_loss(
                            namespace, c, TCALL_ADDRESS, CHROMIUM_LOSS, CHROMIUM_S, s == "tcall"
                        )
                    )
                    video = seen.browser["outbound"].get("video", {})
                    results[codec][stack].append(
                        {
                            "fps": round(seen.fps, 1),
                            "freeze_ms": round(1000 * seen.longest_gap),
                            "g2g_p95_ms": None,
                            "size": f"{video.get('frameWidth')}x{video.get('frameHeight')}",
                            "receive_path": None if seen.counts is None else vars(seen.counts),
                        }
                    )
    return results


def summary(calls: list[dict[str, Any]]) -> dict[str, Any] | None:
    good = [c for c in calls if "error" not in c]
    if not good:
        return None
    fps = [c["fps"] for c in good]
    freeze = [c["freeze_ms"] for c in good]
    delay = [c["g2g_p95_ms"] for c in good if c["g2g_p95_ms"] is not None]
    paths = [c["receive_path"] for c in good if c.get("receive_path")]
    return {
        "repairs": {key: sum(p[key] for p in paths) for key in REPAIRS} if paths else None,
        "fps": statistics.median(fps),
        "fps_min": min(fps),
        "freeze": max(freeze),
        "freezes": freeze,
        "g2g_p95": max(delay) if delay else None,
        "size": good[-1]["size"],
        "failed": len(calls) - len(good),
    }


def shown(s: dict[str, Any] | None, key: str, unit: str) -> str:
    if s is None:
        return "no video"
    more = f" (min {s['fps_min']})" if key == "fps" else f" (each: {s['freezes']})"
    failed = f", {s['failed']} calls without video" if s["failed"] else ""
    return f"{s[key]}{unit}{more}{failed}"


def ratio(tcall: dict[str, Any] | None, bare: dict[str, Any] | None, key: str) -> str:
    if tcall is None or bare is None or not bare[key]:
        return "n/a"
    return f"{tcall[key] / bare[key]:.2f}"


def rows(args: argparse.Namespace) -> list[Any]:
    from bench.network import Row  # the driver's; imported here so this module also runs alone

    runs = getattr(args, "runs", 2)
    codecs = getattr(args, "codecs", "vp8,h264").split(",")
    started = time.monotonic()
    results = measure(runs, codecs)
    spent = time.monotonic() - started
    out = []
    for codec in codecs:
        tcall, bare = (summary(results[codec][stack]) for stack in STACKS)

        common = f"{runs} calls each, {MEASURE_S:.0f} s of bob's video; run {spent:.0f} s"
        out += [
            Row(
                figure=f"video fps at 5% loss, {codec.upper()} 640x480@30",
                goal=">= 20",
                tcall=shown(tcall, "fps", " fps"),
                baseline=shown(bare, "fps", " fps"),
                note=f"ratio {ratio(tcall, bare, 'fps')}; median of {common}",
            ),
            Row(
                figure=f"longest freeze at 5% loss, {codec.upper()}",
                goal="<= 300 ms",
                tcall=shown(tcall, "freeze", " ms"),
                baseline=shown(bare, "freeze", " ms"),
                note=(
                    f"ratio {ratio(tcall, bare, 'freeze')}; the longest over {common}; g2g p95 "
                    f"{tcall and tcall['g2g_p95']} ms vs {bare and bare['g2g_p95']} ms; tcall's "
                    f"receive path in all: {tcall and tcall['repairs']}"
                ),
            ),
        ]
    if chromium() is None:
        return out + [
            Row(figure="Chromium to tcall at 3% loss", goal="", tcall="no chromium", baseline="")
        ]
    results = from_chromium(runs, codecs)
    for codec in codecs:
        tcall, bare = (summary(results[codec][stack]) for stack in STACKS)
        out.append(
            Row(
                figure=f"longest freeze, Chromium sending {codec.upper()} at 3% loss",
                goal="<= 300 ms",
                tcall=shown(tcall, "freeze", " ms"),
                baseline=shown(bare, "freeze", " ms")
                + " (aiortc's receive path in tcall's engine)",
                note=(
                    f"ratio {ratio(tcall, bare, 'freeze')}; fps {tcall and tcall['fps']} vs "
                    f"{bare and bare['fps']}; {runs} calls each of {CHROMIUM_S:.0f} s, Chromium at "
                    f"{tcall and tcall['size']}; tcall's receive path in all: "
                    f"{tcall and tcall['repairs']}"
                ),
            )
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--peer", nargs=3, metavar=("STACK", "ROLE", "CODEC"), help=argparse.SUPPRESS
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--codecs", default="vp8,h264")
    args = parser.parse_args(argv)
    if args.peer:
        asyncio.run(peer(*args.peer))
        return
    for row in rows(args):
        print(row)


if __name__ == "__main__":
    main()

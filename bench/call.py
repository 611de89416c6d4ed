"""Call benchmark: tcall's engine beside bare aiortc, same source and codec, in one run.

Each configuration runs in its own process (so CPU time and peak RSS are its own), inside a private
network namespace whose loopback has a second address, 127.0.0.2, that aioice keeps: both sides then
use loopback only, and bare aiortc needs none of tcall's fixes to connect. One sender streams tcall's
pattern source (640x480@30, with its timecode) to one receiver; the receiver reads the timecode back.

Printed per codec: setup ms (offer to first decoded frame), glass-to-glass median and p95, CPU % and
peak RSS, for bare aiortc, tcall with aiortc's jitter buffer, and tcall with the marker-release buffer,
each with its ratio to bare aiortc.

    python bench/call.py [--seconds 10] [--codecs vp8,h264]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

MODES = ("aiortc", "tcall-aiortc-buffer", "tcall")
ADDRESS = "127.0.0.2"


async def _bare_aiortc(codec: str, seconds: float) -> dict[str, Any]:
    from aiortc import (
        MediaStreamTrack,
        RTCConfiguration,
        RTCPeerConnection,
        RTCRtpSender,
        VideoStreamTrack,
    )
    from av import VideoFrame

    from tcall.engine.media import timecode
    from tcall.engine.media.sinks import top_luma
    from tcall.engine.media.video import PatternSource

    class PatternTrack(VideoStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.source = PatternSource(640, 480, 30)

        async def recv(self) -> VideoFrame:
            pixels = await self.source.next_frame()
            pts, time_base = await self.next_timestamp()
            frame = VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            return frame

    latencies: list[float] = []
    first: list[float] = []

    async def consume(track: MediaStreamTrack) -> None:
        while True:
            frame = await track.recv()
            if not first:
                first.append(time.monotonic())
            value = timecode.read(top_luma(frame))
            if value is not None:
                latencies.append(timecode.age_ms(value))

    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver.on("track", lambda track: asyncio.ensure_future(consume(track)))
    start = time.monotonic()
    transceiver = sender.addTransceiver(PatternTrack(), direction="sendonly")
    codecs = RTCRtpSender.getCapabilities("video").codecs
    transceiver.setCodecPreferences(
        [c for c in codecs if c.mimeType.lower() in (f"video/{codec}", "video/rtx")]
    )
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)
    await asyncio.sleep(seconds)
    await sender.close()
    await receiver.close()
    return {"setup_ms": (first[0] - start) * 1000 if first else None, "latencies": latencies}


async def _tcall(codec: str, seconds: float, low_latency: bool) -> dict[str, Any]:
    from tcall.engine.ice import IceSettings
    from tcall.engine.media.video import open_video_source
    from tcall.engine.session import Session

    def ignore(state: str) -> None:
        pass

    start = time.monotonic()
    sender = Session(
        ice=IceSettings(),
        video=open_video_source("pattern"),
        audio=None,
        audio_sink=None,
        on_state=ignore,
        codec=codec,
        receive_video=False,
        receive_audio=False,
        low_latency=low_latency,
    )
    receiver = Session(
        ice=IceSettings(),
        video=None,
        audio=None,
        audio_sink=None,
        on_state=ignore,
        codec=codec,
        low_latency=low_latency,
    )
    answer = await receiver.create_answer(await sender.create_offer())
    await sender.accept_answer(answer)
    await asyncio.sleep(seconds)
    sink = receiver.video_sink
    await sender.close()
    await receiver.close()
    first = sink.first_frame_at
    return {
        "setup_ms": (first - start) * 1000 if first else None,
        "latencies": sink.latencies_ms,
    }


def child(mode: str, codec: str, seconds: float) -> None:
    os.environ["TCALL_ICE_ADDRESSES"] = ADDRESS
    wall, usage = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    if mode == "aiortc":
        result = asyncio.run(_bare_aiortc(codec, seconds))
    else:
        result = asyncio.run(_tcall(codec, seconds, low_latency=mode == "tcall"))
    end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (end.ru_utime - usage.ru_utime) + (end.ru_stime - usage.ru_stime)
    latencies = result.pop("latencies")
    result.update(
        frames=len(latencies),
        latency_median=statistics.median(latencies) if latencies else None,
        latency_p95=sorted(latencies)[int(0.95 * len(latencies))] if latencies else None,
        cpu_percent=100 * cpu / (time.monotonic() - wall),
        rss_mb=end.ru_maxrss / 1024,
    )
    print(json.dumps(result))


def run_child(mode: str, codec: str, seconds: float) -> dict[str, Any]:
    script = (
        f"ip link set lo up && ip addr add {ADDRESS}/8 dev lo && "
        f"exec {sys.executable} {os.path.abspath(__file__)} --child {mode} {codec} {seconds}"
    )
    out = subprocess.run(
        ["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=seconds + 60
    )
    if out.returncode != 0:
        raise SystemExit(f"{mode}/{codec} failed: {out.stderr.strip().splitlines()[-1:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{value / base:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--codecs", default="vp8,h264")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "CODEC", "SECONDS"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], float(args.child[2]))
        return
    keys = (
        ("setup_ms", "setup ms"),
        ("latency_median", "g2g median ms"),
        ("latency_p95", "g2g p95 ms"),
        ("cpu_percent", "CPU %"),
        ("rss_mb", "peak RSS MB"),
    )
    print(f"640x480@30, {args.seconds:g} s per run, loopback ({ADDRESS}) in a private netns")
    for codec in args.codecs.split(","):
        results = {mode: run_child(mode, codec, args.seconds) for mode in MODES}
        base = results["aiortc"]
        print(
            f"\n{codec.upper():<22}"
            + "".join(f"{label:>16}" for _, label in keys)
            + f"{'frames':>8}"
        )
        for mode in MODES:
            row = results[mode]
            cells = "".join(f"{_fmt(row[key]):>16}" for key, _ in keys)
            print(f"{mode:<22}{cells}{row['frames']:>8}")
            if mode != "aiortc":
                ratios = "".join(f"{_ratio(row[key], base[key]):>16}" for key, _ in keys)
                print(f"{'  ratio to aiortc':<22}{ratios}")


if __name__ == "__main__":
    main()

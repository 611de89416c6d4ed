"""A bare aiortc full mesh, the baseline of bench/group.py: one process per member and an
RTCPeerConnection for every other member, each sending the same 320x240@15 pattern and 440 Hz sine
as tcall's group members and decoding every other member's video.

aiortc's way to send one camera to several peers is MediaRelay: each sender gets its own proxy of
the one source track and runs its own encoder (VP8, aiortc's default), so N-1 encodes per captured
frame. The proxies are unbuffered (`buffered=False`: a slow sender takes the newest frame, as a live
camera would, instead of queueing them all). The source is tcall's `VideoSourceTrack` over its
`PatternSource`, which hands out yuv420p frames converted once, so the per-pair cost is aiortc's
encoder alone; nothing of tcall's media path is installed (`tcall.engine.compat` patches only when
asked). Every encode is counted by wrapping `Vp8Encoder.encode`.

Signalling is a line of JSON each way over TCP on 127.0.0.1: every member listens on a port of its
own and says it; told `go` with everyone's ports on stdin, it offers to each member after it in the
list and answers those before it. Member 0 stands for the caller: its `first` lines (go to the
first decoded frame from each other member) are the mesh's join time. ICE gathers 127.0.0.1 only,
as TCALL_ICE_ADDRESSES pins tcall; iceServers is empty, so no STUN server is contacted.

    python bench/group_bare.py --member INDEX SIZE   (run by `bare_mesh`, not by hand)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bare_peers import BarePeer, say  # noqa: E402

HERE = str(Path(__file__).resolve())
WIDTH, HEIGHT, FPS = 320, 240, 15.0  # what tcall sends in a group call (engine/group.py)


# --- one member, in its own process ---------------------------------------------------------------


async def member(index: int, size: int) -> None:
    import aioice.ice
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.codecs import vpx
    from aiortc.contrib.media import MediaRelay
    from aiortc.mediastreams import MediaStreamError

    from tcall.engine.media.audio import PacedAudioSource, sine_blocks
    from tcall.engine.media.tracks import AudioSourceTrack, VideoSourceTrack
    from tcall.engine.media.video import PatternSource

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    encodes = [0]
    lock = threading.Lock()  # the senders encode in the loop's executor threads
    encode = vpx.Vp8Encoder.encode

    def counted(self: Any, frame: Any, force_keyframe: bool = False) -> Any:
        with lock:
            encodes[0] += 1
        return encode(self, frame, force_keyframe)

    vpx.Vp8Encoder.encode = counted  # type: ignore[method-assign]

    camera = VideoSourceTrack(PatternSource(WIDTH, HEIGHT, FPS))
    sine = AudioSourceTrack(PacedAudioSource("sine", sine_blocks()))
    relay = MediaRelay()
    frames: dict[int, int] = {}
    pcs: list[RTCPeerConnection] = []
    # Held here: a task waiting on a stream that only it refers to would be garbage (asyncio's
    # protocols hold their StreamReader weakly), and its offer lost with it.
    tasks: set[asyncio.Future[None]] = set()
    loop = asyncio.get_running_loop()
    go = 0.0

    def peer_connection(other: int) -> RTCPeerConnection:
        pc = RTCPeerConnection()
        pc.addTrack(relay.subscribe(camera, buffered=False))
        pc.addTrack(relay.subscribe(sine, buffered=False))
        pcs.append(pc)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            say(member=other, state=pc.connectionState)

        @pc.on("track")
        def on_track(track: Any) -> None:
            async def read() -> None:
                with contextlib.suppress(MediaStreamError):
                    while True:  # audio is drained, as a player would; video frames are counted
                        await track.recv()
                        if track.kind == "video":
                            frames[other] = frames.get(other, 0) + 1
                            if frames[other] == 1:
                                say(first=other, ms=round((time.monotonic() - go) * 1000, 1))

            tasks.add(asyncio.ensure_future(read()))

        return pc

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        offer = json.loads(await reader.readline())
        pc = peer_connection(offer["from"])
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        writer.write(json.dumps({"sdp": pc.localDescription.sdp}).encode() + b"\n")
        await writer.drain()
        writer.close()

    async def offer(other: int, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        pc = peer_connection(other)
        await pc.setLocalDescription(await pc.createOffer())
        line = {"from": index, "sdp": pc.localDescription.sdp}
        writer.write(json.dumps(line).encode() + b"\n")
        await writer.drain()
        reply = json.loads(await reader.readline())
        await pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    say(port=server.sockets[0].getsockname()[1])
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    ports = json.loads(await stdin.readline())["ports"]
    go = time.monotonic()
    for other in range(index + 1, size):
        tasks.add(asyncio.ensure_future(offer(other, ports[other])))

    async def report() -> None:
        while True:
            await asyncio.sleep(1.0)
            with lock:
                done = encodes[0]
            say(frames=dict(frames), captured=camera.frames_sent, encodes=done)

    reporting = asyncio.ensure_future(report())
    await stdin.read()  # until the benchmark closes our stdin
    reporting.cancel()
    server.close()
    await asyncio.gather(*(pc.close() for pc in pcs))


# --- the mesh, seen from the benchmark -------------------------------------------------------------


class BareMember(BarePeer):
    """One member's process; `lines` holds what it said (`bench/bare_peers.py`'s reader)."""

    def __init__(self, index: int, size: int) -> None:  # its own command line, BarePeer's reader
        self.process = subprocess.Popen(
            [sys.executable, HERE, "--member", str(index), str(size)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        self.lines: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def last(self, key: str, before: float) -> dict[str, Any] | None:
        """The last line with `key` said before `before`."""
        said = [line for line in list(self.lines) if key in line and line["at"] <= before]
        return said[-1] if said else None


class BareMesh:
    """`size` members started and listening; `go()` connects them all at once."""

    def __init__(self, size: int) -> None:
        self.members = [BareMember(index, size) for index in range(size)]

    def ready(self) -> None:
        ports = [m.wait_for("port", timeout=60)["port"] for m in self.members]
        self._go = json.dumps({"ports": ports}) + "\n"

    def go(self) -> None:
        for m in self.members:
            assert m.process.stdin is not None
            m.process.stdin.write(self._go)
            m.process.stdin.flush()

    def first_frames(self, timeout: float) -> None:
        """Wait until every member decoded a frame from every other."""
        deadline = time.monotonic() + timeout
        while any(len(self.firsts(m)) < len(self.members) - 1 for m in self.members):
            if time.monotonic() > deadline:
                seen = [sorted(self.firsts(m)) for m in self.members]
                raise RuntimeError(f"bare mesh: not every member's video came: {seen}")
            time.sleep(0.1)

    @staticmethod
    def firsts(m: BareMember) -> dict[int, float]:
        """Milliseconds from `go` to the first frame from each member, as `m` saw them."""
        return {line["first"]: line["ms"] for line in list(m.lines) if "first" in line}

    def pids(self) -> list[int]:
        return [m.process.pid for m in self.members]

    def window(self, start: float, end: float) -> tuple[list[float], list[float]]:
        """Per pair, the fps `m` decoded from each other member between `start` and `end`; and per
        member, its encodes per captured frame then (from its once-a-second counts)."""
        fps: list[float] = []
        ratios: list[float] = []
        for m in self.members:
            a, b = m.last("frames", start), m.last("frames", end)
            if a is None or b is None or b["at"] <= a["at"]:
                raise RuntimeError("bare mesh: a member stopped reporting")
            span = b["at"] - a["at"]
            others = len(self.members) - 1
            fps += [(b["frames"].get(k, 0) - a["frames"].get(k, 0)) / span for k in b["frames"]]
            fps += [0.0] * (others - len(b["frames"]))
            ratios.append((b["encodes"] - a["encodes"]) / max(1, b["captured"] - a["captured"]))
        return fps, ratios

    def stop(self) -> None:
        for m in self.members:  # stdin closed: each closes its peer connections and exits
            with contextlib.suppress(OSError):
                assert m.process.stdin is not None
                m.process.stdin.close()
        for m in self.members:
            try:
                m.process.wait(10)
            except subprocess.TimeoutExpired:
                m.stop()


@contextlib.contextmanager
def bare_mesh(size: int) -> Iterator[BareMesh]:
    """A mesh of `size` bare aiortc members, started and listening (not yet connected)."""
    mesh = BareMesh(size)
    try:
        mesh.ready()
        yield mesh
    finally:
        mesh.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--member"]:
        asyncio.run(member(int(sys.argv[2]), int(sys.argv[3])))

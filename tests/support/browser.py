"""A standard WebRTC peer for interop tests: headless Chromium with fake camera and microphone, on a
small test page served from 127.0.0.1.

The test makes the offer (aiortc ignores setCodecPreferences when it answers, so the codec is forced
on the offering side) and hands it to `BrowserPeer.answer`; the page, which long-polls GET /offer,
answers with its fake devices' tracks once ICE gathering is complete (no trickle, like tcall) and
POSTs /answer. From then on it POSTs its getStats figures to /stats four times a second;
`BrowserPeer.stats` waits for the next one. Anything the page throws is POSTed to /error and fails
the next wait, with the message and the tail of Chromium's log.

Only loopback is touched: the page passes `iceServers: []`, and the answer keeps only 127.0.0.1
candidates (Chromium also gathers the machine's other interfaces). Chromium forks several processes,
so it runs in a session of its own and its whole process group is killed on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.support.lossy_link import Loopback

CHROMIUM = "chromium"
# The flags that work here (../shared/MACHINE-FACTS.md, "A browser peer"). Without
# --allow-loopback-in-peer-connection Chromium offers no candidates on 127.0.0.1.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream=fps=30",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
)
LOOPBACK = "127.0.0.1"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>tcall browser peer</title></head>
<body><video id="remote" autoplay muted playsinline></video>
<script>
const post = (path, body) => fetch(path, {
  method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
});
const fail = (where, error) => post("/error", {where, message: String((error && error.stack) || error)});
window.addEventListener("error", (event) => fail("window", event.message));
window.addEventListener("unhandledrejection", (event) => fail("promise", event.reason));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("ICE gathering not complete after " + ms + " ms")), ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
    });
  });
}

async function figures(pc) {
  const report = await pc.getStats();
  const mimeTypes = {};
  report.forEach((s) => { if (s.type === "codec") mimeTypes[s.id] = s.mimeType; });
  const out = {connectionState: pc.connectionState, inbound: {}, outbound: {}};
  report.forEach((s) => {
    if (s.type === "inbound-rtp" || s.type === "outbound-rtp") {
      const side = s.type === "inbound-rtp" ? "inbound" : "outbound";
      out[side][s.kind] = Object.assign({}, s, {mimeType: mimeTypes[s.codecId] || null});
    }
  });
  return out;
}

async function main() {
  const stream = await navigator.mediaDevices.getUserMedia(
    {audio: true, video: {width: 640, height: 480, frameRate: 30}});
  const offer = await (await fetch("/offer")).json();  // long poll: the test's offer
  const pc = new RTCPeerConnection({iceServers: []});
  pc.addEventListener("track", (event) => {
    if (event.track.kind === "video") {
      document.getElementById("remote").srcObject = new MediaStream([event.track]);
    }
  });
  await pc.setRemoteDescription({type: "offer", sdp: offer.sdp});
  for (const track of stream.getTracks()) pc.addTrack(track, stream);  // the offer's transceivers
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc, 5000);
  await post("/answer", {sdp: pc.localDescription.sdp});
  for (;;) {
    await post("/stats", await figures(pc));
    await sleep(250);
  }
}
main().catch((error) => fail("main", error));
</script></body></html>
"""


def loopback_only(sdp: str) -> str:
    """`sdp` without candidates on addresses other than 127.0.0.1."""
    lines = sdp.splitlines()
    kept = [
        line for line in lines if not line.startswith("a=candidate:") or line.split()[4] == LOOPBACK
    ]
    return "\r\n".join(kept) + "\r\n"


def candidates(sdp: str) -> list[str]:
    """The addresses of `sdp`'s candidates."""
    return re.findall(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) ", sdp, re.M)


class BrowserPeer:
    """Headless Chromium answering one offer with its fake camera and microphone."""

    def __init__(self, log: Path) -> None:
        self.url = ""
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.errors: list[str] = []
        self.figures: dict[str, Any] | None = None  # the latest getStats figures
        self._offer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._posted = asyncio.Event()  # set at each POST to /stats or /error

    # --- what the page asks --------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def _get_offer(self, request: web.Request) -> web.Response:
        try:
            sdp = await asyncio.wait_for(asyncio.shield(self._offer), 60)
        except TimeoutError:
            return web.Response(status=504, text="no offer within 60 s")
        return web.json_response({"sdp": sdp})

    async def _post_answer(self, request: web.Request) -> web.Response:
        if not self._answer.done():
            self._answer.set_result((await request.json())["sdp"])
        return web.Response(text="ok")

    async def _post_stats(self, request: web.Request) -> web.Response:
        self.figures = await request.json()
        self._posted.set()
        return web.Response(text="ok")

    async def _post_error(self, request: web.Request) -> web.Response:
        error = await request.json()
        self.errors.append(f"{error['where']}: {error['message']}")
        self._posted.set()
        return web.Response(text="ok")

    # --- what the test asks --------------------------------------------------------------

    async def answer(self, offer_sdp: str, timeout: float = 20.0) -> str:
        """Chromium's answer to `offer_sdp` (fully gathered; only loopback candidates kept)."""
        self._offer.set_result(offer_sdp)
        deadline = time.monotonic() + timeout
        while not self._answer.done():
            self._check(f"answering the offer within {timeout:.0f} s", deadline)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._answer), 0.2)
        sdp = loopback_only(self._answer.result())
        assert LOOPBACK in candidates(sdp), self.trouble(
            f"Chromium's answer has no {LOOPBACK} candidate (its addresses: "
            f"{candidates(self._answer.result())})"
        )
        return sdp

    async def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The page's next getStats figures: {connectionState, inbound: {kind: stats},
        outbound: {kind: stats}}, each stats entry with its codec's `mimeType`."""
        deadline = time.monotonic() + timeout
        self._posted.clear()
        while True:
            self._check(f"getStats figures within {timeout:.0f} s", deadline)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._posted.wait(), 0.2)
            if self._posted.is_set() and not self.errors:
                assert self.figures is not None
                return self.figures
            self._posted.clear()

    def _check(self, what: str, deadline: float) -> None:
        assert not self.errors, self.trouble(f"the page failed while {what}")
        assert self.process is not None and self.process.poll() is None, self.trouble(
            f"Chromium exited before {what}"
        )
        assert time.monotonic() < deadline, self.trouble(f"no {what}")

    def trouble(self, problem: str) -> str:
        try:
            log = self.log.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            log = []
        return "\n".join([problem, *(f"page: {e}" for e in self.errors), "chromium:", *log])


def chromium() -> str | None:
    return shutil.which(CHROMIUM)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """End Chromium and every process it forked (its process group): SIGTERM, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            process.poll()  # reap the leader, or it stays in the group as a zombie
            if not _group_alive(process.pid):
                return
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@asynccontextmanager
async def browser_peer() -> AsyncIterator[BrowserPeer]:
    """Serve the test page on a free 127.0.0.1 port and open it in headless Chromium."""
    binary = chromium()
    assert binary, "chromium is not installed (apt-get install chromium)"
    folder = Path(tempfile.mkdtemp(prefix="tcall-chromium-"))
    peer = BrowserPeer(folder / "chromium.log")
    app = web.Application()
    app.router.add_get("/", peer._page)
    app.router.add_get("/offer", peer._get_offer)
    app.router.add_post("/answer", peer._post_answer)
    app.router.add_post("/stats", peer._post_stats)
    app.router.add_post("/error", peer._post_error)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    try:
        sock.bind((LOOPBACK, 0))
        await web.SockSite(runner, sock).start()
        peer.url = f"http://{LOOPBACK}:{sock.getsockname()[1]}/"
        with open(peer.log, "wb") as output:
            peer.process = subprocess.Popen(
                [binary, *FLAGS, f"--user-data-dir={folder / 'profile'}", peer.url],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed whole below
                env={**os.environ, "HOME": str(folder)},
            )
        yield peer
    finally:
        if peer.process is not None:
            await asyncio.get_running_loop().run_in_executor(None, _kill, peer.process)
        await runner.cleanup()
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def dump(figures: dict[str, Any]) -> str:
    """The figures, short enough for an assertion message."""
    return json.dumps(figures, sort_keys=True)[:2000]


# --- keyframes a steady call sends to Chromium (issue #16's keyframe storms) -------------------


async def keyframes_to_chromium(codec: str, seconds: float) -> dict[str, Any]:
    """A call from an in-process Session (pattern video, 640x480 at 30 fps, and a sine) to
    Chromium over loopback, a steady link: from the first frame Chromium decodes, `seconds` of
    call. Returns Chromium's own counts over that span: {"keyframes" (keyFramesDecoded, the first
    one included), "frames" (framesDecoded), "plis" (pliCount, the keyframes it asked for),
    "seconds"}. Whatever encoder aiortc's senders look up (tcall's once compat is installed) is
    what is measured; pass TCALL_ICE_ADDRESSES=127.0.0.1 in the environment."""
    from tcall.engine.ice import IceSettings
    from tcall.engine.media.audio import PacedAudioSource, sine_blocks
    from tcall.engine.media.video import PatternSource
    from tcall.engine.session import Session

    session = Session(
        ice=IceSettings(),  # no STUN or TURN server: loopback only
        video=PatternSource(640, 480, 30),
        audio=PacedAudioSource("sine", sine_blocks()),
        audio_sink=None,
        on_state=lambda state: None,
        codec=codec,
        receive_video=False,
    )
    async with browser_peer() as browser:
        try:
            await session.accept_answer(await browser.answer(await session.create_offer()))
            await session.wait_connected(10)
            deadline = time.monotonic() + 10
            video: dict[str, Any] = {}
            while not video.get("framesDecoded"):
                assert time.monotonic() < deadline, browser.trouble("Chromium decoded no frame")
                video = (await browser.stats())["inbound"].get("video", {})
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                video = (await browser.stats())["inbound"].get("video", video)
            return {
                "keyframes": int(video.get("keyFramesDecoded", 0)),
                "frames": int(video.get("framesDecoded", 0)),
                "plis": int(video.get("pliCount", 0)),
                "seconds": round(time.monotonic() - started, 1),
            }
        finally:
            await session.close()


# --- Chromium sending through loss: what tcall's receive path makes of it ---------------------


@dataclass
class UnderLoss:
    """What tcall saw of Chromium's video and audio while the way to it lost packets."""

    frames: int  # decoded by tcall
    sent: int  # encoded by Chromium meanwhile (give or take its 4 stats a second)
    longest_gap: float
    seconds: float
    audio: dict[str, Any]
    browser: dict[str, Any]
    counts: Any  # the receive path's counts (VideoReceiveBuffer.counts)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


async def chromium_under_loss(
    namespace: Loopback,
    codec: str,
    address: str,
    loss: float,
    seconds: float,
    low_latency: bool = True,
) -> UnderLoss:
    """A call from a Session on `address` to headless Chromium, both in `namespace` (run this
    with `namespace.run`, so that both are inside it), offering `codec`: after a second of video,
    UDP to `address` is lost at `loss` for `seconds`, and every frame tcall decodes meanwhile is
    timed. `low_latency` False: aiortc's own video receive path (a baseline for benchmarks)."""
    from tcall.engine import compat
    from tcall.engine.ice import IceSettings
    from tcall.engine.media.audio import PacedAudioSource, sine_blocks
    from tcall.engine.media.sinks import AudioSink
    from tcall.engine.media.video import PatternSource
    from tcall.engine.session import Session

    arrivals: list[float] = []
    session = Session(
        ice=IceSettings(),  # no STUN or TURN server: loopback only
        video=PatternSource(640, 480, 30),
        audio=PacedAudioSource("sine", sine_blocks()),
        audio_sink=AudioSink(),
        on_state=lambda state: None,
        codec=codec,
        low_latency=low_latency,
    )
    accept = session.video_sink.accept

    def timed(frame: Any) -> None:
        arrivals.append(time.monotonic())
        accept(frame)

    session.video_sink.accept = timed  # type: ignore[method-assign]
    async with browser_peer() as browser:
        try:
            await session.accept_answer(await browser.answer(await session.create_offer()))
            try:
                await session.wait_connected(10)
            except TimeoutError:
                raise AssertionError(browser.trouble("tcall did not connect within 10 s")) from None
            deadline = time.monotonic() + 10
            while len(arrivals) < 30:  # a second of video before the loss
                assert time.monotonic() < deadline, browser.trouble(f"{len(arrivals)} frames")
                await asyncio.sleep(0.1)
            encoded = (await browser.stats())["outbound"]["video"]["framesEncoded"]
            before = session.audio_figures()
            with namespace.random_loss_to(address, loss):
                start = time.monotonic()
                await asyncio.sleep(seconds)
                end = time.monotonic()
            figures = await browser.stats()
            encoded = figures["outbound"]["video"]["framesEncoded"] - encoded
            assert figures["connectionState"] == "connected", dump(figures)
            assert session.pc.connectionState == "connected"
            after = session.audio_figures()
        finally:
            await session.close()
    window = [t for t in arrivals if start <= t <= end]
    gaps = [b - a for a, b in zip([start, *window], [*window, end], strict=True)]
    counts = compat.aiortc.video_receive_counts(session.pc)
    audio = {key: after[key] - before[key] for key in after if isinstance(after[key], int)}
    return UnderLoss(len(window), encoded, max(gaps), end - start, audio, figures, counts)

"""A call with headless Chromium as the far end and 10% random loss on the way to tcall (issue #16),
VP8 and H.264: the call stays up, audio is concealed, and Chromium's video keeps moving at tcall.

tcall's engine (a Session, in this process) and Chromium (tests/support/browser.py) run in a network
namespace of their own with only loopback up (tests/support/lossy_link.py, `loopback_namespace`):
Chromium on 127.0.0.1, tcall on 127.0.0.2, and an iptables rule in the namespace loses 10% of the
UDP sent to 127.0.0.2 (media, RTCP, ICE). Every decoded frame's arrival is timed, so the longest
gap between two frames is measured, not guessed from per-second rates.

The issue saw, at 3% loss, video stall for 0.5-2.5 s whenever a retransmission was lost (aiortc
asked only once), then drain its backlog one frame per packet."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tcall.engine import compat
from tcall.engine.ice import IceSettings
from tcall.engine.media.audio import PacedAudioSource, sine_blocks
from tcall.engine.media.sinks import AudioSink
from tcall.engine.media.video import PatternSource
from tcall.engine.session import Session
from tests.support.browser import browser_peer, chromium, dump
from tests.support.lossy_link import Loopback, loopback_namespace

TCALL_ADDRESS = "127.0.0.2"
LOSS = 0.10
SECONDS = 6.0  # measured under loss, after a second of the call without it
# Chromium sends 640x480 at up to 30 fps, and drops to 480x360 itself when it sees this loss.
# Measured here (load average 2.5-7.6, other tests running), about 10 calls of 6 s per codec: tcall
# decoded 29-30 fps, its longest gap 99-142 ms with VP8 and 70-170 ms with H.264. aiortc's own receive path in the same calls
# (Session(low_latency=False)): VP8 25-26 fps and 500-543 ms, H.264 29.5 fps and 201-334 ms (a gap
# needs a lost retransmission, which some 6 s calls do not have). The bounds leave room for a
# 2-core CI machine running other tests. Chromium lowers its frame rate when the machine is busy
# ("limited by cpu"), so what tcall decoded is also held against what Chromium sent meanwhile.
MIN_FPS = 15
MIN_SHARE = 0.85  # of the frames Chromium encoded in the window, less its stats' timing (8 frames)
MAX_GAP_S = 0.35


@dataclass
class Measured:
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


@pytest.fixture
def namespace() -> Iterator[Loopback]:
    with loopback_namespace() as made:
        yield made


async def lossy_call(namespace: Loopback, codec: str) -> Measured:
    arrivals: list[float] = []
    session = Session(
        ice=IceSettings(),  # no STUN or TURN server: loopback only
        video=PatternSource(640, 480, 30),
        audio=PacedAudioSource("sine", sine_blocks()),
        audio_sink=AudioSink(),
        on_state=lambda state: None,
        codec=codec,
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
            with namespace.random_loss_to(TCALL_ADDRESS, LOSS):
                start = time.monotonic()
                await asyncio.sleep(SECONDS)
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
    return Measured(len(window), encoded, max(gaps), end - start, audio, figures, counts)


@pytest.mark.skipif(
    chromium() is None, reason="chromium is not installed (apt-get install chromium)"
)
@pytest.mark.timeout(90)
@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_ten_percent_loss_from_chromium_keeps_video_moving(
    namespace: Loopback, codec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", TCALL_ADDRESS)
    measured = namespace.run(lambda: lossy_call(namespace, codec))
    sent = measured.browser["outbound"].get("video", {})
    audio = measured.audio
    print(
        f"\n{codec} from Chromium, {LOSS:.0%} lost on the way: {measured.fps:.1f} fps ("
        f"{measured.frames} frames of {measured.sent} sent), longest gap "
        f"{measured.longest_gap * 1000:.0f} ms; receive path {measured.counts}; Chromium sent "
        f"{sent.get('framesEncoded')} frames ({sent.get('frameWidth')}x{sent.get('frameHeight')},"
        f" limited by {sent.get('qualityLimitationReason')}, {sent.get('nackCount')} NACKs, "
        f"{sent.get('pliCount')} PLIs); audio {audio}"
    )
    # The loss was real, and the receive path repaired it.
    assert measured.counts is not None, "the video receiver has no tcall receive path"
    assert measured.counts.asked > 0 and measured.counts.repaired > 0, measured.counts
    # Video keeps moving.
    assert measured.fps >= MIN_FPS, measured
    assert measured.frames >= MIN_SHARE * measured.sent - 8, measured
    assert measured.longest_gap <= MAX_GAP_S, measured
    # Audio went on through it, its losses made up for.
    assert audio["audio_packets_received"] >= 40 * SECONDS, audio
    assert audio["audio_packets_lost"] > 0, audio
    assert audio["audio_fec_recovered"] + audio["audio_concealed"] > 0, audio

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

from collections.abc import Iterator

import pytest

from tests.support.browser import chromium, chromium_under_loss
from tests.support.lossy_link import Loopback, loopback_namespace

TCALL_ADDRESS = "127.0.0.2"
LOSS = 0.10
SECONDS = 6.0  # measured under loss, after a second of the call without it
# Chromium sends 640x480 at up to 30 fps, and drops to 480x360 itself when it sees this loss.
# Measured here (load average 2.5-7.6, other tests running), about 10 calls of 6 s per codec: tcall
# decoded 29-30 fps, its longest gap 99-142 ms with VP8 and 70-170 ms with H.264. aiortc's own
# receive path in the same calls (Session(low_latency=False)): VP8 25-26 fps and 500-543 ms, H.264
# 29.5 fps and 201-334 ms (a gap needs a lost retransmission, which some 6 s calls do not have). The bounds leave room for a
# 2-core CI machine running other tests. Chromium lowers its frame rate when the machine is busy
# ("limited by cpu"), so what tcall decoded is also held against what Chromium sent meanwhile.
MIN_FPS = 15
MIN_SHARE = 0.85  # of the frames Chromium encoded in the window, less its stats' timing (8 frames)
MAX_GAP_S = 0.35


@pytest.fixture
def namespace() -> Iterator[Loopback]:
    with loopback_namespace() as made:
        yield made


@pytest.mark.skipif(
    chromium() is None, reason="chromium is not installed (apt-get install chromium)"
)
# Alone on the machine: the longest gap is timed, and beside another worker's calls a CI run once
# measured 578 ms with every lost packet repaired at its first ask (no PLI, nothing skipped):
# the machine's load, not the receive path, which this test is for.
@pytest.mark.alone
@pytest.mark.timeout(90)
@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_ten_percent_loss_from_chromium_keeps_video_moving(
    namespace: Loopback, codec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", TCALL_ADDRESS)
    measured = namespace.run(
        lambda: chromium_under_loss(namespace, codec, TCALL_ADDRESS, LOSS, SECONDS)
    )
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
    # Chromium sends RED (engine/media/red.py): a lost packet may come back whole from a copy.
    made_up = audio["audio_red_recovered"] + audio["audio_fec_recovered"] + audio["audio_concealed"]
    assert made_up > 0, audio

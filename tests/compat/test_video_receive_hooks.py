"""tcall's video receive path inside a real aiortc call (two Sessions on loopback), with packets lost
on purpose below aiortc, at the receiver's ICE connection: a retransmission that is itself lost is
asked for again by the timer (aiortc asked once, then only when another gap appeared), and a packet
that never comes is skipped with a keyframe request, after which the video goes on (from the
keyframe, which the receive path must tell apart: VP8 and H.264)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tcall.engine import compat
from tcall.engine.ice import IceSettings
from tcall.engine.media.video import PatternSource
from tcall.engine.media.video_receive import Counts
from tcall.engine.session import Session


@dataclass
class Dropper:
    """Loses chosen RTP packets arriving at a session (SRTP keeps the header in clear text)."""

    video: int  # payload types, from the SDP
    rtx: int
    lose_next_video: int = 0  # the next N original video packets
    lose_rtx: int = 0  # the next N retransmissions
    lost: list[str] = field(default_factory=list)

    def wants(self, data: bytes) -> bool:
        if len(data) < 12 or data[0] >> 6 != 2 or 72 <= data[1] & 0x7F <= 76:  # not RTP, or RTCP
            return False
        payload_type = data[1] & 0x7F
        if payload_type == self.video and self.lose_next_video:
            self.lose_next_video -= 1
            self.lost.append("video")
            return True
        if payload_type == self.rtx and self.lose_rtx and "video" in self.lost:
            self.lose_rtx -= 1
            self.lost.append("rtx")
            return True
        return False


def payload_type(sdp: str, name: str) -> int:
    found = re.search(rf"^a=rtpmap:(\d+) {name}/90000", sdp, re.M | re.I)
    assert found, f"no {name} in the SDP"
    return int(found.group(1))


@dataclass
class Call:
    sender: Session
    receiver: Session
    dropper: Dropper

    @property
    def counts(self) -> Counts:
        counts = compat.aiortc.video_receive_counts(self.receiver.pc)
        assert counts is not None
        return counts


@pytest.fixture(params=["vp8", "h264"])
async def call(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Call]:
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1")
    codec = request.param
    sender = Session(
        ice=IceSettings(),
        video=PatternSource(320, 240, 30),
        audio=None,
        audio_sink=None,
        on_state=lambda state: None,
        receive_audio=False,
        codec=codec,
    )
    receiver = Session(
        ice=IceSettings(),
        video=None,
        audio=None,
        audio_sink=None,
        on_state=lambda state: None,
        receive_audio=False,
        codec=codec,
    )
    try:
        offer = await sender.create_offer()
        answer = await receiver.create_answer(offer)
        await sender.accept_answer(answer)
        await asyncio.gather(sender.wait_connected(10), receiver.wait_connected(10))
        deadline = time.monotonic() + 10
        while receiver.video_sink.frames_received < 15:
            assert time.monotonic() < deadline, "no video"
            await asyncio.sleep(0.05)
        connection = compat.aiortc.ice_connection(receiver.pc)
        assert connection is not None
        dropper = Dropper(payload_type(answer, codec), payload_type(answer, "rtx"))
        deliver = connection.data_received

        def maybe_lose(data: bytes, component: int) -> None:
            if not dropper.wants(data):
                deliver(data, component)

        connection.data_received = maybe_lose  # type: ignore[method-assign]
        yield Call(sender, receiver, dropper)
    finally:
        await sender.close()
        await receiver.close()


@pytest.mark.timeout(30)
async def test_a_lost_retransmission_is_asked_for_again_and_the_frame_completes(
    call: Call,
) -> None:
    before = Counts(**vars(call.counts))
    call.dropper.lose_next_video, call.dropper.lose_rtx = 1, 1
    frames = call.receiver.video_sink.frames_received
    deadline = time.monotonic() + 10  # bounded; about 0.2 s on a quiet machine
    while time.monotonic() < deadline and not (
        call.counts.repaired > before.repaired
        and call.receiver.video_sink.frames_received >= frames + 15
    ):
        await asyncio.sleep(0.05)
    after = call.counts
    assert call.dropper.lost == ["video", "rtx"]
    assert after.asked_again > before.asked_again, after  # the timer asked again
    assert after.repaired > before.repaired, after  # and the second retransmission came
    assert after.skipped == before.skipped and after.keyframe_requests == before.keyframe_requests
    moved = call.receiver.video_sink.frames_received - frames
    assert moved >= 15, f"{moved} frames after the loss"


@pytest.mark.timeout(30)
async def test_a_packet_that_never_comes_is_skipped_for_a_keyframe(call: Call) -> None:
    before = Counts(**vars(call.counts))
    call.dropper.lose_next_video, call.dropper.lose_rtx = 1, 100  # every retransmission lost
    arrivals: list[float] = []
    sink = call.receiver.video_sink
    accept = sink.accept

    def timed(frame: object) -> None:
        arrivals.append(time.monotonic())
        accept(frame)

    sink.accept = timed  # type: ignore[method-assign]
    start = time.monotonic()
    skipped_at = None
    while time.monotonic() - start < 15:  # bounded; about 0.5 s on a quiet machine
        await asyncio.sleep(0.05)
        if skipped_at is None and call.counts.skipped > before.skipped:
            skipped_at = time.monotonic()
        if skipped_at is not None and sum(t > skipped_at for t in arrivals) >= 10:
            break
    after = call.counts
    assert after.skipped == before.skipped + 1, after
    assert after.keyframe_requests > before.keyframe_requests, after
    assert after.asked_again >= before.asked_again + 2, after  # MAX_ASKS asks in all
    # Decoding went on from the keyframe: ten frames after the skip, and the longest gap about
    # the asks plus a keyframe (retry 20-200 ms, three asks, a frame interval; a loaded machine).
    assert skipped_at is not None and sum(t > skipped_at for t in arrivals) >= 10, arrivals
    edges = [start, *arrivals]
    gap = max(b - a for a, b in zip(edges, edges[1:], strict=False))
    assert gap < 1.0, (len(arrivals), gap)

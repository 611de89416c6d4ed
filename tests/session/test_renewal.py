"""A fresh peer connection takes over a call in progress (issue #16): two real Sessions on loopback
set one up beside the first (renew_offer, renew_answer, accept_renewed_answer); when it connects,
video and audio go on over it, the first connection closes, and the camera and microphone keep
running (closing the old connection must not stop them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

import pytest
from av import AudioFrame

from tcall.engine import compat
from tcall.engine.ice import IceSettings
from tcall.engine.media.audio import PacedAudioSource
from tcall.engine.media.sinks import AudioSink
from tcall.engine.media.video import open_video_source
from tcall.engine.session import Session
from tests.support.voice import speaking


class Recorder(AudioSink):
    def __init__(self) -> None:
        self.samples = 0

    def play(self, frame: AudioFrame) -> None:
        self.samples += frame.samples


def session(states: list[str], sink: AudioSink | None, talking: bool) -> Session:
    return Session(
        ice=IceSettings(),
        video=open_video_source("pattern", 160, 120),
        audio=PacedAudioSource("voice", speaking()) if talking else None,
        audio_sink=sink,
        on_state=states.append,
    )


@contextlib.asynccontextmanager
async def connected(caller: Session, callee: Session) -> AsyncIterator[None]:
    """The first connection between them is up for the block; both are closed after it."""
    try:
        await caller.accept_answer(await callee.create_answer(await caller.create_offer()))
        await asyncio.gather(caller.wait_connected(10), callee.wait_connected(10))
        yield
    finally:
        await caller.close()
        await callee.close()


async def until(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.05)


@pytest.mark.timeout(60)
async def test_a_fresh_connection_takes_over_and_media_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1")
    caller_states: list[str] = []
    callee_states: list[str] = []
    recorder = Recorder()
    caller = session(caller_states, None, talking=True)
    callee = session(callee_states, recorder, talking=False)
    async with connected(caller, callee):
        await until(lambda: callee.video_sink.frames_received >= 10 and recorder.samples, 10)
        first_pc, frames_before = caller.pc, callee.video_sink.frames_received
        await callee.stats()  # the figures' first interval
        counted_before = callee.packets_received()

        offer = await caller.renew_offer(1)
        answer = await callee.renew_answer(offer, 1)
        await caller.accept_renewed_answer(answer, 1)
        await until(lambda: caller.pc is not first_pc and callee.video_sink.frames_received, 10)

        assert caller.pc is not first_pc
        assert caller_states.count("connected") == 2  # the take-over is reported as connected
        assert "closed" not in caller_states and "failed" not in caller_states
        played_at_take_over = recorder.samples
        await until(lambda: callee.video_sink.frames_received >= frames_before + 30, 10)
        await asyncio.sleep(1.0)
        assert first_pc.connectionState == "closed"
        figures = await callee.stats()  # one interval across the take-over: no jump in any rate
        assert 0 < figures["fps_received"] <= 40 and figures["kbps_received"] >= 0
        assert callee.video_sink.frames_received >= frames_before + 30  # video over the fresh one
        assert recorder.samples - played_at_take_over >= 0.8 * 48000  # a second of audio goes on
        # The fresh connection carries it: what it received counts on top of the old one's.
        assert compat.aiortc.packets_received(callee.pc) > 0
        assert callee.packets_received() > counted_before
        # Our sources were handed over, not stopped with the old connection.
        assert caller.video_track is not None and caller.video_track.readyState == "live"
        assert caller.audio_track is not None and caller.audio_track.readyState == "live"
        assert caller.speech_encoder is not None


@pytest.mark.timeout(60)
async def test_a_late_answer_to_an_abandoned_attempt_is_not_applied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1")
    caller = session([], None, talking=False)
    callee = session([], None, talking=False)
    async with connected(caller, callee):
        first_pc = caller.pc
        stale_offer = await caller.renew_offer(1)
        offer = await caller.renew_offer(2)  # attempt 1 given up
        stale_answer = await callee.renew_answer(stale_offer, 1)
        await caller.accept_renewed_answer(stale_answer, 1)  # ignored: not the attempt under way
        answer = await callee.renew_answer(offer, 2)
        await caller.accept_renewed_answer(answer, 2)
        await until(lambda: caller.pc is not first_pc, 10)
        assert caller.pc is not first_pc


@pytest.mark.timeout(90)
async def test_a_flood_of_re_offers_holds_one_fresh_connection_and_the_call_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A peer can re-offer as fast as the relay lets it: each re-offer replaces the fresh
    connection being set up (at most one per call), so sockets do not pile up."""
    monkeypatch.setenv("TCALL_ICE_ADDRESSES", "127.0.0.1")
    caller = session([], None, talking=False)
    callee = session([], None, talking=False)
    async with connected(caller, callee):
        first_pc = callee.pc
        await asyncio.sleep(0.5)
        descriptors = len(os.listdir("/proc/self/fd"))
        for attempt in range(1, 41):
            offer = await caller.renew_offer(attempt)
            await callee.renew_answer(offer, attempt)  # never applied: never takes over
        await asyncio.sleep(1.0)  # the replaced connections finish closing
        assert len(os.listdir("/proc/self/fd")) - descriptors <= 12  # one fresh one per side
        frames = callee.video_sink.frames_received
        await until(lambda: callee.video_sink.frames_received >= frames + 15, 10)
        assert callee.pc is first_pc and callee.video_sink.frames_received >= frames + 15

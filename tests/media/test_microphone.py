"""The microphone source, driven through MicSource._callback as PortAudio would call it: 5 ms
device blocks become 20 ms blocks in order, and a device that dies leaves a notice and silence."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tcall.engine.media import audio
from tcall.engine.media.audio import BLOCK, MicSource

DEVICE = 240


class FakeStream:
    def stop(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


@pytest.fixture(autouse=True)
def no_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio, "list_devices", lambda kind: [{"name": "fake"}])
    monkeypatch.setattr(audio, "start_stream", lambda *args, **kwargs: FakeStream())
    monkeypatch.setattr(audio, "close_quietly", lambda stream: None)


def feed(mic: MicSource, samples: np.ndarray) -> None:
    for start in range(0, len(samples), DEVICE):
        mic._callback(samples[start : start + DEVICE].reshape(-1, 1), DEVICE, None, None)


async def test_device_blocks_are_gathered_into_20_ms_blocks_in_order() -> None:
    mic = MicSource(None)
    samples = np.arange(3 * BLOCK + DEVICE, dtype=np.int16)
    feed(mic, samples)
    blocks = [await asyncio.wait_for(mic.next_block(), 1) for _ in range(3)]
    assert np.array_equal(np.concatenate(blocks), samples[: 3 * BLOCK])
    assert mic._queue.empty()  # the last 5 ms wait for the rest of their block
    mic.stop()


async def test_a_dead_device_is_told_once_and_the_call_gets_silence() -> None:
    notices: list[str] = []
    mic = MicSource(None, notices.append)
    feed(mic, np.ones(BLOCK, dtype=np.int16))
    assert (await asyncio.wait_for(mic.next_block(), 1)).all()
    waiting = asyncio.ensure_future(mic.next_block())  # a reader waiting when the device dies
    await asyncio.sleep(0)
    mic._watch.finished()
    mic._watch.finished()
    block = await asyncio.wait_for(waiting, 1)
    assert block.shape == (BLOCK,) and not block.any()
    assert not (await asyncio.wait_for(mic.next_block(), 1)).any()
    assert notices == [
        "the microphone stopped (the audio system closed it): the call goes on, sending silence"
    ]
    mic.stop()


async def test_a_stream_that_stops_calling_back_counts_as_dead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notices: list[str] = []
    monkeypatch.setattr(audio.StreamWatch, "STALL_SECONDS", 0.05)
    mic = MicSource(None, notices.append)
    mic._watch.beats = mic._watch.STEADY_BEATS  # it had been running steadily
    mic._watch.last_beat = 0.0  # and then nothing came
    await asyncio.sleep(0.2)
    assert notices and "no audio for 0.05 s" in notices[0]
    mic.stop()

"""The speaker's playout buffer, driven through SpeakerSink._callback as PortAudio would call it,
with no device: what comes out for steady frames, a stall, a burst, a concealer and a listener."""

from __future__ import annotations

import fractions
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from av import AudioFrame

from tcall.engine.media import playout, sinks
from tcall.engine.media.playout import MS, Playout, pitch_period
from tcall.engine.media.sinks import SpeakerSink

RATE = 48000
FRAME = 960  # what the network side hands over: 20 ms
DEVICE = 240  # what the device asks for: 5 ms
OK = SimpleNamespace(output_underflow=False)


class FakeStream:
    def stop(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> SpeakerSink:
    monkeypatch.setattr(sinks, "start_stream", lambda *args, **kwargs: FakeStream())
    return SpeakerSink()


def voice(seconds: float, pitch: float = 180.0) -> np.ndarray:
    """A voiced sound: a pitch and two harmonics, like a vowel."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in (1, 2, 3))
    return (wave * 9000).astype(np.int16)


def frames(samples: np.ndarray) -> Iterator[AudioFrame]:
    for index in range(0, len(samples) - FRAME + 1, FRAME):
        frame = AudioFrame.from_ndarray(
            samples[index : index + FRAME].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = RATE, index
        frame.time_base = fractions.Fraction(1, RATE)
        yield frame


def pull(sink: SpeakerSink, blocks: int = 1) -> np.ndarray:
    """What the device plays in `blocks` callbacks."""
    out = []
    for _ in range(blocks):
        outdata = np.full((DEVICE, 1), -1, dtype=np.int16)
        sink._callback(outdata, DEVICE, None, OK)
        out.append(outdata[:, 0].copy())
    return np.concatenate(out)


def steady(sink: SpeakerSink, samples: np.ndarray) -> np.ndarray:
    """Frames arriving on time: one frame, then the device takes a frame's worth."""
    played = [pull(sink, FRAME // DEVICE) for frame in frames(samples) if sink.play(frame) is None]
    return np.concatenate(played)


def test_silence_before_the_first_frame_then_the_frames_exactly(sink: SpeakerSink) -> None:
    assert not pull(sink, 8).any()  # nothing came yet: silence, and no stall counted
    speech = voice(1.0)
    assert np.array_equal(steady(sink, speech), speech)
    assert sink.underruns == 0 and sink.playout.concealed == 0


def test_a_stall_is_concealed_by_the_last_pitch_period_fading_out(sink: SpeakerSink) -> None:
    speech = voice(0.4)
    steady(sink, speech)
    gap = pull(sink, 12)  # 60 ms with nothing buffered
    assert sink.underruns == 1
    # The first 10 ms continue the voice: what it would have been, near enough.
    expected = voice(0.41)[len(speech) : len(speech) + 10 * MS]
    similarity = np.corrcoef(gap[: 10 * MS], expected)[0, 1]
    assert similarity > 0.9
    assert abs(int(gap[0]) - int(speech[-1])) < 3000  # no click where the audio ran out
    assert np.abs(gap[-10 * MS :]).max() == 0  # and it has faded out by 40 ms
    assert sink.playout.concealed == 12 * DEVICE


def test_a_concealer_is_asked_for_exactly_the_missing_samples(sink: SpeakerSink) -> None:
    asked: list[int] = []

    def conceal(count: int) -> np.ndarray:
        asked.append(count)
        return np.full(count, 1234, dtype=np.int16)

    sink.conceal = conceal
    steady(sink, voice(0.1))
    sink.play(next(frames(voice(0.1))))
    out = pull(sink, 6)  # 4 blocks of audio, then 2 of concealment
    assert asked == [DEVICE, DEVICE]
    assert (out[FRAME:] == 1234).all()


def test_a_failing_concealer_falls_back_to_repeating_the_voice(sink: SpeakerSink) -> None:
    def broken(count: int) -> np.ndarray:
        raise RuntimeError("decoder gone")

    sink.conceal = broken
    steady(sink, voice(0.2))
    gap = pull(sink, 2)  # must not raise on PortAudio's thread
    assert np.abs(gap).max() > 1000
    assert sink.conceal is None


def test_audio_after_a_stall_fades_in_from_the_concealment(sink: SpeakerSink) -> None:
    speech = voice(0.4)
    steady(sink, speech)
    gap = pull(sink, 3)  # a 15 ms stall
    # What comes next need not continue the repeated period: here it is the voice, shifted.
    after = steady(sink, voice(0.4)[100:8740])
    join = np.concatenate([gap[-20:], after[:200]]).astype(np.int32)
    steepest = np.abs(np.diff(speech.astype(np.int32))).max()
    assert np.abs(np.diff(join)).max() <= steepest * 1.5


def test_a_burst_drains_back_to_the_target_without_a_stall(sink: SpeakerSink) -> None:
    speech = voice(3.0)
    chunks = list(frames(speech))
    steady_part = chunks[:25]
    for frame in steady_part:
        sink.play(frame)
        pull(sink, 4)
    for frame in chunks[25:35]:  # a 200 ms burst: ten frames at once
        sink.play(frame)
    deepest = sink.playout.buffered
    assert deepest >= 10 * FRAME
    lows = []
    for frame in chunks[35:]:
        sink.play(frame)
        pull(sink, 4)
        lows.append(sink.playout.buffered)  # what is left just before the next frame
    assert sink.underruns == 0
    assert sink.playout.drained >= deepest - FRAME - Playout.TARGET_MAX
    # After 2 s, the margin is back to the target plus the slack.
    assert max(lows[-25:]) <= sink.playout.target + Playout.DRAIN_SLACK + MS


def test_the_buffer_never_holds_more_than_its_bound(sink: SpeakerSink) -> None:
    for frame in frames(voice(1.0)):
        sink.play(frame)
    assert sink.playout.buffered <= Playout.MAX_BUFFERED
    assert sink.playout.dropped > 0


def test_unread_audio_keeps_its_first_bound_and_a_playing_buffer_its_newest() -> None:
    unread, playing = Playout(), Playout()
    out = np.zeros(960, dtype=np.int16)
    playing.write(np.full(960, -1, dtype=np.int16))
    playing.read(out)  # the device has started
    for index in range(50):  # one second of numbered frames, each 20 ms
        block = np.full(960, index, dtype=np.int16)
        unread.write(block)
        playing.write(block)
    # Nobody plays `unread` (a group call with no speaker): its first 300 ms stay, the rest is
    # dropped uncut. A playing buffer drops its oldest audio instead, so what plays next is recent.
    assert unread.buffered == Playout.MAX_BUFFERED
    assert unread.dropped == 50 * 960 - Playout.MAX_BUFFERED
    unread.read(out)
    assert (out == 0).all()
    assert playing.buffered <= Playout.MAX_BUFFERED
    playing.read(out)  # cross-faded from the oldest kept into the next, as any overflow cut is
    playing.read(out)
    assert out.min() >= 50 - Playout.MAX_BUFFERED // 960 - 1


def test_on_played_hears_exactly_what_the_device_got(sink: SpeakerSink) -> None:
    heard: list[np.ndarray] = []
    sink.on_played = heard.append
    speech = voice(0.2)
    played = steady(sink, speech)
    assert all(block.dtype == np.int16 and len(block) == DEVICE for block in heard)
    assert np.array_equal(np.concatenate(heard), played)
    outdata = np.zeros((DEVICE, 1), dtype=np.int16)
    sink.play(next(frames(speech)))
    sink._callback(outdata, DEVICE, None, OK)
    outdata.fill(7)  # PortAudio reuses its buffer: what the listener got must not change
    assert np.array_equal(heard[-1], speech[:DEVICE])
    pull(sink, 5)  # the stall's concealment is what the speaker sounds: the reference too
    assert np.array_equal(np.concatenate(heard)[-480:], sink.playout._history[-480:])


def test_a_failing_listener_is_dropped_and_playback_goes_on(sink: SpeakerSink) -> None:
    def broken(samples: np.ndarray) -> None:
        raise ValueError("listener bug")

    sink.on_played = broken
    speech = voice(0.1)
    assert np.array_equal(steady(sink, speech), speech)
    assert sink.on_played is None


def test_a_stereo_frame_is_played_as_mono(sink: SpeakerSink) -> None:
    left = voice(0.02)
    both = np.stack([left, np.zeros_like(left)]).T.reshape(1, -1)
    frame = AudioFrame.from_ndarray(both, format="s16", layout="stereo")
    frame.sample_rate = RATE
    sink.play(frame)
    assert np.array_equal(pull(sink, 4), (left / 2).astype(np.int16))


@pytest.mark.parametrize("period", [120, 267, 480, 700])
def test_pitch_period_finds_the_period_of_a_voice(period: int) -> None:
    found, score = pitch_period(voice(0.05, RATE / period), playout.MIN_PERIOD, playout.MAX_PERIOD)
    assert score > 0.95
    assert found % period in (0, 1, period - 1)  # the period or a multiple of it


def test_the_device_losing_its_stream_is_told_once_and_audio_is_discarded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    notices: list[str] = []

    async def scenario() -> Any:
        monkeypatch.setattr(sinks, "start_stream", lambda *args, **kwargs: FakeStream())
        monkeypatch.setattr(sinks, "close_quietly", lambda stream: None)
        sink = SpeakerSink(None, notices.append)
        sink._watch.finished()  # what PortAudio does when PulseAudio dies
        sink._watch.finished()
        await asyncio.sleep(0.01)
        for frame in frames(voice(0.1)):
            sink.play(frame)
        await sink.stop()
        return sink

    sink = asyncio.run(scenario())
    assert notices == [
        "the speaker stopped (the audio system closed it): the call goes on without sound"
    ]
    assert sink.playout.buffered == 0


def test_a_device_that_underflows_is_reopened_one_latency_step_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[Any] = []

    def start_stream(*args: Any, **kwargs: Any) -> FakeStream:
        opened.append(args[-1])  # the latency asked for
        return FakeStream()

    monkeypatch.setattr(sinks, "start_stream", start_stream)
    monkeypatch.setattr(sinks, "close_quietly", lambda stream: None)
    sink = SpeakerSink()
    sink._judge_from = time.monotonic() - 1  # past its first second
    chunks = frames(voice(0.2))
    underflow = SimpleNamespace(output_underflow=True)
    for _ in range(SpeakerSink.UNDERFLOWS_TO_STEP - 1):
        sink._callback(np.zeros((DEVICE, 1), np.int16), DEVICE, None, underflow)
    sink.play(next(chunks))
    assert len(opened) == 1  # two underflows are not enough
    sink._callback(np.zeros((DEVICE, 1), np.int16), DEVICE, None, underflow)
    sink.play(next(chunks))
    for _ in range(100):
        if len(opened) == 2:
            break
        time.sleep(0.01)
    assert opened == [sinks.sound.OUTPUT_LATENCIES[0], sinks.sound.OUTPUT_LATENCIES[1]]
    assert sink.latency_step == 1 and sink.figures()["device_latency"] == opened[1]


def test_a_steady_speaker_opens_at_the_top_of_the_ladder_and_stays_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[Any] = []

    def start_stream(*args: Any, **kwargs: Any) -> FakeStream:
        opened.append(args[-1])
        return FakeStream()

    monkeypatch.setattr(sinks, "start_stream", start_stream)
    sink = SpeakerSink(steady=True)
    sink._judge_from = time.monotonic() - 1
    underflow = SimpleNamespace(output_underflow=True)
    for _ in range(SpeakerSink.UNDERFLOWS_TO_STEP + 1):
        sink._callback(np.zeros((DEVICE, 1), np.int16), DEVICE, None, underflow)
    sink.play(next(frames(voice(0.1))))
    time.sleep(0.05)
    assert opened == [sinks.sound.OUTPUT_LATENCIES[-1]]
    assert sink.figures()["device_latency"] == sinks.sound.OUTPUT_LATENCIES[-1]


def test_the_old_stream_plays_on_until_the_new_one_has_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step up the latency ladder that takes long to open (a loaded machine) leaves no hole:
    the old stream plays the buffer until the new one runs, then goes quiet as it closes."""
    callbacks: list[Any] = []
    opening = threading.Event()
    release = threading.Event()

    def start_stream(*args: Any, **kwargs: Any) -> FakeStream:
        callbacks.append(args[2])
        if len(callbacks) == 2:
            opening.set()
            release.wait(5)  # the slow open of the second stream
        return FakeStream()

    monkeypatch.setattr(sinks, "start_stream", start_stream)
    monkeypatch.setattr(sinks, "close_quietly", lambda stream: None)
    sink = SpeakerSink()
    sink._judge_from = time.monotonic() - 1
    underflow = SimpleNamespace(output_underflow=True)
    fine = SimpleNamespace(output_underflow=False)
    for _ in range(SpeakerSink.UNDERFLOWS_TO_STEP):
        sink._callback(np.zeros((DEVICE, 1), np.int16), DEVICE, None, underflow)
    chunks = frames(voice(0.4))
    sink.play(next(chunks))
    assert opening.wait(5)
    for _ in range(4):
        sink.play(next(chunks))
    out = np.zeros((DEVICE, 1), np.int16)
    callbacks[0](out, DEVICE, None, fine)  # the old stream, while the new one opens
    assert np.abs(out).max() > 1000
    release.set()
    for _ in range(100):
        if (
            sink.figures()["device_latency"] == sinks.sound.OUTPUT_LATENCIES[1]
            and sink._generation == 2
        ):
            break
        time.sleep(0.01)
    old, new = np.ones((DEVICE, 1), np.int16), np.zeros((DEVICE, 1), np.int16)
    callbacks[0](old, DEVICE, None, fine)
    callbacks[1](new, DEVICE, None, fine)
    assert not old.any() and np.abs(new).max() > 1000

"""Where received media goes: a latest-frame video sink and speaker playback (or a null sink)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from tcall.engine.errors import DeviceError
from tcall.engine.media import sound, timecode
from tcall.engine.media.audio import SAMPLE_RATE, Notify
from tcall.engine.media.handle import VideoHandle
from tcall.engine.media.levels import SILENCE_DB
from tcall.engine.media.playout import Conceal, Mix, Playout
from tcall.engine.media.sound import StreamWatch, close_quietly, list_devices, start_stream


class LatestFrameSink:
    """Where decoded video goes: counted, measured, and handed to a watching viewer, whose handle
    keeps only the newest; nothing is ever queued.

    When the sender is tcall's pattern source, each frame's timecode gives its glass-to-glass latency.
    Frames are converted to RGB only while a viewer watches (`viewer`), on the engine's thread.
    """

    def __init__(self) -> None:
        self.frames_received = 0
        self.first_frame_at: float | None = None  # time.monotonic()
        self.latencies_ms: list[float] = []
        self.width = 0
        self.height = 0
        self.allowed = True  # False: the user has not agreed to see the peer's video yet
        self.viewer: VideoHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def consume(self, track: MediaStreamTrack) -> None:
        """Read `track` until it ends. A renewed call's fresh connection brings a second track
        while the first may still deliver: both feed this sink until the old one ends."""
        task = asyncio.ensure_future(self._run(track))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                self.accept(await track.recv())

    def accept(self, frame: Any) -> None:
        if not self.allowed:
            return  # withheld: the user has not agreed to see it
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
        self.frames_received += 1
        self.width, self.height = frame.width, frame.height
        if self.viewer is not None and self.viewer.watching:
            self.viewer.publish(to_rgb(frame, self.viewer.fit))
        stamp = timecode.read(top_luma(frame))
        if stamp is not None:
            self.latencies_ms.append(timecode.age_ms(stamp))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def to_rgb(frame: VideoFrame, box: tuple[int, int] | None = None) -> np.ndarray:
    """The frame as H×W×3 RGB; with a `box` (width, height in pixels), scaled to fit inside it.

    A yuv420p frame is converted by OpenCV (a third of the time of libswscale, which also sets up
    a new context for every frame that comes out of the decoder). With a box smaller than half
    the frame, the planes are scaled down first, by halvings and a last bilinear step as the
    terminal renderers scale RGB (tui/render/fit.py), and only the pixels left are converted:
    the picture for a 160x48 half-block view costs a fraction of converting the whole frame,
    and the UI has nothing left to scale.
    """
    if frame.format.name not in ("yuv420p", "yuvj420p") or frame.width % 2 or frame.height % 2:
        rgb: np.ndarray = frame.to_ndarray(format="rgb24")
        return rgb if box is None else _shrink(rgb, *_fit(rgb.shape[1], rgb.shape[0], *box))
    width, height = frame.width, frame.height
    y, u, v = (
        np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
        for plane in frame.planes
    )
    y, u, v = y[:height, :width], u[: height // 2, : width // 2], v[: height // 2, : width // 2]
    w, h = (width, height) if box is None else _fit(width, height, *box)
    if 2 * w <= width and 2 * h <= height:
        # Scaling is linear, so scaling Y, U and V the way the UI would scale the RGB picture and
        # converting the few pixels left gives the same picture (up to rounding).
        yuv = cv2.merge([_shrink(y, w, h), _shrink(u, w, h), _shrink(v, w, h)])
        return np.asarray(cv2.transform(yuv, _YUV_TO_RGB), dtype=np.uint8)
    i420 = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)])
    full = cv2.cvtColor(i420.reshape(height * 3 // 2, width), cv2.COLOR_YUV2RGB_I420)
    return _shrink(np.asarray(full, dtype=np.uint8), w, h)


# BT.601 limited range (what libswscale and OpenCV's I420 conversion use), as one affine map.
_YUV_TO_RGB = np.array(
    [
        [1.164383, 0.0, 1.596027, -1.164383 * 16 - 1.596027 * 128],
        [1.164383, -0.391762, -0.812968, -1.164383 * 16 + (0.391762 + 0.812968) * 128],
        [1.164383, 2.017232, 0.0, -1.164383 * 16 - 2.017232 * 128],
    ],
    dtype=np.float32,
)


def _fit(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int]:
    """The size of a `src_w` x `src_h` picture scaled to fit `width` x `height` (as the UI's
    letterbox places it)."""
    scale = min(width / src_w, height / src_h)
    return max(1, min(width, round(src_w * scale))), max(1, min(height, round(src_h * scale)))


def _shrink(pixels: np.ndarray, w: int, h: int) -> np.ndarray:
    """Halvings (INTER_AREA) while at least twice the target, then one bilinear step."""
    if (pixels.shape[1], pixels.shape[0]) == (w, h):
        return pixels
    while pixels.shape[1] >= 2 * w and pixels.shape[0] >= 2 * h:
        half = (pixels.shape[1] // 2, pixels.shape[0] // 2)
        pixels = cv2.resize(pixels, half, interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.resize(pixels, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.uint8)


def top_luma(frame: VideoFrame) -> np.ndarray:
    """The rows of the Y plane that hold the timecode, without converting the whole frame."""
    plane = frame.planes[0]
    rows = min(frame.height, timecode.code_height(frame.width))
    if frame.format.name not in ("yuv420p", "yuvj420p", "nv12"):
        return np.asarray(frame.to_ndarray(format="gray"))[:rows]
    data = np.frombuffer(memoryview(plane), dtype=np.uint8)
    return data[: rows * plane.line_size].reshape(rows, plane.line_size)[:, : frame.width]


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class AudioSink:
    """Consumes a remote audio track. `notice` is set when the sink was opened without its device."""

    notice: str | None = None

    def consume(self, track: MediaStreamTrack) -> None:
        """Read `track` until it ends (as LatestFrameSink.consume: a renewal brings another)."""
        task = asyncio.ensure_future(self._run(track))
        self._readers().add(task)
        task.add_done_callback(self._readers().discard)

    def _readers(self) -> set[asyncio.Task[None]]:
        """The tasks reading remote tracks (made here: subclasses' __init__ need not call ours)."""
        if not hasattr(self, "_tasks"):
            self._tasks: set[asyncio.Task[None]] = set()
        return self._tasks

    async def _run(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame)
                self.play(frame)

    def play(self, frame: AudioFrame) -> None:
        """A null sink discards audio."""

    def figures(self) -> dict[str, Any]:
        """What playing measured, for stats (a null sink: nothing)."""
        return {}

    async def stop(self) -> None:
        for task in list(self._readers()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class SpeakerSink(AudioSink):
    """Plays through a sounddevice OutputStream of 5 ms blocks behind a small adaptive playout
    buffer (engine/media/playout.py: a stall is concealed, never silence plus re-buffering, and
    a burst drains back to the target).

    Two hooks run on PortAudio's callback thread (a real-time thread where the OS allows it), so
    they must be quick and must not block:
    - `conceal(n)` returns n int16 samples to play where the buffer ran dry (a decoder's packet
      loss concealment); without it the last pitch period is repeated, fading out.
    - `on_played(samples)` receives each block just handed to the device: a fresh int16 mono
      48 kHz array (the caller may keep it), exactly what the speaker will sound; the far-end
      reference for echo cancellation.

    The device starts at PortAudio's lowest latency; when it underflows (UNDERFLOWS_TO_STEP
    times within STEP_SECONDS: a loaded machine), the stream is reopened one step up the ladder
    of sound.OUTPUT_LATENCIES, for the rest of the call. `steady` (the speaker_latency setting)
    starts at the top instead, for a machine that is always loaded: under two CPU hogs, calls
    climbing the ladder scored PESQ-WB 2.0-3.8 (glitches before each step, and some the device
    never reported as underflows), steady ones 4.28-4.34; with no load steady adds ~60 ms one way.

    When the device goes away mid-call, `notice` (given to open_audio_sink) hears it once on the
    event loop, and the sink discards audio from then on.
    """

    UNDERFLOWS_TO_STEP = 3
    STEP_SECONDS = 10.0
    SETTLE_SECONDS = 1.0  # a new stream's first second is not judged: PulseAudio is setting up

    def __init__(
        self, device: str | None = None, notice: Notify | None = None, steady: bool = False
    ) -> None:
        self.playout = Playout()
        # What the device plays: the playout buffer, or a group call's Mix of one per member.
        self.output: Playout | Mix = self.playout
        self.on_played: Callable[[np.ndarray], None] | None = None
        self.device_underruns = 0  # blocks PortAudio reported it had to fill itself
        # Where on sound.OUTPUT_LATENCIES the stream is: steady starts at the top (see the class).
        self.latency_step = len(sound.OUTPUT_LATENCIES) - 1 if steady else 0
        self._device = device
        self._notify = notice
        self._watch = StreamWatch("speaker", self._lost)
        self._generation = 0
        self._judging = threading.Lock()  # a group call's members play from threads of their own
        self._stream = self._open()

    def _open(self) -> Any:
        """A stream at the current latency step, whose callbacks stop counting once it is replaced.

        The new stream takes over only once it has started: opening one can take hundreds of ms on
        a loaded machine, and meanwhile the old stream goes on playing (had it gone silent at once,
        the audio arriving meanwhile piled up, and the playout buffer then cut 100-500 ms of it to
        drain back)."""
        generation = self._generation + 1
        self._judge_from = time.monotonic() + self.SETTLE_SECONDS
        self._underruns_judged = self.device_underruns

        def callback(outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            if generation == self._generation:
                self._callback(outdata, frames, time_info, status)
            else:
                outdata.fill(0)  # the stream being replaced, in its last moments

        def finished() -> None:
            if generation == self._generation:
                self._watch.finished()

        latency = sound.OUTPUT_LATENCIES[self.latency_step]
        stream = start_stream("speaker", self._device, callback, finished, latency)
        self._generation = generation
        return stream

    @property
    def conceal(self) -> Conceal | None:
        return self.playout.conceal

    @conceal.setter
    def conceal(self, conceal: Conceal | None) -> None:
        self.playout.conceal = conceal

    @property
    def underruns(self) -> int:
        """Stalls: times playback found nothing buffered (each one concealed)."""
        return self.playout.stalls

    def figures(self) -> dict[str, Any]:
        """The playout buffer's figures (playout.Playout.snapshot) and the device's, for stats."""
        return self.playout.snapshot() | {
            "device_underruns": self.device_underruns,
            "device_latency": sound.OUTPUT_LATENCIES[self.latency_step],
        }

    @property
    def playing(self) -> bool:
        """False once the device went away: the call goes on without sound."""
        return not self._watch.lost

    def play(self, frame: AudioFrame) -> None:
        """Queue a decoded frame; from any one thread at a time (the event loop, or the
        receiver's own playout thread)."""
        mono = mono_samples(frame)
        if mono is None or not self.playing:
            return
        self.playout.write(mono)
        self.judge_device()

    def judge_device(self) -> None:
        """Step the device's latency up if it keeps underflowing; from any thread (one judges at a
        time, the others skip: they come again within 20 ms)."""
        if not self._judging.acquire(blocking=False):
            return
        try:
            self._judge_device()
        finally:
            self._judging.release()

    def _judge_device(self) -> None:
        now = time.monotonic()
        if now < self._judge_from:
            self._underruns_judged = self.device_underruns
            return
        if self.device_underruns - self._underruns_judged < self.UNDERFLOWS_TO_STEP:
            if now - self._judge_from > self.STEP_SECONDS:  # a new window
                self._judge_from, self._underruns_judged = now, self.device_underruns
            return
        if self.latency_step + 1 >= len(sound.OUTPUT_LATENCIES):
            self._judge_from = now + self.STEP_SECONDS  # at the top: nothing more to try
            return
        # Opening takes ~20 ms: not on the caller's thread (the receiver's playout thread).
        self._judge_from = now + 3600.0  # judged again once the new stream runs
        threading.Thread(target=self._step_up, name="speaker latency step", daemon=True).start()

    def _step_up(self) -> None:
        self.latency_step += 1
        old = self._stream
        try:
            self._stream = self._open()
        except DeviceError:
            self.latency_step -= 1  # the old stream goes on
            self._judge_from = time.monotonic() + self.STEP_SECONDS
            return
        close_quietly(old)

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        self._watch.beat()
        if status.output_underflow:
            self.device_underruns += 1
        out = outdata[:, 0]
        self.output.read(out)
        hook = self.on_played
        if hook is not None:
            try:
                hook(out.copy())
            except Exception:  # a failing listener must not silence the speaker
                self.on_played = None

    def _lost(self, reason: str) -> None:
        close_quietly(self._stream)
        if self._notify is not None:
            self._notify(f"the speaker stopped ({reason}): the call goes on without sound")

    async def stop(self) -> None:
        await super().stop()
        if self._watch.lost:
            return  # already closed when it went away
        self._watch.close()
        with contextlib.suppress(Exception):  # the device may have died just now
            self._stream.stop()
            self._stream.close()


def mono_samples(frame: AudioFrame) -> np.ndarray | None:
    """A decoded frame as int16 mono samples; None when it is not 48 kHz (aiortc's Opus decoder
    always yields 48 kHz; anything else is not ours to guess)."""
    if frame.sample_rate != SAMPLE_RATE:
        return None
    samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
    mono: np.ndarray = (
        samples.mean(axis=1).astype(np.int16) if samples.shape[1] > 1 else samples[:, 0]
    )
    return mono


class MixInput(AudioSink):
    """One member's received audio in a group call: its own bounded buffer in the speaker's Mix
    (engine/media/playout.py), and the level of what it says, for a UI to show who speaks.

    Stopping it (its pair's Session closes) takes it out of the mix; the speaker plays on. `play`
    runs on the member's own receive thread (OpusReceiver's), as a SpeakerSink's does.
    """

    LEVEL_SECONDS = 0.3  # the level's smoothing: a word, not a syllable
    STALE_SECONDS = 0.5  # nothing heard for this long: silence

    def __init__(self, mix: Mix, speaker: AudioSink) -> None:
        self._mix = mix
        self._speaker = speaker
        self.playout = mix.add()
        self._power = 0.0  # mean square, full scale 1
        self._heard: tuple[float, float] = (0.0, SILENCE_DB)  # (time.monotonic(), level in dBFS)

    @property
    def level_db(self) -> float:
        """The recent level of what this member says, in dBFS (SILENCE_DB when nothing came)."""
        at, level = self._heard
        return level if time.monotonic() - at < self.STALE_SECONDS else SILENCE_DB

    def play(self, frame: AudioFrame) -> None:
        mono = mono_samples(frame)
        if mono is None:
            return
        self._measure(mono)
        speaker = self._speaker
        if isinstance(speaker, SpeakerSink):
            if not speaker.playing:
                return
            speaker.judge_device()
        self.playout.write(mono)

    def _measure(self, mono: np.ndarray) -> None:
        power = float(np.mean(np.square(mono, dtype=np.float64))) / 32768.0**2 if len(mono) else 0.0
        share = min(1.0, len(mono) / SAMPLE_RATE / self.LEVEL_SECONDS)
        self._power += (power - self._power) * share
        level = 10 * math.log10(self._power) if self._power > 0 else SILENCE_DB
        self._heard = (time.monotonic(), max(SILENCE_DB, level))

    def figures(self) -> dict[str, Any]:
        """This member's buffer (Playout.snapshot) and the device's, as a SpeakerSink's."""
        if not isinstance(self._speaker, SpeakerSink):
            return {}
        device = self._speaker.figures()
        return self.playout.snapshot() | {
            key: device[key] for key in ("device_underruns", "device_latency")
        }

    async def stop(self) -> None:
        await super().stop()
        self._mix.remove(self.playout)


def open_audio_sink(
    device: str | None = None, notice: Notify | None = None, steady: bool = False
) -> AudioSink:
    """The speaker, or a null sink with a notice when there is none: missing audio is never a crash.
    `notice` hears, on the event loop, that the speaker stopped mid-call; `steady` starts it at the
    top of its latency ladder (the speaker_latency setting)."""
    if not list_devices("output"):
        sink = AudioSink()
        sink.notice = "no audio output device found: incoming audio is not played"
        return sink
    try:
        return SpeakerSink(device, notice, steady)
    except DeviceError as exc:
        sink = AudioSink()
        sink.notice = f"{exc}: incoming audio is not played"
        return sink

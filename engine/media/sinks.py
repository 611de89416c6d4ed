"""Where received media goes: a latest-frame video sink and speaker playback (or a null sink)."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
from typing import Any

import cv2
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from tcall.engine.errors import DeviceError
from tcall.engine.media import timecode
from tcall.engine.media.audio import BLOCK, SAMPLE_RATE, Notify
from tcall.engine.media.handle import VideoHandle
from tcall.engine.media.sound import list_devices, start_stream


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
        self._task: asyncio.Task[None] | None = None

    def consume(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.ensure_future(self._run(track))

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
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


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
    """Consumes a remote audio track."""

    notice: str | None = None

    def consume(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.ensure_future(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame)
                self.play(frame)

    def play(self, frame: AudioFrame) -> None:
        """A null sink discards audio."""

    async def stop(self) -> None:
        task = getattr(self, "_task", None)
        if task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class SpeakerSink(AudioSink):
    """Plays through a sounddevice OutputStream behind a small jitter buffer.

    Playback waits for PREFILL of audio before starting (and after an underrun), and drops the oldest
    audio beyond MAX_BUFFERED, so network bursts cost at most that much latency.
    """

    PREFILL = 2 * BLOCK  # 40 ms
    MAX_BUFFERED = 6 * BLOCK  # 120 ms

    def __init__(self, device: str | None = None) -> None:
        self._lock = threading.Lock()
        self._buffer = np.zeros(0, dtype=np.int16)
        self._playing = False
        self.underruns = 0
        self._stream = start_stream("speaker", device, self._callback)

    def play(self, frame: AudioFrame) -> None:
        samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
        mono = samples.mean(axis=1).astype(np.int16) if samples.shape[1] > 1 else samples[:, 0]
        if frame.sample_rate != SAMPLE_RATE:
            return  # aiortc's Opus decoder always yields 48 kHz; anything else is not ours to guess
        with self._lock:
            self._buffer = np.concatenate([self._buffer, mono])[-self.MAX_BUFFERED :]

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        with self._lock:
            if not self._playing and len(self._buffer) >= self.PREFILL:
                self._playing = True
            if self._playing and len(self._buffer) >= frames:
                outdata[:, 0] = self._buffer[:frames]
                self._buffer = self._buffer[frames:]
                return
            if self._playing:
                self.underruns += 1
                self._playing = False
        outdata.fill(0)

    async def stop(self) -> None:
        await super().stop()
        self._stream.stop()
        self._stream.close()


def open_audio_sink(device: str | None = None, notice: Notify | None = None) -> AudioSink:
    """The speaker, or a null sink with a notice when there is none: missing audio is never a crash.
    `notice` hears, on the event loop, that the speaker stopped mid-call."""
    if not list_devices("output"):
        sink = AudioSink()
        sink.notice = "no audio output device found: incoming audio is not played"
        return sink
    try:
        return SpeakerSink(device)
    except DeviceError as exc:
        sink = AudioSink()
        sink.notice = f"{exc}: incoming audio is not played"
        return sink

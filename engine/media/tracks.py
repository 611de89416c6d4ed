"""aiortc tracks that pull from tcall's video and audio sources."""

from __future__ import annotations

import asyncio
import fractions
import time

import cv2
import numpy as np
from aiortc import MediaStreamTrack
from av import AudioFrame, VideoFrame

from tcall.engine.media.audio import SAMPLE_RATE, AudioSource
from tcall.engine.media.video import VideoSource

VIDEO_CLOCK = 90000


def to_video_frame(pixels: np.ndarray) -> VideoFrame:
    """An RGB array as a yuv420p VideoFrame.

    OpenCV's RGB-to-I420 conversion is far cheaper than the libswscale conversion the encoders would
    otherwise run on rgb24 input (about 4 ms less per 640x480 VP8 frame, measured here), and every
    millisecond here is glass-to-glass latency.
    """
    height, width = pixels.shape[:2]
    if height % 2 or width % 2:
        return VideoFrame.from_ndarray(pixels, format="rgb24")
    planes = np.asarray(cv2.cvtColor(pixels, cv2.COLOR_RGB2YUV_I420), dtype=np.uint8)
    return VideoFrame.from_ndarray(planes, format="yuv420p")


def stamped_video(pixels: np.ndarray, seconds: float) -> VideoFrame:
    """An RGB array as a frame `seconds` after the track's start, on the 90 kHz video clock."""
    frame = to_video_frame(pixels)
    frame.pts = int(seconds * VIDEO_CLOCK)
    frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
    return frame


def stamped_audio(block: np.ndarray, samples_before: int) -> AudioFrame:
    """A 48 kHz mono int16 block as a frame starting `samples_before` samples into the track."""
    frame = AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = samples_before
    frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
    return frame


class VideoSourceTrack(MediaStreamTrack):
    """Sends a VideoSource's frames; the source paces them, so a stalled encoder drops, never queues."""

    kind = "video"

    def __init__(self, source: VideoSource) -> None:
        super().__init__()
        self.source = source
        self.frames_sent = 0
        self.latest: np.ndarray | None = None  # the newest frame sent, for a UI's self-view
        self._on = asyncio.Event()
        self._on.set()
        self._start: float | None = None

    @property
    def enabled(self) -> bool:
        """False: the camera is off and nothing is sent (not even black frames), but the call goes on."""
        return self._on.is_set()

    @enabled.setter
    def enabled(self, on: bool) -> None:
        (self._on.set if on else self._on.clear)()

    async def recv(self) -> VideoFrame:
        await self._on.wait()
        pixels = await self.source.next_frame()
        self.latest = pixels
        now = time.monotonic()
        if self._start is None:
            self._start = now
        frame = stamped_video(pixels, now - self._start)
        self.frames_sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self.source.stop()


class AudioSourceTrack(MediaStreamTrack):
    """Sends 20 ms blocks of 48 kHz mono audio from an AudioSource."""

    kind = "audio"

    def __init__(self, source: AudioSource) -> None:
        super().__init__()
        self.source = source
        self.muted = False
        self._samples = 0

    async def recv(self) -> AudioFrame:
        block = await self.source.next_block()
        if self.muted:
            block = block * 0
        frame = stamped_audio(block, self._samples)
        self._samples += len(block)
        return frame

    def stop(self) -> None:
        super().stop()
        self.source.stop()

"""Audio sources chosen by a spec string: mic, mic:NAME, sine, file:PATH (or none).

All sources produce 20 ms blocks of 48 kHz mono int16 samples. The mic runs on PortAudio's thread and
hands blocks to asyncio; generated and file sources pace themselves on the event loop's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np

from tcall.engine.errors import DeviceError, UsageError
from tcall.engine.media.sound import (
    BLOCK,
    SAMPLE_RATE,
    StreamWatch,
    close_quietly,
    list_devices,
    start_stream,
)

AUDIO_SPECS = "mic|mic:NAME|sine|file:PATH|none"
Notify = Callable[[str], None]


class AudioSource:
    name: str

    async def next_block(self) -> np.ndarray:
        raise NotImplementedError

    def stop(self) -> None:
        """Release the device; safe to call twice."""


class PacedAudioSource(AudioSource):
    """Blocks from a generator, released on a 20 ms clock."""

    def __init__(self, name: str, blocks: Iterator[np.ndarray]) -> None:
        self.name = name
        self._blocks = blocks
        self._start: float | None = None
        self._count = 0

    async def next_block(self) -> np.ndarray:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._count * BLOCK / SAMPLE_RATE
        if due > now:
            await asyncio.sleep(due - now)
        self._count += 1
        return next(self._blocks)


def sine_blocks(frequency: float = 440.0, level: float = 0.3) -> Iterator[np.ndarray]:
    phase = 0
    step = np.arange(BLOCK)
    while True:
        t = (phase + step) / SAMPLE_RATE
        yield (np.sin(2 * np.pi * frequency * t) * level * 32767).astype(np.int16)
        phase += BLOCK


def file_blocks(path: str) -> Iterator[np.ndarray]:
    """Decode any audio file PyAV reads, resampled to 48 kHz mono, looping forever."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    pending = np.zeros(0, dtype=np.int16)
    while True:
        with av.open(path) as container:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pending = np.concatenate([pending, out.to_ndarray().reshape(-1)])
                    while len(pending) >= BLOCK:
                        yield pending[:BLOCK]
                        pending = pending[BLOCK:]


def _open_file(path: str) -> AudioSource:
    if not Path(path).is_file():
        raise DeviceError(f"audio file not found: {path}")
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise DeviceError(f"no audio stream in file: {path}")
    except av.FFmpegError as exc:
        raise DeviceError(f"cannot read audio file: {path}") from exc
    return PacedAudioSource(f"file {path}", file_blocks(path))


class MicSource(AudioSource):
    """A sounddevice InputStream of 5 ms device blocks, gathered into 20 ms blocks on PortAudio's
    thread and handed to the event loop, dropping the oldest when the loop falls behind.

    When the device goes away mid-call, `notice` hears it once (on the event loop) and the source
    yields silence from then on, on a 20 ms clock, so the call goes on.
    """

    def __init__(self, device: str | None, notice: Notify | None = None) -> None:
        if not list_devices("input"):
            raise DeviceError("no microphone: no audio input device found")
        self.name = f"mic {device or 'default'}"
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[np.ndarray | None] = asyncio.Queue(maxsize=10)
        self._block = np.zeros(BLOCK, dtype=np.int16)
        self._filled = 0
        self._notify = notice
        self._silence = PacedAudioSource("silence", silent_blocks())
        self._watch = StreamWatch("microphone", self._lost)
        self._stream = start_stream("microphone", device, self._callback, self._watch.finished)

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        self._watch.beat()
        samples = indata[:, 0]
        while len(samples):
            take = min(len(samples), BLOCK - self._filled)
            self._block[self._filled : self._filled + take] = samples[:take]
            self._filled += take
            samples = samples[take:]
            if self._filled == BLOCK:
                self._filled = 0
                with contextlib.suppress(RuntimeError):  # the loop closed: the stream is ending
                    self._loop.call_soon_threadsafe(self._put, self._block.copy())

    def _put(self, block: np.ndarray | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()  # latency beats completeness
        self._queue.put_nowait(block)

    async def next_block(self) -> np.ndarray:
        if not self._watch.lost:
            block = await self._queue.get()
            if block is not None:
                return block
        return await self._silence.next_block()

    def _lost(self, reason: str) -> None:
        close_quietly(self._stream)
        self._put(None)  # wakes a reader waiting for a block that will not come
        if self._notify is not None:
            self._notify(f"the microphone stopped ({reason}): the call goes on, sending silence")

    def stop(self) -> None:
        if self._watch.lost:
            return  # already closed when it went away
        self._watch.close()
        with contextlib.suppress(Exception):  # the device may have died just now
            self._stream.stop()
            self._stream.close()


def silent_blocks() -> Iterator[np.ndarray]:
    while True:
        yield np.zeros(BLOCK, dtype=np.int16)


def microphone_available() -> bool:
    return bool(list_devices("input"))


def parse_audio_spec(spec: str) -> tuple[str, str]:
    """Split a spec into (kind, argument), or UsageError before any device is touched."""
    kind, _, arg = spec.partition(":")
    if kind in ("sine", "none", "auto") and not arg:
        return kind, arg
    if kind == "mic" or (kind == "file" and arg):
        return kind, arg
    raise UsageError(f"unknown audio source {spec!r} (expected {AUDIO_SPECS})")


def open_audio_source(spec: str, notice: Notify | None = None) -> AudioSource:
    """Open the source named by `spec`; must be called from a running event loop. `notice` hears,
    on the event loop, that a device stopped mid-call."""
    kind, arg = parse_audio_spec(spec)
    if kind == "sine":
        return PacedAudioSource("sine 440 Hz", sine_blocks())
    if kind == "mic":
        return MicSource(arg or None, notice)
    if kind == "file":
        return _open_file(arg)
    raise UsageError(f"audio source {spec!r} cannot be opened directly")

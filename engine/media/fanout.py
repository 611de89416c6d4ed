"""One local source read once for every pair of a group call: each pair's sender gets a branch,
an aiortc track that hands out the very frames every other branch hands out.

The branches must see the same frames in the same order, since the frames are encoded once for all
of them (engine/media/shared_encoder.py): a video branch that skipped an encoded frame would send
a stream whose next frames refer to a picture its receiver never had. So frames are made on demand
for the branch furthest ahead (the source still paces them, and still drops when every sender is
slow, as a 1:1 call's track does) and the last few are kept for the branches behind it, which
catch up at once; one that falls further behind than that skips to the newest frame (for video,
its proxy then waits for a keyframe).

Stopping a branch (its pair left, or aiortc ended its sender) leaves the source and the other
branches running; `stop` on the fan-out ends the source.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import numpy as np
from aiortc import MediaStreamTrack
from av import AudioFrame, VideoFrame

from tcall.engine.media.audio import AudioSource
from tcall.engine.media.tracks import stamped_audio, stamped_video
from tcall.engine.media.video import VideoSource

T = TypeVar("T")

# Frames kept for branches behind the first: 5 video frames are 1/3 s at 15 fps, 10 audio blocks
# 200 ms; a sender further behind than that is stalled, and would only add its delay by catching up.
VIDEO_HISTORY = 5
AUDIO_HISTORY = 10


class Broadcast(Generic[T]):
    """Items from `produce`, made one at a time when a reader asks for one not yet made, numbered
    from 0; the last `history` of them stay readable."""

    def __init__(self, produce: Callable[[], Awaitable[T]], history: int) -> None:
        self._produce = produce
        self._items: deque[T] = deque(maxlen=history)
        self.produced = 0
        self._making: asyncio.Task[None] | None = None

    @property
    def newest(self) -> int:
        """The newest item's number (-1 before the first)."""
        return self.produced - 1

    async def after(self, seen: int) -> tuple[int, T]:
        """The item after number `seen`, or the newest if that one is gone; waits for it to be
        made when it is not yet."""
        while True:
            oldest = self.produced - len(self._items)
            wanted = seen + 1 if seen + 1 >= oldest else self.newest
            if wanted < self.produced:
                return wanted, self._items[wanted - oldest]
            if self._making is None:
                self._making = asyncio.ensure_future(self._make())
            # Shielded: a reader that is cancelled (its sender stopped) must not cancel the
            # capture the other readers are waiting for.
            await asyncio.shield(self._making)

    async def _make(self) -> None:
        try:
            item = await self._produce()
            self._items.append(item)
            self.produced += 1
        finally:
            self._making = None

    async def stop(self) -> None:
        if self._making is not None:
            self._making.cancel()
            with contextlib.suppress(BaseException):
                await self._making


class VideoFanout:
    """A VideoSource read once, for every pair; `enabled` (the camera) is one for all of them."""

    def __init__(self, source: VideoSource, history: int = VIDEO_HISTORY) -> None:
        self.source = source
        self.latest: np.ndarray | None = None  # the newest frame captured, for the self-view
        self._frames = Broadcast(self._capture, history)
        self._on = asyncio.Event()
        self._on.set()
        self._start: float | None = None

    @property
    def frames_captured(self) -> int:
        return self._frames.produced

    @property
    def enabled(self) -> bool:
        return self._on.is_set()

    @enabled.setter
    def enabled(self, on: bool) -> None:
        (self._on.set if on else self._on.clear)()

    async def _capture(self) -> VideoFrame:
        pixels = await self.source.next_frame()
        self.latest = pixels
        now = time.monotonic()
        if self._start is None:
            self._start = now
        return stamped_video(pixels, now - self._start)

    def branch(self) -> VideoBranch:
        return VideoBranch(self, self._frames.newest)

    async def next_after(self, seen: int) -> tuple[int, VideoFrame]:
        await self._on.wait()
        return await self._frames.after(seen)

    async def stop(self) -> None:
        await self._frames.stop()
        self.source.stop()


class VideoBranch(MediaStreamTrack):
    """One pair's video track of a VideoFanout, in place of a 1:1 call's VideoSourceTrack (the
    same `enabled`, `latest` and `frames_sent`). `enabled` is this pair's own say (a pair answered
    with the camera off): it sends while both it and the fan-out's camera are on. A branch turned
    back on has missed frames, so its encoder branch waits for a keyframe."""

    kind = "video"

    def __init__(self, fanout: VideoFanout, seen: int) -> None:
        super().__init__()
        self.fanout = fanout
        self.frames_sent = 0
        self._seen = seen
        self._on = asyncio.Event()
        self._on.set()

    @property
    def enabled(self) -> bool:
        return self._on.is_set() and self.fanout.enabled

    @enabled.setter
    def enabled(self, on: bool) -> None:
        (self._on.set if on else self._on.clear)()

    @property
    def latest(self) -> np.ndarray | None:
        return self.fanout.latest

    async def recv(self) -> VideoFrame:
        await self._on.wait()
        self._seen, frame = await self.fanout.next_after(self._seen)
        self.frames_sent += 1
        return frame


class AudioFanout:
    """An AudioSource (the microphone with its processing, engine/media/processing.py) read once,
    for every pair; `muted` is one for all of them."""

    def __init__(self, source: AudioSource, history: int = AUDIO_HISTORY) -> None:
        self.source = source
        self.muted = False
        self._blocks = Broadcast(self._capture, history)
        self._samples = 0

    @property
    def blocks_captured(self) -> int:
        return self._blocks.produced

    async def _capture(self) -> AudioFrame:
        # Read (and processed) while muted too: the echo canceller keeps its model of the room.
        block = await self.source.next_block()
        if self.muted:
            block = np.zeros_like(block)
        frame = stamped_audio(block, self._samples)
        self._samples += len(block)
        return frame

    def branch(self) -> AudioBranch:
        return AudioBranch(self, self._blocks.newest)

    async def next_after(self, seen: int) -> tuple[int, AudioFrame]:
        return await self._blocks.after(seen)

    async def stop(self) -> None:
        await self._blocks.stop()
        self.source.stop()


class AudioBranch(MediaStreamTrack):
    """One pair's audio track of an AudioFanout, in place of a 1:1 call's AudioSourceTrack.
    `muted` mutes every pair: each block is encoded once for all of them, so all get the same."""

    kind = "audio"

    def __init__(self, fanout: AudioFanout, seen: int) -> None:
        super().__init__()
        self.fanout = fanout
        self._seen = seen

    @property
    def muted(self) -> bool:
        return self.fanout.muted

    @muted.setter
    def muted(self, muted: bool) -> None:
        self.fanout.muted = muted

    async def recv(self) -> AudioFrame:
        self._seen, frame = await self.fanout.next_after(self._seen)
        return frame

"""The echo peer's microphone: what its receiver plays, sent straight back.

A real peer plays what it receives on its speaker and sends what its microphone hears; the echo
peer joins the two: each frame tcall's OpusReceiver plays (on its playout thread, one per tick, on
the playout clock) becomes the next block of an AudioSource, which an AudioSourceTrack sends back
through tcall's encoder. So the returning audio is paced by the echo's jitter buffer, as a
speaker-and-microphone pair would pace it, with no second clock in between.
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
from av import AudioFrame

from tcall.engine.media.audio import AudioSource

MAX_WAITING = 10  # blocks (200 ms of 20 ms blocks); when the event loop falls behind, the oldest go


class ReflectedAudio(AudioSource):
    """An AudioSource fed by `play` (thread-safe, any thread): the frames played, in order.

    Create it on the event loop that reads it."""

    name = "echo"

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._waiting: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=MAX_WAITING)
        self.blocks_played = 0
        self.blocks_dropped = 0

    def play(self, frame: AudioFrame) -> None:
        """A decoded mono 48 kHz s16 frame (OpusReceiver's output), from the playout thread."""
        block = frame.to_ndarray().reshape(-1)
        with contextlib.suppress(RuntimeError):  # the loop closed: the call is over
            self._loop.call_soon_threadsafe(self._put, block)

    def _put(self, block: np.ndarray) -> None:
        if self._waiting.full():
            self._waiting.get_nowait()  # delay beats completeness, as for a microphone
            self.blocks_dropped += 1
        self._waiting.put_nowait(block)
        self.blocks_played += 1

    async def next_block(self) -> np.ndarray:
        return await self._waiting.get()

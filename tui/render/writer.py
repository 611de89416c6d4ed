"""Frames to the terminal without a queue: at most one frame in flight, and the rate adapts.

A frame is written to a non-blocking descriptor; whatever the terminal (or the SSH link behind it)
doesn't take at once is written as it drains. Frames that arrive meanwhile are dropped, never
queued, so the picture on screen is at most one frame behind, and the frame rate settles by itself
at what the link takes. `fps` tracks that rate, measured from how long each frame took to drain.
`FrameWriter` owns a descriptor; `QueueWriter` applies the same rule to a writer thread's queue
that other output shares (Textual's driver).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

# How much one new measurement moves the rate estimate.
SMOOTHING = 0.25
# How often a waiting frame checks whether the writer thread has taken the one in flight.
POLL_SECONDS = 0.003


class FrameWriter:
    """Writes frames to a non-blocking file descriptor, one at a time."""

    def __init__(
        self,
        fd: int,
        max_fps: float = 30.0,
        min_fps: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fd = fd
        self.max_fps = max_fps
        self.min_fps = min_fps
        self.fps = max_fps  # the rate the link has been taking frames at, at most max_fps
        self.written = 0
        self.dropped = 0  # frames refused because the previous one was still being written
        self.skipped = 0  # frames refused to keep to max_fps
        self._clock = clock
        self._pending = memoryview(b"")
        self._started = 0.0
        self._next_due = 0.0

    @property
    def busy(self) -> bool:
        """A frame is still being written."""
        return len(self._pending) > 0

    def offer(self, now: float) -> bool:
        """May a new frame be sent now? Counts a dropped or skipped frame when not."""
        self.pump()
        if self.busy:
            self.dropped += 1
            return False
        # A quarter-frame of slack, so a source running at exactly max_fps is never halved by jitter.
        if now < self._next_due - 0.25 / self.max_fps:
            self.skipped += 1
            return False
        return True

    def submit(self, data: bytes, now: float) -> None:
        """Start writing one whole frame (call only after `offer` said yes)."""
        self._pending = memoryview(data)
        self._started = now
        # Frames stay evenly spaced; after a late one the schedule moves rather than bursting.
        self._next_due = max(self._next_due, now - 0.5 / self.max_fps) + 1.0 / self.max_fps
        self.pump()

    def pump(self) -> None:
        """Write as much of the pending frame as the descriptor takes without blocking."""
        while self._pending:
            try:
                n = os.write(self.fd, self._pending)
            except BlockingIOError:
                return
            self._pending = self._pending[n:]
            if not self._pending:
                self._finished()

    def _finished(self) -> None:
        self.written += 1
        took = self._clock() - self._started
        # A frame that drained within its slot says nothing about the limit: drift back up.
        rate = self.max_fps if took * self.max_fps <= 1.0 else 1.0 / took
        rate = min(self.max_fps, max(self.min_fps, rate))
        self.fps += SMOOTHING * (rate - self.fps)

    def drain(self) -> None:
        """Block until the pending frame is out (at exit, so no escape is left half-written)."""
        blocking = os.get_blocking(self.fd)
        os.set_blocking(self.fd, True)
        try:
            self.pump()
        finally:
            os.set_blocking(self.fd, blocking)


class QueueWriter:
    """Frames handed to a writer thread's queue (Textual's driver), at most one in flight.

    Writing through the thread that writes everything else keeps each frame whole between other
    output. A frame is followed by an empty marker: while the thread has not taken the marker,
    the frame (or other output) is still on its way to the terminal. A frame offered meanwhile
    waits, in a single slot, for the terminal to take the one in flight, and a newer frame
    replaces it (the older one is dropped): nothing queues, and the rate follows the terminal.
    """

    def __init__(
        self,
        write: Callable[[str], None],
        backlog: Callable[[], int],
        schedule: Callable[[float, Callable[[], None]], object],
        poll: float = POLL_SECONDS,
    ) -> None:
        self._write = write
        self._backlog = backlog  # items in the queue that the thread has not taken yet
        self._schedule = schedule  # call a function after a delay (the event loop's call_later)
        self._poll_seconds = poll
        self._retry: Callable[[], None] | None = None  # set while a frame waits
        self._polling = False
        self.written = 0
        self.dropped = 0

    @property
    def busy(self) -> bool:
        return self._backlog() > 0

    @property
    def waiting(self) -> bool:
        """A frame waits for the one in flight to reach the terminal."""
        return self._retry is not None

    def offer(self, retry: Callable[[], None]) -> bool:
        """May a frame be written now? If not, `retry` is called once the terminal has taken the
        frame in flight, so that the caller can offer its newest frame then."""
        if not self.busy:
            self._retry = None
            return True
        if self._retry is not None:
            self.dropped += 1
        self._retry = retry
        if not self._polling:
            self._polling = True
            self._schedule(self._poll_seconds, self._poll)
        return False

    def submit(self, data: bytes) -> None:
        """Queue one whole frame (call only after `offer` said yes)."""
        self._write(data.decode())
        self._write("")
        self.written += 1

    def _poll(self) -> None:
        if self.busy:
            self._schedule(self._poll_seconds, self._poll)
            return
        self._polling = False
        retry, self._retry = self._retry, None
        if retry is not None:
            retry()

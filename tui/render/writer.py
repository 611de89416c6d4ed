"""Frames to the terminal without a queue: at most one frame in flight, and the rate adapts.

When the terminal (or the SSH link behind it) can't keep up, writes block; this writer notices,
drops the frames that arrive meanwhile, and lowers its frame rate so latency stays flat.
"""

from __future__ import annotations

import os


class FrameWriter:
    """Writes frames to a non-blocking file descriptor, one at a time."""

    def __init__(self, fd: int, max_fps: float = 30.0, min_fps: float = 2.0) -> None:
        self.fd = fd
        self.max_fps = max_fps
        self.min_fps = min_fps
        self.fps = max_fps
        self.written = 0
        self.dropped = 0  # frames refused because the previous one was still being written
        self.skipped = 0  # frames refused to keep to the (lowered) rate
        self._pending = memoryview(b"")
        self._next_due = 0.0

    @property
    def busy(self) -> bool:
        """A frame is still being written."""
        return len(self._pending) > 0

    def offer(self, now: float) -> bool:
        """May a new frame be sent now? Counts a dropped frame, and backs off, when not."""
        self.pump()
        if self.busy:
            self.dropped += 1
            # The link is slower than our rate: ask for a quarter fewer frames.
            self.fps = max(self.min_fps, self.fps * 0.75)
            return False
        if now < self._next_due:
            self.skipped += 1
            return False
        return True

    def submit(self, data: bytes, now: float) -> None:
        """Start writing one whole frame (call only after `offer` said yes)."""
        self._pending = memoryview(data)
        self._next_due = now + 1.0 / self.fps
        self.pump()
        if not self.busy:
            # It went out in one go: creep back towards the full rate.
            self.fps = min(self.max_fps, self.fps * 1.05)

    def pump(self) -> None:
        """Write as much of the pending frame as the descriptor takes without blocking."""
        while self._pending:
            try:
                n = os.write(self.fd, self._pending)
            except BlockingIOError:
                return
            self._pending = self._pending[n:]
            if not self._pending:
                self.written += 1

    def drain(self) -> None:
        """Block until the pending frame is out (at exit, so no escape is left half-written)."""
        blocking = os.get_blocking(self.fd)
        os.set_blocking(self.fd, True)
        try:
            self.pump()
        finally:
            os.set_blocking(self.fd, blocking)

"""Frames to the terminal without a queue: at most one frame in flight, and the rate adapts.

A frame is written to a non-blocking descriptor; whatever the terminal (or the SSH link behind it)
doesn't take at once is written as it drains. Frames that arrive meanwhile are dropped, never
queued, so the picture on screen is at most one frame behind, and the frame rate settles by itself
at what the link takes. `fps` tracks that rate, measured from how long each frame took to drain.
`FrameWriter` owns a descriptor; `QueueWriter` applies the same rule to a writer thread's queue
that other output shares (Textual's driver).

A write that returns says only that the bytes left this process: the kernel's pty buffer (about
18 KB) and, over SSH, sshd's channel window and TCP's send buffer (megabytes) can still hold
seconds of a slow link's worth, and a key's answer waits behind all of it. So `QueueWriter` can
also end each frame with a cursor-position query (DSR 6): the terminal answers it only once every
byte before it has crossed the link, and until then the frame is in flight. `LinkPace` times those
answers to learn how many bytes a second the far end takes, and gives each frame a byte budget, so
that one frame in flight never holds the terminal for more than `HOLD_SECONDS`: what the UI writes
meanwhile (a key's answer) waits at most that long.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable

# How much one new measurement moves the rate estimate.
SMOOTHING = 0.25
# How often a waiting frame checks whether the writer thread has taken the one in flight.
POLL_SECONDS = 0.003
# The cursor-position query (DSR 6) whose answer says a frame has crossed the link.
POSITION_QUERY = "\x1b[6n"
# How long one frame in flight may hold the terminal, so that a key's answer waits at most this.
HOLD_SECONDS = 0.05
# Bytes a second assumed before the first answer: 8 KB frames, 0.25 s of a 256 kbit/s link.
INITIAL_RATE = 160_000.0
# The smallest frame budget: a few cells of progress even on the thinnest link.
MIN_BUDGET = 512
# A frame's answer may take this long (a thin link behind a big backlog); after that the frame
# counts as delivered, and a terminal that never answered at all is not asked again.
ANSWER_TIMEOUT = 3.0
# Below this a frame's time to be answered is the clock's and the scheduler's noise.
NOISE_SECONDS = 0.001


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
    With a `pace` (the terminal's answers reach it), each frame ends with a query and stays in
    flight until answered, and `budget` says how many bytes the next frame may have.
    """

    def __init__(
        self,
        write: Callable[[str], None],
        backlog: Callable[[], int],
        schedule: Callable[[float, Callable[[], None]], object],
        poll: float = POLL_SECONDS,
        pace: LinkPace | None = None,
    ) -> None:
        self._write = write
        self.pace = pace
        self._backlog = backlog  # items in the queue that the thread has not taken yet
        self._schedule = schedule  # call a function after a delay (the event loop's call_later)
        self._poll_seconds = poll
        self._retry: Callable[[], None] | None = None  # set while a frame waits
        self._polling = False
        self.written = 0
        self.dropped = 0

    @property
    def busy(self) -> bool:
        return self._backlog() > 0 or (self.pace is not None and self.pace.in_flight)

    def budget(self) -> int | None:
        """The most bytes the next frame may have (None: no limit)."""
        return None if self.pace is None else self.pace.budget()

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

    def after(self, retry: Callable[[], None]) -> None:
        """Call `retry` once the terminal has taken the frame in flight, even if no newer frame
        is offered: a frame cut to its budget carries on with the cells it left out."""
        if self._retry is None:
            self._retry = retry
        if not self._polling:
            self._polling = True
            self._schedule(self._poll_seconds, self._poll)

    def submit(self, data: bytes, cut: bool = False) -> None:
        """Queue one whole frame (call only after `offer` said yes); `cut` says the frame was
        cut to its budget (it then measures the link)."""
        query = self.pace is not None and not self.pace.silent
        self._write(data.decode() + (POSITION_QUERY if query else ""))
        self._write("")
        self.written += 1
        if query and self.pace is not None:
            self.pace.sent(len(data), cut)

    def _poll(self) -> None:
        if self.busy:
            self._schedule(self._poll_seconds, self._poll)
            return
        self._polling = False
        retry, self._retry = self._retry, None
        if retry is not None:
            retry()


class LinkPace:
    """How many bytes a second reach the terminal, learnt from the answers to frames' queries.

    `sent` records a frame that ends with a query, `answered` the terminal's answer (answers come
    in order). The time from one to the other, over the frame's size, is a sample of the link's
    seconds per byte. A frame cut to its budget measures the link; one smaller than its budget
    (a picture that hardly changed) only shows the link is at least that fast, so it may raise
    the estimate but never lower it. Samples are averaged as seconds per byte, so one answer that
    came back implausibly fast moves the budget up by a third at most.
    """

    def __init__(
        self,
        hold: float = HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        answer_timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        self.hold = hold
        self.answer_timeout = answer_timeout
        self.seconds_per_byte = 1.0 / INITIAL_RATE
        self.answers = 0
        self.silent = False  # the terminal never answered: frames are no longer followed by queries
        self._clock = clock
        self._pending: deque[tuple[float, int, bool]] = deque()  # (sent at, bytes, cut to budget)

    @property
    def rate(self) -> float:
        """Bytes a second the terminal is believed to take."""
        return 1.0 / self.seconds_per_byte

    @property
    def in_flight(self) -> bool:
        """A frame's answer is still due (the newest frame: answers come in order)."""
        if not self._pending:
            return False
        if self._clock() - self._pending[-1][0] < self.answer_timeout:
            return True
        if self.answers == 0:
            self.silent = True
        return False

    def budget(self) -> int | None:
        """The most bytes the next frame may have, or None when the terminal never answers."""
        if self.silent:
            return None
        return max(MIN_BUDGET, int(self.hold * self.rate))

    def sent(self, size: int, cut: bool) -> None:
        """A frame of `size` bytes (`cut` to its budget or not) and its query went out."""
        self._pending.append((self._clock(), size, cut))

    def answered(self, when: float) -> None:
        """The terminal answered the oldest query still due, at `when` (the clock's time)."""
        if not self._pending:
            return  # not ours: a key that reads as a position report (shift+F3), or a late one
        sent, size, cut = self._pending.popleft()
        self.answers += 1
        sample = max(when - sent, NOISE_SECONDS) / max(size, 1)
        if cut or sample < self.seconds_per_byte:
            self.seconds_per_byte += SMOOTHING * (sample - self.seconds_per_byte)

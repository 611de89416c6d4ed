"""A terminal at the far end of a slow link: a program in a pty whose output is read at a fixed
byte rate, as an SSH session over a thin link delivers it.

`SlowTerminal` runs a command on the slave side of a pty and reads the master in a thread no
faster than `rate` bytes a second (a token bucket holding at most 10 ms of the rate, as a link
can't save up the time it was idle). The program sees what it would over SSH: writes that go
through at once until the kernel's pty buffer (about 18 KB here) is full, then writes that block.
What was read is kept with the time each piece arrived, so a test can tell when a key's visible
effect reached the "screen" (`arrival`), and how many direct video frames got there (`frames`).

Like a real terminal, the reader answers the queries it reads, in order, once it has read them:
cursor position (DSR 6), primary device attributes (DA1) and the synchronized-output mode
(DECRQM 2026). An answer therefore says that everything written before the query has crossed the
link. Keys are written straight to the master (the uplink is not throttled: keys are a few bytes).
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tcall.tui.screens.contacts import ECHO
from tests.support.cli import TCALL, loopback_env, run_in_process

# A direct frame from VideoView: synchronized output, then the cursor saved (tui/render/delta.py).
DIRECT_FRAME = b"\x1b[?2026h\x1b7"
QUERIES = re.compile(rb"\x1b\[6n|\x1b\[0?c|\x1b\[\?2026\$p")
ANSWERS = {
    b"\x1b[6n": b"\x1b[1;1R",
    b"\x1b[c": b"\x1b[?62;22c",
    b"\x1b[0c": b"\x1b[?62;22c",
    b"\x1b[?2026$p": b"\x1b[?2026;2$y",
}
LONGEST_QUERY = max(len(query) for query in ANSWERS)
TICK = 0.002  # how often the reader wakes to take the bytes the link has let through


class SlowTerminal:
    """`argv` in a cols x rows pty whose output is read at `rate` bytes/s (None: at once).

    With a `buffer`, the pty is read at once into a buffer of that many bytes that drains at
    `rate`, as sshd reads a pty into its channel window (2 MB in OpenSSH) and TCP's send buffer:
    the program's writes then never block until the buffer is full, however slow the link.
    With a `round_trip`, the terminal's answers reach the program that much later (a link's
    latency; keys are not delayed, so a key's time to the screen leaves the round trip out).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        rate: float | None,
        size: tuple[int, int] = (160, 48),
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        buffer: int = 0,
        round_trip: float = 0.0,
    ) -> None:
        self.rate = rate
        self.buffer = buffer
        self.round_trip = round_trip
        self.master, slave = os.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.process = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # the pty is its terminal
        )
        os.close(slave)
        self.data = bytearray()
        self._marks: list[tuple[int, float]] = []  # (bytes read so far, when)
        self._lock = threading.Lock()
        self._scanned = 0  # queries before this offset are answered
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="slow-link", daemon=True)
        self._reader.start()

    # --- what reached the screen -----------------------------------------------------------

    @property
    def received(self) -> int:
        with self._lock:
            return len(self.data)

    def arrival(self, what: bytes, start: int = 0) -> float | None:
        """When the first `what` at or after offset `start` had been read whole, or None."""
        with self._lock:
            index = self.data.find(what, start)
            if index < 0:
                return None
            end = index + len(what)
            return next(when for offset, when in self._marks if offset >= end)

    def wait_for(self, what: bytes, start: int = 0, timeout: float = 20.0) -> float:
        """Wait until `what` arrived at or after offset `start`; when it arrived."""
        deadline = time.monotonic() + timeout
        while (when := self.arrival(what, start)) is None:
            if time.monotonic() > deadline:
                tail = bytes(self.data[-600:])
                raise TimeoutError(f"{what!r} did not arrive in {timeout} s; last bytes: {tail!r}")
            if self.process.poll() is not None:
                raise RuntimeError(f"the program exited ({self.process.returncode}) first")
            time.sleep(0.005)
        return when

    def last_arrival(self, what: bytes) -> float | None:
        """When the last `what` read so far arrived, or None."""
        with self._lock:
            index = self.data.rfind(what)
            if index < 0:
                return None
            end = index + len(what)
            return next(when for offset, when in self._marks if offset >= end)

    def frames(self, start: int = 0) -> int:
        """Direct video frames read since offset `start`."""
        with self._lock:
            return self.data.count(DIRECT_FRAME, start)

    # --- the other way ---------------------------------------------------------------------

    def keys(self, data: bytes) -> float:
        """Type `data`; when it was written."""
        when = time.monotonic()
        os.write(self.master, data)
        return when

    def close(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._stop.set()
        self._reader.join(timeout)
        os.close(self.master)

    def __enter__(self) -> SlowTerminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the link --------------------------------------------------------------------------

    def _read(self) -> None:
        burst = float("inf") if self.rate is None else max(self.rate * 0.01, 64.0)
        allowance, last = 0.0, time.monotonic()
        queue = bytearray()  # read from the pty, not yet across the link (sshd's window, TCP's)
        while not self._stop.is_set():
            now = time.monotonic()
            allowance = min(burst, allowance + (now - last) * (self.rate or 0.0))
            last = now
            want = 1 << 16 if self.rate is None else int(allowance)
            # From the pty: what the link's buffers still hold, or with none what crosses now.
            take = max(self.buffer - len(queue), 0) or (0 if queue else want)
            if take < 1:
                time.sleep(TICK)
            elif select.select([self.master], [], [], TICK)[0]:
                try:
                    chunk = os.read(self.master, take)
                except OSError:  # EIO: the program closed its end
                    return
                if not chunk:
                    return
                queue += chunk
            crossed = bytes(queue[: max(want, 0)])
            if not crossed:
                continue
            del queue[: len(crossed)]
            allowance -= len(crossed)
            with self._lock:
                self.data += crossed
                self._marks.append((len(self.data), time.monotonic()))
            self._answer()

    def _answer(self) -> None:
        with self._lock:
            start = max(0, self._scanned - LONGEST_QUERY + 1)
            found = [m for m in QUERIES.finditer(self.data, start) if m.start() >= self._scanned]
            # A query cut at the end of what was read so far is answered once it is whole.
            self._scanned = max(len(self.data) - LONGEST_QUERY + 1, self._scanned)
            for match in found:
                self._scanned = max(self._scanned, match.end())
        answer = b"".join(ANSWERS[match.group()] for match in found)
        if not answer:
            return
        if self.round_trip:  # the answer crosses back, a round trip after the query was sent
            threading.Timer(self.round_trip, os.write, (self.master, answer)).start()
        else:
            os.write(self.master, answer)


# --- tcall's echo call at the far end of the link ------------------------------------------------

MUTED = b"muted"  # the call screen's top bar (and microphone meter) while the microphone is muted
STATS = b"bitrate"  # a line of the stats box (`s`)
CONNECTED = "⏱".encode()  # the call timer, shown once the call is connected


def echo_home(home: Path) -> dict[str, str]:
    """Settings for an echo call with the test pattern and a tone; the environment to run in."""
    home.mkdir(parents=True, exist_ok=True)
    for key, value in (("camera", "pattern"), ("microphone", "sine"), ("render", "halfblock")):
        result = run_in_process(home, "settings", "set", key, value)
        assert result.returncode == 0, result.stderr
    return loopback_env(TCALL_HOME=str(home), TERM="xterm-256color", COLORTERM="truecolor")


@contextmanager
def echo_call(
    home: Path,
    rate: float | None,
    *,
    video: bool = True,
    size: tuple[int, int] = (160, 48),
    settle: float = 3.0,
    argv: Sequence[str] = (TCALL,),
    buffer: int = 0,
    round_trip: float = 0.0,
) -> Iterator[SlowTerminal]:
    """The real `tcall` app (`argv`) in a SlowTerminal (see there for `buffer`), in its echo call
    (video, or audio only), connected `settle` seconds ago."""
    env = echo_home(home)
    with SlowTerminal(
        argv, rate=rate, size=size, env=env, buffer=buffer, round_trip=round_trip
    ) as terminal:
        terminal.wait_for(ECHO.encode())
        start = terminal.received
        terminal.keys(b"\r" if video else b"a")  # the echo test is selected when the app opens
        terminal.wait_for(CONNECTED, start, timeout=60)
        # The call screen's first paint and first frames cross a thin link for a few seconds.
        time.sleep(settle)
        yield terminal


def toggle_latency(
    terminal: SlowTerminal, key: bytes, effect: bytes, quiet: float = 1.5, timeout: float = 30.0
) -> float:
    """Press `key` and time how long until `effect` is on screen; press it again to undo.

    While toggled on the app may keep writing `effect` (the top bar redraws each second), and those
    bytes may still be crossing a slow link after the undo. So the press waits until no `effect`
    has arrived for `quiet` seconds: the link has carried what was written before the undo, and an
    `effect` that arrives after the press is the press's own."""
    while True:
        last = terminal.last_arrival(effect)
        if last is None or time.monotonic() - last > quiet:
            break
        time.sleep(0.05)
    start = terminal.received
    pressed = terminal.keys(key)
    shown = terminal.wait_for(effect, start, timeout=timeout)
    terminal.keys(key)
    return shown - pressed


def mute_latency(terminal: SlowTerminal, quiet: float = 1.5, timeout: float = 30.0) -> float:
    """`m` (mute): seconds until "muted" is on screen."""
    return toggle_latency(terminal, b"m", MUTED, quiet, timeout)

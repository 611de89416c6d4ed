"""The speaker's playout buffer: decoded audio goes in by 20 ms frames on the event loop, the device
takes it out in small blocks on its own thread, and neither side ever waits for the other.

- It starts at the first frame and holds as little as the arrivals allow: when the device finds it
  short, the gap is concealed (by the decoder's concealment when one is given, else by repeating
  the last pitch period while fading out), never filled with a click or a re-buffering silence.
  Concealed audio delays what comes after it, so a stall leaves the buffer that much deeper: the
  margin grows exactly where the arrivals needed it.
- When the buffer has stayed deeper than its target (after a burst, or a stall that ended), it
  drains back by removing one pitch period at a time from the newest audio (a cross-faded cut,
  which speech hides well), so a burst costs delay only for a moment.
- The target margin rises a step at each stall and falls back slowly while none come.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from tcall.engine.media.sound import SAMPLE_RATE

Conceal = Callable[[int], np.ndarray]

MS = SAMPLE_RATE // 1000
MIN_PERIOD = 2 * MS + MS // 2  # 2.5 ms: 400 Hz, above any speaking voice's pitch
MAX_PERIOD = 15 * MS  # 15 ms: 67 Hz, below any
MATCH = 5 * MS  # the stretch compared when looking for the period
FADE_OUT = 40 * MS  # how long repeated audio lasts, fading, before silence
CROSSFADE = 2 * MS + MS // 2  # from concealed audio back into real audio
HISTORY = MAX_PERIOD + MATCH


def pitch_period(signal: np.ndarray, shortest: int, longest: int) -> tuple[int, float]:
    """The lag (shortest..longest) at which the end of `signal` best repeats what came before it,
    and how well (normalized correlation, -1..1). `signal` holds at least longest + MATCH samples."""
    x = signal[-(longest + MATCH) :].astype(np.float32)
    tail = x[-MATCH:]
    earlier = x[: len(x) - shortest]  # candidate windows start at lag `longest` down to `shortest`
    products = np.correlate(earlier, tail, mode="valid")
    energy = np.cumsum(np.concatenate([[0.0], earlier.astype(np.float64) ** 2]))
    window_energy = energy[MATCH:] - energy[:-MATCH]
    norm = np.sqrt(np.maximum(window_energy * float(tail @ tail), 1e-9))
    scores = products / norm
    best = int(np.argmax(scores))
    return longest - best, float(scores[best])


class PitchRepeater:
    """Concealment without a decoder: the last pitch period of what was played, repeated and fading
    out over FADE_OUT (G.711 Appendix I's idea, without its attenuation steps)."""

    def __init__(self, history: np.ndarray) -> None:
        quiet = float(np.abs(history[-MATCH:]).max(initial=0)) < 64
        period, _ = (MAX_PERIOD, 0.0) if quiet else pitch_period(history, MIN_PERIOD, MAX_PERIOD)
        self._cycle = history[-period:].astype(np.float32)
        self._done = FADE_OUT if quiet else 0  # samples produced so far

    def take(self, count: int) -> np.ndarray:
        index = np.arange(self._done, self._done + count)
        gain = np.clip(1.0 - index / FADE_OUT, 0.0, 1.0)
        self._done += count
        return (self._cycle[index % len(self._cycle)] * gain).astype(np.int16)


class Playout:
    """The buffer between the event loop (`write`) and the device thread (`read`).

    `conceal`, when set, is called on the device's thread with a number of samples and must
    return that many int16 samples of concealment promptly (it runs inside the audio callback).
    """

    TARGET_MIN = 5 * MS  # the smallest margin kept when draining
    TARGET_MAX = 60 * MS
    TARGET_STEP = 5 * MS  # added at each stall
    TARGET_RELAX = 10 * SAMPLE_RATE  # samples played without a stall before the target falls a ms
    DRAIN_SLACK = 5 * MS  # excess over the target that is left alone
    WINDOW = 250 * MS  # the low-water mark is measured over this much playback
    MAX_BUFFERED = 300 * MS  # beyond this, the oldest audio is dropped at once

    def __init__(self) -> None:
        self.conceal: Conceal | None = None
        self.target = self.TARGET_MIN
        self.stalls = 0  # times the device found the buffer short after playback began
        self.concealed = 0  # samples of concealment played
        self.drained = 0  # samples removed to bring the delay back to the target
        self.dropped = 0  # samples dropped beyond MAX_BUFFERED
        self.played = 0  # samples handed to the device after playback began
        self._lock = threading.Lock()
        self._buffer = np.zeros(0, dtype=np.int16)
        self._started = False
        self._low = 0  # the fewest samples left after a read, this window
        self._window_read = 0
        self._since_stall = 0
        # Device-thread state: what was played last (for concealment), and the concealment going on.
        self._history = np.zeros(HISTORY, dtype=np.int16)
        self._repeater: PitchRepeater | None = None
        self._concealing = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def snapshot(self) -> dict[str, float]:
        """The figures so far, in ms (and `stalls`, a count), for stats and benchmarks."""
        ms = 1000 / SAMPLE_RATE
        return {
            "buffered_ms": round(self.buffered * ms, 1),
            "target_ms": round(self.target * ms, 1),
            "stalls": self.stalls,
            "played_ms": round(self.played * ms, 1),
            "concealed_ms": round(self.concealed * ms, 1),
            "drained_ms": round(self.drained * ms, 1),
            "dropped_ms": round(self.dropped * ms, 1),
        }

    # --- the event loop's side ---------------------------------------------------------------

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            if not self._started and len(self._buffer) >= self.MAX_BUFFERED:
                # Nothing has read any of it (a group call's mix with no speaker to play it):
                # what is there stays, the rest is dropped without the work of a cut.
                self.dropped += len(samples)
                return
            buffer = np.concatenate([self._buffer, samples.astype(np.int16, copy=False)])
            if len(buffer) > self.MAX_BUFFERED:
                cut = len(buffer) - self.MAX_BUFFERED
                buffer = _splice(buffer, 0, cut)
                self.dropped += cut
                self._low = max(0, self._low - cut)
            self._buffer = self._drain(buffer)

    def _drain(self, buffer: np.ndarray) -> np.ndarray:
        """Remove one pitch period from the newest audio when the low-water mark shows more than
        the target (plus slack) that playback never needed."""
        if self._window_read < 2 * 960 or self._low <= self.target + self.DRAIN_SLACK:
            return buffer
        excess = self._low - self.target
        region = buffer[-(2 * MAX_PERIOD + MATCH) :]
        longest = min(MAX_PERIOD, (len(region) - MATCH) // 2, excess)
        if longest < MIN_PERIOD:
            return buffer
        start = len(buffer) - len(region)
        period, match = pitch_period(region[: len(region) - longest], MIN_PERIOD, longest)
        quiet = float(np.abs(region).max(initial=0)) < 300
        if match < 0.5 and not quiet and excess < 60 * MS:
            return buffer  # no clean cut here; the next frame may have one
        at = start + len(region) - longest - period - MATCH
        at = max(start, min(at, len(buffer) - 2 * period))
        self.drained += period
        self._low -= period
        return _splice(buffer, at, period)

    # --- the device's side -------------------------------------------------------------------

    def read(self, out: np.ndarray) -> None:
        """Fill `out` (int16, written in place): buffered audio first, concealment for the rest."""
        count = len(out)
        with self._lock:
            if not self._started:
                if len(self._buffer) == 0:
                    out.fill(0)  # nothing has come yet: there is nothing to conceal
                    return
                self._started = True
            have = min(count, len(self._buffer))
            out[:have] = self._buffer[:have]
            self._buffer = self._buffer[have:]
            left = len(self._buffer)
        if have and self._concealing:
            self._end_concealment(out[:have])
        if have < count:
            self._fill_gap(out[have:])
        self._account(out, have, left)

    def _fill_gap(self, gap: np.ndarray) -> None:
        if not self._concealing:
            self._concealing = True
            self.stalls += 1
            self._since_stall = 0
            self.target = min(self.TARGET_MAX, self.target + self.TARGET_STEP)
            self._repeater = None
        self.concealed += len(gap)
        conceal = self.conceal
        if conceal is not None:
            try:
                samples = np.asarray(conceal(len(gap)), dtype=np.int16).reshape(-1)
            except Exception:  # a concealer that fails once is not asked again
                self.conceal = None
            else:
                gap[: len(samples)] = samples[: len(gap)]
                gap[len(samples) :] = 0
                return
        if self._repeater is None:
            self._repeater = PitchRepeater(self._history)
        gap[:] = self._repeater.take(len(gap))

    def _end_concealment(self, real: np.ndarray) -> None:
        """Cross-fade from the repeated pitch period into the audio that came (a decoder's
        concealment needs none: the decoder itself continues smoothly into its next frame)."""
        self._concealing = False
        if self._repeater is None:
            return
        span = min(CROSSFADE, len(real))
        ramp = np.linspace(0.0, 1.0, span, endpoint=False, dtype=np.float32)
        fading = self._repeater.take(span).astype(np.float32)
        real[:span] = (real[:span] * ramp + fading * (1.0 - ramp)).astype(np.int16)
        self._repeater = None

    def _account(self, out: np.ndarray, have: int, left: int) -> None:
        history = self._history
        count = len(out)
        if count >= len(history):
            history[:] = out[-len(history) :]
        else:
            history[:-count] = history[count:]
            history[-count:] = out
        self.played += count
        self._since_stall += count
        if self._since_stall >= self.TARGET_RELAX:
            self._since_stall = 0
            self.target = max(self.TARGET_MIN, self.target - MS)
        with self._lock:
            if self._window_read >= self.WINDOW:
                self._window_read = 0
                self._low = left
            self._window_read += count
            self._low = min(self._low, left) if have == count else 0


def _splice(samples: np.ndarray, at: int, length: int) -> np.ndarray:
    """`samples` without samples[at : at + length], cross-faded over `length` samples so the cut
    does not click: what came before fades out as what comes after fades in."""
    end = at + length
    span = min(length, len(samples) - end)
    if span <= 0:
        return np.concatenate([samples[:at], samples[end:]])
    ramp = np.linspace(0.0, 1.0, span, endpoint=False, dtype=np.float32)
    joined = samples[at : at + span] * (1.0 - ramp) + samples[end : end + span] * ramp
    return np.concatenate([samples[:at], joined.astype(np.int16), samples[end + span :]])


class Mix:
    """The speaker of a group call: one Playout buffer per member (each bounded, with its own
    margin, concealment and drain, as a 1:1 call's), read together and summed by the device.

    Members come and go on the event loop while the device's thread reads: the inputs are one tuple,
    replaced whole. The sum is clipped, not limited: several members at full scale at once is
    shouting, which clipping does not make worse to hear.
    """

    def __init__(self) -> None:
        self._inputs: tuple[Playout, ...] = ()

    @property
    def inputs(self) -> tuple[Playout, ...]:
        return self._inputs

    def add(self) -> Playout:
        playout = Playout()
        self._inputs = (*self._inputs, playout)
        return playout

    def remove(self, playout: Playout) -> None:
        self._inputs = tuple(p for p in self._inputs if p is not playout)

    def read(self, out: np.ndarray) -> None:
        """Fill `out` (int16, in place) with the sum of every input's next samples."""
        inputs = self._inputs
        if len(inputs) == 1:
            inputs[0].read(out)
            return
        total = np.zeros(len(out), dtype=np.int32)
        part = np.empty(len(out), dtype=np.int16)
        for playout in inputs:
            playout.read(part)
            total += part
        out[:] = np.clip(total, -32768, 32767)

"""The microphone's audio processing: WebRTC's echo cancellation (AEC3), noise suppression and
automatic gain (AGC2), behind a high-pass filter, on every 20 ms block before it is encoded.

The library is pywebrtc-audio (WebRTC's own audio processing module; the comparison with livekit's
and speexdsp's is in the README). Its stages run one after another in the order WebRTC's own
pipeline uses (high-pass, echo canceller, noise suppressor, gain), each as its own object: the
library's all-in-one processor ignores the noise suppression level at 48 kHz (6-7 dB whatever the
level), while its separate suppressor honours it.

The echo canceller needs the far end: what the speaker played. The speaker sink hands each block it
plays to a FarEndReference on PortAudio's thread; the microphone's block takes as many samples of it
on the event loop. The two run on different threads (and, with two devices, different clocks), so
the reference waits in a small bounded buffer, and is resampled onto the microphone's clock so
the echo's delay holds still (AEC3 finds that delay itself, but does not follow a drifting one).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pywebrtc_audio

from tcall.engine.media.audio import AudioSource
from tcall.engine.media.levels import MicLevel
from tcall.engine.media.sound import BLOCK, SAMPLE_RATE

# 18 dB of suppression: WebRTC's "high" level, which Chrome uses. It scored best of the four levels
# on speech in steady noise here (PESQ-WB, bench/audio_processing.py).
NOISE_SUPPRESSION_LEVEL = 2

# AGC2 aims the speech level this far under full scale (its default, 5 dB, put -26 dBFS speech at
# -18 dBFS, where the peaks of speech rode its limiter: PESQ-WB 4.37 on clean speech; 10 dB: 4.53).
GAIN_HEADROOM_DB = 10.0

# A microphone block this quiet (every sample within +-1) is digital silence: a muted or virtual
# device, never a real room. WebRTC's suppressor learns no noise floor from it, so its noise
# estimate is then learned from the speech itself and it eats the speech (PESQ-WB of clean speech
# through it: 3.9). It gets a floor of DITHER_LSB RMS (-90 dBFS) to learn from instead (4.3).
SILENT_LSB = 1
DITHER_LSB = 1.0


@dataclass(frozen=True)
class AudioProcessing:
    """Which stages run on the microphone (the settings of the same names)."""

    echo_cancellation: bool = True
    noise_suppression: bool = True
    auto_gain: bool = True

    @property
    def active(self) -> bool:
        return self.echo_cancellation or self.noise_suppression or self.auto_gain


class FarEndReference:
    """What the speaker played, from PortAudio's thread to the microphone's processing, resampled
    onto the microphone's clock.

    The speaker and the microphone run on clocks of their own (in a real call the speaker played
    47 979 samples for the microphone's 48 000: 450 ppm). Taken sample for sample, the reference
    would slide against the echo (0.45 ms a second) and the buffer between them would run dry or
    overflow every few seconds; AEC3 does not follow a drift like that (it kept 13-46 dB of a
    synthetic echo at 450 ppm, 55-64 dB at 0-100 ppm). So `take` reads the buffer at a `ratio`
    (speaker samples per microphone sample, cubic interpolation with a carried phase), which a
    slow PI controller (ClockSteering) sets from the reference's lag: how far the read position
    is behind what the speaker had played when the microphone captured the block. Holding that
    lag where it was when the reference started flowing holds the echo's delay as AEC3 sees it.
    The ratio found is kept when the reference restarts (the clocks are the same ones).

    Consuming starts once PREFILL is buffered, so the callbacks' jitter does not starve it. When
    more than MAX waits (the microphone stalled), the oldest goes, down to PREFILL; when it runs
    dry (the speaker stopped), the canceller hears silence until it fills again. Either is a
    restart (counted in `restarts`): in steady state there are none.
    """

    PREFILL = 2 * BLOCK  # 40 ms
    MAX = 6 * BLOCK  # 120 ms
    HISTORY_SECONDS = 0.5  # push times kept to find what had been played at a capture time

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._blocks: deque[np.ndarray] = deque()
        self._buffered = 0
        self._flowing = False
        self.restarts = 0  # times a flowing reference ran dry or overflowed
        self.steering = ClockSteering()
        # Totals since the start, in speaker samples: pushed, and consumed (read or dropped).
        self._pushed = 0
        self._consumed = 0
        self._pushes: deque[tuple[float, int]] = deque()  # (time, _pushed after that push)
        self._captures = CaptureClock()
        # The resampler: the read position is `_phase` (0 <= _phase < 1) past the oldest
        # buffered sample; `_before` holds the sample before it (cubic interpolation's left).
        self._phase = 0.0
        self._before = 0.0

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def ratio(self) -> float:
        return self.steering.ratio

    def push(self, samples: np.ndarray) -> None:
        """Called on the speaker's thread with each int16 block it played; quick, never blocks long."""
        now = self._clock()
        with self._lock:
            self._blocks.append(samples)
            self._buffered += len(samples)
            self._pushed += len(samples)
            self._pushes.append((now, self._pushed))
            while len(self._pushes) > 2 and self._pushes[0][0] < now - self.HISTORY_SECONDS:
                self._pushes.popleft()
            if self._buffered > self.MAX:
                if self._flowing:
                    self.restarts += 1
                    self._flowing = False
                self._drop_to(self.PREFILL)

    def _drop_to(self, keep: int) -> None:
        """Drop the oldest whole blocks while at least `keep` samples would remain (lock held)."""
        while self._buffered - len(self._blocks[0]) >= keep:
            dropped = len(self._blocks.popleft())
            self._buffered -= dropped
            self._consumed += dropped
        self._phase = 0.0
        self._before = 0.0

    def take(self, count: int) -> np.ndarray:
        """The next `count` samples the speaker played, on the microphone's clock, or silence
        while there are too few."""
        captured = self._captures.captured(self._clock(), count)
        with self._lock:
            if not self._flowing and self._buffered >= max(self.PREFILL, count) + 3:
                # Start PREFILL behind: what piled up before (the speaker often starts well
                # before the microphone's first block) would only add to the delay for good.
                self._drop_to(max(self.PREFILL, count) + 3)
                self._flowing = True
                self.steering.restart()
            if not self._flowing:
                return np.zeros(count, dtype=np.int16)
            lag = self._played_at(captured) - (self._consumed + self._phase)
            self.steering.steer(lag, count)
            # The last output sample reads up to two samples past its position.
            needed = int(self._phase + (count - 1) * self.ratio) + 3
            if self._buffered < needed:
                self.restarts += 1
                self._flowing = False
                return np.zeros(count, dtype=np.int16)
            return self._resample(count, needed)

    def _played_at(self, moment: float) -> float:
        """How many samples the speaker had pushed at `moment`, interpolated between its pushes,
        so the 5 ms steps do not show (lock held)."""
        later_time, later_total = self._pushes[-1]
        if moment >= later_time:
            return float(later_total)
        for earlier_time, earlier_total in reversed(self._pushes):
            if earlier_time <= moment:
                if later_time <= earlier_time:
                    return float(later_total)
                share = (moment - earlier_time) / (later_time - earlier_time)
                return earlier_total + share * (later_total - earlier_total)
            later_time, later_total = earlier_time, earlier_total
        return float(self._pushes[0][1])

    def _resample(self, count: int, needed: int) -> np.ndarray:
        """`count` samples read at `ratio` from the buffer by cubic (Catmull-Rom) interpolation
        (lock held)."""
        source = np.empty(needed + 1, dtype=np.float64)
        source[0] = self._before
        source[1:] = self._peek(needed)
        position = self._phase + np.arange(count) * self.ratio
        index = position.astype(np.int64)
        t = position - index
        p0, p1, p2, p3 = source[index], source[index + 1], source[index + 2], source[index + 3]
        out = p1 + 0.5 * t * (
            p2 - p0 + t * (2 * p0 - 5 * p1 + 4 * p2 - p3 + t * (3 * (p1 - p2) + p3 - p0))
        )
        end = self._phase + count * self.ratio
        consumed = int(end)
        self._phase = end - consumed
        self._before = source[consumed]
        self._consume(consumed)
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)

    def _peek(self, count: int) -> np.ndarray:
        parts, have = [], 0
        for block in self._blocks:
            parts.append(block)
            have += len(block)
            if have >= count:
                break
        return np.concatenate(parts)[:count]

    def _consume(self, count: int) -> None:
        self._buffered -= count
        self._consumed += count
        while count:
            head = self._blocks[0]
            if len(head) <= count:
                self._blocks.popleft()
                count -= len(head)
            else:
                self._blocks[0] = head[count:]
                count = 0


class CaptureClock:
    """When the microphone captured the block being taken, from when blocks are taken.

    Blocks reach `take` on the event loop, late by however long the loop and the microphone's
    queue kept them (in a real call 13-61 ms apart, for 20 ms blocks, the lateness wandering by
    ~15 ms for seconds). Capture times are regular: block n was captured at start + n blocks. So
    the start is the earliest (take time - samples before it) over the last WINDOW_SECONDS: the
    blocks taken soonest after their capture, whatever the loop's lateness did in between.
    """

    WINDOW_SECONDS = 2.0

    def __init__(self) -> None:
        self._samples = 0  # microphone samples taken so far
        # (samples before a take, its time - those samples' duration), increasing in the second.
        self._starts: deque[tuple[int, float]] = deque()

    def captured(self, now: float, count: int) -> float:
        """The capture time of the `count` samples being taken at `now` (their first sample)."""
        start = now - (self._samples + count) / SAMPLE_RATE
        while self._starts and self._starts[-1][1] >= start:
            self._starts.pop()
        self._starts.append((self._samples, start))
        while self._starts[0][0] < self._samples - self.WINDOW_SECONDS * SAMPLE_RATE:
            self._starts.popleft()
        at = self._starts[0][1] + self._samples / SAMPLE_RATE
        self._samples += count
        return at


class ClockSteering:
    """The resampling ratio (speaker samples per microphone sample) that holds the reference's
    lag steady: a PI controller on the lag, smoothed over LAG_SECONDS, limited to MAX_DRIFT.

    The lag to hold is its average over the flow's first SETTLE_SECONDS. The controller runs on
    the microphone's clock (each step is `count` samples of it), and a restart keeps the ratio
    found (the integral), so a speaker that stops and starts again does not cost the drift anew.
    """

    MAX_DRIFT = 1000e-6  # the ratio stays within 1 +- this (sound cards: tens to hundreds of ppm)
    LAG_SECONDS = 1.0  # the lag's smoothing, in seconds of microphone audio
    # Gains on the lag's error in seconds of audio: natural frequency ~0.25 rad/s, damping ~1
    # (450 ppm taken up within ~4 s, the lag moving < 1 ms meanwhile).
    PROPORTIONAL = 0.5  # ratio change per second of lag error
    INTEGRAL = 0.0625  # ratio change per second of lag error, per second
    SETTLE_SECONDS = 0.5

    def __init__(self) -> None:
        self._drift = 0.0  # the integral term: the ratio found so far, minus 1
        self.ratio = 1.0
        self.lag: float | None = None  # smoothed, in samples
        self.target: float | None = None  # the lag to hold, in samples
        self._settling = 0.0  # sum of the lags over the settling
        self._steps = 0
        self._flowed = 0  # microphone samples since the flow started

    def restart(self) -> None:
        self.ratio = 1.0 + self._drift
        self.lag = self.target = None
        self._settling, self._steps, self._flowed = 0.0, 0, 0

    def steer(self, lag: float, count: int) -> None:
        """The reference is `lag` samples behind the speaker as `count` more are read."""
        self._flowed += count
        if self.target is None:
            self._settling += lag
            self._steps += 1
            if self._flowed >= self.SETTLE_SECONDS * SAMPLE_RATE:
                self.target = self.lag = self._settling / self._steps
            return
        assert self.lag is not None
        step = count / SAMPLE_RATE
        self.lag += (lag - self.lag) * min(1.0, step / self.LAG_SECONDS)
        error = (self.lag - self.target) / SAMPLE_RATE
        limit = self.MAX_DRIFT
        self._drift = min(max(self._drift + self.INTEGRAL * error * step, -limit), limit)
        self.ratio = 1.0 + min(max(self._drift + self.PROPORTIONAL * error, -limit), limit)


class MicProcessor:
    """The stages `processing` names, on 48 kHz mono int16 blocks (any multiple of 10 ms).

    Not thread-safe: one thread calls `process`. With every stage off it returns its input untouched.
    """

    def __init__(self, processing: AudioProcessing) -> None:
        self.processing = processing
        # The high-pass filter runs whenever anything does (AEC3 needs it; it also takes out the
        # rumble and DC offset that would otherwise steer the noise estimate and the gain).
        self._front = (
            pywebrtc_audio.AudioProcessor(
                sample_rate=SAMPLE_RATE,
                echo_cancellation=processing.echo_cancellation,
                high_pass_filter=True,
            )
            if processing.active
            else None
        )
        self._noise = (
            pywebrtc_audio.NoiseSuppressor(sample_rate=SAMPLE_RATE, level=NOISE_SUPPRESSION_LEVEL)
            if processing.noise_suppression
            else None
        )
        # AGC2 runs its own voice detector (an RNN): the suppressor's speech probability is
        # another measure (high in a pause, on noise), and fed to AGC2 it drove the gain 6 dB too
        # high, into its limiter: clean speech at -26 dBFS scored PESQ-WB 2.5 through the chain.
        self._gain = (
            pywebrtc_audio.GainController(sample_rate=SAMPLE_RATE, headroom_db=GAIN_HEADROOM_DB)
            if processing.auto_gain
            else None
        )
        self._dither = np.random.default_rng()
        self.voice_probability: float | None = None  # the suppressor's, for the last block

    def process(self, near: np.ndarray, far: np.ndarray | None = None) -> np.ndarray:
        """The microphone's block `near` processed; `far` is what the speaker played meanwhile
        (same length; None: nothing)."""
        if self._front is None:
            return near
        if self.processing.echo_cancellation:
            if far is None:
                far = np.zeros_like(near)
            out = self._front.process(near, far)
        else:
            out = self._front.process(near)
        if self._noise is not None:
            out = self._noise.process(self._with_floor(out))
            # Spares the level meter a voice detector.
            self.voice_probability = self._noise.speech_probability
        if self._gain is not None:
            out = self._gain.process(out)
        return out

    def _with_floor(self, block: np.ndarray) -> np.ndarray:
        """`block`, or a -90 dBFS noise floor where it is digital silence (see SILENT_LSB)."""
        if not len(block) or block.max() > SILENT_LSB or block.min() < -SILENT_LSB:
            return block
        noise = self._dither.normal(0.0, DITHER_LSB, len(block)).round()
        return np.clip(block + noise, -32768, 32767).astype(np.int16)


class ProcessedAudioSource(AudioSource):
    """A source whose blocks go through a MicProcessor (None: untouched) and are measured for the
    level meter, if one is given."""

    def __init__(
        self,
        source: AudioSource,
        processor: MicProcessor | None,
        reference: FarEndReference | None = None,
        level: MicLevel | None = None,
    ) -> None:
        self.source = source
        self.name = source.name
        self.processor = processor
        self.reference = reference
        self.level = level

    async def next_block(self) -> np.ndarray:
        block = await self.source.next_block()
        voice = None
        if self.processor is not None:
            far = self.reference.take(len(block)) if self.reference is not None else None
            block = self.processor.process(block, far)
            voice = self.processor.voice_probability
        if self.level is not None:
            self.level.measure(block, voice)
        return block

    def stop(self) -> None:
        self.source.stop()

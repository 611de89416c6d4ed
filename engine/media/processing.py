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
from collections import deque
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

# Samples by which AEC3's output comes later than the high-pass filter's alone at 48 kHz (430
# against 46: its 4 ms blocks and filter bank; measured, and checked by a test). Where no echo is
# heard, the microphone high-passed only is delayed as much, so switching between the two is a
# fade between aligned signals, never a jump in time.
AEC3_LATENCY = 384


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

    The speaker and the microphone may run on clocks of their own (in the test studio's
    PulseAudio the speaker played 450-1000 ppm off the microphone). Taken sample for sample, the
    reference would slide against the echo (0.45 ms a second at 450 ppm); AEC3 does not follow a
    slide like that (it kept 13-46 dB of a synthetic echo at 450 ppm, 55-64 dB at 0-100 ppm). So
    `take` reads the buffer at a `ratio` (speaker samples per microphone sample, cubic
    interpolation with a carried phase), and `heard` steers that ratio (ClockSteering) to hold
    the echo where it was behind the reference, as measured on the two signals (EchoDelay).

    Why the signals and not the clocks: a first version steered by when the blocks were played
    and captured, and through PulseAudio those times wandered by +-20 ms over seconds, device
    timestamps included; chasing them swung the ratio between its limits and moved the echo by
    milliseconds (bench/audio.py's echo scene: 9-40 dB removed, median 19, in 14 calls; steered
    by the echo, 22-67 dB, median 36, in 12).

    Consuming starts once PREFILL is buffered, so the callbacks' jitter does not starve it. When
    more than MAX waits (the microphone stalled), the oldest goes, down to PREFILL; when it runs
    dry (the speaker stopped), the canceller hears silence until it fills again. Either is a
    restart (counted in `restarts`): in steady state there are none. A restart moves the echo,
    so the delay to hold is measured again; the ratio found is kept (the clocks are the same).
    """

    PREFILL = 4 * BLOCK  # 80 ms: the speaker's stalls and bursts (through PulseAudio)
    MAX = 20 * BLOCK  # 400 ms: the event loop's lateness on top

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: deque[np.ndarray] = deque()
        self._buffered = 0
        self._flowing = False
        self.restarts = 0  # times a flowing reference ran dry or overflowed
        self.steering = ClockSteering()
        self.echo = EchoDelay()
        self._unmeasured = 0  # microphone samples heard since the echo's delay was last measured
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
        with self._lock:
            self._blocks.append(samples)
            self._buffered += len(samples)
            if self._buffered > self.MAX:
                if self._flowing:
                    self.restarts += 1
                    self._flowing = False
                self._drop_to(self.PREFILL)

    def _drop_to(self, keep: int) -> None:
        """Drop the oldest whole blocks while at least `keep` samples would remain (lock held)."""
        while self._buffered - len(self._blocks[0]) >= keep:
            self._buffered -= len(self._blocks.popleft())
        self._phase = 0.0
        self._before = 0.0

    def take(self, count: int) -> np.ndarray:
        """The next `count` samples the speaker played, on the microphone's clock, or silence
        while there are too few."""
        with self._lock:
            if not self._flowing and self._buffered >= max(self.PREFILL, count) + 3:
                # Start PREFILL behind: what piled up before (the speaker often starts well
                # before the microphone's first block) would only add to the delay for good.
                self._drop_to(max(self.PREFILL, count) + 3)
                self._flowing = True
                self.steering.restart()
                self.echo.restart()
            if not self._flowing:
                return np.zeros(count, dtype=np.int16)
            # The last output sample reads up to two samples past its position.
            needed = int(self._phase + (count - 1) * self.ratio) + 3
            if self._buffered < needed:
                self.restarts += 1
                self._flowing = False
                return np.zeros(count, dtype=np.int16)
            return self._resample(count, needed)

    def heard(self, near: np.ndarray, far: np.ndarray) -> None:
        """The microphone's block and the reference `take` gave for it (on the same thread as
        `take`): where the echo sits behind the reference steers the ratio."""
        self._unmeasured += len(near)
        anchors = self.echo.anchors
        delay = self.echo.add(near, far)
        if delay is None:
            return
        if self.echo.anchors != anchors:
            self.steering.restart()  # the echo path moved: hold its new place
        self.steering.steer(delay, self._unmeasured)
        self._unmeasured = 0

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
        while count:
            head = self._blocks[0]
            if len(head) <= count:
                self._blocks.popleft()
                count -= len(head)
            else:
                self._blocks[0] = head[count:]
                count = 0


class EchoDelay:
    """How far the echo in the microphone has moved behind the reference, from the two signals,
    every STEP_SECONDS over the last WINDOW_SECONDS at 16 kHz.

    The cross-correlation of the two (whitened, so each band counts about alike) is the echo
    path's pattern: the direct sound and its reflections, within MAX_SECONDS. Which of its peaks
    is highest changes from one window of speech to the next (a room's early reflections are
    about as strong as the direct sound), so the highest peak's place does not follow the echo;
    the whole pattern's place does. The first pattern with a clear peak (PEAK times its RMS) is
    the anchor, and each later one is matched against it within JUMP_SECONDS either way (refined
    between samples): that shift is the delay measured. A pattern matching the anchor by less
    than CLEAR measures nothing (a quiet far end, double talk, no echo at all: headphones); two
    clear ones in a row that match each other but not the anchor mean the echo path moved (the
    speaker reopened a step up its latency ladder): the newer is the anchor from then on
    (counted in `anchors`).

    The same patterns say whether the microphone hears the speaker at all (`absent`). With
    headphones AEC3 takes many seconds to find that there is no echo, and meanwhile its
    suppressor gates the near talker whenever the far end speaks: in double talk with no echo
    at all the near talker scored PESQ-WB 1.1-1.5 for 12 s, then 2.3-3.1 (4.6 alone). The echo
    is absent after ABSENT_WINDOWS windows in which the far end spoke, the microphone stayed
    QUIETER_DB under the reference (its talker silent) and the pattern stayed at the level of
    noise, with no clear or doubtful window between them (a window where the near talker speaks
    and nothing is clear counts neither way). A pattern's peak under ABSENT is noise: 3.5-4.6
    with no echo; 8-16 for an echo 40 dB under the far end in a quiet room; 5.5-12 for one 30
    dB under it in a room at -50 dBFS that drowns it. The echo is present again after two clear
    patterns in a row that match each other: a peak of PEAK, or EVIDENT while the talker is
    silent (two talkers with no echo between them reached 9.4, once 13.8, but never twice in the
    same place). A digitally silent microphone tells nothing (a muted device): a real one always
    hears its room.
    """

    DECIMATE = 3  # 48 kHz blocks averaged in threes: 16 kHz holds speech's echo well enough
    WINDOW_SECONDS = 1.0
    STEP_SECONDS = 1.0
    MAX_SECONDS = 0.3  # the echo path's delay, speaker and microphone buffering included
    JUMP_SECONDS = 0.004  # how far the echo may move between two measures
    CLEAR = 0.4
    PEAK = 12.0
    BEFORE_SECONDS = 0.01
    AFTER_SECONDS = 0.05
    QUIET = 30.0  # the reference's RMS (of 32768) under which there is nothing to measure
    WEIGHT = 0.8  # how fully the spectrum is whitened (1: the plain phase transform)
    ABSENT = 6.0  # a pattern's peak (over its RMS) under which it is noise
    EVIDENT = 8.0  # over which it is an echo, while the near talker is silent
    QUIETER_DB = 15.0  # the microphone this far under the reference: the near talker is silent
    ABSENT_WINDOWS = 3  # echoless windows in a row before the echo is absent

    def __init__(self) -> None:
        self._rate = SAMPLE_RATE // self.DECIMATE
        self._window = int(self.WINDOW_SECONDS * self._rate)
        self._size = 1 << (2 * self._window - 1).bit_length()  # no circular wrap-around
        self._longest = int(self.MAX_SECONDS * self._rate)
        self._reach = int(self.JUMP_SECONDS * self._rate)
        self.step = int(self.STEP_SECONDS * SAMPLE_RATE)  # microphone samples between measures
        self.restart()

    def restart(self) -> None:
        self._near: deque[np.ndarray] = deque()
        self._far: deque[np.ndarray] = deque()
        self._held = 0  # decimated samples in each window
        self._due = self.step
        self._anchor: np.ndarray | None = None
        self._stray: np.ndarray | None = None  # a clear pattern that did not match the anchor
        self.anchors = 0
        self.absent = False  # the microphone hears no echo (see the class's notes)
        self._echoless = 0  # windows in a row that heard none
        self._clear: np.ndarray | None = None  # the last window's pattern, if it was clear

    def add(self, near: np.ndarray, far: np.ndarray) -> float | None:
        """One block of each (same length, a multiple of DECIMATE); the delay's move in 48 kHz
        samples when one is measured, else None."""
        if len(near) % self.DECIMATE or len(far) != len(near):
            self.restart()  # blocks are whole 10 ms ones; anything else starts again
            return None
        self._near.append(near.reshape(-1, self.DECIMATE).mean(axis=1))
        self._far.append(far.reshape(-1, self.DECIMATE).mean(axis=1))
        self._held += len(near) // self.DECIMATE
        while self._held - len(self._near[0]) >= self._window:
            self._held -= len(self._near.popleft())
            self._far.popleft()
        self._due -= len(near)
        if self._due > 0 or self._held < self._window:
            return None
        self._due = self.step
        near, far = np.concatenate(self._near), np.concatenate(self._far)
        far_rms = np.sqrt(np.mean(far**2))
        if far_rms < self.QUIET:
            return None
        pattern = self._pattern(near, far)
        if pattern is None:
            return None
        peak = np.abs(pattern).max() * np.sqrt(len(pattern))  # the pattern's RMS is 1/sqrt(len)
        talker_silent = np.sqrt(np.mean(near**2)) < far_rms * 10 ** (-self.QUIETER_DB / 20)
        self._judge_presence(pattern, float(peak), bool(talker_silent))
        if self._anchor is not None:
            shift = self._shift(pattern, self._anchor)
            if shift is not None:
                self._stray = None
                return shift
        if peak < self.PEAK:
            return None
        if self._anchor is None or (
            self._stray is not None and self._shift(pattern, self._stray) is not None
        ):
            self._anchor, self._stray = pattern, None
            self.anchors += 1
            return 0.0
        self._stray = pattern
        return None

    def _judge_presence(self, pattern: np.ndarray, peak: float, talker_silent: bool) -> None:
        if peak >= self.PEAK or (talker_silent and peak >= self.EVIDENT):
            # An echo path holds still, so a clear pattern brings the echo back only when it
            # matches the one before (two talkers with no echo between them made a lone clear
            # pattern, 13.8 over its RMS).
            if self._clear is not None and self._shift(pattern, self._clear) is not None:
                self.absent = False
            self._clear, self._echoless = pattern, 0
            return
        self._clear = None
        if talker_silent and peak < self.ABSENT:
            self._echoless += 1
            self.absent = self.absent or self._echoless >= self.ABSENT_WINDOWS
        elif talker_silent:
            self._echoless = 0  # neither noise nor clear: not in a row

    def _pattern(self, near: np.ndarray, far: np.ndarray) -> np.ndarray | None:
        spectrum = np.fft.rfft(near, self._size) * np.conj(np.fft.rfft(far, self._size))
        whitened = spectrum / (np.abs(spectrum) ** self.WEIGHT + 1e-9)
        # Lags -reach..longest+reach, so the anchor can be matched within reach either way.
        both = np.fft.irfft(whitened, self._size)
        pattern = np.concatenate([both[-self._reach :], both[: self._longest + self._reach + 1]])
        norm = float(np.linalg.norm(pattern))
        return pattern / norm if norm > 0 else None

    def _shift(self, pattern: np.ndarray, anchor: np.ndarray) -> float | None:
        """How far `pattern` lies behind `anchor`, in 48 kHz samples, or None if they do not
        match clearly. Only the anchor's echo is matched (BEFORE_SECONDS before its highest peak
        to AFTER_SECONDS after it): the rest of a pattern is noise, and diluted the match."""
        reach = self._reach
        peak = reach + int(np.argmax(np.abs(anchor[reach : len(anchor) - reach])))
        start = max(reach, peak - int(self.BEFORE_SECONDS * self._rate))
        end = min(len(anchor) - reach, peak + int(self.AFTER_SECONDS * self._rate))
        echo = anchor[start:end] / np.linalg.norm(anchor[start:end])
        match = np.zeros(2 * reach + 1)
        for index, shift in enumerate(range(-reach, reach + 1)):
            part = pattern[start + shift : end + shift]
            match[index] = np.dot(part, echo) / (np.linalg.norm(part) + 1e-12)
        best = int(np.argmax(match))
        if match[best] < self.CLEAR:
            return None
        offset = 0.0
        if 0 < best < len(match) - 1:  # a parabola through the peak and its neighbours
            left, top, right = match[best - 1], match[best], match[best + 1]
            curve = left - 2 * top + right
            if curve < 0:
                offset = 0.5 * (left - right) / curve
        return (best - reach + offset) * self.DECIMATE


class ClockSteering:
    """The resampling ratio (speaker samples per microphone sample) that holds the echo where it
    was behind the reference when first measured after a (re)start: a PI controller on the
    measured delay, limited to MAX_DRIFT. The integral is the ratio found; a restart keeps it.

    A delay further from the last one than MAX_DRIFT could have moved it (plus SLIP_SECONDS of
    measuring error) is the echo path changing (the speaker's device stalled or reopened), never
    a clock: no steering on it, and once a second measure agrees, its place is held instead.
    """

    MAX_DRIFT = 1000e-6  # the ratio stays within 1 +- this (sound cards: tens to hundreds of ppm)
    # Gains on the delay's error in seconds of audio: natural frequency ~0.25 rad/s, damping ~1
    # (450 ppm taken up within ~4 s, the echo moving < 1 ms meanwhile).
    PROPORTIONAL = 0.5  # ratio change per second of delay error
    INTEGRAL = 0.0625  # ratio change per second of delay error, per second
    SLIP_SECONDS = 0.0005

    def __init__(self) -> None:
        self._drift = 0.0  # the integral term: the ratio found so far, minus 1
        self.ratio = 1.0
        self.target: float | None = None  # the delay to hold, in samples
        self._last = 0.0  # the last delay steered by
        self._since = 0  # microphone samples since then
        self._moved: float | None = None  # a delay that jumped, waiting for a second measure

    def restart(self) -> None:
        self.ratio = 1.0 + self._drift
        self.target = self._moved = None

    def steer(self, delay: float, elapsed: int) -> None:
        """The echo measured `delay` samples behind the reference, `elapsed` microphone samples
        after the last measure."""
        self._since += elapsed
        if self.target is None:
            self.target, self._last, self._since = delay, delay, 0
            return
        reach = self.MAX_DRIFT * self._since + self.SLIP_SECONDS * SAMPLE_RATE
        if abs(delay - self._last) > reach:
            moved, self._moved = self._moved, delay
            if moved is not None and abs(delay - moved) <= reach:
                self.restart()
                self.target, self._last, self._since = delay, delay, 0
            return
        self._moved = None
        step = self._since / SAMPLE_RATE  # since the last delay steered by
        self._last, self._since = delay, 0
        # The delay grows while the reference is read faster than the speaker's clock runs.
        error = (delay - self.target) / SAMPLE_RATE
        limit = self.MAX_DRIFT
        self._drift = min(max(self._drift - self.INTEGRAL * error * step, -limit), limit)
        self.ratio = 1.0 + min(max(self._drift - self.PROPORTIONAL * error, -limit), limit)


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
        # The microphone high-passed only, AEC3_LATENCY late: what goes out where no echo is heard.
        self._plain = (
            pywebrtc_audio.AudioProcessor(sample_rate=SAMPLE_RATE, high_pass_filter=True)
            if processing.echo_cancellation
            else None
        )
        self._plain_tail = np.zeros(AEC3_LATENCY, dtype=np.int16)
        self._plain_share = 0.0  # how much of the output is the plain path (1: AEC3's is unused)
        self._dither = np.random.default_rng()
        self.voice_probability: float | None = None  # the suppressor's, for the last block

    def process(
        self, near: np.ndarray, far: np.ndarray | None = None, echo_absent: bool = False
    ) -> np.ndarray:
        """The microphone's block `near` processed; `far` is what the speaker played meanwhile
        (same length; None: nothing). With `echo_absent` (EchoDelay.absent: the microphone hears
        no echo, as with headphones) AEC3 still runs, so it has the echo path if one comes, but
        what goes out is the microphone without it: its suppressor would gate the near talker
        whenever the far end speaks."""
        if self._front is None:
            return near
        if self.processing.echo_cancellation:
            if far is None:
                far = np.zeros_like(near)
            out = self._unless_no_echo(near, self._front.process(near, far), echo_absent)
        else:
            out = self._front.process(near)
        if self._noise is not None:
            out = self._noise.process(self._with_floor(out))
            # Spares the level meter a voice detector.
            self.voice_probability = self._noise.speech_probability
        if self._gain is not None:
            out = self._gain.process(out)
        return out

    def _unless_no_echo(self, near: np.ndarray, cancelled: np.ndarray, absent: bool) -> np.ndarray:
        """AEC3's block `cancelled`, or where the echo is `absent` the plain path's; a change
        fades over the block."""
        assert self._plain is not None
        plain = np.concatenate([self._plain_tail, self._plain.process(near)])
        plain, self._plain_tail = plain[: len(near)], plain[len(near) :]
        share = 1.0 if absent else 0.0
        if share == self._plain_share:
            return plain if absent else cancelled
        fade = np.linspace(self._plain_share, share, len(near) + 1)[1:]
        self._plain_share = share
        mixed = cancelled + fade * (plain.astype(np.float64) - cancelled)
        return np.clip(np.round(mixed), -32768, 32767).astype(np.int16)

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
            far, echo_absent = None, False
            if self.reference is not None:
                far = self.reference.take(len(block))
                self.reference.heard(block, far)
                echo_absent = self.reference.echo.absent
            block = self.processor.process(block, far, echo_absent)
            voice = self.processor.voice_probability
        if self.level is not None:
            self.level.measure(block, voice)
        return block

    def stop(self) -> None:
        self.source.stop()

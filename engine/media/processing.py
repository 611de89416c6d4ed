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
the reference waits in a small bounded buffer; AEC3 finds the echo's delay itself.
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
    """What the speaker played, from PortAudio's thread to the microphone's processing.

    The microphone consumes it at the rate it captures. Consuming starts once PREFILL is buffered,
    so the callbacks' jitter does not starve it. When more than MAX waits (the speaker's clock runs
    ahead, or the microphone stalled), the oldest goes, down to PREFILL: what is buffered adds to
    the echo's delay as AEC3 sees it (it still removed 50 dB of a synthetic echo 500 ms late, but
    a longer delay costs it more time to converge after a change).
    When it runs dry (the speaker stopped), the canceller hears silence until it fills again.
    """

    PREFILL = 2 * BLOCK  # 40 ms
    MAX = 6 * BLOCK  # 120 ms

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: deque[np.ndarray] = deque()
        self._buffered = 0
        self._flowing = False

    @property
    def buffered(self) -> int:
        return self._buffered

    def push(self, samples: np.ndarray) -> None:
        """Called on the speaker's thread with each int16 block it played; quick, never blocks long."""
        with self._lock:
            self._blocks.append(samples)
            self._buffered += len(samples)
            if self._buffered > self.MAX:
                self._drop_to(self.PREFILL)

    def _drop_to(self, keep: int) -> None:
        """Drop the oldest whole blocks while at least `keep` samples would remain (lock held)."""
        while self._buffered - len(self._blocks[0]) >= keep:
            self._buffered -= len(self._blocks.popleft())

    def take(self, count: int) -> np.ndarray:
        """The next `count` samples the speaker played, or silence while there are too few."""
        with self._lock:
            if not self._flowing and self._buffered >= max(self.PREFILL, count):
                self._flowing = True
                # Start PREFILL behind: what piled up before (the speaker often starts well
                # before the microphone's first block) would only add to the delay for good.
                self._drop_to(max(self.PREFILL, count))
            if not self._flowing or self._buffered < count:
                self._flowing = False
                return np.zeros(count, dtype=np.int16)
            taken = []
            needed = count
            while needed:
                head = self._blocks[0]
                if len(head) <= needed:
                    taken.append(self._blocks.popleft())
                    needed -= len(head)
                else:
                    taken.append(head[:needed])
                    self._blocks[0] = head[needed:]
                    needed = 0
            self._buffered -= count
        return np.concatenate(taken).astype(np.int16, copy=False)


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

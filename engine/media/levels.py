"""The microphone's level and whether someone is speaking, for a UI on another thread.

The engine measures every block it sends (after processing, so the meter shows what the peer would
hear); the UI reads the newest reading at its own rate. A reading is an immutable tuple replaced
whole, so reading needs no lock. Speaking means voice in most of the last half second, not one loud
click: a UI shows "you are muted" from it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pywebrtc_audio

from tcall.engine.media.sound import SAMPLE_RATE

SILENCE_DB = -100.0
# A block counts as voice when WebRTC's voice detector is fairly sure and it is louder than a quiet
# room's noise floor through a laptop microphone.
VOICE_PROBABILITY = 0.5
VOICE_FLOOR_DB = -55.0
WINDOW_S = 0.5
START_FRACTION = 0.6  # voice in 60% of the window starts "speaking"...
STOP_FRACTION = 0.2  # ...and it lasts until under 20%, so pauses between words do not flicker


@dataclass(frozen=True)
class MicReading:
    level_db: float  # RMS of the newest block, dB relative to full scale (SILENCE_DB at most quiet)
    speaking: bool  # voice held over the last WINDOW_S
    blocks: int  # blocks measured so far: a UI sees whether anything new came


class MicLevel:
    """Written on the engine's thread with each block, read from any thread."""

    def __init__(self) -> None:
        self._detector = pywebrtc_audio.VoiceDetector(sample_rate=SAMPLE_RATE)
        self._voiced: deque[bool] = deque()
        self._voiced_count = 0
        self.reading = MicReading(SILENCE_DB, False, 0)

    def measure(self, block: np.ndarray, voice_probability: float | None = None) -> None:
        """Measure one block; `voice_probability` spares the detector when the noise suppressor
        already estimated it for this block."""
        level = level_db(block)
        if voice_probability is None and level > VOICE_FLOOR_DB:
            voice_probability = self._detector.process(block)
        voice = level > VOICE_FLOOR_DB and (voice_probability or 0.0) >= VOICE_PROBABILITY
        self._voiced.append(voice)
        self._voiced_count += voice
        if len(self._voiced) * len(block) > WINDOW_S * SAMPLE_RATE:
            self._voiced_count -= self._voiced.popleft()
        fraction = self._voiced_count / max(1, round(WINDOW_S * SAMPLE_RATE / len(block)))
        speaking = self.reading.speaking
        if fraction >= START_FRACTION:
            speaking = True
        elif fraction < STOP_FRACTION:
            speaking = False
        self.reading = MicReading(level, speaking, self.reading.blocks + 1)


def level_db(block: np.ndarray) -> float:
    """The RMS of int16 samples in dB relative to full scale, never below SILENCE_DB."""
    if not len(block):
        return SILENCE_DB
    power = float(np.mean(np.square(block, dtype=np.float64))) / 32768.0**2
    return max(SILENCE_DB, 10 * math.log10(power)) if power > 0 else SILENCE_DB

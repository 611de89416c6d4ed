"""A synthetic voice for codec tests: harmonics on a gliding pitch, in syllables; libopus's voice
detector takes it for speech (so it carries in-band FEC), and it needs no file or package."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

SAMPLE_RATE = 48000


def voice(seconds: float, level: int = 12000) -> np.ndarray:
    """48 kHz mono int16: a 110-170 Hz voice, 14 harmonics, three syllables a second."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 15))
    syllables = (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) ** 2
    signal = harmonics * syllables
    return np.asarray(signal / np.abs(signal).max() * level, dtype=np.int16)


def speaking(seconds: float = 4.0) -> Iterator[np.ndarray]:
    """The voice in 20 ms blocks, for ever: a talker for a PacedAudioSource."""
    speech = voice(seconds)
    while True:
        for start in range(0, len(speech), 960):
            yield speech[start : start + 960]

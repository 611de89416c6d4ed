"""A synthetic echo scene for testing echo cancellation and noise suppression without devices.

Real speech (Debian alsa-utils' voice prompts, read by tests/support/speech.py) is split into two
talkers: the far end, whose voice the speaker plays, and the near end, who talks into the microphone. The microphone hears
the near talker plus the far talker's voice come back through a room: delayed, attenuated and
smeared by a short decaying impulse response. The reference the echo canceller gets is the far
talker's clean signal, as the speaker sink hands it over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tests.support.speech import PROMPTS, RATE, noise, read_wav

NEAR_PROMPTS = ("Front_Center", "Front_Left", "Front_Right", "Side_Left")
FAR_PROMPTS = ("Rear_Center", "Rear_Left", "Rear_Right", "Side_Right")


def speech(names: tuple[str, ...], seconds: float, gap: float = 0.3) -> np.ndarray:
    """The named prompts one after another with `gap` s of silence, looped to `seconds`."""
    silence = np.zeros(int(gap * RATE))
    one_round = np.concatenate(
        [part for name in names for part in (read_wav(PROMPTS / f"{name}.wav"), silence)]
    )
    rounds = int(np.ceil(seconds * RATE / len(one_round)))
    return np.tile(one_round, rounds)[: int(seconds * RATE)]


def room_echo(far: np.ndarray, delay_ms: float, gain_db: float, seed: int = 7) -> np.ndarray:
    """`far` as a microphone hears it from a speaker: delayed, attenuated, with 60 ms of reverb."""
    rng = np.random.default_rng(seed)
    tail = int(0.06 * RATE)
    response = rng.standard_normal(tail) * np.exp(-np.arange(tail) / (0.012 * RATE)) * 0.3
    response[0] = 1.0
    response *= 10 ** (gain_db / 20) / np.sqrt((response**2).sum())
    delay = int(delay_ms * RATE / 1000)
    from scipy.signal import fftconvolve  # here: importing scipy.signal takes about a second

    echoed = fftconvolve(far, response)[: len(far)]
    return np.concatenate([np.zeros(delay), echoed])[: len(far)]


def to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16)


@dataclass
class EchoScene:
    """Signals of one scene, all the same length, int16 at 48 kHz."""

    far: np.ndarray  # what the speaker plays (the reference)
    echo: np.ndarray  # the far end's voice as the microphone hears it
    near: np.ndarray  # the near talker alone
    mic: np.ndarray  # what the microphone hears: near + echo (+ noise)


def echo_scene(
    seconds: float = 8.0,
    delay_ms: float = 80.0,
    echo_db: float | None = -6.0,
    near_from: float | None = None,
    noise_db: float | None = None,
) -> EchoScene:
    """The far talker speaks all along; the near talker joins at `near_from` s (None: never).

    `echo_db` None: no echo at all (headphones). `noise_db` adds white noise at that level
    relative to full scale.
    """
    far = speech(FAR_PROMPTS, seconds) * 0.5
    echo = np.zeros_like(far) if echo_db is None else room_echo(far, delay_ms, echo_db)
    near = np.zeros_like(far)
    if near_from is not None:
        start = int(near_from * RATE)
        near[start:] = speech(NEAR_PROMPTS, seconds - near_from) * 0.5
    mic = near + echo
    if noise_db is not None:
        mic = mic + np.random.default_rng(3).standard_normal(len(mic)) * 10 ** (noise_db / 20)
    return EchoScene(to_int16(far), to_int16(echo), to_int16(near), to_int16(mic))


def noisy_speech(seconds: float = 8.0, snr_db: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(clean speech, the same speech with steady pink-ish noise at `snr_db` dB SNR), int16; the
    SNR is over the speech's loud samples, so pauses do not flatter it."""
    clean = speech(NEAR_PROMPTS, seconds) * 0.5
    active = np.abs(clean) > 0.01
    speech_power = (clean[active] ** 2).mean()
    hiss = noise(seconds)[: len(clean)] * np.sqrt(speech_power / 10 ** (snr_db / 10))
    return to_int16(clean), to_int16(clean + hiss)


def level_db(samples: np.ndarray) -> float:
    """Mean power of int16 samples, in dB relative to full scale."""
    power = float((samples.astype(np.float64) ** 2).mean()) / 32768**2
    return 10 * np.log10(max(power, 1e-12))


def erle_db(mic: np.ndarray, out: np.ndarray, start_s: float) -> float:
    """Echo return loss enhancement from `start_s` on: how much weaker the output is than the
    microphone signal (meaningful where the microphone hears only echo)."""
    start = int(start_s * RATE)
    return level_db(mic[start:]) - level_db(out[start:])


@dataclass
class DriftingEcho:
    """An echo scene where the speaker and the microphone run on their own clocks, int16 at 48 kHz."""

    far: np.ndarray  # what the speaker plays, sample by sample on the speaker's clock
    mic: np.ndarray  # what the microphone hears (the echo alone), on the microphone's clock
    speaker_rate: float  # the speaker's samples per second of the microphone's clock


def drifting_echo_scene(
    seconds: float = 22.0, ppm: float = -450.0, delay_ms: float = 80.0, echo_db: float = -6.0
) -> DriftingEcho:
    """The far talker speaks all along, played by a speaker whose clock runs `ppm` off the
    microphone's (-450: 47 978.4 samples played per 48 000 captured, as measured in a real call):
    the microphone hears the far voice stretched in time, its lag behind the reference growing
    by `ppm` (0.45 ms per second at 450 ppm). `far` runs a second longer than `mic`."""
    far = speech(FAR_PROMPTS, seconds + 1.0) * 0.5
    # The microphone's sample n hears the speaker's sample n * (1 + ppm 1e-6): resample onto
    # the microphone's clock (band-limited, so the echo path itself adds no distortion).
    parts_per_million = 1_000_000
    from scipy.signal import resample_poly

    on_mic_clock = resample_poly(far, parts_per_million, parts_per_million + round(ppm))
    echo = room_echo(on_mic_clock, delay_ms, echo_db)[: int(seconds * RATE)]
    return DriftingEcho(to_int16(far), to_int16(echo), RATE * (1 + ppm * 1e-6))

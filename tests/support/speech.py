"""Reference speech, made offline, and how what a call played is scored against it.

The reference is real speech (Debian's alsa-utils voice prompts: two speakers, 48 kHz, full band)
and synthetic speech (espeak-ng), each utterance followed by a short gap. Scores are PESQ-WB (ITU-T
P.862.2, through PyPI's `pesq`, whose embedded ITU code restricts use: it lives in the test extra
only) and STOI (`pystoi`), both at 16 kHz. A recording is aligned to the reference by
cross-correlation first, so the scores measure the sound, not the delay; the delay is a figure of
its own (`delay_ms`).
"""

from __future__ import annotations

import hashlib
import subprocess
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

RATE = 48000  # what tcall's microphone and speaker run at, and what the studio records
SCORE_RATE = 16000  # PESQ-WB's rate
PROMPTS = Path("/usr/share/sounds/alsa")
PROMPT_NAMES = (
    "Front_Center",
    "Front_Left",
    "Front_Right",
    "Rear_Center",
    "Rear_Left",
    "Rear_Right",
    "Side_Left",
    "Side_Right",
)
SENTENCES = (
    ("en-us", "Audio matters more than video in a call, and it has to survive the network."),
    ("en+f3", "Please call me back when you are home; the train leaves at seven."),
)
GAP_S = 0.3
SPEECH_DBFS = (
    -26.0
)  # active speech level, as P.56 asks of a test signal (roughly: RMS of voiced parts)


def read_wav(path: Path) -> np.ndarray:
    """A mono 16-bit wav file as float samples at RATE (resampled when it is at another rate)."""
    with wave.open(str(path)) as file:
        rate, channels = file.getframerate(), file.getnchannels()
        raw = np.frombuffer(file.readframes(file.getnframes()), dtype=np.int16)
    samples = raw.reshape(-1, channels).mean(axis=1) / 32768.0
    return resample(samples, rate, RATE)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    """Float samples in [-1, 1] (one column per channel, or mono) as a 16-bit wav file."""
    frames = samples if samples.ndim == 2 else samples[:, None]
    pcm = (np.clip(frames, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as file:
        file.setnchannels(frames.shape[1])
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(pcm.tobytes())
    return path


def resample(samples: np.ndarray, rate: int, to: int) -> np.ndarray:
    if rate == to:
        return np.asarray(samples, dtype=np.float64)
    from scipy.signal import resample_poly  # here: importing scipy.signal takes about a second

    ratio = Fraction(to, rate)
    return np.asarray(resample_poly(samples, ratio.numerator, ratio.denominator))


def active_level_db(samples: np.ndarray) -> float:
    """RMS of the 20 ms blocks within 40 dB of the loudest, in dBFS: speech's level, not its pauses'."""
    blocks = samples[: len(samples) // 960 * 960].reshape(-1, 960)
    power = (blocks**2).mean(axis=1)
    if not len(power) or power.max() <= 0:
        return -200.0
    active = power[power > power.max() * 1e-4]
    return float(10 * np.log10(active.mean()))


def at_level(samples: np.ndarray, dbfs: float) -> np.ndarray:
    return samples * 10 ** ((dbfs - active_level_db(samples)) / 20)


def espeak(text: str, voice: str, folder: Path) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"espeak-{hashlib.sha256(f'{voice} {text}'.encode()).hexdigest()[:12]}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
    return read_wav(path)


def utterances(folder: Path, short: bool = False) -> list[np.ndarray]:
    """The utterances, each at RATE: 8 voice prompts and 2 espeak sentences (`short`: 3 and 1)."""
    names = PROMPT_NAMES[:3] if short else PROMPT_NAMES
    spoken = [read_wav(PROMPTS / f"{name}.wav") for name in names]
    for voice, text in SENTENCES[:1] if short else SENTENCES:
        spoken.append(espeak(text, voice, folder))
    return spoken


def reference_speech(folder: Path, short: bool = False) -> np.ndarray:
    """The reference (about 20 s, `short` about 8 s) at SPEECH_DBFS, cached as a wav in `folder`."""
    path = folder / ("reference-short.wav" if short else "reference.wav")
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        gap = np.zeros(int(GAP_S * RATE))
        pieces = [piece for utterance in utterances(folder, short) for piece in (utterance, gap)]
        write_wav(path, at_level(np.concatenate(pieces), SPEECH_DBFS))
    return read_wav(path)


def noise(seconds: float, seed: int = 15) -> np.ndarray:
    """Pink-ish noise at unit RMS: white noise plus a low-passed copy (more energy down low, as a
    fan or a street has), the same for the same seed."""
    from scipy.signal import lfilter  # here: importing scipy.signal takes about a second

    white = np.random.default_rng(seed).standard_normal(int(seconds * RATE))
    rumble = lfilter([0.05], [1, -0.95], white)
    mixed = 0.5 * white + rumble
    return np.asarray(mixed / np.sqrt((mixed**2).mean()))


def locate(needle: np.ndarray, haystack: np.ndarray) -> int:
    """Where `needle` best matches inside `haystack` (sample index, by FFT cross-correlation)."""
    size = 1 << int(np.ceil(np.log2(len(haystack) + len(needle))))
    spectrum = np.fft.rfft(haystack, size) * np.conj(np.fft.rfft(needle, size))
    correlation = np.fft.irfft(spectrum, size)[: max(1, len(haystack) - len(needle) + 1)]
    return int(np.argmax(correlation))


@dataclass(frozen=True)
class Score:
    pesq: float | None  # PESQ-WB MOS-LQO (1.04-4.64); None when nothing audible came out
    stoi: float | None
    delay_ms: float  # from the mouth to the ear, on the studio's one sample clock


def score(
    reference: np.ndarray, mouth: np.ndarray, ear: np.ndarray, max_delay_s: float = 2.0
) -> Score:
    """Score what the far end played (`ear`) against `reference`, which was spoken into `mouth`;
    both channels come from one recording, so the lag between them is the mouth-to-ear delay."""
    spoken_at = locate(reference, mouth)
    window = ear[spoken_at : spoken_at + len(reference) + int(max_delay_s * RATE)]
    delay = locate(reference, window) if len(window) >= len(reference) else 0
    heard = ear[spoken_at + delay : spoken_at + delay + len(reference)]
    heard = np.pad(heard, (0, len(reference) - len(heard)))
    return Score(*quality(reference, heard), delay_ms=delay * 1000 / RATE)


def quality(reference: np.ndarray, heard: np.ndarray) -> tuple[float | None, float | None]:
    """(PESQ-WB, STOI) of `heard` against `reference`, both aligned, at RATE."""
    from pesq import NoUtterancesError, pesq
    from pystoi import stoi

    ref, deg = resample(reference, RATE, SCORE_RATE), resample(heard, RATE, SCORE_RATE)
    if active_level_db(deg) < -70:
        return None, None
    try:
        mos = float(pesq(SCORE_RATE, ref, deg, "wb"))
    except NoUtterancesError:
        mos = None
    return mos, float(stoi(ref, deg, SCORE_RATE, extended=False))

"""The audio harness's own instruments: alignment and scoring (tests/support/speech.py) and the
burst-loss model (tests/support/lossline.py), checked on signals whose answer is known."""

from __future__ import annotations

import numpy as np

from tests.support import speech
from tests.support.lossline import GilbertElliott

PROMPTS = [speech.read_wav(speech.PROMPTS / f"{name}.wav") for name in speech.PROMPT_NAMES[:3]]
REFERENCE = speech.at_level(np.concatenate(PROMPTS), speech.SPEECH_DBFS)


def recorded(delay_ms: float, gain: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A mouth channel with the reference 0.3 s in, and an ear hearing it `delay_ms` later."""
    lead, delay = int(0.3 * speech.RATE), int(delay_ms * speech.RATE / 1000)
    mouth = np.concatenate([np.zeros(lead), REFERENCE, np.zeros(speech.RATE)])
    ear = np.concatenate([np.zeros(lead + delay), gain * REFERENCE, np.zeros(speech.RATE - delay)])
    return mouth, ear


def test_a_delayed_quieter_copy_scores_the_top_of_the_scale_and_its_delay() -> None:
    score = speech.score(REFERENCE, *recorded(137.5))
    assert abs(score.delay_ms - 137.5) < 0.1
    assert score.pesq is not None and score.pesq > 4.5
    assert score.stoi is not None and score.stoi > 0.99


def test_lost_packets_lower_the_score() -> None:
    mouth, ear = recorded(80)
    gaps = ear.copy()
    rng = np.random.default_rng(1)
    for block in np.flatnonzero(rng.random(len(ear) // 960) < 0.1):  # 10% of 20 ms blocks silent
        gaps[block * 960 : (block + 1) * 960] = 0
    clean, lossy = speech.score(REFERENCE, mouth, ear), speech.score(REFERENCE, mouth, gaps)
    assert clean.pesq is not None and lossy.pesq is not None
    assert lossy.pesq < clean.pesq - 1.0


def test_silence_has_no_score() -> None:
    mouth, ear = recorded(80)
    score = speech.score(REFERENCE, mouth, np.zeros_like(ear))
    assert score.pesq is None and score.stoi is None


def test_gilbert_elliott_loses_the_rate_asked_in_bursts_of_the_mean_asked() -> None:
    model = GilbertElliott(loss=0.10, mean_burst=3.0, seed=15)
    lost = [model.lose(b"\xc6\x33\x64\x02") for _ in range(200_000)]
    rate = sum(lost) / len(lost)
    starts = sum(1 for before, now in zip([False, *lost], lost, strict=False) if now and not before)
    assert abs(rate - 0.10) < 0.004
    assert abs(sum(lost) / starts - 3.0) < 0.2

"""The microphone level meter: the level of each block, and "speaking" only for voice held over
half a second (not a click, not a pause between words), ending after silence."""

from __future__ import annotations

import numpy as np

from tcall.engine.media.levels import SILENCE_DB, MicLevel, level_db
from tcall.engine.media.sound import BLOCK
from tests.support.echo_scene import NEAR_PROMPTS, speech, to_int16


def blocks(samples: np.ndarray) -> list[np.ndarray]:
    return [samples[i : i + BLOCK] for i in range(0, len(samples) - BLOCK + 1, BLOCK)]


def test_the_level_of_a_block_in_dbfs() -> None:
    assert level_db(np.zeros(BLOCK, dtype=np.int16)) == SILENCE_DB
    full = np.full(BLOCK, 32767, dtype=np.int16)
    assert abs(level_db(full)) < 0.01
    assert abs(level_db(full // 10) + 20) < 0.1


def test_speech_is_speaking_after_about_half_a_second_and_silence_ends_it() -> None:
    meter = MicLevel()
    voice = to_int16(speech(NEAR_PROMPTS, 3.0) * 0.5)
    heard = []
    for block in blocks(voice):
        meter.measure(block)
        heard.append(meter.reading.speaking)
    first = heard.index(True)
    assert 0.3 <= first * BLOCK / 48000 <= 1.5  # the first prompt starts at once
    assert meter.reading.level_db > -60
    for block in blocks(np.zeros(48000, dtype=np.int16)):
        meter.measure(block)
    assert not meter.reading.speaking
    assert meter.reading.level_db == SILENCE_DB
    assert meter.reading.blocks == len(blocks(voice)) + 50


def test_a_click_or_a_steady_hum_is_not_speaking() -> None:
    meter = MicLevel()
    click = np.zeros(BLOCK, dtype=np.int16)
    click[:40] = 20000
    hum = to_int16(np.sin(np.arange(48000) * 2 * np.pi * 50 / 48000) * 0.001)
    for block in [click, *blocks(np.zeros(24000, dtype=np.int16)), *blocks(hum)]:
        meter.measure(block)
        assert not meter.reading.speaking

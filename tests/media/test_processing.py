"""The microphone's processing on synthetic scenes: echo cancellation removes the far end's voice,
noise suppression lowers the noise under speech, every stage off leaves the audio untouched, and
the far-end reference crosses threads in order and bounded."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from tcall.engine.call import process_audio
from tcall.engine.media.audio import AudioSource, MicSource, PacedAudioSource, sine_blocks
from tcall.engine.media.levels import MicLevel
from tcall.engine.media.processing import (
    AudioProcessing,
    FarEndReference,
    MicProcessor,
    ProcessedAudioSource,
)
from tcall.engine.media.sinks import AudioSink
from tcall.engine.media.sound import BLOCK, DEVICE_BLOCK
from tests.support.echo_scene import (
    NEAR_PROMPTS,
    RATE,
    echo_scene,
    erle_db,
    level_db,
    noisy_speech,
    speech,
    to_int16,
)
from tests.support.speech import at_level, locate, quality

AEC_ONLY = AudioProcessing(echo_cancellation=True, noise_suppression=False, auto_gain=False)
NS_ONLY = AudioProcessing(echo_cancellation=False, noise_suppression=True, auto_gain=False)
ALL_OFF = AudioProcessing(False, False, False)


def run(processor: MicProcessor, mic: np.ndarray, far: np.ndarray | None = None) -> np.ndarray:
    """The microphone's signal through `processor` in 20 ms blocks, as a call sends it."""
    blocks = []
    for start in range(0, len(mic) - BLOCK + 1, BLOCK):
        reference = None if far is None else far[start : start + BLOCK]
        blocks.append(processor.process(mic[start : start + BLOCK], reference))
    return np.concatenate(blocks)


@pytest.mark.parametrize("delay_ms", [30, 150])
def test_echo_cancellation_removes_the_echo_after_two_seconds(delay_ms: int) -> None:
    scene = echo_scene(seconds=6, delay_ms=delay_ms)
    out = run(MicProcessor(AEC_ONLY), scene.mic, scene.far)
    assert erle_db(scene.mic, out, start_s=2.0) >= 20


def test_the_whole_chain_removes_the_echo_too() -> None:
    scene = echo_scene(seconds=6)
    out = run(MicProcessor(AudioProcessing()), scene.mic, scene.far)
    assert erle_db(scene.mic, out, start_s=2.0) >= 20


def test_without_echo_cancellation_the_echo_stays() -> None:
    scene = echo_scene(seconds=6)
    out = run(MicProcessor(AudioProcessing(False, False, False)), scene.mic, scene.far)
    assert abs(erle_db(scene.mic, out, start_s=2.0)) < 1


def test_echo_cancellation_keeps_the_near_talker() -> None:
    """Double talk: what the near talker says still goes out, at nearly its own level."""
    scene = echo_scene(seconds=8, near_from=3.0)
    out = run(MicProcessor(AEC_ONLY), scene.mic, scene.far)
    start = 3 * RATE
    assert level_db(out[start:]) > level_db(scene.near[start:]) - 6


def speech_and_pauses(clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the 20 ms blocks where the clean speech is loud, and where it is silent, from 2 s
    on (the suppressor learns the noise first)."""
    blocks = clean[: len(clean) // BLOCK * BLOCK].reshape(-1, BLOCK).astype(np.float64)
    power = (blocks**2).mean(axis=1)
    loud = power > power.max() * 1e-2
    silent = power == 0
    learned = np.arange(len(power)) * BLOCK >= 2 * RATE
    return np.repeat(loud & learned, BLOCK), np.repeat(silent & learned, BLOCK)


def snr_db(clean: np.ndarray, signal: np.ndarray) -> float:
    loud, silent = speech_and_pauses(clean)
    return level_db(signal[: len(loud)][loud]) - level_db(signal[: len(silent)][silent])


def test_noise_suppression_raises_the_snr() -> None:
    clean, noisy = noisy_speech(seconds=8, snr_db=10)
    out = run(MicProcessor(NS_ONLY), noisy)
    assert snr_db(clean, out) >= snr_db(clean, noisy) + 10


def test_without_noise_suppression_the_noise_stays() -> None:
    clean, noisy = noisy_speech(seconds=8, snr_db=10)
    out = run(MicProcessor(AudioProcessing(True, False, False)), noisy)
    assert abs(snr_db(clean, out) - snr_db(clean, noisy)) < 2


def test_auto_gain_lifts_a_quiet_talker() -> None:
    clean, _ = noisy_speech(seconds=8)
    quiet = (clean * 0.05).astype(np.int16)  # about -50 dBFS of speech
    on = run(MicProcessor(AudioProcessing(False, False, True)), quiet)
    off = run(MicProcessor(AudioProcessing(False, False, False)), quiet)
    tail = 4 * RATE
    assert level_db(on[tail:]) >= level_db(off[tail:]) + 10


def test_every_stage_off_is_a_bit_exact_passthrough() -> None:
    scene = echo_scene(seconds=2, near_from=0.5, noise_db=-40)
    out = run(MicProcessor(ALL_OFF), scene.mic, scene.far)
    assert np.array_equal(out, scene.mic[: len(out)])
    assert not ALL_OFF.active


def test_the_reference_is_taken_in_order_from_the_prefill_on() -> None:
    reference = FarEndReference()
    played = np.arange(3 * BLOCK, dtype=np.int16)
    reference.push(played[: BLOCK // 2])
    assert not reference.take(BLOCK).any()  # too little yet: silence, nothing consumed
    for start in range(BLOCK // 2, 3 * BLOCK, 240):  # the speaker's 5 ms blocks
        reference.push(played[start : start + 240])
    # Flowing starts PREFILL (two blocks) behind the newest: the oldest block is dropped.
    assert np.array_equal(reference.take(BLOCK), played[BLOCK : 2 * BLOCK])
    reference.push(played[:240])
    assert np.array_equal(reference.take(BLOCK), played[2 * BLOCK : 3 * BLOCK])
    assert reference.buffered == 240


def test_the_reference_stays_bounded_and_keeps_the_newest() -> None:
    reference = FarEndReference()
    for index in range(100):
        reference.push(np.full(240, index, dtype=np.int16))
    assert reference.buffered <= FarEndReference.MAX
    newest = reference.take(reference.buffered)
    assert newest[-1] == 99 and np.array_equal(newest, np.sort(newest))


def test_an_overfull_reference_drops_back_to_the_prefill() -> None:
    reference = FarEndReference()
    for _ in range(FarEndReference.MAX // 240 + 1):
        reference.push(np.ones(240, dtype=np.int16))
    assert FarEndReference.PREFILL <= reference.buffered < FarEndReference.PREFILL + 240


def test_a_dry_reference_gives_silence_until_it_fills_again() -> None:
    reference = FarEndReference()
    reference.push(np.ones(2 * BLOCK, dtype=np.int16))
    assert reference.take(BLOCK).all()
    reference.take(BLOCK)
    assert not reference.take(BLOCK).any()
    reference.push(np.ones(BLOCK, dtype=np.int16))
    assert not reference.take(BLOCK).any()  # prefilling again


def test_the_reference_crosses_threads_in_order() -> None:
    """The speaker pushes while the microphone takes: each block taken is played samples in a
    row, and the blocks come in order, none twice (old ones may go while the buffer is bounded)."""
    reference = FarEndReference()
    played = np.arange(1, 120 * 240 + 1, dtype=np.int16)  # never 0: silence is easy to tell

    def speaker() -> None:
        for start in range(0, len(played), 240):
            reference.push(played[start : start + 240])

    thread = threading.Thread(target=speaker)
    thread.start()
    taken = []
    while thread.is_alive() or reference.buffered >= BLOCK:
        block = reference.take(BLOCK)
        if block.any():
            taken.append(block.astype(np.int64))
    thread.join()
    assert taken
    assert all((np.diff(block) == 1).all() for block in taken)
    assert all(a[-1] < b[0] for a, b in zip(taken, taken[1:], strict=False))


class FakeMic(MicSource):
    """A MicSource without a device: blocks from a list."""

    def __init__(self, blocks: list[np.ndarray]) -> None:
        self.name = "mic fake"
        self._blocks = iter(blocks)
        self.stopped = False

    async def next_block(self) -> np.ndarray:
        return next(self._blocks)

    def stop(self) -> None:
        self.stopped = True


async def test_a_processed_source_processes_and_measures_each_block() -> None:
    _, noisy = noisy_speech(seconds=1.2, snr_db=20)
    blocks = [noisy[i : i + BLOCK] for i in range(0, len(noisy) - BLOCK + 1, BLOCK)]
    level = MicLevel()
    source = ProcessedAudioSource(FakeMic(blocks), MicProcessor(NS_ONLY), None, level)
    out = [await source.next_block() for _ in blocks]
    assert level.reading.blocks == len(blocks)
    assert level.reading.speaking  # from the suppressor's voice probability
    assert not np.array_equal(np.concatenate(out), noisy[: len(out) * BLOCK])
    source.stop()
    assert isinstance(source.source, FakeMic) and source.source.stopped


async def test_only_a_microphone_is_processed_unless_asked() -> None:
    sink = AudioSink()
    mic = process_audio(FakeMic([]), sink, AudioProcessing(), None)
    assert mic.processor is not None
    tone: AudioSource = PacedAudioSource("sine", sine_blocks())
    assert process_audio(tone, sink, AudioProcessing(), None).processor is None
    assert process_audio(tone, sink, AudioProcessing(), None, generated_too=True).processor
    assert process_audio(FakeMic([]), sink, ALL_OFF, None).processor is None


class _Beat:
    """A StreamWatch stand-in for a MicSource without a device: never lost."""

    lost = False

    def beat(self) -> None:
        pass


async def _through_a_microphone(talk: np.ndarray, processing: AudioProcessing) -> np.ndarray:
    """`talk` (int16) handed over as a MicSource's PortAudio callbacks do, in 5 ms device blocks,
    then through process_audio's source, 20 ms at a time: the path of a real call's microphone."""
    mic = MicSource.__new__(MicSource)  # the real class, without opening a device
    mic.name = "mic test"
    mic._loop = asyncio.get_running_loop()
    mic._queue = asyncio.Queue(maxsize=10)
    mic._block = np.zeros(BLOCK, dtype=np.int16)
    mic._filled = 0
    mic._watch = _Beat()  # type: ignore[assignment]
    source = process_audio(mic, AudioSink(), processing, MicLevel())
    out = []
    for start in range(0, len(talk) - BLOCK + 1, BLOCK):
        for part in range(start, start + BLOCK, DEVICE_BLOCK):
            mic._callback(talk[part : part + DEVICE_BLOCK, None], DEVICE_BLOCK, None, None)
        out.append(await source.next_block())
    return np.concatenate(out)


async def test_the_whole_chain_is_nearly_transparent_on_clean_speech() -> None:
    """Speech at the usual -26 dBFS, nobody at the far end, no noise, digital silence between
    words: the default processing must leave it nearly as it was. Fed the suppressor's speech
    probability, AGC2 drove it into its limiter, and the suppressor, learning no noise floor from
    digital silence, ate the speech: PESQ-WB 3.1 here (4.2 now; 4.64 with every stage off)."""
    clean = at_level(speech(NEAR_PROMPTS[:3], seconds=9.0), -26.0)
    talk = to_int16(np.concatenate([np.zeros(RATE // 2), clean, np.zeros(RATE // 2)]))
    out = await _through_a_microphone(talk, AudioProcessing())
    delay = locate(clean, out[: len(clean) + RATE // 2] / 32768)
    heard = out[delay : delay + len(clean)] / 32768
    mos, _ = quality(clean, np.pad(heard, (0, len(clean) - len(heard))))
    assert mos is not None and mos >= 4.0

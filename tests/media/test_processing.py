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
    ClockSteering,
    EchoDelay,
    FarEndReference,
    MicProcessor,
    ProcessedAudioSource,
)
from tcall.engine.media.sinks import AudioSink
from tcall.engine.media.sound import BLOCK, DEVICE_BLOCK
from tests.support.echo_scene import (
    NEAR_PROMPTS,
    RATE,
    drifting_echo_scene,
    echo_scene,
    erle_db,
    level_db,
    noisy_speech,
    room_echo,
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
    played = np.arange(FarEndReference.PREFILL + 2 * BLOCK, dtype=np.int16)
    reference.push(played[: BLOCK // 2])
    assert not reference.take(BLOCK).any()  # too little yet: silence, nothing consumed
    for start in range(BLOCK // 2, len(played), 240):  # the speaker's 5 ms blocks
        reference.push(played[start : start + 240])
    # Flowing starts PREFILL (plus the interpolation's lookahead, so one more 5 ms block) behind
    # the newest: the oldest blocks are dropped; at a ratio of 1 the samples come out exactly.
    first = len(played) - FarEndReference.PREFILL - 240
    assert np.array_equal(reference.take(BLOCK), played[first : first + BLOCK])
    reference.push(played[:240])
    assert np.array_equal(reference.take(BLOCK), played[first + BLOCK : first + 2 * BLOCK])
    assert reference.buffered == FarEndReference.PREFILL + 240 - 2 * BLOCK + 240


def test_the_reference_stays_bounded_and_keeps_the_newest() -> None:
    reference = FarEndReference()
    for index in range(100):
        reference.push(np.full(240, index, dtype=np.int16))
    assert reference.buffered <= FarEndReference.MAX
    newest = reference.take(reference.buffered - 3)  # the interpolation reads 3 ahead
    assert newest[-1] == 99 and np.array_equal(newest, np.sort(newest))


def test_an_overfull_reference_drops_back_to_the_prefill() -> None:
    reference = FarEndReference()
    for _ in range(FarEndReference.MAX // 240 + 1):
        reference.push(np.ones(240, dtype=np.int16))
    assert FarEndReference.PREFILL <= reference.buffered < FarEndReference.PREFILL + 240


def test_a_dry_reference_gives_silence_until_it_fills_again() -> None:
    reference = FarEndReference()
    reference.push(np.ones(FarEndReference.PREFILL + 3, dtype=np.int16))  # + the lookahead
    for _ in range(FarEndReference.PREFILL // BLOCK):
        assert reference.take(BLOCK).all()
    assert not reference.take(BLOCK).any()
    reference.push(np.ones(BLOCK, dtype=np.int16))
    assert not reference.take(BLOCK).any()  # prefilling again
    assert reference.restarts == 1


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


def _through_drifting_clocks(
    ppm: float, frame: int, jump_at: float | None = None, jump_ms: float = 10, echo: bool = True
) -> tuple[np.ndarray, np.ndarray, FarEndReference]:
    """A far talker's echo where the speaker runs `ppm` off the microphone's clock, for 22 s,
    with the timing PulseAudio gives: the speaker pushes its 5 ms blocks into a FarEndReference
    in bursts of four (20 ms asked for at once), and the microphone's `frame`-sample frames take
    from it late by 20 ms, wandering by +-20 ms over seconds, +10 ms at random (a busy event
    loop); AEC3 cancels with what was taken. At `jump_at` s the echo comes `jump_ms` later for
    good (the speaker's device stalled); without `echo` the microphone hears only a near talker
    (headphones). (microphone, output, reference)"""
    scene = drifting_echo_scene(seconds=22.0, ppm=ppm)
    mic_signal = scene.mic
    if jump_at is not None:
        at, gap = int(jump_at * RATE), int(jump_ms * RATE / 1000)
        mic_signal = np.concatenate([mic_signal[:at], np.zeros(gap, np.int16), mic_signal[at:]])
        mic_signal = mic_signal[: len(scene.mic)]
    if not echo:
        mic_signal = to_int16(speech(NEAR_PROMPTS, 22.0) * 0.5)
    rng = np.random.default_rng(5)
    pushed = len(scene.far) // DEVICE_BLOCK
    taken = len(mic_signal) // frame
    burst_end = (np.arange(pushed) // 4 + 1) * 4 - 1
    due = np.minimum(burst_end, pushed - 1) * DEVICE_BLOCK / scene.speaker_rate
    wander = np.clip(np.cumsum(rng.normal(0, 0.05, taken)), -1, 1)
    late = 0.020 * (1 + wander) + rng.uniform(0, 0.010, taken)
    # Each thread's own events stay in order, late or not (hence the running maximum).
    push_times = np.maximum.accumulate(due + rng.uniform(0, 0.002, pushed))
    take_times = np.maximum.accumulate((np.arange(taken) + 1) * frame / RATE + late)
    pushes = [(float(t), 0, index) for index, t in enumerate(push_times)]
    takes = [(float(t), 1, index) for index, t in enumerate(take_times)]
    reference = FarEndReference()
    processor = MicProcessor(AEC_ONLY)
    out = []
    for now, kind, index in sorted(pushes + takes):
        if kind == 0:
            if now < 22.0:
                reference.push(scene.far[index * DEVICE_BLOCK : (index + 1) * DEVICE_BLOCK])
        else:
            mic = mic_signal[index * frame : (index + 1) * frame]
            far = reference.take(frame)
            reference.heard(mic, far)
            out.append(processor.process(mic, far))
    return mic_signal, np.concatenate(out), reference


def _erle_every_two_seconds(mic: np.ndarray, out: np.ndarray) -> list[float]:
    return [
        level_db(mic[start : start + 2 * RATE]) - level_db(out[start : start + 2 * RATE])
        for start in range(2 * RATE, len(out) - 2 * RATE + 1, 2 * RATE)
    ]


@pytest.mark.parametrize(("ppm", "frame"), [(-450, 480), (450, 480), (-450, BLOCK)])
def test_the_reference_follows_a_speaker_on_another_clock(ppm: int, frame: int) -> None:
    """The speaker's clock 450 ppm off the microphone's (as in a real call): the reference is
    resampled onto the microphone's clock, steered by where the echo is, so the echo holds
    still, AEC3 keeps >= 25 dB from 2 s to 22 s (without it: 12-23 dB by moments), and the
    buffer never runs dry or overflows. Steered by the blocks' timing instead (bursts, a
    wandering event loop), the ratio swung between its limits: 11-17 dB by moments."""
    mic, out, reference = _through_drifting_clocks(ppm, frame)
    assert min(_erle_every_two_seconds(mic, out)) >= 25
    assert reference.restarts == 0
    assert abs(reference.ratio - (1 + ppm * 1e-6)) < 100e-6


def test_without_the_clock_steering_the_drifting_echo_comes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same scene with the ratio held at 1: the echo slides and AEC3 loses it, so the test
    above can fail."""
    monkeypatch.setattr(ClockSteering, "MAX_DRIFT", 0.0)
    mic, out, _ = _through_drifting_clocks(-450, BLOCK)
    assert min(_erle_every_two_seconds(mic, out)) < 25


@pytest.mark.parametrize(("jump_ms", "anchors"), [(10, 2), (2, 1)])
def test_an_echo_that_jumps_is_held_at_its_new_place_without_steering_off(
    jump_ms: float, anchors: int
) -> None:
    """The echo comes `jump_ms` later from 11 s on (the speaker's device stalled): that is no
    clock, so the ratio stays on the speaker's, and once AEC3 has found the new echo it is
    removed. 10 ms is past what a pattern is matched within (a new anchor); 2 ms is within it,
    but more than any clock could move the echo in a second (the steering holds the new place)."""
    mic, out, reference = _through_drifting_clocks(-450, BLOCK, jump_at=11.0, jump_ms=jump_ms)
    assert abs(reference.ratio - (1 - 450e-6)) < 100e-6
    assert reference.echo.anchors == anchors
    assert min(_erle_every_two_seconds(mic, out)[-3:]) >= 25


def test_without_an_echo_nothing_is_measured_and_the_ratio_stays() -> None:
    """Headphones: the microphone hears only its talker, so there is no delay to measure and
    the ratio stays at 1 (the reference then drifts, harmlessly: there is nothing to cancel)."""
    _, _, reference = _through_drifting_clocks(-450, BLOCK, echo=False)
    assert reference.echo.anchors == 0
    assert reference.ratio == 1.0


def test_the_resampled_reference_has_no_clicks() -> None:
    """A 1 kHz tone pushed in 5 ms blocks, taken in frames of odd sizes at a ratio off 1: what
    comes out is as smooth as a tone (no step at a frame's edge), at the tone's level."""
    reference = FarEndReference()
    reference.steering.ratio = 1 + 800e-6
    tone = to_int16(0.5 * np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE))
    out = []
    sizes = iter([480, 960, 333, 441, 1] * 100)
    for start in range(0, len(tone), DEVICE_BLOCK):
        reference.push(tone[start : start + DEVICE_BLOCK])
        while reference.buffered > FarEndReference.PREFILL + BLOCK:
            out.append(reference.take(next(sizes)))
    heard = np.concatenate(out).astype(np.float64)
    assert reference.restarts == 0 and len(heard) > RATE // 2
    curvature = 0.5 * 32768 * (2 * np.pi * 1000 / RATE) ** 2  # the tone's largest 2nd difference
    assert np.abs(np.diff(heard, 2)).max() < curvature * 1.1 + 2
    assert abs(level_db(heard.astype(np.int16)) - level_db(tone)) < 0.1


async def _with_a_far_talker(
    mic: np.ndarray, far: np.ndarray, absent: list[bool] | None = None
) -> tuple[np.ndarray, EchoDelay]:
    """`mic` through a call's processed microphone (AEC3 only) while the speaker plays `far`, the
    reference 80 ms ahead as in a call: (what goes out, the reference's EchoDelay). `absent`, if
    given, gets the echo's judgement after each block."""
    blocks = [mic[i : i + BLOCK] for i in range(0, len(mic) - BLOCK + 1, BLOCK)]
    reference = FarEndReference()
    reference.push(np.zeros(FarEndReference.PREFILL, dtype=np.int16))
    source = ProcessedAudioSource(FakeMic(blocks), MicProcessor(AEC_ONLY), reference)
    out = []
    for index in range(len(blocks)):
        reference.push(far[index * BLOCK : (index + 1) * BLOCK])
        out.append(await source.next_block())
        if absent is not None:
            absent.append(reference.echo.absent)
    return np.concatenate(out), reference.echo


async def _double_talk_pesq_with_headphones() -> tuple[float, float, bool]:
    """PESQ-WB of the near talker from 5 s on, while the far end talks too: (what goes out, the
    microphone itself, whether the echo was found absent)."""
    talk = echo_scene(seconds=16, echo_db=None, near_from=4.0, noise_db=-70)  # a quiet room
    far, near, mic = talk.far, talk.near, talk.mic
    out, echo = await _with_a_far_talker(mic, far)
    start = 5 * RATE
    lag = locate(near[start : start + 2 * RATE] / 32768, out[start : start + 3 * RATE] / 32768)
    heard = out[start + lag :] / 32768
    clean = near[start : start + len(heard)] / 32768
    sent, _ = quality(clean, heard)
    raw, _ = quality(clean, mic[start : start + len(heard)] / 32768)
    assert sent is not None and raw is not None
    return sent, raw, echo.absent


async def test_with_headphones_the_far_end_does_not_gate_the_near_talker() -> None:
    """No echo at all: after 3 s of the far end speaking into a microphone that stays quiet, the
    echo is absent and the microphone goes out without AEC3, so the near talker talking over the
    far end is heard as the microphone heard it (3.4; AEC3's suppressor made it 1.5)."""
    sent, raw, absent = await _double_talk_pesq_with_headphones()
    assert absent
    assert sent >= raw - 0.2 and sent >= 3.0


async def test_without_the_echo_judged_absent_aec3_gates_the_near_talker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same call, with the echo never judged absent: so the test above can fail."""
    monkeypatch.setattr(EchoDelay, "ABSENT_WINDOWS", 10**6)
    sent, raw, absent = await _double_talk_pesq_with_headphones()
    assert not absent
    assert sent < 2.0 < raw


async def test_an_echo_that_comes_back_is_cancelled_again() -> None:
    """Headphones for 8 s, then the speaker (the echo at -6 dB): within 2 s the echo is heard
    again and AEC3, which went on learning meanwhile, removes it."""
    talk = echo_scene(seconds=16, echo_db=None, noise_db=-70)
    far, mic = talk.far, talk.mic
    echo = room_echo(far / 32768, delay_ms=80, gain_db=-6)
    echo[: 8 * RATE] = 0
    absent: list[bool] = []
    out, _ = await _with_a_far_talker(to_int16(mic / 32768 + echo), far, absent)
    seconds = np.arange(1, len(absent) + 1) * BLOCK / RATE
    assert all(absent[index] for index in np.flatnonzero((seconds > 4) & (seconds < 8)))
    assert not any(absent[index] for index in np.flatnonzero(seconds >= 10))
    mic_level = level_db(to_int16(echo[12 * RATE : len(out)]))
    assert mic_level - level_db(out[12 * RATE :]) >= 20


@pytest.mark.parametrize(("echo_db", "near_from"), [(-40, None), (-6, 0.0)])
async def test_an_echo_is_never_taken_for_headphones(
    echo_db: float, near_from: float | None
) -> None:
    """A speaker turned low (its echo 40 dB under the far end, 4 dB over the room), and a loud
    echo under a near talker who talks from the start: the echo is never judged absent."""
    scene = echo_scene(seconds=16, echo_db=echo_db, near_from=near_from, noise_db=-70)
    _, delay = await _with_a_far_talker(scene.mic, scene.far)
    assert not delay.absent and delay._echoless < EchoDelay.ABSENT_WINDOWS


def test_the_microphone_without_aec3_is_exactly_as_late() -> None:
    """With no far end AEC3 passes the talker through: its output and the plain path's match
    sample for sample in time, so fading from one to the other moves nothing."""
    talk = to_int16(speech(NEAR_PROMPTS, 4.0) * 0.5)
    cancelled, plain = MicProcessor(AEC_ONLY), MicProcessor(AEC_ONLY)
    one = np.concatenate(
        [cancelled.process(talk[i : i + BLOCK]) for i in range(0, len(talk), BLOCK)]
    )
    other = np.concatenate(
        [plain.process(talk[i : i + BLOCK], None, True) for i in range(0, len(talk), BLOCK)]
    )
    assert np.corrcoef(one[RATE:], other[RATE:])[0, 1] > 0.9999  # 4 samples off: 0.965

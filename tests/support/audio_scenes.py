"""The scenes the audio tests and bench/audio.py speak into a call, and the figures read from a take.

- one leg: alice reads the reference; scored at bob's ear (PESQ-WB, STOI, mouth-to-ear delay).
- noisy: the same, with noise mixed into alice's mouth at a given SNR; scored against clean speech.
- echo: alice alone, then bob alone (his voice leaks back into alice's microphone through the
  studio's echo path), then both at once. ERLE is the echo at alice's microphone over what of it
  reached bob's ear, after 2 s of convergence; the near talker's PESQ alone and in double talk.
- headphones: the echo scene in a quiet room (-70 dBFS at alice's microphone all along), spoken
  without the studio's echo path: alice's microphone never hears bob.
- stages: room noise alone, then alice speaking quietly, then bob alone: whether noise
  suppression, automatic gain and echo cancellation each did something (levels in dB).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support import speech
from tests.support.audio_call import Scene, Take
from tests.support.speech import RATE, Score, locate

CONVERGENCE_S = 2.0
ROOM_DBFS = -70.0  # a quiet room at a microphone
NOISE_S, NOISE_LEARNING_S = 4.0, 2.0  # room noise alone, and how much of it is not measured
BLOCK = 960  # 20 ms


def samples(seconds: float) -> int:
    return int(seconds * RATE)


def one_leg_score(take: Take, reference: np.ndarray) -> Score:
    return speech.score(reference, take.tape["alice_mouth"], take.tape["bob_ear"])


def noisy_scene(reference: np.ndarray, snr_db: float) -> Scene:
    """`reference` with noise from 1 s before it to its end, `snr_db` below the speech level."""
    lead = np.zeros(samples(1.0))
    talk = np.concatenate([lead, reference])
    level = speech.active_level_db(reference) - snr_db
    return Scene(talk + speech.noise(len(talk) / RATE) * 10 ** (level / 20))


@dataclass(frozen=True)
class EchoLayout:
    near: np.ndarray  # what alice says, alone and then in double talk
    far: np.ndarray  # what bob says, alone and then in double talk
    far_at: float  # scene seconds: bob alone from here
    double_at: float  # both from here


def echo_scene(folder: Path) -> tuple[Scene, EchoLayout]:
    spoken = speech.utterances(folder)
    gap = np.zeros(samples(speech.GAP_S))
    near = speech.at_level(np.concatenate([spoken[0], gap, spoken[1]]), speech.SPEECH_DBFS)
    far = speech.at_level(
        np.concatenate([spoken[-2], gap, spoken[3], gap, spoken[4]]), speech.SPEECH_DBFS
    )
    far_at = len(near) / RATE + 0.7
    double_at = far_at + len(far) / RATE + 0.7
    alice = np.zeros(samples(double_at) + max(len(near), len(far)))
    bob = np.zeros_like(alice)
    alice[: len(near)] = near
    alice[samples(double_at) : samples(double_at) + len(near)] = near
    bob[samples(far_at) : samples(far_at) + len(far)] = far
    bob[samples(double_at) : samples(double_at) + len(far)] = far
    return Scene(alice, bob), EchoLayout(near, far, far_at, double_at)


def headphones_scene(folder: Path) -> tuple[Scene, EchoLayout]:
    """The echo scene with a quiet room under alice's words (a real microphone is never
    digitally silent); speak it without the studio's echo path."""
    scene, layout = echo_scene(folder)
    room = speech.noise(len(scene.alice) / RATE)[: len(scene.alice)] * 10 ** (ROOM_DBFS / 20)
    return Scene(scene.alice + room, scene.bob), layout


@dataclass(frozen=True)
class EchoFigures:
    erle_db: float  # echo removed, after CONVERGENCE_S of far-end speech
    near_alone: Score  # what bob heard of alice with no echo to remove
    near_double_talk: Score  # the same words while bob spoke too (and his echo was removed)


def echo_figures(take: Take, layout: EchoLayout) -> EchoFigures:
    mouth, ear = take.tape["alice_mouth"], take.tape["bob_ear"]
    start = locate(take.scene.alice, mouth)  # scene sample 0 on the tape
    alone = _score_at(layout.near, mouth, ear, start)
    delay = samples(alone.delay_ms / 1000)
    begin = start + samples(layout.far_at + CONVERGENCE_S)
    end = start + samples(layout.far_at) + len(layout.far)
    erle = _ratio_db(mouth[begin:end], ear[begin + delay : end + delay])
    double = _score_at(layout.near, mouth, ear, start + samples(layout.double_at), near=alone)
    return EchoFigures(erle, alone, double)


def _score_at(
    reference: np.ndarray, mouth: np.ndarray, ear: np.ndarray, at: int, near: Score | None = None
) -> Score:
    """`reference` spoken at tape sample `at` (about), scored at the ear; with `near`, at its delay
    (in double talk the far talker's residual could pull a search astray)."""
    window = slice(max(0, at - samples(0.5)), at + len(reference) + samples(0.5))
    if near is None:
        return speech.score(reference, mouth[window], ear[window.start : window.stop + samples(2)])
    spoken = window.start + locate(reference, mouth[window])
    delay = samples(near.delay_ms / 1000)
    heard = ear[spoken + delay : spoken + delay + len(reference)]
    mos, stoi = speech.quality(reference, np.pad(heard, (0, len(reference) - len(heard))))
    return Score(mos, stoi, near.delay_ms)


def _ratio_db(before: np.ndarray, after: np.ndarray) -> float:
    """How much quieter `after` is than `before`, over the blocks where `before` is active."""
    count = min(len(before), len(after)) // BLOCK
    a = (before[: count * BLOCK].reshape(count, BLOCK) ** 2).mean(axis=1)
    b = (after[: count * BLOCK].reshape(count, BLOCK) ** 2).mean(axis=1)
    active = a > a.max() * 1e-3 if count else np.zeros(0, dtype=bool)
    if not active.any():
        return 0.0
    return float(10 * np.log10(a[active].sum() / max(b[active].sum(), 1e-12)))


@dataclass(frozen=True)
class StageLayout:
    sync: np.ndarray  # alice at the usual level first: what the delay is measured on
    noise_at: float  # then room noise alone, from here
    noise_s: float
    quiet: np.ndarray  # then alice, quietly, from quiet_at
    quiet_at: float
    far: np.ndarray  # then bob alone from far_at
    far_at: float


def stages_scene(folder: Path) -> tuple[Scene, StageLayout]:
    """alice at -26 dBFS (the delay comes from it: the stages leave speech at that level
    audible), room noise alone at -45 dBFS for NOISE_S, alice at -45 dBFS, then bob at -26 dBFS
    while his voice leaks back into alice's microphone."""
    spoken = speech.utterances(folder, short=True)
    gap = np.zeros(samples(speech.GAP_S))
    sync = speech.at_level(spoken[2], speech.SPEECH_DBFS)
    quiet = speech.at_level(np.concatenate([spoken[0], gap, spoken[1]]), -45.0)
    far = speech.at_level(np.concatenate([spoken[-1], gap, spoken[0]]), speech.SPEECH_DBFS)
    noise_at, noise_s = len(sync) / RATE + 0.5, NOISE_S
    quiet_at = noise_at + noise_s + 0.3
    far_at = quiet_at + len(quiet) / RATE + 0.7
    alice = np.zeros(samples(far_at) + len(far))
    bob = np.zeros_like(alice)
    alice[: len(sync)] = sync
    noise_start = samples(noise_at)
    alice[noise_start : noise_start + samples(noise_s)] = speech.noise(noise_s) * 10 ** (-45 / 20)
    alice[samples(quiet_at) : samples(quiet_at) + len(quiet)] = quiet
    bob[samples(far_at) :] = far
    return Scene(alice, bob), StageLayout(sync, noise_at, noise_s, quiet, quiet_at, far, far_at)


@dataclass(frozen=True)
class StageFigures:
    noise_gain_db: float  # room noise at bob's ear over the noise at alice's mouth
    speech_gain_db: float  # alice's quiet speech at bob's ear over her mouth
    erle_db: float
    delay_ms: float


def stage_figures(take: Take, layout: StageLayout) -> StageFigures:
    mouth, ear = take.tape["alice_mouth"], take.tape["bob_ear"]
    # Scene sample 0 on the tape, found by all alice says (her microphone also hears bob's
    # voice come back, louder than her quiet words once his end raised its gain).
    start = locate(take.scene.alice[: samples(layout.far_at)], mouth)
    delay = locate(layout.sync, ear[start : start + len(layout.sync) + samples(1.0)])

    def at(seconds: float) -> int:
        return start + samples(seconds)

    quiet = slice(at(layout.quiet_at), at(layout.quiet_at) + len(layout.quiet))
    speech_gain = speech.active_level_db(
        ear[quiet.start + delay : quiet.stop + delay]
    ) - speech.active_level_db(mouth[quiet])
    # The noise's last seconds: a suppressor first learns what the noise is.
    noise = slice(at(layout.noise_at + NOISE_LEARNING_S), at(layout.noise_at + layout.noise_s))
    noise_gain = -_ratio_db(mouth[noise], ear[noise.start + delay : noise.stop + delay])
    far = slice(at(layout.far_at + CONVERGENCE_S), at(layout.far_at) + len(layout.far))
    erle = _ratio_db(mouth[far], ear[far.start + delay : far.stop + delay])
    return StageFigures(noise_gain, speech_gain, erle, delay * 1000 / RATE)

"""The video adaptation ladder (engine/media/adapt.py): the receiver's estimate in, bitrate, frame
rate and resolution out; bitrate first, then frame rate, then resolution; the bitrate at once, a
rung down after a held shortfall, a rung up only after a held, clear margin."""

from __future__ import annotations

from itertools import pairwise

import pytest

from tcall.engine.media.adapt import (
    HOLD_DOWN_S,
    HOLD_UP_S,
    LADDER,
    MAX_KBPS,
    MIN_KBPS,
    START_KBPS,
    UP_MARGIN,
    VIDEO_SHARE,
    Ladder,
    Target,
)


def bps_for(video_kbps: float) -> float:
    """The estimate that gives video `video_kbps`."""
    return video_kbps * 1000 / VIDEO_SHARE


def test_a_call_starts_at_the_top_at_aiortcs_starting_rate() -> None:
    assert Ladder().target == Target(kbps=START_KBPS, fps=30, scale=1.0, step=0)


def test_the_ladder_gives_up_bitrate_then_frame_rate_then_resolution() -> None:
    rungs = [(step.fps, step.scale) for step in LADDER]
    assert rungs == sorted(rungs, reverse=True)  # never more of either further down
    first_fps_cut = next(i for i, (fps, _) in enumerate(rungs) if fps < rungs[0][0])
    first_scale_cut = next(i for i, (_, scale) in enumerate(rungs) if scale < 1)
    assert 0 < first_fps_cut < first_scale_cut
    assert [s.min_kbps for s in LADDER] == sorted((s.min_kbps for s in LADDER), reverse=True)
    assert LADDER[-1].min_kbps == 0 and LADDER[-1].fps >= 10  # the floor still moves


def test_audio_keeps_its_share_and_the_bitrate_stays_in_bounds() -> None:
    ladder = Ladder()
    assert ladder.estimate(1_000_000, 0).kbps == int(1000 * VIDEO_SHARE)
    assert ladder.estimate(50_000_000, 1).kbps == MAX_KBPS
    assert ladder.estimate(10_000, 2).kbps == MIN_KBPS


def test_falling_estimates_lower_the_bitrate_at_once_and_the_rung_after_a_hold() -> None:
    ladder = Ladder()
    first = ladder.estimate(bps_for(200), 0.0)
    assert (first.kbps, first.step) == (200, 0)  # a ramp at the start is not congestion
    assert ladder.estimate(bps_for(200), HOLD_DOWN_S - 0.1).step == 0
    assert ladder.estimate(bps_for(200), HOLD_DOWN_S).step == 2  # straight to the rung that fits
    # One estimate back above the rung restarts the count.
    ladder = Ladder()
    for at, kbps in ((0.0, 200), (1.0, 200), (1.5, 320), (2.5, 200), (4.0, 200)):
        assert ladder.estimate(bps_for(kbps), at).step == 0
    assert ladder.estimate(bps_for(200), 4.5).step == 2


def test_a_rising_estimate_keeps_the_rung_however_low_it_starts() -> None:
    """As Chromium's first REMBs: 180 kbps, rising 6% a second, four a second."""
    ladder = Ladder()
    steps = {ladder.estimate(180_000 * 1.06 ** (t / 4), t / 4).step for t in range(40)}
    assert steps == {0}


def test_a_lasting_fall_gives_up_frame_rate_then_resolution() -> None:
    seen = []
    for kbps in (500, 250, 180, 120, 60):
        ladder = Ladder()
        ladder.estimate(bps_for(kbps), 0.0)
        seen.append(ladder.estimate(bps_for(kbps), HOLD_DOWN_S))
    assert [(t.fps, t.scale) for t in seen] == [
        (30, 1.0),
        (20, 1.0),
        (15, 1.0),
        (15, 0.5),
        (12, 0.5),
    ]


def test_rising_estimates_step_up_one_rung_per_hold() -> None:
    ladder = Ladder()
    ladder.estimate(bps_for(60), -HOLD_DOWN_S)
    assert ladder.estimate(bps_for(60), 0.0).step == len(LADDER) - 1
    clear = bps_for(2000)
    steps = [ladder.estimate(clear, t / 2).step for t in range(1, 60)]  # every 0.5 s for 30 s
    changes = [t / 2 for t, (a, b) in enumerate(pairwise(steps), 2) if a != b]
    assert steps[-1] == 0
    assert len(changes) == len(LADDER) - 1  # one rung at a time
    assert all(b - a >= HOLD_UP_S for a, b in pairwise([0.0, *changes]))


def test_hysteresis_an_estimate_just_above_a_rung_does_not_climb() -> None:
    ladder = Ladder()
    ladder.estimate(bps_for(200), -HOLD_DOWN_S)
    ladder.estimate(bps_for(200), 0)
    assert ladder.target.step == 2
    just_above = LADDER[1].min_kbps * (UP_MARGIN - 0.05)
    for t in range(1, 40):
        assert ladder.estimate(bps_for(just_above), t).step == 2
    # ... and an estimate that wobbles around the margin never holds long enough.
    for t in range(40, 80):
        wobble = LADDER[1].min_kbps * (UP_MARGIN + (0.1 if t % 3 else -0.1))
        assert ladder.estimate(bps_for(wobble), t).step == 2


def test_steady_at_a_cap_the_rung_does_not_flap() -> None:
    """An estimate wandering ±10% around 250 kbps (as at a 300 kbit/s cap) keeps one rung."""
    ladder = Ladder()
    wander = [230, 250, 270, 245, 255, 235, 265, 250] * 5
    steps = {ladder.estimate(bps_for(k * VIDEO_SHARE), t / 4).step for t, k in enumerate(wander)}
    assert len(steps) <= 2  # the first estimate may move it once


@pytest.mark.parametrize("garbage", [float("nan"), -1.0, 0.0, float("-inf")])
def test_garbage_from_the_peer_counts_as_the_floor(garbage: float) -> None:
    ladder = Ladder()
    assert ladder.estimate(garbage, 0).kbps == MIN_KBPS
    assert ladder.estimate(garbage, HOLD_DOWN_S).step == len(LADDER) - 1

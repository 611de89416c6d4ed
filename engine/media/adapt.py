"""The video adaptation ladder: the receiver's bandwidth estimate in, what the video sender aims at out.

On a thinning link the bitrate goes down first, then the frame rate, then the resolution (issue
#16), and back up in the reverse order when the link clears. The bitrate follows every estimate at
once: it is what keeps queues from building, since the encoder keeps to it (CBR, dropping frames
when it must). A rung (frame rate, resolution) is given up only after the estimate has stayed below
it for HOLD_DOWN_S without rising RISING over that time, because a call's first estimates are a
ramp, not congestion: Chromium's first REMB came at 180-280 kbps and rose 4-8% a second, since it
estimates from what it receives (stepping down at once held 15 fps for the first 10 s of 3 calls
in 4). A rung is taken back only after the estimate has stayed above its need, with a margin, for
HOLD_UP_S, since a link that has just cleared may only be having a quiet moment (without the hold,
a ladder at a cap climbs, overshoots and drops again every few seconds, and each resolution change
costs a keyframe).

Audio is never starved: video aims at VIDEO_SHARE of the estimate, not all of it. A fixed amount
taken off would not do: aiortc's receiver estimates from the video it receives, at most 1.5 times
that, so a sender aiming at "estimate - 80 kbps" would drive its own estimate down to the floor.

Pure: the estimate and the time come in, no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

VIDEO_SHARE = 0.85
MIN_KBPS = 60  # below this VP8 at 320x240 is mush, and the audio needs the link more
MAX_KBPS = 1500  # aiortc's own ceiling for VP8
START_KBPS = 500  # aiortc's starting point, before the first estimate
UP_MARGIN = 1.3
HOLD_UP_S = 3.0
HOLD_DOWN_S = 2.0
RISING = 1.1  # an estimate this much above where it was HOLD_DOWN_S ago is a ramp


@dataclass(frozen=True)
class Step:
    """One rung: at most `fps` frames a second, at `scale` of the source's width and height, right
    for video bitrates of `min_kbps` and more."""

    fps: float
    scale: float
    min_kbps: int


# VP8 at 640x480 and 30 fps looks right down to about 300 kbps (WebRTC starts VGA at 300); below
# that fewer frames keep each one sharp, and below 160 kbps halving the resolution does. At a 300
# kbit/s cap the receiver's estimate settled near 165 kbps (video 140, with audio and headers 210
# kbps on the wire): 320x240 at 15 fps.
LADDER = (
    Step(fps=30, scale=1.0, min_kbps=300),
    Step(fps=20, scale=1.0, min_kbps=220),
    Step(fps=15, scale=1.0, min_kbps=160),
    Step(fps=15, scale=0.5, min_kbps=100),
    Step(fps=12, scale=0.5, min_kbps=0),
)


@dataclass(frozen=True)
class Target:
    """What the video sender aims at now."""

    kbps: int
    fps: float
    scale: float
    step: int  # the rung's index in LADDER, 0 the top


def _video_kbps(estimate_bps: float) -> int:
    return int(min(MAX_KBPS, max(MIN_KBPS, estimate_bps * VIDEO_SHARE / 1000)))


class Ladder:
    """Feed it every estimate (`estimate`); `target` is what to send."""

    def __init__(self, start_kbps: int = START_KBPS) -> None:
        self._step = self._highest_step_for(start_kbps)
        self._above_since: float | None = None  # since when the estimate would climb a rung
        self._below_since: float | None = None  # since when it is below the current rung
        self._below_from = 0  # the video kbps then
        self.target = self._make(start_kbps)

    @staticmethod
    def _highest_step_for(kbps: int) -> int:
        return next(i for i, step in enumerate(LADDER) if kbps >= step.min_kbps)

    def _make(self, kbps: int) -> Target:
        step = LADDER[self._step]
        return Target(kbps=kbps, fps=step.fps, scale=step.scale, step=self._step)

    def estimate(self, bps: float, now: float) -> Target:
        """The receiver's estimate in bits per second (REMB), at monotonic time `now` (s). Garbage
        from the peer (negative, not a number) counts as the floor."""
        kbps = _video_kbps(bps if bps == bps and bps > 0 else 0.0)
        if kbps < LADDER[self._step].min_kbps:
            self._above_since = None
            if self._below_since is None or kbps >= self._below_from * RISING:
                self._below_since, self._below_from = now, kbps  # (again:) a ramp, not a fall
            elif now - self._below_since >= HOLD_DOWN_S:
                self._step = self._highest_step_for(kbps)  # straight to the rung that fits
                self._below_since = None
        elif self._step > 0 and kbps >= LADDER[self._step - 1].min_kbps * UP_MARGIN:
            self._below_since = None
            if self._above_since is None:
                self._above_since = now
            elif now - self._above_since >= HOLD_UP_S:
                self._step -= 1  # one rung at a time: the next estimate tells whether it held
                self._above_since = now
        else:
            self._above_since = self._below_since = None
        self.target = self._make(kbps)
        return self.target

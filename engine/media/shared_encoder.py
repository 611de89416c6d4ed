"""One encode per frame for every pair of a group call: a SharedEncoder around one of tcall's
encoders, and an EncoderBranch per RTCRtpSender (installed with engine/compat/encoder.py
`encode_with`), which aiortc drives as it would its own encoder.

Each sender still numbers, times and keeps its own packets (SSRC, sequence numbers, NACK and RTX
history are the sender's); only the payloads are shared. aiortc calls encode() in its worker
threads, one per sender, with the frame its track handed out; the branches of a fan-out
(engine/media/fanout.py) hand out the very same frames, so the first branch to ask for a frame
encodes it, under a lock, and the others get the same payloads back (a frame is known by its pts).

Video frames refer to the frames before them, so a branch passes on the shared payloads only while
it has passed on every encoded frame before them; one that missed any (a sender that fell behind
the fan-out, or a pair that joined mid-call) sends nothing until a keyframe, which it asks for. A
keyframe asked for by any pair (PLI, FIR) makes the next frame encoded a keyframe for all; the
bitrate follows the lowest estimate (REMB) among the pairs, since every pair gets the same stream.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiortc.codecs.base import Encoder
from av.frame import Frame
from av.packet import Packet

CACHE_FRAMES = 16  # encoded frames kept for the senders behind the first (the fan-out keeps 5-10)


@dataclass(frozen=True)
class Encoded:
    """One frame's payloads. `number` counts the encoded frames that had payloads (a dropped one
    has the number of the next), so a branch sees whether it missed one."""

    number: int
    payloads: list[bytes]
    timestamp: int
    keyframe: bool  # asked for (so certainly a keyframe); the encoder may make others unasked


class SharedEncoder:
    """`inner` (an aiortc Encoder: tcall's AdaptiveVideoEncoder, or a SpeechEncoder) encoding each
    frame once for any number of branches."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lock = threading.Lock()  # held while encoding; a subclass's changes to `inner` too
        self.encodes = 0  # frames handed to `inner`
        self.keyframes = 0  # keyframes asked for and sent
        self._done: OrderedDict[int, Encoded] = OrderedDict()
        self._newest: int | None = None  # the newest pts encoded
        self._numbered = 0
        self._keyframe_wanted = True  # the first frame is one anyway: say so to the branches
        # Asked from other branches' threads while one encodes: its own lock, so none is lost.
        self._wanted_lock = threading.Lock()
        self._estimates: dict[object, int] = {}

    def want_keyframe(self) -> None:
        """The next frame encoded is a keyframe (from any thread)."""
        with self._wanted_lock:
            self._keyframe_wanted = True

    def _take_keyframe(self) -> bool:
        with self._wanted_lock:
            wanted, self._keyframe_wanted = self._keyframe_wanted, False
            return wanted

    def encode(self, frame: Frame) -> Encoded | None:
        """The frame's payloads, encoded now or by an earlier call; None for a frame older than one
        already encoded and no longer kept (encoding it now would fork the stream)."""
        with self.lock:  # the pts too: an encode in another thread changes it for a moment
            pts, time_base = frame.pts, frame.time_base
            assert pts is not None, "a shared encoder knows frames by their pts"
            done = self._done.get(pts)
            if done is not None:
                return done
            if self._newest is not None and pts <= self._newest:
                return None
            keyframe = self._take_keyframe()
            try:
                payloads, timestamp = self.inner.encode(frame, keyframe)
            finally:
                # PyAV's encode rebases the frame's pts onto the codec's time base (x264: 1/30 s):
                # the other senders must find the frame as it was handed out.
                frame.pts, frame.time_base = pts, time_base
            self.encodes += 1
            if keyframe and not payloads:
                self.want_keyframe()  # a dropped frame: the keyframe goes on the next
            encoded = Encoded(self._numbered, payloads, timestamp, keyframe and bool(payloads))
            self._numbered += bool(payloads)
            self.keyframes += encoded.keyframe
            self._newest = pts
            self._done[pts] = encoded
            if len(self._done) > CACHE_FRAMES:
                self._done.popitem(last=False)
            return encoded

    # --- the bitrate: the lowest estimate among the pairs ----------------------------------

    @property
    def target_bitrate(self) -> int:
        return int(self.inner.target_bitrate)

    def estimate(self, pair: object, bps: int) -> None:
        """`pair`'s receiver estimates `bps` (on the event loop, as aiortc reports REMB)."""
        self._estimates[pair] = bps
        self.inner.target_bitrate = min(self._estimates.values())

    def forget(self, pair: object) -> None:
        """`pair` left: its estimate no longer holds the others down."""
        if self._estimates.pop(pair, None) is not None and self._estimates:
            self.inner.target_bitrate = min(self._estimates.values())


class EncoderBranch(Encoder):
    """One sender's encoder: the shared payloads, in an unbroken chain when `chained` (video;
    audio packets stand alone)."""

    def __init__(self, shared: SharedEncoder, pair: object, *, chained: bool = True) -> None:
        self.shared = shared
        self.pair = pair
        self.chained = chained
        self.frames = 0  # frames with payloads passed on
        self.keyframes = 0
        self.held = 0  # frames with payloads held back while waiting for a keyframe
        self._last: int | None = None  # the number of the last frame passed on
        # Its pair left: what its receiver still reports (until the connection closes) is ignored.
        self.released = False

    def release(self) -> None:
        self.released = True

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        if force_keyframe:
            self.shared.want_keyframe()
        encoded = self.shared.encode(frame)
        if encoded is None:
            self._broken()
            return [], 0
        if not encoded.payloads:
            return [], encoded.timestamp
        follows = self._last is not None and encoded.number == self._last + 1
        if self.chained and not (encoded.keyframe or follows):
            self.held += 1
            self._broken()
            return [], encoded.timestamp
        self._last = encoded.number
        self.frames += 1
        self.keyframes += encoded.keyframe
        return encoded.payloads, encoded.timestamp

    def _broken(self) -> None:
        """This sender's receiver lacks a frame the next ones refer to: start again at a keyframe."""
        if self.chained:
            self._last = None
            self.shared.want_keyframe()

    def pack(self, packet: Packet) -> tuple[list[bytes], int]:
        raise NotImplementedError("group senders always encode frames")


class VideoEncoderBranch(EncoderBranch):
    """A video sender's branch: chained, and the pair's estimate goes to the shared encoder (aiortc
    hands each REMB to an encoder that has a `target_bitrate`)."""

    def __init__(self, shared: SharedEncoder, pair: object) -> None:
        super().__init__(shared, pair, chained=True)

    @property
    def target_bitrate(self) -> int:
        return self.shared.target_bitrate

    @target_bitrate.setter
    def target_bitrate(self, bps: int) -> None:
        if not self.released:
            self.shared.estimate(self.pair, bps)

"""tcall's hooks into aiortc's senders' encoders, each checked before use.

Video that follows the link (issue #16): aiortc hands each REMB estimate to its encoder's
`target_bitrate`, and its VP8 and H.264 encoders rebuild their codec whenever that moves by more
than 10%, so every rebuild began with a keyframe (3-9 in 10 s towards Chromium). install() puts
tcall's encoders in the senders' encoder lookup instead: AdaptiveVideoEncoder feeds the estimate to
the ladder (engine/media/adapt.py), drops frames down to its frame rate and scales them to its
resolution, and hands the bitrate to an encoder that changes it while running: LiveVp8Encoder
(libvpx driven directly, engine/compat/libvpx.py) or RealtimeH264Encoder (FFmpeg's libx264 wrapper
reconfigures x264 on a new bit_rate when the codec was opened at its VBV rate; measured here 1000
-> 400 kbps in place, no keyframe; below the top rung its frames are filled up to the target, see
`fill_fps`). Only a resolution step costs a keyframe. VP8 packets are aiortc's own
(`Vp8Encoder._packetize`), and so are H.264's.

Realtime H.264: aiortc leaves x264 at its default "medium" preset, which costs 16 ms per 640x480 frame
here; with "ultrafast" (and aiortc's own "zerolatency" tune) it costs 2.5 ms, so H.264 calls keep 30
fps and lose that time from their glass-to-glass latency. At the sizes a terminal shows, the lower
coding efficiency does not show. aiortc creates its x264 context inside the encoder with no hook for
options, so RealtimeH264Encoder hands aiortc a thin proxy of the context that adds the preset to
whatever options aiortc sets, and install() puts it into the senders' encoder lookup
(`aiortc.rtcrtpsender.get_encoder`).

A sender's own encoder: aiortc builds a sender's encoder inside the sender with no hook for
settings, so encode_with() has the sender's `send` (when it learns the negotiated codec) put tcall's
encoder into its private slot (`_RTCRtpSender__encoder`), which aiortc only fills when empty.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import aiortc.rtcrtpsender
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import VIDEO_TIME_BASE, convert_timebase
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender
from av import VideoFrame
from av.frame import Frame
from av.packet import Packet

from tcall.engine.compat import libvpx
from tcall.engine.compat.aiortc import SUPPORTED
from tcall.engine.errors import CompatError
from tcall.engine.media import red
from tcall.engine.media.adapt import MAX_KBPS, START_KBPS, Ladder, Target

X264_PRESET = "ultrafast"
# x264's default puts a keyframe every 250 frames (measured: frame 250 of 300); receivers ask for
# one when they need it (PLI), so 3000 frames, as for VP8, is only a refresh.
KEYFRAME_INTERVAL = 3000
# x264's VBV buffer, in seconds of the starting rate: a VBV is what lets FFmpeg's libx264 wrapper
# take a new bit_rate on the fly, and its buffer bounds a frame's burst. At 0.5 s the bursts held
# a 300 kbit/s link (bob's delay 627 ms at the cap's start, 251 ms at 0.2 s).
X264_VBV_S = 0.2
# Frame-rate limiting is a token bucket counted in frames: a frame goes when the credit is at least
# 1 - _JITTER (frames come a little early or late) and the credit never exceeds _BURST, so a sender
# that falls behind and catches up (its encodes run in aiortc's worker thread; after a stall the
# source hands out two or three frames at once) loses no frames it is allowed, and a long pause
# earns no burst. Measured on a loaded machine (two busy loops beside an echo call): a plain "one
# interval after the last" rule lost 34-149 of 310 frames in 10 s at 30 fps asked, a burst of 1.5
# lost 22% in one call of two (tests/calls/test_echo_call.py failed), 2.5 none in five.
_JITTER = 0.15
_BURST = 2.5
# H.264 filler data (NAL type 12, nal_ref_idc 0), which decoders skip: its header and its RBSP
# trailing bits around 0xff bytes (which cannot make a start code).
_FILLER_HEADER, _FILLER_BYTE, _FILLER_END = b"\x0c", b"\xff", b"\x80"
_FILLER_MIN = 64  # bytes: less is not worth a NAL unit
VIDEO_CLOCK = VIDEO_TIME_BASE.denominator


def _rtp_time(item: Frame | Packet) -> int:
    """A frame's or packet's time on RTP's 90 kHz video clock (aiortc's own conversion)."""
    if item.pts is None or item.time_base is None:
        return 0
    return convert_timebase(item.pts, item.time_base, VIDEO_TIME_BASE)


_ENCODER = "_RTCRtpSender__encoder"


def _incompatible(problem: str) -> CompatError:
    return CompatError("aiortc", problem, SUPPORTED)


# --- realtime H.264 ----------------------------------------------------------------------------


class _WithPreset:
    """Forwards everything to a libx264 CodecContext, adding the preset to its options."""

    def __init__(self, context: Any) -> None:
        object.__setattr__(self, "_context", context)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "bit_rate" and not self._context.is_open:
            # Opened at the ceiling, which is also the VBV rate: FFmpeg's libx264 wrapper then
            # follows every later bit_rate (measured: 1000 -> 400 kbps in place). Opened at a
            # lower rate than its VBV rate, x264 ignored new rates; and PyAV cannot change the
            # VBV rate of an open context (max_bit_rate is read-only).
            value = MAX_KBPS * 1000
        if name == "options":
            # The VBV rate is the ladder's ceiling; the buffer, sized at the starting rate,
            # bounds a frame.
            vbv = {
                "maxrate": str(MAX_KBPS * 1000),
                "bufsize": str(int(START_KBPS * 1000 * X264_VBV_S)),
            }
            value = {**value, "preset": X264_PRESET} | vbv
            value |= {"g": str(KEYFRAME_INTERVAL)}
        setattr(self._context, name, value)


class _LiveBitrate:
    """aiortc's `target_bitrate` (bits a second) over `kbps`, which encode() applies to the running
    encoder. First among a class's bases: it replaces aiortc's own property, which rebuilt it."""

    kbps: int

    @property
    def target_bitrate(self) -> int:
        return self.kbps * 1000

    @target_bitrate.setter
    def target_bitrate(self, bps: int) -> None:
        self.kbps = max(1, int(bps) // 1000)


class RealtimeH264Encoder(_LiveBitrate, H264Encoder):
    """aiortc's H.264 encoder with x264's fastest preset, and a bitrate that changes in place: the
    new rate is set on the open context (FFmpeg reconfigures x264 at the next frame), so aiortc's
    "more than 10% off: rebuild" test never fires. Rates come from the ladder, which may go below
    aiortc's 500 kbps floor."""

    def __init__(self) -> None:
        super().__init__()
        self.kbps = START_KBPS
        # Frames a second to fill the target at (None: no filler). x264 spends less than its
        # target on easy pictures, most at the ladder's lower rungs, and the receiver estimates
        # from what arrives (at most 1.5 times it): measured after a 300 kbit/s cap lifted, an
        # H.264 call stayed at 130 kbps and 320x240 for 25 s, where VP8 (CBR, which spends its
        # target) was back at 640x480 in 8-14 s. Filler is WebRTC's probing by padding, in-band.
        self.fill_fps: float | None = None

    @property
    def codec(self) -> Any:
        return self.__dict__.get("_codec")

    @codec.setter
    def codec(self, context: Any) -> None:
        self.__dict__["_codec"] = None if context is None else _WithPreset(context)

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        context = self.codec
        if context is not None and context.bit_rate != self.target_bitrate:
            context.bit_rate = self.target_bitrate
        return super().encode(frame, force_keyframe)

    def _encode_frame(self, frame: VideoFrame, force_keyframe: bool) -> Iterator[bytes]:
        """aiortc's NAL units of the frame, then filler up to the frame's share of the target when
        `fill_fps` is set."""
        size = 0
        for nal in super()._encode_frame(frame, force_keyframe):
            size += len(nal)
            yield nal
        if self.fill_fps and size:
            missing = int(self.target_bitrate / 8 / self.fill_fps) - size
            if missing >= _FILLER_MIN:
                yield _FILLER_HEADER + _FILLER_BYTE * (missing - 2) + _FILLER_END


class LiveVp8Encoder(_LiveBitrate, Encoder):
    """VP8 from libvpx directly (engine/compat/libvpx.py), its bitrate changed in place, in aiortc's
    RTP payloads. `kbps` may be set from any thread; encode() applies it."""

    def __init__(self) -> None:
        self.kbps = START_KBPS
        self.picture_id = random.randint(0, (1 << 15) - 1)
        self._vpx: libvpx.Vp8Encoder | None = None

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, VideoFrame)
        width, height = frame.width & ~1, frame.height & ~1  # I420 needs even sides
        if frame.format.name != "yuv420p" or (width, height) != (frame.width, frame.height):
            frame = frame.reformat(width=width, height=height, format="yuv420p")
        if self._vpx is None or (self._vpx.width, self._vpx.height) != (width, height):
            if self._vpx is not None:
                self._vpx.close()  # VP8 states a size only in keyframes: a new size needs one
            self._vpx = libvpx.Vp8Encoder(width, height, self.kbps)
        self._vpx.set_kbps(self.kbps)
        timestamp = _rtp_time(frame)
        frames = self._vpx.encode(frame.to_ndarray(), timestamp, force_keyframe)
        return self._payloads(b"".join(data for data, _ in frames)), timestamp

    def pack(self, packet: Packet) -> tuple[list[bytes], int]:
        timestamp = _rtp_time(packet)
        return self._payloads(bytes(packet)), timestamp

    def _payloads(self, data: bytes) -> list[bytes]:
        if not data:
            return []  # the rate control dropped the frame: aiortc sends nothing
        payloads: list[bytes] = Vp8Encoder._packetize(data, self.picture_id)
        self.picture_id = (self.picture_id + 1) % (1 << 15)
        return payloads


class AdaptiveVideoEncoder(Encoder):
    """Follows the receiver's estimate through the ladder: hands its bitrate to `inner`, sends at
    most its frame rate and at its scale of the source's size. aiortc sets `target_bitrate` on the
    event loop and calls encode() in a worker thread; the target is one immutable value, replaced
    whole, so the thread always reads a consistent one. `start_kbps`: the bitrate before the
    first estimate."""

    def __init__(
        self, inner: LiveVp8Encoder | RealtimeH264Encoder, start_kbps: int = START_KBPS
    ) -> None:
        self.inner = inner
        self.ladder = Ladder(start_kbps)
        self.target: Target = self.ladder.target
        self._credit = 1.0  # frames that may go now (the first may)
        self._last_at: float | None = None  # the previous frame's time, in the frames' own seconds
        self._keyframe_owed = False

    @property
    def target_bitrate(self) -> int:
        return self.target.kbps * 1000

    @target_bitrate.setter
    def target_bitrate(self, bps: int) -> None:
        self.target = self.ladder.estimate(float(bps), time.monotonic())

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, VideoFrame)
        target = self.target
        timestamp = _rtp_time(frame)
        if not self._take(float(Fraction(timestamp, VIDEO_CLOCK)), target.fps):
            # A keyframe asked for on a frame we drop goes out on the next one we send.
            self._keyframe_owed |= force_keyframe
            return [], timestamp
        width = max(2, int(frame.width * target.scale) & ~1)
        height = max(2, int(frame.height * target.scale) & ~1)
        if (width, height) != (frame.width, frame.height):
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
            frame = scaled
        self.inner.kbps = target.kbps
        if isinstance(self.inner, RealtimeH264Encoder):
            # Below the top rung, spend the whole target, so that the estimate can find out
            # whether the link has room for the next rung.
            self.inner.fill_fps = target.fps if target.step > 0 else None
        keyframe, self._keyframe_owed = force_keyframe or self._keyframe_owed, False
        return self.inner.encode(frame, keyframe)

    def _take(self, at: float, fps: float) -> bool:
        """Whether a frame at `at` seconds goes out at `fps` (see _JITTER and _BURST)."""
        if self._last_at is not None:
            elapsed = min(max(at - self._last_at, 0.0), 1.0)  # a clock jump earns one second
            self._credit = min(_BURST, self._credit + elapsed * fps)
        self._last_at = at
        if self._credit < 1.0 - _JITTER:
            return False
        self._credit -= 1.0
        return True

    def pack(self, packet: Packet) -> tuple[list[bytes], int]:
        return self.inner.pack(packet)


def realtime_encoder(codec: RTCRtpCodecParameters, start_kbps: int = START_KBPS) -> Encoder:
    """tcall's encoder for a video codec it adapts (aiortc's own for any other codec)."""
    mime = codec.mimeType.lower()
    if mime == "video/h264":
        return AdaptiveVideoEncoder(RealtimeH264Encoder(), start_kbps)
    if mime == "video/vp8":
        return AdaptiveVideoEncoder(LiveVp8Encoder(), start_kbps)
    if mime == red.MIME:
        return PlainRedEncoder(codec)
    return get_encoder(codec)


class PlainRedEncoder(Encoder):
    """RED for an aiortc peer that is not tcall's (aiortc has no RED encoder): its Opus packets
    with no copies, so a plain aiortc peer in a tcall process that answers tcall's offer with RED
    first can still send. tcall's own senders use engine/media/opus_sender.py RedEncoder."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self.opus = get_encoder(RTCRtpCodecParameters("audio/opus", codec.clockRate, 2))
        self.red = red.RedPacker(red.fmtp_payload_type(codec.parameters) or 0)

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        payloads, timestamp = self.opus.encode(frame, force_keyframe)
        return [self.red.pack(payload, timestamp) for payload in payloads], timestamp

    def pack(self, packet: Packet) -> tuple[list[bytes], int]:
        raise NotImplementedError("RED is only encoded from frames")


def sender_encoder(sender: RTCRtpSender) -> Encoder | None:
    """The encoder a sender runs now (None before its first frame)."""
    encoder = vars(sender).get(_ENCODER)
    return encoder if isinstance(encoder, Encoder) else None


def _install_encoder() -> None:
    current = getattr(aiortc.rtcrtpsender, "get_encoder", None)
    if current is realtime_encoder:
        return
    if not callable(current):
        raise _incompatible("aiortc.rtcrtpsender has no get_encoder")
    if "codec" not in vars(H264Encoder()):
        raise _incompatible("H264Encoder keeps its x264 context somewhere other than .codec")
    if not callable(getattr(H264Encoder, "_encode_frame", None)):
        raise _incompatible("H264Encoder has no _encode_frame")
    if not callable(getattr(Vp8Encoder, "_packetize", None)):
        raise _incompatible("Vp8Encoder has no _packetize")
    aiortc.rtcrtpsender.get_encoder = realtime_encoder


# --- a sender's own encoder ----------------------------------------------------------------------


def encode_with(
    sender: RTCRtpSender, make: Callable[[list[RTCRtpCodecParameters]], Encoder | None]
) -> None:
    """When `sender` starts, `make(codecs)` may give the encoder for its negotiated codecs (the
    first is the one sent; None: aiortc's own). Call before the connection starts media."""
    if _ENCODER not in vars(sender):
        raise _incompatible("RTCRtpSender keeps its encoder somewhere other than __encoder")
    original = sender.send

    async def send(parameters: Any) -> None:
        encoder = make(list(parameters.codecs)) if parameters.codecs else None
        if encoder is not None and getattr(sender, _ENCODER) is None:
            setattr(sender, _ENCODER, encoder)
        await original(parameters)

    sender.send = send  # type: ignore[method-assign]


def install() -> None:
    """Install tcall's video encoders (libvpx checked first); safe to call again."""
    libvpx.install()
    _install_encoder()

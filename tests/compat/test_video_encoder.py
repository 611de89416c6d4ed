"""tcall's video encoders (engine/compat/encoder.py, engine/compat/libvpx.py) against the real libvpx
and x264: the bitrate of a running encoder follows the receiver's estimate with no keyframe, the
ladder's frame rate and resolution are what goes out, and a libvpx tcall does not know is a
CompatError."""

from __future__ import annotations

import fractions

import aiortc.rtcrtpsender
import cv2
import pytest
from aiortc.codecs import get_encoder
from aiortc.codecs.h264 import H264Decoder, H264Encoder, h264_depayload
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from av import VideoFrame

from tcall.engine import compat
from tcall.engine.compat import encoder as encoder_hooks
from tcall.engine.compat import libvpx
from tcall.engine.errors import CompatError
from tcall.engine.media.adapt import HOLD_DOWN_S, VIDEO_SHARE
from tcall.engine.media.video import PatternSource

FPS = 30


def pattern_frames(count: int, width: int = 640, height: int = 480) -> list[VideoFrame]:
    source = PatternSource(width, height, FPS)
    frames = []
    for index in range(count):
        i420 = cv2.cvtColor(source._draw(index), cv2.COLOR_RGB2YUV_I420)
        frame = VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts, frame.time_base = index * 3000, fractions.Fraction(1, 90000)
        frames.append(frame)
    return frames


def is_vp8_keyframe(payloads: list[bytes]) -> bool:
    """RFC 6386 9.1: the frame tag's lowest bit is 0 on a keyframe."""
    return not vp8_depayload(payloads[0])[0] & 1


def settle(encoder: encoder_hooks.AdaptiveVideoEncoder, video_kbps: int) -> None:
    """The estimate that gives video `video_kbps`, held long enough for the ladder's rung."""
    for at in (0.0, HOLD_DOWN_S):
        encoder.target = encoder.ladder.estimate(video_kbps * 1000 / VIDEO_SHARE, at)


def kbps(sizes: list[int]) -> float:
    return sum(sizes) * 8 * FPS / len(sizes) / 1000


def test_a_running_vp8_encoder_changes_bitrate_without_a_keyframe() -> None:
    vpx = libvpx.Vp8Encoder(640, 480, 500)
    sizes: list[int] = []
    keyframes: list[int] = []
    for index, frame in enumerate(pattern_frames(240)):
        if index == 120:
            vpx.set_kbps(150)
        for data, key in vpx.encode(frame.to_ndarray(), index * 3000, index == 0):
            sizes.append(len(data))
            keyframes += [index] if key else []
    before, after = kbps(sizes[30:120]), kbps(sizes[150:240])
    print(f"\nVP8 at 500 kbps: {before:.0f}, then at 150: {after:.0f}; keyframes at {keyframes}")
    assert keyframes == [0]
    assert 350 < before < 650 and 100 < after < 200, (before, after)


def test_estimates_wandering_by_20_percent_cost_no_keyframe_through_aiortcs_lookup() -> None:
    """What storms with aiortc's own encoder (a rebuild, so a keyframe, per move over 10%)."""
    compat.install()
    encoder = encoder_hooks.realtime_encoder(
        encoder_hooks.RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    )
    keyframes = []
    for index, frame in enumerate(pattern_frames(150)):
        if index % 8 == 0:  # REMB about every quarter second, ±20% around 1 Mbps
            encoder.target_bitrate = 1_000_000 * (1.2 if index % 16 else 0.8)
        payloads, _ = encoder.encode(frame, index == 0)
        if payloads and is_vp8_keyframe(payloads):
            keyframes.append(index)
    assert keyframes == [0]


def test_the_ladder_sets_frame_rate_and_resolution_of_what_goes_out() -> None:
    encoder = encoder_hooks.AdaptiveVideoEncoder(encoder_hooks.LiveVp8Encoder())
    settle(encoder, 60)  # the floor: 12 fps at half size
    sent = [encoder.encode(frame)[0] for frame in pattern_frames(90)]
    frames = [payloads for payloads in sent if payloads]
    assert 11 * 3 <= len(frames) <= 13 * 3  # three seconds of source at 30 fps
    vpx = encoder.inner._vpx
    assert vpx is not None and (vpx.width, vpx.height) == (320, 240)
    assert encoder.target.kbps == 60 and vpx.kbps == 60


def test_a_keyframe_asked_for_on_a_dropped_frame_goes_out_on_the_next() -> None:
    encoder = encoder_hooks.AdaptiveVideoEncoder(encoder_hooks.LiveVp8Encoder())
    settle(encoder, 180)  # 15 fps: every other frame
    frames = pattern_frames(6)
    assert is_vp8_keyframe(encoder.encode(frames[0])[0])
    assert encoder.encode(frames[1], force_keyframe=True)[0] == []  # dropped
    assert is_vp8_keyframe(encoder.encode(frames[2])[0])


def test_h264_bitrate_changes_in_place() -> None:
    compat.install()
    inner = encoder_hooks.RealtimeH264Encoder()
    encoder = encoder_hooks.AdaptiveVideoEncoder(inner)
    encoder.target_bitrate = 1_500_000
    sizes: list[int] = []
    context = None
    for index, frame in enumerate(pattern_frames(180)):
        if index == 90:
            context = inner.codec._context
            encoder.target_bitrate = int(400_000 / VIDEO_SHARE)  # 30 fps kept at 400 kbps
        sizes.append(sum(map(len, encoder.encode(frame, index == 0)[0])))
    assert inner.codec._context is context  # never rebuilt
    before, after = kbps(sizes[30:90]), kbps(sizes[120:180])
    print(f"\nH.264 asked 1275 kbps: {before:.0f}, then 400: {after:.0f}")
    assert after < 0.6 * before


def test_no_libvpx_is_a_compat_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libvpx, "_candidates", lambda: [])
    libvpx.load.cache_clear()
    try:
        with pytest.raises(CompatError, match="^av .*libvpx"):
            libvpx.load()
    finally:
        libvpx.load.cache_clear()


def test_a_config_laid_out_differently_is_a_compat_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libvpx, "_defaults_where_expected", lambda lib: False)
    libvpx.load.cache_clear()
    try:
        with pytest.raises(CompatError, match="laid out differently"):
            libvpx.load()
    finally:
        libvpx.load.cache_clear()


def test_a_wrong_abi_version_is_a_compat_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libvpx, "ABI_VERSION", libvpx.ABI_VERSION + 1)
    libvpx.load.cache_clear()
    try:
        with pytest.raises(CompatError, match="refused to start"):
            libvpx.load()
    finally:
        libvpx.load.cache_clear()


def test_h264_below_the_top_rung_fills_its_target_with_filler_that_decodes() -> None:
    """x264 spends less than its target on easy pictures; below the top rung the frames are filled
    up to it (the receiver's estimate grows only with what arrives), and a decoder skips it."""
    compat.install()
    inner = encoder_hooks.RealtimeH264Encoder()
    encoder = encoder_hooks.AdaptiveVideoEncoder(inner)
    settle(encoder, 120)  # 320x240 at 15 fps
    decoder = H264Decoder()
    sizes, decoded = [], 0
    for index, frame in enumerate(pattern_frames(90)):
        payloads, timestamp = encoder.encode(frame, index == 0)
        if payloads:
            sizes.append(sum(map(len, payloads)))
            data = b"".join(h264_depayload(p) for p in payloads)
            decoded += len(decoder.decode(JitterFrame(data, timestamp)))
    sent_kbps = sum(sizes[5:]) * 8 * 15 / len(sizes[5:]) / 1000
    assert len(sizes) == decoded == 45
    assert 0.9 * 120 <= sent_kbps <= 1.2 * 120, sent_kbps
    # At the top rung there is nothing to climb to: no filler.
    top = encoder_hooks.AdaptiveVideoEncoder(encoder_hooks.RealtimeH264Encoder())
    top.encode(pattern_frames(1)[0])
    assert isinstance(top.inner, encoder_hooks.RealtimeH264Encoder) and top.inner.fill_fps is None


@pytest.mark.parametrize(
    ("owner", "name"), [(H264Encoder, "_encode_frame"), (Vp8Encoder, "_packetize")]
)
def test_a_missing_encoder_target_is_a_compat_error(
    monkeypatch: pytest.MonkeyPatch, owner: type, name: str
) -> None:
    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", get_encoder)  # not installed yet
    monkeypatch.delattr(owner, name)
    with pytest.raises(CompatError, match=f"^aiortc .*{name}"):
        encoder_hooks.install()

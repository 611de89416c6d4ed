"""The timecode stamped into frames: it survives a real encoder and refuses a damaged code."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from tcall.engine.media import timecode


@pytest.mark.parametrize("codec", ["libvpx", "libx264"])
def test_timecode_survives_encoding(codec: str) -> None:
    frame = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    value = 0x89ABCDEF
    timecode.stamp(frame, value)
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = 640, 480, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.bit_rate = 300_000
    decoder = av.CodecContext.create("vp8" if codec == "libvpx" else "h264", "r")
    decoded = []
    source = av.VideoFrame.from_ndarray(frame, format="rgb24")
    for i in range(5):
        source.pts = i
        for packet in encoder.encode(source):
            decoded += decoder.decode(packet)
    for packet in encoder.encode(None):
        decoded += decoder.decode(packet)
    assert decoded
    luma = decoded[-1].to_ndarray(format="gray")
    assert timecode.read(luma) == value


def test_timecode_rejects_a_damaged_code() -> None:
    frame = np.zeros((480, 640, 3), dtype=np.uint8)
    timecode.stamp(frame, 12345)
    size = timecode.block_size(640)
    frame[:size, :size] = 255 - frame[:size, :size]  # flip one block
    assert timecode.read(frame[..., 0]) is None

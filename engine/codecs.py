"""Realtime settings for aiortc's H.264 encoder.

aiortc leaves x264 at its default "medium" preset, which costs 16 ms per 640x480 frame here; with
"ultrafast" (and aiortc's own "zerolatency" tune) it costs 2.5 ms, so H.264 calls keep 30 fps and lose
that time from their glass-to-glass latency. At the sizes a terminal shows, the lower coding efficiency
does not show. aiortc creates its x264 context inside the encoder with no hook for options, so
RealtimeH264Encoder hands aiortc a thin proxy of the context that adds the preset to whatever options
aiortc sets, and tcall's senders get it through aiortc's encoder lookup.
"""

from __future__ import annotations

from typing import Any

import aiortc.rtcrtpsender
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

X264_PRESET = "ultrafast"


class _WithPreset:
    """Forwards everything to a libx264 CodecContext, adding the preset to its options."""

    def __init__(self, context: Any) -> None:
        object.__setattr__(self, "_context", context)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "options":
            value = {**value, "preset": X264_PRESET}
        setattr(self._context, name, value)


class RealtimeH264Encoder(H264Encoder):
    @property
    def codec(self) -> Any:
        return self.__dict__.get("_codec")

    @codec.setter
    def codec(self, context: Any) -> None:
        self.__dict__["_codec"] = None if context is None else _WithPreset(context)


def realtime_encoder(codec: RTCRtpCodecParameters) -> Encoder:
    if codec.mimeType.lower() == "video/h264":
        return RealtimeH264Encoder()
    return get_encoder(codec)


aiortc.rtcrtpsender.get_encoder = realtime_encoder

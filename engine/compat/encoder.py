"""tcall's hooks into aiortc's senders' encoders, each checked before use.

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

from collections.abc import Callable
from typing import Any

import aiortc.rtcrtpsender
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender

from tcall.engine.compat.aiortc import SUPPORTED
from tcall.engine.errors import CompatError

X264_PRESET = "ultrafast"
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


def _install_encoder() -> None:
    current = getattr(aiortc.rtcrtpsender, "get_encoder", None)
    if current is realtime_encoder:
        return
    if not callable(current):
        raise _incompatible("aiortc.rtcrtpsender has no get_encoder")
    if "codec" not in vars(H264Encoder()):
        raise _incompatible("H264Encoder keeps its x264 context somewhere other than .codec")
    aiortc.rtcrtpsender.get_encoder = realtime_encoder


# --- a sender's own encoder ----------------------------------------------------------------------


def encode_with(
    sender: RTCRtpSender, make: Callable[[RTCRtpCodecParameters], Encoder | None]
) -> None:
    """When `sender` starts, `make(codec)` may give the encoder for its negotiated codec (None:
    aiortc's own). Call before the connection starts media."""
    if _ENCODER not in vars(sender):
        raise _incompatible("RTCRtpSender keeps its encoder somewhere other than __encoder")
    original = sender.send

    async def send(parameters: Any) -> None:
        encoder = make(parameters.codecs[0]) if parameters.codecs else None
        if encoder is not None and getattr(sender, _ENCODER) is None:
            setattr(sender, _ENCODER, encoder)
        await original(parameters)

    sender.send = send  # type: ignore[method-assign]


def install() -> None:
    """Install the realtime H.264 encoder; safe to call again."""
    _install_encoder()

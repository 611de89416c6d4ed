"""Warming the codecs and DTLS once per process, before the first call needs them.

A process pays for its first DTLS certificate (about 10 ms of OpenSSL setup) and its first VP8
encode and decode (10-40 ms more than later frames: libvpx builds its tables) when it first uses
them. At dial time both sides pay, on the path to the first frame. A phone that signs in warms them
in a worker thread while it waits for the relay, so its calls start warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import threading

import av
import numpy as np
from aiortc import RTCCertificate
from aiortc.codecs import get_decoder, get_encoder
from aiortc.codecs.vpx import vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

_started = threading.Event()
_VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)


def warm_up() -> None:
    """Make one certificate, and encode and decode one small VP8 frame."""
    RTCCertificate.generateCertificate()
    picture = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
    picture.pts, picture.time_base = 0, fractions.Fraction(1, 90000)
    payloads, timestamp = get_encoder(_VP8).encode(picture, force_keyframe=True)
    data = b"".join(vp8_depayload(payload) for payload in payloads)
    get_decoder(_VP8).decode(JitterFrame(data=data, timestamp=timestamp))


def warm_up_soon() -> asyncio.Future[None] | None:
    """Start warm_up() in a worker thread, once per process (None when it already has); a
    failure only means a cold start."""
    if _started.is_set():
        return None
    _started.set()

    def quietly() -> None:
        with contextlib.suppress(Exception):
            warm_up()

    return asyncio.get_running_loop().run_in_executor(None, quietly)

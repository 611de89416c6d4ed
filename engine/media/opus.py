"""Opus for speech, through libopus itself: an encoder with in-band FEC whose expected loss can change
during a call, and a decoder that can rebuild a lost frame from the next packet's FEC or conceal it.

PyAV's libopus wrapper offers neither `opus_decode(next, decode_fec=1)` nor `opus_decode(NULL)` (the
decoder's PLC), and libavcodec applies the encoder's `packet_loss` only when it opens, so tcall calls
libopus's public C API with ctypes (which library: engine/compat/opus.py).

Everything is 48 kHz int16. A decoder is used from one thread at a time (libopus keeps state).
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

import numpy as np

from tcall.engine.compat import opus as libopus_loader

SAMPLE_RATE = 48000
FRAME = 960  # 20 ms: the frame size WebRTC peers send, and the RTP ptime tcall sends
MAX_FRAME = 5760  # 120 ms, the longest Opus packet

# From opus_defines.h (the stable public ABI).
_OK = 0
_APPLICATION_VOIP = 2048
_SET_BITRATE = 4002
_SET_VBR = 4006
_SET_COMPLEXITY = 4010
_SET_INBAND_FEC = 4012
_SET_PACKET_LOSS_PERC = 4014
_SET_DTX = 4016
_SET_SIGNAL = 4024
_SIGNAL_VOICE = 3001
_GET_LOOKAHEAD = 4027

MIN_BITRATE_KBPS = 6
MAX_BITRATE_KBPS = 510


class OpusError(Exception):
    """libopus refused a call (a corrupt packet, a bad setting)."""


@functools.cache
def _lib() -> ctypes.CDLL:
    lib = libopus_loader.load()
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_create.argtypes = [
        ctypes.c_int32,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.opus_encode.restype = ctypes.c_int32
    lib.opus_encode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int32,
    ]
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [
        ctypes.c_int32,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.opus_decode.restype = ctypes.c_int
    lib.opus_decode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int32,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    # opus_*_ctl are variadic: they are called with explicit c_int arguments, no argtypes.
    return lib


@functools.cache
def _packet_lib() -> ctypes.PyDLL:
    """The same libopus for the packet queries, called without releasing the GIL. They read a few
    header bytes (well under a microsecond), and the event loop asks them of every packet it
    receives: a CDLL call hands the GIL to whichever thread waits for it, and with a group call's
    threads busy the loop then waited up to the 5 ms switch interval to get it back (60-90 us a
    call on average, measured with cProfile in a call of six)."""
    lib = ctypes.PyDLL(_lib()._name)
    lib.opus_packet_get_nb_samples.restype = ctypes.c_int
    lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
    if hasattr(lib, "opus_packet_has_lbrr"):
        lib.opus_packet_has_lbrr.restype = ctypes.c_int
        lib.opus_packet_has_lbrr.argtypes = [ctypes.c_char_p, ctypes.c_int32]
    return lib


def _check(code: int, what: str) -> int:
    if code < _OK:
        raise OpusError(f"libopus {what} failed (error {code})")
    return code


def packet_samples(payload: bytes) -> int | None:
    """Samples per channel at 48 kHz in an Opus packet, or None when it is not a valid packet."""
    if not payload:
        return None
    count = int(_packet_lib().opus_packet_get_nb_samples(payload, len(payload), SAMPLE_RATE))
    return count if 0 < count <= MAX_FRAME else None


def has_fec(payload: bytes) -> bool:
    """Whether a packet carries in-band FEC (LBRR) for the frame before it.

    libopus 1.5+ answers exactly (opus_packet_has_lbrr); older ones are asked only whether the packet
    is in a mode that can carry it (SILK or hybrid: TOC configurations below 16).
    """
    if not payload:
        return False
    lib = _packet_lib()
    if hasattr(lib, "opus_packet_has_lbrr"):
        return int(lib.opus_packet_has_lbrr(payload, len(payload))) > 0
    return payload[0] >> 3 < 16


@dataclass(frozen=True)
class EncoderSettings:
    bitrate_kbps: int = 48
    fec: bool = True
    packet_loss_percent: int = 0
    complexity: int = 9


class OpusEncoder:
    """Mono 48 kHz speech (application VOIP) in 20 ms frames."""

    def __init__(self, settings: EncoderSettings | None = None) -> None:
        lib = _lib()
        error = ctypes.c_int(0)
        self._lib = lib
        self._state = lib.opus_encoder_create(
            SAMPLE_RATE, 1, _APPLICATION_VOIP, ctypes.byref(error)
        )
        _check(error.value, "opus_encoder_create")
        self._out = ctypes.create_string_buffer(1500)
        self.settings = EncoderSettings()
        self._ctl(_SET_SIGNAL, _SIGNAL_VOICE)
        self._ctl(_SET_VBR, 1)
        self._ctl(_SET_DTX, 0)  # a steady packet clock is what the receiver's buffer adapts to
        self.configure(settings or EncoderSettings())

    def _ctl(self, request: int, value: int) -> None:
        _check(
            self._lib.opus_encoder_ctl(
                ctypes.c_void_p(self._state), ctypes.c_int(request), ctypes.c_int(value)
            ),
            f"encoder ctl {request}",
        )

    def configure(self, settings: EncoderSettings) -> None:
        """Apply what changed; cheap enough to call on every receiver report."""
        old, new = self.settings, settings
        first = not getattr(self, "_configured", False)
        if first or old.bitrate_kbps != new.bitrate_kbps:
            kbps = min(MAX_BITRATE_KBPS, max(MIN_BITRATE_KBPS, new.bitrate_kbps))
            self._ctl(_SET_BITRATE, kbps * 1000)
        if first or old.fec != new.fec:
            self._ctl(_SET_INBAND_FEC, int(new.fec))
        if first or old.packet_loss_percent != new.packet_loss_percent:
            self._ctl(_SET_PACKET_LOSS_PERC, min(100, max(0, new.packet_loss_percent)))
        if first or old.complexity != new.complexity:
            self._ctl(_SET_COMPLEXITY, min(10, max(0, new.complexity)))
        self.settings = new
        self._configured = True

    @property
    def lookahead(self) -> int:
        value = ctypes.c_int32(0)
        _check(
            self._lib.opus_encoder_ctl(
                ctypes.c_void_p(self._state), ctypes.c_int(_GET_LOOKAHEAD), ctypes.byref(value)
            ),
            "encoder lookahead",
        )
        return int(value.value)

    def encode(self, pcm: np.ndarray) -> bytes:
        """One packet from exactly FRAME mono int16 samples."""
        samples = np.ascontiguousarray(pcm, dtype=np.int16)
        if samples.shape != (FRAME,):
            raise ValueError(f"an Opus frame is {FRAME} mono samples, not {samples.shape}")
        size = _check(
            self._lib.opus_encode(
                self._state, samples.ctypes.data, FRAME, self._out, len(self._out)
            ),
            "opus_encode",
        )
        return self._out.raw[:size]

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state:
            self._lib.opus_encoder_destroy(state)
            self._state = None


class OpusDecoder:
    """Decodes any Opus stream (mono or stereo) to mono 48 kHz int16."""

    def __init__(self) -> None:
        lib = _lib()
        error = ctypes.c_int(0)
        self._lib = lib
        self._state = lib.opus_decoder_create(SAMPLE_RATE, 1, ctypes.byref(error))
        _check(error.value, "opus_decoder_create")
        self._pcm = np.zeros(MAX_FRAME, dtype=np.int16)

    def _run(self, data: bytes | None, samples: int, fec: bool) -> np.ndarray:
        count = self._lib.opus_decode(
            self._state,
            data,
            len(data) if data else 0,
            self._pcm.ctypes.data,
            samples,
            int(fec),
        )
        _check(count, "opus_decode")
        return self._pcm[:count].copy()

    def decode(self, payload: bytes) -> np.ndarray:
        """A received packet's audio."""
        return self._run(payload, MAX_FRAME, fec=False)

    def recover(self, next_payload: bytes, samples: int) -> np.ndarray:
        """The `samples` before `next_payload`, rebuilt from its in-band FEC (libopus conceals the
        part the FEC does not cover, and all of it when the packet carries none)."""
        return self._run(next_payload, samples, fec=True)

    def conceal(self, samples: int) -> np.ndarray:
        """`samples` of packet-loss concealment, continuing from the last decoded audio."""
        return self._run(None, samples, fec=False)

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state:
            self._lib.opus_decoder_destroy(state)
            self._state = None

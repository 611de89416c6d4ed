"""libvpx's VP8 encoder, driven directly (the copy inside PyAV's wheel), so that its bitrate can change
while it runs.

Why not PyAV: FFmpeg's libvpx wrapper reads the bitrate only when the codec opens. Measured here
(PyAV 18.1, FFmpeg 8, libvpx 1.16): a running encoder set from 500 to 150 kbps went on at 490
kbps, so aiortc rebuilds its encoder on every REMB change of more than 10%, and each rebuild starts
with a keyframe (3-9 in 10 s towards Chromium, issue #16). libvpx itself takes a new target on the
fly with vpx_codec_enc_config_set, which is what WebRTC's own VP8 encoder does; the next frame is
an ordinary delta frame.

What is private here is the C ABI, not a Python name: the configuration struct is the library's
(filled by vpx_codec_enc_config_default), and tcall writes only its first fields, at offsets that
have not moved since libvpx 1.4. load() checks both: that the init call accepts the ABI version
below (VPX_ENCODER_ABI_VERSION of libvpx 1.16: 18 + codec 9 + ext-ratectrl 12), and that the
defaults read back where tcall expects them (320x240, 1/30 s, 256 kbps, keyframes every 128
frames). Anything else is a CompatError naming PyAV's version.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import av
import numpy as np

from tcall.engine.errors import CompatError

SUPPORTED = ">=18 (a wheel that bundles libvpx 1.16)"
ABI_VERSION = 39
_CONFIG_BYTES = 4096  # room for the whole vpx_codec_enc_cfg_t (about 1 KB in 1.16)
_CONTEXT_BYTES = 512  # vpx_codec_ctx_t (56 bytes)
_IMAGE_BYTES = 512  # vpx_image_t (about 200 bytes)

VPX_IMG_FMT_I420 = 0x102
VPX_DL_REALTIME = 1
VPX_EFLAG_FORCE_KF = 1
VPX_FRAME_IS_KEY = 1
VPX_CODEC_CX_FRAME_PKT = 0
VPX_CBR = 1
VPX_KF_AUTO = 1
# vp8e_enc_control_id (vpx/vp8cx.h)
VP8E_SET_CPUUSED = 13
VP8E_SET_NOISE_SENSITIVITY = 15
VP8E_SET_STATIC_THRESHOLD = 17
VP8E_SET_TOKEN_PARTITIONS = 18
VP8E_SET_MAX_INTRA_BITRATE_PCT = 26


class _Config(ctypes.Structure):
    """The head of vpx_codec_enc_cfg_t, up to the keyframe settings."""

    _fields_ = [
        ("g_usage", ctypes.c_uint),
        ("g_threads", ctypes.c_uint),
        ("g_profile", ctypes.c_uint),
        ("g_w", ctypes.c_uint),
        ("g_h", ctypes.c_uint),
        ("g_bit_depth", ctypes.c_int),
        ("g_input_bit_depth", ctypes.c_uint),
        ("g_timebase_num", ctypes.c_int),
        ("g_timebase_den", ctypes.c_int),
        ("g_error_resilient", ctypes.c_uint),
        ("g_pass", ctypes.c_int),
        ("g_lag_in_frames", ctypes.c_uint),
        ("rc_dropframe_thresh", ctypes.c_uint),
        ("rc_resize_allowed", ctypes.c_uint),
        ("rc_scaled_width", ctypes.c_uint),
        ("rc_scaled_height", ctypes.c_uint),
        ("rc_resize_up_thresh", ctypes.c_uint),
        ("rc_resize_down_thresh", ctypes.c_uint),
        ("rc_end_usage", ctypes.c_int),
        ("rc_twopass_stats_in", ctypes.c_void_p * 2),
        ("rc_firstpass_mb_stats_in", ctypes.c_void_p * 2),
        ("rc_target_bitrate", ctypes.c_uint),
        ("rc_min_quantizer", ctypes.c_uint),
        ("rc_max_quantizer", ctypes.c_uint),
        ("rc_undershoot_pct", ctypes.c_uint),
        ("rc_overshoot_pct", ctypes.c_uint),
        ("rc_buf_sz", ctypes.c_uint),
        ("rc_buf_initial_sz", ctypes.c_uint),
        ("rc_buf_optimal_sz", ctypes.c_uint),
        ("rc_2pass_vbr_bias_pct", ctypes.c_uint),
        ("rc_2pass_vbr_minsection_pct", ctypes.c_uint),
        ("rc_2pass_vbr_maxsection_pct", ctypes.c_uint),
        ("rc_2pass_vbr_corpus_complexity", ctypes.c_uint),
        ("kf_mode", ctypes.c_int),
        ("kf_min_dist", ctypes.c_uint),
        ("kf_max_dist", ctypes.c_uint),
    ]


def _incompatible(problem: str) -> CompatError:
    return CompatError("av", problem, SUPPORTED)


def _candidates() -> list[str]:
    bundled = Path(av.__file__).resolve().parent.parent / "av.libs"
    return sorted(str(p) for p in bundled.glob("libvpx*.so*")) if bundled.is_dir() else []


def _declare(lib: ctypes.CDLL) -> None:
    lib.vpx_codec_vp8_cx.restype = ctypes.c_void_p
    lib.vpx_codec_version_str.restype = ctypes.c_char_p
    lib.vpx_codec_get_cx_data.restype = ctypes.c_void_p
    lib.vpx_codec_get_cx_data.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.vpx_img_wrap.restype = ctypes.c_void_p
    lib.vpx_img_wrap.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_uint]
    lib.vpx_img_wrap.argtypes += [ctypes.c_uint, ctypes.c_void_p]
    lib.vpx_codec_encode.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.vpx_codec_encode.argtypes += [ctypes.c_ulong, ctypes.c_long, ctypes.c_ulong]
    lib.vpx_codec_enc_init_ver.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.vpx_codec_enc_init_ver.argtypes += [ctypes.c_long, ctypes.c_int]
    lib.vpx_codec_enc_config_default.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint]
    lib.vpx_codec_enc_config_set.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.vpx_codec_destroy.argtypes = [ctypes.c_void_p]


def _defaults_where_expected(lib: ctypes.CDLL) -> bool:
    raw = ctypes.create_string_buffer(_CONFIG_BYTES)
    if lib.vpx_codec_enc_config_default(lib.vpx_codec_vp8_cx(), raw, 0) != 0:
        return False
    config = _Config.from_buffer(raw)
    seen = (config.g_w, config.g_h, config.g_timebase_num, config.g_timebase_den)
    return seen == (320, 240, 1, 30) and (config.rc_target_bitrate, config.kf_max_dist) == (
        256,
        128,
    )


@functools.cache
def load() -> ctypes.CDLL:
    """The libvpx tcall encodes VP8 with; CompatError when it is not one tcall knows."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if not hasattr(lib, "vpx_codec_enc_config_set"):
            continue
        _declare(lib)
        if not _defaults_where_expected(lib):
            raise _incompatible(f"{path}: vpx_codec_enc_cfg_t is laid out differently")
        probe = Vp8Encoder.__new__(Vp8Encoder)
        probe._lib, probe._context = lib, None
        try:
            probe._open(64, 48, 100)
        finally:
            probe.close()
        return lib
    raise _incompatible("no libvpx in PyAV's wheel")


class Vp8Encoder:
    """One VP8 stream in realtime CBR (WebRTC's settings). Not thread-safe: one thread at a time."""

    def __init__(self, width: int, height: int, kbps: int) -> None:
        self._lib = load()
        self._context: ctypes.Array[ctypes.c_char] | None = None
        self._open(width, height, kbps)

    def _open(self, width: int, height: int, kbps: int) -> None:
        lib = self._lib
        self._raw = ctypes.create_string_buffer(_CONFIG_BYTES)
        lib.vpx_codec_enc_config_default(lib.vpx_codec_vp8_cx(), self._raw, 0)
        config = self._config = _Config.from_buffer(self._raw)
        config.g_w, config.g_h, config.g_threads = width, height, 1
        config.g_timebase_num, config.g_timebase_den = 1, 90000  # RTP's video clock
        config.g_lag_in_frames = 0
        config.g_error_resilient = 0
        # CBR with a 1 s buffer, and frame dropping when the buffer runs low: the encoder keeps to
        # the rate by sending fewer frames rather than letting a queue build.
        config.rc_end_usage = VPX_CBR
        config.rc_dropframe_thresh = 30
        config.rc_target_bitrate = kbps
        config.rc_min_quantizer, config.rc_max_quantizer = 2, 56
        config.rc_undershoot_pct, config.rc_overshoot_pct = 100, 15
        config.rc_buf_initial_sz, config.rc_buf_optimal_sz, config.rc_buf_sz = 500, 600, 1000
        # A keyframe only when asked (PLI) or a resolution change needs one; 3000 frames is
        # WebRTC's periodic refresh too.
        config.kf_mode, config.kf_min_dist, config.kf_max_dist = VPX_KF_AUTO, 0, 3000
        self._context = ctypes.create_string_buffer(_CONTEXT_BYTES)
        result = lib.vpx_codec_enc_init_ver(
            self._context, lib.vpx_codec_vp8_cx(), self._raw, 0, ABI_VERSION
        )
        if result != 0:
            self._context = None
            raise _incompatible(f"libvpx refused to start an encoder (error {result})")
        for control, value in (
            (VP8E_SET_CPUUSED, -6),
            (VP8E_SET_NOISE_SENSITIVITY, 0),
            (VP8E_SET_STATIC_THRESHOLD, 1),
            (VP8E_SET_TOKEN_PARTITIONS, 0),
            # A keyframe may take at most 3 frames' worth of bits, so that one sent at a thin
            # link's step down in resolution does not hold the link: at 9 (WebRTC's figure) one
            # took 0.4 s of a 300 kbit/s link and bob's delay peaked at 606 ms.
            (VP8E_SET_MAX_INTRA_BITRATE_PCT, 300),
        ):
            lib.vpx_codec_control_(self._context, control, ctypes.c_int(value))
        self.width, self.height, self.kbps = width, height, kbps
        self._image = ctypes.create_string_buffer(_IMAGE_BYTES)
        self._last_pts: int | None = None

    def set_kbps(self, kbps: int) -> None:
        """The running encoder's new target; its next frame is an ordinary delta frame."""
        if self._context is None or kbps == self.kbps:
            return
        self._config.rc_target_bitrate = kbps
        if self._lib.vpx_codec_enc_config_set(self._context, self._raw) != 0:
            raise _incompatible("libvpx refused a new target bitrate")
        self.kbps = kbps

    def encode(self, i420: np.ndarray, pts: int, keyframe: bool) -> list[tuple[bytes, bool]]:
        """(data, is_keyframe) of each compressed frame for one I420 picture (height * 3 / 2 rows
        of `width` bytes) at `pts` (90 kHz); empty when the rate control drops the frame."""
        if self._context is None:
            raise ValueError("the encoder is closed")
        data = np.ascontiguousarray(i420, dtype=np.uint8)
        if data.shape != (self.height * 3 // 2, self.width):
            raise ValueError(f"an I420 picture of {self.width}x{self.height} was expected")
        lib = self._lib
        lib.vpx_img_wrap(
            self._image, VPX_IMG_FMT_I420, self.width, self.height, 1, data.ctypes.data
        )
        duration = 3000 if self._last_pts is None else max(1, pts - self._last_pts)
        self._last_pts = pts
        flags = VPX_EFLAG_FORCE_KF if keyframe else 0
        if lib.vpx_codec_encode(self._context, self._image, pts, duration, flags, VPX_DL_REALTIME):
            raise ValueError("libvpx could not encode the picture")
        out: list[tuple[bytes, bool]] = []
        cursor = ctypes.c_void_p(None)
        while packet := lib.vpx_codec_get_cx_data(self._context, ctypes.byref(cursor)):
            if ctypes.c_int.from_address(packet).value != VPX_CODEC_CX_FRAME_PKT:
                continue
            # vpx_codec_cx_pkt_t: kind, then (8-aligned) buf, sz, pts, duration, flags
            buf = ctypes.c_void_p.from_address(packet + 8).value or 0
            size = ctypes.c_size_t.from_address(packet + 16).value
            frame_flags = ctypes.c_uint32.from_address(packet + 40).value
            out.append((ctypes.string_at(buf, size), bool(frame_flags & VPX_FRAME_IS_KEY)))
        return out

    def close(self) -> None:
        if self._context is not None:
            self._lib.vpx_codec_destroy(self._context)
            self._context = None

    def __del__(self) -> None:
        self.close()


def install() -> None:
    """Check that libvpx loads and starts an encoder now, before any call needs it."""
    load()

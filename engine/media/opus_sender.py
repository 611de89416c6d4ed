"""What tcall sends as audio: mono Opus speech at a set bitrate, with in-band FEC as loss requires.

aiortc's own Opus encoder sends 96 kbps stereo, where libopus never adds in-band FEC (it codes
everything in CELT at that rate), and gives no way to say how much loss to expect. SpeechEncoder
takes its place for a Session's audio sender (engine/compat/encoder.py `encode_with`): mono, the
`audio_bitrate` setting, FEC on, and the expected loss set from the receiver's RTCP reports as the
call goes (`report_loss`).

The default was 48 kbps, picked offline (bench/opus_loss.py's network and receive path, one leg,
PESQ-WB with no loss / 5% / 10% random / 10% in bursts of 3; the test speech, then alsa-utils'):
24 kbps 4.14/3.36/3.48/2.43 and 4.31/3.79/3.64/3.16; 32 kbps 4.28/3.74/3.71/2.63 and
4.45/4.09/3.98/3.30; 48 kbps 4.42/4.14/4.09/2.79 and 4.50/4.33/4.26/3.45; 64 kbps
4.50/4.30/4.24/2.91 and 4.53/4.44/4.34/3.48. It is 64 now: better on every row, and in real
calls with no loss and a speaker that never underran (session 14, two calls each) 4.51-4.52
where 48 gave 4.44-4.46, as much as bare aiortc's 96 kbps stereo. libopus keeps FEC at these
rates (it stays in its hybrid mode while loss is expected) and spends the redundancy only while
the expected loss is above 0, so a clean link keeps the full quality.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import av
import numpy as np
from aiortc.codecs.base import Encoder
from av import AudioFrame
from av.frame import Frame
from av.packet import Packet

from tcall.engine.media.opus import FRAME, SAMPLE_RATE, EncoderSettings, OpusEncoder
from tcall.engine.media.red import RedPacker, distance_for
from tcall.engine.media.shared_encoder import EncoderBranch, SharedEncoder

DEFAULT_BITRATE_KBPS = 64  # engine/settings.py's audio_bitrate default too
MAX_EXPECTED_LOSS = 30  # percent: more redundancy than this costs the primary coding too much
LOSS_MEMORY = 0.85  # per report: how slowly the expected loss falls after losses stop
MAX_PENDING = 5  # frames waiting to be sent (a source that bursts); older ones are dropped


class ExpectedLoss:
    """The loss one receiver's reports call for: it follows a rise at once and decays slowly,
    since losses come in spells."""

    def __init__(self, memory: float = LOSS_MEMORY) -> None:
        self._percent = 0.0
        self._memory = memory

    def report(self, fraction_lost: float) -> int:
        """The receiver's latest RTCP fraction lost (0..1) in; the percent to protect for out."""
        percent = min(MAX_EXPECTED_LOSS, max(0.0, fraction_lost * 100))
        self._percent = max(percent, self._percent * self._memory)
        return round(self._percent)


class SpeechEncoder(Encoder):
    """An aiortc Encoder: any AudioFrame in (mixed to mono, resampled to 48 kHz), one 20 ms Opus
    packet out per call."""

    def __init__(self, bitrate_kbps: int = DEFAULT_BITRATE_KBPS, fec: bool = True) -> None:
        self.opus = OpusEncoder(EncoderSettings(bitrate_kbps=bitrate_kbps, fec=fec))
        self._resampler = av.AudioResampler(
            format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=FRAME
        )
        self._pending: deque[np.ndarray] = deque(maxlen=MAX_PENDING)
        self._timestamp = 0
        self._loss = ExpectedLoss()

    @property
    def expected_loss_percent(self) -> int:
        return self.opus.settings.packet_loss_percent

    def report_loss(self, fraction_lost: float) -> None:
        """The receiver's latest RTCP fraction lost (0..1)."""
        self.expect_loss(self._loss.report(fraction_lost))

    def expect_loss(self, percent: int) -> None:
        """Protect for `percent` loss from the next packet on."""
        if percent != self.opus.settings.packet_loss_percent:
            settings = self.opus.settings
            self.opus.configure(
                EncoderSettings(settings.bitrate_kbps, settings.fec, percent, settings.complexity)
            )

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, AudioFrame)
        for block in self._resampler.resample(frame):
            self._pending.append(block.to_ndarray().reshape(-1))
        if not self._pending:
            return [], self._timestamp  # aiortc sends nothing for an empty list
        payload = self.opus.encode(self._pending.popleft())
        timestamp = self._timestamp
        self._timestamp += FRAME
        return [payload], timestamp

    def pack(self, packet: Packet) -> tuple[list[bytes], int]:
        raise NotImplementedError("tcall's audio senders always encode frames")


# --- one Opus encode for every pair of a group call ------------------------------------------------


class SharedSpeech(SharedEncoder):
    """A SpeechEncoder whose packets go to every pair (engine/media/shared_encoder.py). Opus
    packets stand alone, so no pair needs every one; its in-band FEC is set for the pair that
    loses the most, which costs the others a little coding quality, never packets."""

    def __init__(self, bitrate_kbps: int = DEFAULT_BITRATE_KBPS) -> None:
        super().__init__(SpeechEncoder(bitrate_kbps))
        self.speech: SpeechEncoder = self.inner
        self._losses: dict[object, int] = {}

    def expect_loss(self, pair: object, percent: int) -> None:
        self._losses[pair] = percent
        self._apply()

    def forget(self, pair: object) -> None:
        super().forget(pair)
        if self._losses.pop(pair, None) is not None:
            self._apply()

    def _apply(self) -> None:
        with self.lock:  # not while a worker thread encodes
            self.speech.expect_loss(max(self._losses.values(), default=0))


class SpeechBranch(EncoderBranch):
    """One audio sender's encoder in a group call: the shared packets, and its pair's loss reports
    (SpeechPath reads them from the sender) to the shared encoder."""

    def __init__(self, shared: SharedSpeech, pair: object) -> None:
        super().__init__(shared, pair, chained=False)
        self.speech_shared = shared
        self._loss = ExpectedLoss()

    @property
    def expected_loss_percent(self) -> int:
        return self.speech_shared.speech.expected_loss_percent

    def report_loss(self, fraction_lost: float) -> None:
        if not self.released:
            self.speech_shared.expect_loss(self.pair, self._loss.report(fraction_lost))


class RedEncoder(Encoder):
    """An Opus sender's encoder wrapped for RED (engine/media/red.py): the same Opus packets, each
    with copies of the ones before it as this sender's own receiver's losses call for (in a group
    call each pair protects for its own link)."""

    # Copies cost a whole packet each, so they stop sooner after the losses than FEC does (from
    # 24% to none in about 6 reports, where FEC's memory takes 24).
    LOSS_MEMORY = 0.5
    # A video sent below this has found a thin link: its losses are the link's queue overflowing,
    # and copies would only fill it more (a 300 kbit/s cap with two copies: 150 of it for audio,
    # and the video stayed at 320x240 for 25 s after the cap lifted).
    THIN_VIDEO_KBPS = 400

    def __init__(
        self,
        inner: SpeechEncoder | SpeechBranch,
        opus_payload_type: int,
        video_kbps: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.inner = inner
        self.red = RedPacker(opus_payload_type)
        self._loss = ExpectedLoss(self.LOSS_MEMORY)
        self._video_kbps = video_kbps  # what the call's video is sent at now (None: no video)

    @property
    def expected_loss_percent(self) -> int:
        return self.inner.expected_loss_percent

    @property
    def redundancy(self) -> int:
        """Copies of earlier packets in each packet sent now."""
        return self.red.distance

    def report_loss(self, fraction_lost: float) -> None:
        distance = distance_for(self._loss.report(fraction_lost))
        video_kbps = self._video_kbps()
        thin = video_kbps is not None and video_kbps < self.THIN_VIDEO_KBPS
        self.red.distance = 0 if thin else distance
        self.inner.report_loss(fraction_lost)

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        payloads, timestamp = self.inner.encode(frame, force_keyframe)
        return [self.red.pack(payload, timestamp) for payload in payloads], timestamp

    def pack(self, packet: Packet) -> tuple[list[bytes], int]:
        raise NotImplementedError("tcall's audio senders always encode frames")


# What a SpeechPath's audio sender encodes with.
SpeechSender = SpeechEncoder | SpeechBranch | RedEncoder

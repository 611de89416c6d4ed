"""tcall's audio on one aiortc audio transceiver: what it sends is encoded by tcall's SpeechEncoder
(mono Opus at a set bitrate, with in-band FEC following the loss the peer reports, wrapped in RED
with copies of earlier packets when RED was negotiated first: engine/media/red.py), and what it
receives goes through tcall's OpusReceiver (adaptive jitter buffer, FEC and concealment, a playout
thread) instead of aiortc's fixed buffer and decoder.

A Session (a call to a contact) and the echo peer (the far end of `tcall call echo`) both use it,
so the echo test hears what a call would. The hooks into aiortc are in engine/compat/aiortc.py and
engine/compat/encoder.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtpPacket
from av import AudioFrame

from tcall.engine import compat
from tcall.engine.media import red
from tcall.engine.media.opus import packet_samples
from tcall.engine.media.opus_receiver import OpusReceiver, PlayoutThread
from tcall.engine.media.opus_sender import (
    DEFAULT_BITRATE_KBPS,
    RedEncoder,
    SpeechBranch,
    SpeechEncoder,
    SpeechSender,
)

LOSS_REPORT_INTERVAL = 1.0  # s between reading the receiver's RTCP loss for the Opus encoder
Play = Callable[[AudioFrame], None]


class SpeechPath:
    """Install on an audio transceiver before media flows (`install`), follow the peer's loss
    reports once connected (`follow_loss`), `stop` at the end. `play` gets each decoded 48 kHz mono
    frame on the receiver's playout thread, so it must be thread-safe.

    A renewed call (a fresh peer connection, engine/session.py) installs again on the fresh
    transceiver: one receiver goes on playing, and switches to the fresh connection's stream (new
    SSRC, sequence numbers and timestamps) at its first packet, after which the old stream's
    stragglers are dropped rather than mixed in."""

    def __init__(
        self,
        play: Play,
        bitrate_kbps: int = DEFAULT_BITRATE_KBPS,
        make_encoder: Callable[[], SpeechEncoder | SpeechBranch] | None = None,
        playout: PlayoutThread | None = None,
        video_kbps: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.bitrate_kbps = bitrate_kbps
        self.encoder: SpeechSender | None = None  # once the sender starts with Opus
        # A group call's pairs share one encoder (engine/media/group.py): each sender gets a branch.
        self._make_encoder = make_encoder or (lambda: SpeechEncoder(self.bitrate_kbps))
        self.receiver: OpusReceiver | None = None
        self._playout = playout  # a group call's shared playout thread (None: one of its own)
        self._play = play
        self._senders: list[RTCRtpSender] = []
        self._loss_task: asyncio.Task[None] | None = None
        self._installs = 0  # transceivers installed on, counting from 1
        self._playing = 0  # the install whose stream is played
        # The kbps the call's video is sent at now (None: no video), for RedEncoder's thin links.
        self._video_kbps = video_kbps

    @property
    def installed(self) -> bool:
        return self.receiver is not None

    def install(self, transceiver: RTCRtpTransceiver) -> None:
        compat.encoder.encode_with(transceiver.sender, self._encoder_for)
        if self.receiver is None:
            self.receiver = OpusReceiver(self._play, shared=self._playout)
        self._installs += 1
        install = self._installs
        compat.aiortc.tap_opus(
            transceiver.receiver,
            lambda p: self._on_opus(install, p),
            lambda p, opus_types: self._on_red(install, p, opus_types),
        )
        self._senders.append(transceiver.sender)

    def _encoder_for(self, codecs: list[RTCRtpCodecParameters]) -> SpeechSender | None:
        """tcall's Opus encoder for an Opus sender, wrapped for RED when RED was negotiated first
        (aiortc's own for any other codec)."""
        sent = codecs[0].mimeType.lower()
        opus_type = compat.aiortc.opus_payload_type(codecs)
        if opus_type is None or sent not in (compat.aiortc.OPUS, red.MIME):
            return None
        speech = self._make_encoder()
        if sent == red.MIME:
            self.encoder = RedEncoder(speech, opus_type, self._video_kbps)
        else:
            self.encoder = speech
        return self.encoder

    def _playing_install(self, install: int) -> OpusReceiver | None:
        """The receiver, when packets of transceiver `install` are to be played (a renewal's
        first packet switches to its stream; the old one's stragglers are dropped)."""
        if self.receiver is None or install < self._playing:
            return None
        if install > self._playing:
            if self._playing:
                self.receiver.new_stream()
            self._playing = install
        return self.receiver

    def _on_opus(self, install: int, packet: RtpPacket) -> None:
        receiver = self._playing_install(install)
        if receiver is not None:
            level = compat.aiortc.audio_level(packet)
            receiver.receive(packet.sequence_number, packet.timestamp, packet.payload, level)

    def _on_red(self, install: int, packet: RtpPacket, opus_types: frozenset[int]) -> None:
        receiver = self._playing_install(install)
        if receiver is None:
            return
        unpacked = red.unpack(
            packet.sequence_number, packet.timestamp, packet.payload, opus_types, packet_samples
        )
        if unpacked is None:
            receiver.malformed += 1
            return
        level = compat.aiortc.audio_level(packet)
        receiver.receive(
            packet.sequence_number, packet.timestamp, unpacked.primary, level, unpacked.copies
        )

    def follow_loss(self) -> None:
        """Start telling the encoder the loss the peer reports (call once connected; again is a
        no-op)."""
        if self._loss_task is None:
            self._loss_task = asyncio.ensure_future(self._report_loss())

    async def _report_loss(self) -> None:
        """Tell the Opus encoder the loss our peer reports (RTCP receiver reports), so that it adds
        in-band FEC while packets are being lost and none on a clean link."""
        while True:
            await asyncio.sleep(LOSS_REPORT_INTERVAL)
            if self.encoder is None:
                continue
            for sender in self._senders:
                try:
                    report = await sender.getStats()
                except Exception:  # a replaced connection's sender, closed
                    continue
                for item in report.values():
                    if item.type == "remote-inbound-rtp" and item.fractionLost is not None:
                        self.encoder.report_loss(item.fractionLost / 256)

    def figures(self) -> dict[str, Any]:
        """Received audio (cumulative counts since the call started; see OpusReceiver.figures) and
        the loss the Opus we send is protected for; empty before `install`."""
        if self.receiver is None:
            return {}
        sending = self.encoder
        return self.receiver.figures() | {
            "audio_expected_loss_pct": sending.expected_loss_percent if sending else None,
            "audio_red_copies": sending.redundancy if isinstance(sending, RedEncoder) else None,
        }

    def stop(self) -> None:
        if self._loss_task is not None:
            self._loss_task.cancel()
        if self.receiver is not None:
            self.receiver.stop()

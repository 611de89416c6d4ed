"""A tcall media session: an RTCPeerConnection with tcall's sources, sinks, codec choice and stats.

Offers and answers carry fully gathered SDP (no trickle ICE), so one message each way sets up a call.

Renewal (issue #16): aiortc has no ICE restart, so a call whose path died (a cut, a new address)
gets a fresh RTCPeerConnection behind the same tracks and sinks, under the same call id. The
fresh one is set up beside the current one, which keeps carrying whatever still gets through;
when the fresh one connects it takes over: the senders' tracks move to it (the old senders let go
of them first, or closing the old connection would stop the camera and microphone), the old
connection closes, and the sinks go on with the fresh connection's tracks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription
from aiortc.codecs.base import Encoder
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import AudioFrame

from tcall.engine import compat
from tcall.engine.errors import CallFailed, UsageError
from tcall.engine.ice import IceSettings
from tcall.engine.media.audio import AudioSource
from tcall.engine.media.fanout import AudioBranch, VideoBranch
from tcall.engine.media.opus_receiver import OpusReceiver, PlayoutThread
from tcall.engine.media.opus_sender import DEFAULT_BITRATE_KBPS, SpeechBranch, SpeechSender
from tcall.engine.media.sinks import AudioSink, LatestFrameSink, median
from tcall.engine.media.speech_path import SpeechPath
from tcall.engine.media.tracks import AudioSourceTrack, VideoSourceTrack
from tcall.engine.media.video import VideoSource

CODECS = ("vp8", "h264")
# The speaker's playout buffer figures (engine/media/playout.py) that go into stats, as
# audio_speaker_*: how often it ran dry (concealed) and how much it cut to drain back.
SPEAKER_FIGURES = ("stalls", "concealed_ms", "drained_ms", "buffered_ms", "device_underruns")
StateListener = Callable[[str], None]


@dataclass(frozen=True)
class SharedSending:
    """What one pair of a group call sends (engine/media/group.py), in place of sources of its own:
    branches of the group's tracks, and the encoders its senders take, branches of the group's."""

    video_track: VideoBranch | None
    audio_track: AudioBranch | None
    video_encoder: Callable[[list[RTCRtpCodecParameters]], Encoder | None]
    speech_encoder: Callable[[], SpeechBranch]
    playout: PlayoutThread | None = None  # one playout thread for every member's received audio


def _codec_preferences(codec: str) -> list[Any]:
    if codec not in CODECS:
        raise UsageError(f"unknown codec {codec!r} (expected {'|'.join(CODECS)})")
    wanted = {f"video/{codec}", "video/rtx"}
    capabilities = RTCRtpSender.getCapabilities("video")
    return [c for c in capabilities.codecs if c.mimeType.lower() in wanted]


class Session:
    """Media for one call leg. `on_state` hears aiortc's connectionState; `stats()` gives
    per-interval figures. With `shared` (a group call's pair), `video` and `audio` are None and it
    sends the group's media instead; closing it leaves the group's sources running."""

    def __init__(
        self,
        *,
        ice: IceSettings,
        video: VideoSource | None,
        audio: AudioSource | None,
        audio_sink: AudioSink | None,
        on_state: StateListener,
        codec: str = "vp8",
        receive_video: bool = True,
        receive_audio: bool = True,
        low_latency: bool = True,
        audio_bitrate: int = DEFAULT_BITRATE_KBPS,
        shared: SharedSending | None = None,
    ) -> None:
        compat.install()
        self._ice = ice
        self.on_state = on_state
        self.codec = codec
        self.video_sink = LatestFrameSink()
        self.audio_sink = audio_sink
        self.video_track: VideoSourceTrack | VideoBranch | None = (
            VideoSourceTrack(video) if video else None
        )
        self.audio_track: AudioSourceTrack | AudioBranch | None = (
            AudioSourceTrack(audio) if audio else None
        )
        self._video_encoder = shared.video_encoder if shared else None
        if shared is not None:
            assert video is None and audio is None, "a pair of a group sends the group's media"
            self.video_track, self.audio_track = shared.video_track, shared.audio_track
        self._receive_video = receive_video
        self._receive_audio = receive_audio
        self._low_latency = low_latency
        self.speech = SpeechPath(
            self._play,
            audio_bitrate,
            shared.speech_encoder if shared else None,
            shared.playout if shared else None,
            self._video_kbps,
        )
        self._connected = asyncio.Event()
        self._failed = asyncio.Event()
        self._last: dict[str, float] = {}
        # The transceivers whose hooks are in (weakly: a replaced connection's go with it, and an
        # id() could be reused by a fresh connection's).
        self._hooked: weakref.WeakSet[RTCRtpTransceiver] = weakref.WeakSet()
        self._counted_before = 0  # packets received by connections that were replaced
        self._renewal: tuple[int, RTCPeerConnection] | None = None  # (attempt, fresh connection)
        self._closing: set[asyncio.Task[None]] = set()
        self.pc = self._new_connection()

    def _new_connection(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(self._ice.configuration())
        pc.on("connectionstatechange", lambda: self._on_state(pc))
        pc.on("track", self._on_track)
        return pc

    # --- signaling -------------------------------------------------------------------------

    def _add_transceivers(self, pc: RTCPeerConnection, *, with_tracks: bool = True) -> None:
        """The offer's media: video (ours, or receive-only), then audio. `with_tracks` False: the
        senders start without a track (a renewal's, until it takes over)."""
        video_direction = "sendrecv" if self.video_track else "recvonly"
        if self.video_track or self._receive_video:
            video = self.video_track if with_tracks and self.video_track else "video"
            transceiver = pc.addTransceiver(video, direction=video_direction)
            transceiver.setCodecPreferences(_codec_preferences(self.codec))
        if self.audio_track or self._receive_audio:
            audio = self.audio_track if with_tracks and self.audio_track else "audio"
            transceiver = pc.addTransceiver(
                audio, direction="sendrecv" if self.audio_track else "recvonly"
            )
            compat.aiortc.prefer_red(transceiver)

    async def create_offer(self) -> str:
        self._add_transceivers(self.pc)
        return await self._offer(self.pc)

    async def _offer(self, pc: RTCPeerConnection) -> str:
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)

    async def create_answer(self, offer_sdp: str) -> str:
        return await self._answer(self.pc, offer_sdp, with_tracks=True)

    async def _answer(self, pc: RTCPeerConnection, offer_sdp: str, *, with_tracks: bool) -> str:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        for track in (self.video_track, self.audio_track):
            if track is None:
                continue
            if with_tracks:
                pc.addTrack(track)  # reuses the offer's transceiver of the same kind
                continue
            for transceiver in pc.getTransceivers():
                if transceiver.kind == track.kind:  # as addTrack would, but with no track yet
                    sending = {"recvonly": "sendrecv", "inactive": "sendonly"}
                    transceiver.direction = sending.get(transceiver.direction, "sendrecv")
                    break
        if not self._receive_video:
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video" and self.video_track is None:
                    transceiver.direction = "inactive"  # an audio-only answer to a video offer
        self._install_media_hooks(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def accept_answer(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        self._install_media_hooks(self.pc)

    def _install_media_hooks(self, pc: RTCPeerConnection) -> None:
        for transceiver in pc.getTransceivers():
            if transceiver in self._hooked:
                continue
            self._hooked.add(transceiver)
            if transceiver.kind == "video" and self._video_encoder is not None:
                compat.encoder.encode_with(transceiver.sender, self._video_encoder)
            if transceiver.kind == "video" and self._low_latency:
                compat.aiortc.release_on_marker(transceiver.receiver)
            elif transceiver.kind == "audio":
                self.speech.install(transceiver)

    # --- renewal ---------------------------------------------------------------------------

    async def renew_offer(self, attempt: int) -> str:
        """A fresh connection for re-offer `attempt` (replacing an earlier one not yet
        connected); its offer."""
        pc = self._start_renewal(attempt)
        self._add_transceivers(pc, with_tracks=False)
        return await self._offer(pc)

    async def renew_answer(self, offer_sdp: str, attempt: int) -> str:
        pc = self._start_renewal(attempt)
        return await self._answer(pc, offer_sdp, with_tracks=False)

    async def accept_renewed_answer(self, answer_sdp: str, attempt: int) -> None:
        """Apply the answer to re-offer `attempt`, if that is still the one being set up."""
        if self._renewal is None or self._renewal[0] != attempt:
            return
        pc = self._renewal[1]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        self._install_media_hooks(pc)

    def _start_renewal(self, attempt: int) -> RTCPeerConnection:
        if self._renewal is not None:
            self._close_later(self._renewal[1])
        pc = self._new_connection()
        self._renewal = (attempt, pc)
        return pc

    def _take_over(self, pc: RTCPeerConnection) -> None:
        """The fresh connection connected: it carries the call from now on."""
        old, self.pc, self._renewal = self.pc, pc, None
        self._counted_before += compat.aiortc.packets_received(old)
        for sender in old.getSenders():
            sender.replaceTrack(None)  # closing `old` would otherwise stop our sources
        tracks = {t.kind: t for t in (self.video_track, self.audio_track) if t is not None}
        for sender in pc.getSenders():
            track = tracks.get(sender.kind)
            if track is not None:
                sender.replaceTrack(track)
        if self._last:  # the byte counters start again with the new transports (frames do not)
            self._last |= {"sent_bytes": 0.0, "recv_bytes": 0.0}
        self._close_later(old)

    def _close_later(self, pc: RTCPeerConnection) -> None:
        task = asyncio.ensure_future(_close_quietly(pc))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # --- audio -----------------------------------------------------------------------------

    @property
    def audio_bitrate(self) -> int:
        """kbps of the Opus we send."""
        return self.speech.bitrate_kbps

    @property
    def speech_encoder(self) -> SpeechSender | None:
        return self.speech.encoder

    @property
    def opus_receiver(self) -> OpusReceiver | None:
        return self.speech.receiver

    def _play(self, frame: AudioFrame) -> None:
        """Decoded audio, on the receiver's playout thread (the sinks' play() is thread-safe)."""
        if self.audio_sink is not None:
            self.audio_sink.play(frame)

    # --- events ----------------------------------------------------------------------------

    def _on_state(self, pc: RTCPeerConnection) -> None:
        state = pc.connectionState
        if self._renewal is not None and pc is self._renewal[1]:
            if state == "connected":
                self._take_over(pc)
                self.on_state(state)
            return  # a renewal that fails is replaced by the next attempt, or times out
        if pc is not self.pc:
            return  # a replaced connection closing
        self.on_state(state)
        if state == "connected":
            self._connected.set()
            self.speech.follow_loss()
        elif state in ("failed", "closed"):
            self._failed.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self.video_sink.consume(track)
        elif self.audio_sink is not None:
            self.audio_sink.consume(track)

    async def wait_connected(self, timeout: float) -> None:
        """Wait for ICE and DTLS to complete; CallFailed on failure, TimeoutError after `timeout`."""
        connected = asyncio.ensure_future(self._connected.wait())
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            done, _ = await asyncio.wait(
                {connected, failed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            connected.cancel()
            failed.cancel()
        if connected in done:
            return
        if failed in done:
            raise CallFailed("connection failed (ICE or DTLS): no media path to the peer")
        raise TimeoutError

    @property
    def closed(self) -> bool:
        return self._failed.is_set()

    async def wait_closed(self) -> None:
        await self._failed.wait()

    # --- stats -----------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        """Figures since the previous call: fps, resolution, bitrate, loss, RTT, latency."""
        now = time.monotonic()
        report = await self.pc.getStats()
        sent_bytes = recv_bytes = 0
        lost = 0
        rtt: float | None = None
        for item in report.values():
            if item.type == "transport":
                sent_bytes += item.bytesSent
                recv_bytes += item.bytesReceived
            elif item.type == "inbound-rtp" and item.kind == "video":
                lost += item.packetsLost
            elif item.type == "remote-inbound-rtp" and item.kind == "video":
                rtt = item.roundTripTime
        counters = {
            "sent": float(self.video_track.frames_sent if self.video_track else 0),
            "received": float(self.video_sink.frames_received),
            "sent_bytes": float(sent_bytes),
            "recv_bytes": float(recv_bytes),
            "latencies": float(len(self.video_sink.latencies_ms)),
            "at": now,
        }
        last = self._last or {key: 0.0 for key in counters} | {"at": now - 1.0}
        self._last = counters
        span = max(1e-3, now - last["at"])
        fresh = self.video_sink.latencies_ms[int(last["latencies"]) :]
        latency = median(fresh)
        return {
            "event": "stats",
            "fps_sent": round((counters["sent"] - last["sent"]) / span, 1),
            "fps_received": round((counters["received"] - last["received"]) / span, 1),
            "resolution": f"{self.video_sink.width}x{self.video_sink.height}",
            "kbps_sent": round((sent_bytes - last["sent_bytes"]) * 8 / span / 1000, 1),
            "kbps_received": round((recv_bytes - last["recv_bytes"]) * 8 / span / 1000, 1),
            "packets_lost": lost,
            "rtt_ms": None if rtt is None else round(rtt * 1000, 1),
            "latency_ms": None if latency is None else round(latency, 1),
            "route": self.selected_route(),
            "audio": self.audio_figures(),
        }

    def _video_kbps(self) -> int | None:
        """The kbps our video encoder sends at now (its link's estimate), None with no video."""
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video":
                encoder = compat.encoder.sender_encoder(transceiver.sender)
                bps = getattr(encoder, "target_bitrate", None)
                if isinstance(bps, int):
                    return bps // 1000
        return None

    def audio_figures(self) -> dict[str, Any]:
        """Received audio and the FEC of sent audio (SpeechPath.figures), and the speaker's playout
        buffer when there is a speaker (SpeakerSink.figures, or a group member's MixInput.figures);
        empty without an audio receive path."""
        figures = self.speech.figures()
        speaker = self.audio_sink.figures() if self.audio_sink is not None else {}
        if figures and speaker:
            figures |= {f"audio_speaker_{key}": speaker[key] for key in SPEAKER_FIGURES}
        return figures

    def packets_received(self) -> int:
        """Everything that has arrived from the peer so far (RTP, RTCP, DTLS packets), over
        this connection and the ones it replaced."""
        return self._counted_before + compat.aiortc.packets_received(self.pc)

    def selected_route(self) -> str | None:
        """Candidate types of the pair ICE chose, e.g. "host/host" or "relay/relay".

        aiortc reports no candidate-pair stats, so this reads aioice's nominated pair directly.
        """
        return compat.aiortc.nominated_route(self.pc)

    async def close(self) -> None:
        self.speech.stop()
        await self.video_sink.stop()
        if self.audio_sink is not None:
            await self.audio_sink.stop()
        for track in (self.video_track, self.audio_track):
            if track is not None:
                track.stop()
        if self._renewal is not None:
            await _close_quietly(self._renewal[1])
            self._renewal = None
        await _close_quietly(self.pc)
        for task in list(self._closing):
            await task


async def _close_quietly(pc: RTCPeerConnection) -> None:
    with contextlib.suppress(Exception):  # closing twice or mid-handshake is not the user's problem
        await pc.close()

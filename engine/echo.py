"""The far end of `tcall call echo`: a second peer that returns every received track to its sender.

`tcall call echo` and the TUI's Echo test dial it like a contact; only the signaling differs (the
offer is answered in-process, not through the relay).

It is a real RTCPeerConnection on real UDP sockets, so the echo exercises the whole path twice:
encode, DTLS-SRTP, ICE, decode, and back again. Audio takes the path a call to a contact takes at
both ends (engine/media/speech_path.py): what comes in goes through tcall's adaptive jitter buffer,
FEC and concealment, and what it plays is sent back as tcall's mono Opus at the caller's
audio_bitrate, with FEC following the caller's loss reports (engine/media/reflect.py). aiortc's own
audio path would release packets in bunches after a loss and send 96 kbps stereo without FEC, and
the caller's buffer would measure the bunching as jitter. Video is reflected as received.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from tcall.engine import compat
from tcall.engine.core.call import PeerMessage
from tcall.engine.core.outcome import Outcome
from tcall.engine.events import MediaFigures
from tcall.engine.ice import IceSettings
from tcall.engine.media.opus_sender import DEFAULT_BITRATE_KBPS
from tcall.engine.media.reflect import ReflectedAudio
from tcall.engine.media.speech_path import SpeechPath
from tcall.engine.media.tracks import AudioSourceTrack

Deliver = Callable[[PeerMessage], None]


class EchoPeer:
    """Create on the event loop that runs the call."""

    def __init__(
        self,
        ice: IceSettings,
        low_latency: bool = True,
        audio_bitrate: int = DEFAULT_BITRATE_KBPS,
    ) -> None:
        compat.install()
        self.pc = RTCPeerConnection(ice.configuration())
        self._low_latency = low_latency
        self.reflected_audio = ReflectedAudio()
        self.speech = SpeechPath(self.reflected_audio.play, audio_bitrate)
        self._audio_track: AudioSourceTrack | None = None
        self.pc.on("track", self._reflect)
        self.pc.on("connectionstatechange", self._on_state)

    def _reflect(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            # aiortc's decoded track stays silent (tcall's receiver takes the packets): send
            # what tcall's receiver plays instead.
            self._audio_track = AudioSourceTrack(self.reflected_audio)
            self.pc.addTrack(self._audio_track)
        else:
            self.pc.addTrack(track)

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected":
            self.speech.follow_loss()

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video" and self._low_latency:
                compat.aiortc.release_on_marker(transceiver.receiver)
            elif transceiver.kind == "audio" and not self.speech.installed:
                self.speech.install(transceiver)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    def audio_figures(self) -> dict[str, Any]:
        """What the echo's own receiver measured of the caller's audio (as a Session's stats)."""
        return self.speech.figures()

    async def close(self) -> None:
        self.speech.stop()
        if self._audio_track is not None:
            self._audio_track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()


class EchoChannel:
    """Signaling for a call to the echo peer: our offer is answered in-process, nothing else is sent.

    The call itself runs through the same core and driver as a call to a contact.
    """

    records_history = False

    def __init__(
        self,
        ice: IceSettings,
        low_latency: bool,
        deliver: Deliver,
        audio_bitrate: int = DEFAULT_BITRATE_KBPS,
    ) -> None:
        self.peer = EchoPeer(ice, low_latency, audio_bitrate)
        self._deliver = deliver

    async def send(
        self,
        kind: str,
        call_id: str,
        *,
        sdp: str | None = None,
        video: bool | None = None,
        attempt: int | None = None,
    ) -> None:
        """Only the offer is answered: the echo runs in this process, over loopback, so its
        path cannot die and a re-offer (which would need a second echo peer) is never needed."""
        if kind == "offer" and sdp is not None:
            answer = await self.peer.answer(sdp)
            self._deliver(PeerMessage("answer", sdp=answer, video=video))

    def network_changed(self) -> None:
        pass

    def review(
        self, outcome: Outcome, reason: str | None, figures: MediaFigures | None
    ) -> tuple[Outcome, str | None]:
        """The echo returns what it gets: a call that sent video and got none back failed."""
        if (
            outcome is Outcome.ANSWERED
            and figures is not None
            and figures.frames_sent
            and not figures.frames_received
        ):
            return Outcome.FAILED, "no video came back from the echo peer"
        return outcome, reason

    async def close(self) -> None:
        await self.peer.close()

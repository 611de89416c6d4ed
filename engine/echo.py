"""The far end of `tcall call echo`: a second peer that returns every received track to its sender.

`tcall call echo` and the TUI's Echo test dial it like a contact; only the signaling differs (the
offer is answered in-process, not through the relay).

It is a real RTCPeerConnection on real UDP sockets, so the echo exercises the whole path twice:
encode, DTLS-SRTP, ICE, decode, and back again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from tcall.engine import compat
from tcall.engine.core.call import PeerMessage
from tcall.engine.core.outcome import Outcome
from tcall.engine.events import MediaFigures
from tcall.engine.ice import IceSettings

Deliver = Callable[[PeerMessage], None]


class EchoPeer:
    def __init__(self, ice: IceSettings, low_latency: bool = True) -> None:
        compat.install()
        self.pc = RTCPeerConnection(ice.configuration())
        self._low_latency = low_latency
        self.pc.on("track", self._reflect)

    def _reflect(self, track: MediaStreamTrack) -> None:
        self.pc.addTrack(track)

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        if self._low_latency:
            for transceiver in self.pc.getTransceivers():
                if transceiver.kind == "video":
                    compat.aiortc.release_on_marker(transceiver.receiver)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.pc.close()


class EchoChannel:
    """Signaling for a call to the echo peer: our offer is answered in-process, nothing else is sent.

    The call itself runs through the same core and driver as a call to a contact.
    """

    records_history = False

    def __init__(self, ice: IceSettings, low_latency: bool, deliver: Deliver) -> None:
        self.peer = EchoPeer(ice, low_latency)
        self._deliver = deliver

    async def send(
        self, kind: str, call_id: str, *, sdp: str | None = None, video: bool | None = None
    ) -> None:
        if kind == "offer" and sdp is not None:
            answer = await self.peer.answer(sdp)
            self._deliver(PeerMessage("answer", sdp=answer, video=video))

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

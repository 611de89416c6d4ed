"""The far end of `tcall call echo`: a second peer that returns every received track to its sender.

It is a real RTCPeerConnection on real UDP sockets, so the echo exercises the whole path twice:
encode, DTLS-SRTP, ICE, decode, and back again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from tcall.engine import compat
from tcall.engine.call import CallOptions, run_call
from tcall.engine.ice import IceSettings
from tcall.engine.session import Emit, Session


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


async def run_echo_call(
    options: CallOptions,
    emit: Emit,
    stop: asyncio.Event,
    ended: asyncio.Event | None = None,
    on_session: Callable[[Session], None] | None = None,
) -> dict[str, Any]:
    """`tcall call echo` (and the TUI's Echo test): call the built-in echo peer, return the summary.

    `on_session` hands a UI the Session (for its video and controls) as soon as it exists.
    """
    echo = EchoPeer(options.ice, options.low_latency)

    async def connect(session: Session) -> None:
        if on_session is not None:
            on_session(session)
        emit({"event": "state", "state": "dialing"})
        answer = await echo.answer(await session.create_offer())
        await session.accept_answer(answer)

    try:
        summary = await run_call(options, connect, emit, stop, ended)
    finally:
        await echo.close()
    if (
        summary["outcome"] == "answered"
        and summary["frames_sent"]
        and not summary["frames_received"]
    ):
        summary.update(outcome="failed", reason="no video came back from the echo peer")
    return summary

"""tcall's hooks into aiortc's private names, each checked before use.

Marker jitter buffer: aiortc's JitterBuffer hands a frame to the decoder only when the first packet of
the *next* frame arrives, which adds a whole frame interval (33 ms at 30 fps) to every frame's latency.
The sender sets the RTP marker bit on a frame's last packet, so a frame is complete when its marker
packet arrives and every sequence number since the previous frame's marker is present. Anything less
certain (a gap, a first frame whose start we did not see) falls back to aiortc's own rule.
MarkerJitterBuffer reads the base buffer's internals (`_origin`, `_packets`, `remove`, the packets'
`_data`), and aiortc keeps a receiver's buffer in a name-mangled attribute with no hook to replace it,
so release_on_marker() swaps it there.

Opus with FEC: aiortc's SDP offers Opus with no format parameters, so a browser peer would send no
in-band FEC to us; install() adds `useinbandfec=1` and `minptime=10` to aiortc's Opus codec
(`aiortc.codecs.CODECS`), which every offer and answer then carries. The encoders' hooks (tcall's
Opus encoder in a sender, realtime H.264) are in engine/compat/encoder.py.

Opus receive path: aiortc decodes audio behind a fixed jitter buffer that tcall replaces whole
(engine/media/opus_receiver.py). tap_opus() puts a tap in the receiver's buffer slot (the same
name-mangled attribute as above): Opus packets go to tcall's receiver and never reach aiortc's
decoder thread, any other codec goes on to aiortc's own buffer. The receiver's `receive` says which
payload types are Opus once the call is negotiated.

Route: aiortc reports no candidate-pair stats, so nominated_route() reaches aioice's Connection through
the ICE gatherer's private `_connection` (ice_connection(), which tests also use to lose packets on
the way in, through the Connection's public `recv`).
"""

from __future__ import annotations

from collections.abc import Callable

from aioice import Connection
from aiortc import RTCPeerConnection
from aiortc.codecs import CODECS
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from tcall.engine.compat.aioice import nominated_pair
from tcall.engine.errors import CompatError

SUPPORTED = "~=1.16.0"  # the pin in pyproject.toml
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
OPUS = "audio/opus"
OPUS_FMTP = {"minptime": 10, "useinbandfec": 1}


def _incompatible(problem: str) -> CompatError:
    return CompatError("aiortc", problem, SUPPORTED)


# --- marker jitter buffer ----------------------------------------------------------------------


class MarkerJitterBuffer(JitterBuffer):
    def __init__(self, capacity: int = 512) -> None:
        super().__init__(capacity=capacity, is_video=True)
        # The sequence number where a frame is known to start: right after a frame we released.
        self._known_start: int | None = None
        self.released_on_marker = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        first = self._origin is None and self._known_start is None
        pli, frame = super().add(packet)
        if first:
            # The first packet is taken as a frame's start. Otherwise the first frames waited for
            # aiortc's rule (the next frame's first packet): with H.264 from Chromium that held
            # back the first 9-29 frames (the issue) or 3-5 (here, tests/media/test_browser_peer.py).
            # A wrong guess is one frame the decoder refuses, as a lost packet would be.
            self._known_start = self._origin
        if frame is None:
            frame = self._release_complete()
        else:
            self._known_start = self._origin
        return pli, frame

    def _release_complete(self) -> JitterFrame | None:
        origin = self._origin
        if origin is None or origin != self._known_start:
            return None
        packets: list[RtpPacket] = []
        for count in range(self.capacity):
            packet = self._packets[(origin + count) % self.capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                return None
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                self._known_start = self._origin
                self.released_on_marker += 1
                data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
                return JitterFrame(data=data, timestamp=packet.timestamp)
        return None


def _check_jitter_buffer() -> None:
    """aiortc's buffer still has the internals MarkerJitterBuffer reads, and frames its packets' `_data`."""
    buffer = JitterBuffer(capacity=4, is_video=True)
    shaped = (
        hasattr(buffer, "_origin")
        and isinstance(getattr(buffer, "_packets", None), list)
        and callable(getattr(buffer, "remove", None))
    )
    frame = None
    if shaped:
        for seq in (0, 1):  # one packet per frame: the second one releases the first
            packet = RtpPacket(sequence_number=seq, timestamp=seq)
            packet._data = b"x"  # type: ignore[attr-defined]
            try:
                frame = buffer.add(packet)[1]
            except AttributeError:
                break
    if frame is None or frame.data != b"x":
        raise _incompatible("JitterBuffer's internals (_origin, _packets, remove, _data) changed")


def release_on_marker(receiver: RTCRtpReceiver) -> MarkerJitterBuffer:
    """Swap a video receiver's jitter buffer for a MarkerJitterBuffer (before media flows)."""
    if not isinstance(getattr(receiver, _JITTER_BUFFER, None), JitterBuffer):
        raise _incompatible("RTCRtpReceiver has no jitter buffer attribute")
    buffer = MarkerJitterBuffer()
    setattr(receiver, _JITTER_BUFFER, buffer)
    return buffer


# --- audio: Opus with FEC, and tcall's receive path ----------------------------------------------


def _advertise_opus_fec() -> None:
    opus = [c for c in CODECS.get("audio", []) if c.mimeType.lower() == OPUS]
    if not opus:
        raise _incompatible("aiortc.codecs.CODECS has no audio/opus")
    for codec in opus:
        codec.parameters.update(OPUS_FMTP)


class _OpusTap:
    """Stands in a receiver's jitter buffer: Opus packets go to tcall, others to aiortc's buffer."""

    def __init__(self, fallback: JitterBuffer, on_packet: Callable[[RtpPacket], None]) -> None:
        self.fallback = fallback
        self.on_packet = on_packet
        self.payload_types: set[int] = set()

    @property
    def capacity(self) -> int:
        return self.fallback.capacity

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if packet.payload_type in self.payload_types:
            self.on_packet(packet)
            return False, None
        return self.fallback.add(packet)


def tap_opus(receiver: RTCRtpReceiver, on_packet: Callable[[RtpPacket], None]) -> None:
    """Route an audio receiver's Opus packets to `on_packet` (on the event loop, as they arrive)
    instead of aiortc's buffer and decoder. Call before the connection starts media."""
    current = getattr(receiver, _JITTER_BUFFER, None)
    if not isinstance(current, JitterBuffer | _OpusTap):
        raise _incompatible("RTCRtpReceiver has no jitter buffer attribute")
    fallback = current.fallback if isinstance(current, _OpusTap) else current
    tap = _OpusTap(fallback, on_packet)
    setattr(receiver, _JITTER_BUFFER, tap)
    original = receiver.receive

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        tap.payload_types = {
            c.payloadType
            for c in parameters.codecs
            if c.mimeType.lower() == OPUS and c.payloadType is not None
        }
        await original(parameters)

    receiver.receive = receive  # type: ignore[method-assign]


def audio_level(packet: RtpPacket) -> int | None:
    """The packet's RFC 6464 audio level (0 loudest, 127 silence), when the sender set one."""
    level = packet.extensions.audio_level
    return int(level[1]) if level is not None else None


# --- route ---------------------------------------------------------------------------------------


def ice_connection(pc: RTCPeerConnection) -> Connection | None:
    """The aioice Connection under a peer connection's (bundled) transport, once there is one."""
    for transceiver in pc.getTransceivers():
        try:
            gatherer = transceiver.sender.transport.transport.iceGatherer
        except AttributeError:  # no transport yet
            continue
        connection = getattr(gatherer, "_connection", None)
        if not isinstance(connection, Connection):
            raise _incompatible("RTCIceGatherer has no aioice Connection")
        return connection
    return None


def nominated_route(pc: RTCPeerConnection) -> str | None:
    """Candidate types of the pair ICE chose, e.g. "host/host" or "relay/relay"."""
    connection = ice_connection(pc)
    pair = None if connection is None else nominated_pair(connection)
    if pair is None:
        return None
    return f"{pair.local_candidate.type}/{pair.remote_candidate.type}"


# --- arrivals ------------------------------------------------------------------------------------


def packets_received(pc: RTCPeerConnection) -> int:
    """Packets of any kind (RTP, RTCP, DTLS) the peer connection's transports have received: what
    tells a live path from a dead one even when every track is off. aiortc counts them for its
    transport stats (`RTCDtlsTransport._get_stats`, no public getter)."""
    total = 0
    seen: set[int] = set()
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport
        if transport is None or id(transport) in seen:
            continue
        seen.add(id(transport))
        get_stats = getattr(transport, "_get_stats", None)
        if get_stats is None:
            raise _incompatible("RTCDtlsTransport has no _get_stats")
        for item in get_stats().values():
            if getattr(item, "type", None) == "transport":
                total += int(getattr(item, "packetsReceived", 0) or 0)
    return total


def install() -> None:
    """Check the jitter buffer's internals and offer Opus FEC; safe to call again."""
    _check_jitter_buffer()
    _advertise_opus_fec()

"""A video jitter buffer that releases a frame as soon as it is complete.

aiortc's JitterBuffer hands a frame to the decoder only when the first packet of the *next* frame
arrives, which adds a whole frame interval (33 ms at 30 fps) to every frame's latency. The sender sets the
RTP marker bit on a frame's last packet, so a frame is complete when its marker packet arrives and every
sequence number since the previous frame's marker is present. Anything less certain (a gap, a first
frame whose start we did not see) falls back to aiortc's own rule.
"""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket


class MarkerJitterBuffer(JitterBuffer):
    def __init__(self, capacity: int = 512) -> None:
        super().__init__(capacity=capacity, is_video=True)
        # The sequence number where a frame is known to start: right after a frame we released.
        self._known_start: int | None = None
        self.released_on_marker = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli, frame = super().add(packet)
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


def release_on_marker(receiver: RTCRtpReceiver) -> MarkerJitterBuffer:
    """Swap a video receiver's jitter buffer for a MarkerJitterBuffer (before media flows)."""
    buffer = MarkerJitterBuffer()
    # aiortc keeps the buffer in a name-mangled private attribute and offers no hook to replace it.
    attribute = "_RTCRtpReceiver__jitter_buffer"
    if not isinstance(getattr(receiver, attribute, None), JitterBuffer):
        raise RuntimeError("aiortc's RTCRtpReceiver no longer has the expected jitter buffer")
    setattr(receiver, attribute, buffer)
    return buffer

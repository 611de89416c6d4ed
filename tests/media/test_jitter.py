"""The marker-release jitter buffer: complete frames leave at once, incomplete ones never do."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from tcall.engine.jitter import MarkerJitterBuffer


def _packet(seq: int, timestamp: int, marker: bool, data: bytes) -> RtpPacket:
    packet = RtpPacket(sequence_number=seq, timestamp=timestamp, marker=int(marker))
    packet._data = data  # type: ignore[attr-defined]
    return packet


def _feed(buffer: MarkerJitterBuffer, packets: list[RtpPacket]) -> list[bytes]:
    out = []
    for packet in packets:
        _, frame = buffer.add(packet)
        if frame is not None:
            out.append(frame.data)
    return out


def test_frame_released_on_its_marker_packet() -> None:
    buffer = MarkerJitterBuffer()
    # The first frame's start is unknown, so it leaves the aiortc way, when frame 2 begins.
    assert _feed(buffer, [_packet(1, 100, False, b"a"), _packet(2, 100, True, b"b")]) == []
    assert _feed(buffer, [_packet(3, 200, False, b"c")]) == [b"ab"]
    # Frame 2 leaves as soon as its marker arrives, not when frame 3 starts.
    assert _feed(buffer, [_packet(4, 200, True, b"d")]) == [b"cd"]
    assert _feed(buffer, [_packet(5, 300, True, b"e")]) == [b"e"]
    assert buffer.released_on_marker == 2


def test_gap_holds_the_frame_back() -> None:
    buffer = MarkerJitterBuffer()
    assert _feed(buffer, [_packet(1, 100, True, b"a"), _packet(2, 200, True, b"b")]) == [b"a"]
    assert _feed(buffer, [_packet(3, 300, False, b"c")]) == [b"b"]
    # Packet 4 is missing: frame 300 must not be handed to the decoder incomplete.
    assert _feed(buffer, [_packet(5, 300, True, b"e")]) == []
    # The retransmitted packet completes it, and it leaves at once.
    assert _feed(buffer, [_packet(4, 300, False, b"d")]) == [b"cde"]

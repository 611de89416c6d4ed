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
    # The first packet is taken as a frame's start, so the first frame leaves on its marker too
    # (issue #16: with H.264 from Chromium, waiting for frame 2 held up to 29 frames back).
    assert _feed(buffer, [_packet(1, 100, False, b"a")]) == []
    assert _feed(buffer, [_packet(2, 100, True, b"b")]) == [b"ab"]
    # Frame 2 leaves as soon as its marker arrives, not when frame 3 starts.
    assert _feed(buffer, [_packet(3, 200, False, b"c"), _packet(4, 200, True, b"d")]) == [b"cd"]
    assert _feed(buffer, [_packet(5, 300, True, b"e")]) == [b"e"]
    assert buffer.released_on_marker == 3


def test_every_frame_of_an_h264_keyframe_burst_leaves_on_its_marker() -> None:
    buffer = MarkerJitterBuffer()
    # A browser's first H.264 frames: many packets each (STAP-A with SPS/PPS, then FU-A slices).
    seq, released = 1000, []
    for frame in range(5):
        for part in range(6):
            _, out = buffer.add(_packet(seq, 3000 * frame, part == 5, bytes([frame, part])))
            seq += 1
            if out is not None:
                released.append((frame, part, out.data))
    assert [(frame, part) for frame, part, _ in released] == [(f, 5) for f in range(5)]
    assert all(data == b"".join(bytes([f, p]) for p in range(6)) for f, _, data in released)
    assert buffer.released_on_marker == 5


def test_gap_holds_the_frame_back() -> None:
    buffer = MarkerJitterBuffer()
    assert _feed(buffer, [_packet(1, 100, True, b"a"), _packet(2, 200, True, b"b")]) == [b"a", b"b"]
    assert _feed(buffer, [_packet(3, 300, False, b"c")]) == []
    # Packet 4 is missing: frame 300 must not be handed to the decoder incomplete.
    assert _feed(buffer, [_packet(5, 300, True, b"e")]) == []
    # The retransmitted packet completes it, and it leaves at once.
    assert _feed(buffer, [_packet(4, 300, False, b"d")]) == [b"cde"]

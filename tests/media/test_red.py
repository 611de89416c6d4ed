"""Audio redundancy (RED, RFC 2198, engine/media/red.py): what is packed unpacks to the same Opus
packets with the right sequence numbers and timestamps; a peer's malformed packet is refused whole,
never read past its end; the copies sent follow the loss reported; and the jitter buffer plays a
lost packet from the copy a later one carried, at the place it was lost."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tcall.engine.media import red
from tcall.engine.media.audio_jitter import AudioJitterBuffer, Step
from tcall.engine.media.opus_sender import RedEncoder, SpeechEncoder

OPUS = 111
FRAME = 960
PACKET_S = FRAME / 48000


def twenty_ms(payload: bytes) -> int | None:
    return FRAME if payload else None


def opus(n: int) -> bytes:
    return bytes([n % 256]) * (40 + n % 7)


def unpack(seq: int, timestamp: int, payload: bytes) -> red.Unpacked | None:
    return red.unpack(seq, timestamp, payload, frozenset({OPUS}), twenty_ms)


def test_each_distance_packs_copies_that_unpack_to_the_packets_before() -> None:
    for distance in (0, 1, 2):
        packer = red.RedPacker(OPUS)
        packer.distance = distance
        packed = [packer.pack(opus(n), n * FRAME) for n in range(5)]
        seq, timestamp = 65534, 0xFFFFFFFF - 2 * FRAME  # both wrap inside these five
        for n, payload in enumerate(packed):
            unpacked = unpack((seq + n) & 0xFFFF, (timestamp + n * FRAME) & 0xFFFFFFFF, payload)
            assert unpacked is not None and unpacked.primary == opus(n)
            back = range(max(0, n - distance), n)
            assert [c.payload for c in unpacked.copies] == [opus(k) for k in back]
            assert [c.seq for c in unpacked.copies] == [(seq + k) & 0xFFFF for k in back]
            assert [c.timestamp for c in unpacked.copies] == [
                (timestamp + k * FRAME) & 0xFFFFFFFF for k in back
            ]
        # Nothing but a one-byte header costs a clean link.
        assert len(packed[4]) == len(opus(4)) + 1 + sum(4 + len(opus(k)) for k in back)


def test_malformed_packets_are_refused_whole() -> None:
    packer = red.RedPacker(OPUS)
    packer.distance = 1
    packer.pack(opus(0), 0)
    good = packer.pack(opus(1), FRAME)
    assert unpack(1, FRAME, good) is not None
    assert unpack(1, FRAME, b"") is None  # nothing
    assert unpack(1, FRAME, good[:3]) is None  # a header cut short
    assert unpack(1, FRAME, good[:8]) is None  # a block longer than what is there
    assert unpack(1, FRAME, bytes([OPUS])) is None  # no primary
    assert unpack(1, FRAME, bytes([0x80 | OPUS, 0, 0, 0]) * 2) is None  # headers, no end
    assert red.unpack(1, FRAME, good, frozenset({96}), twenty_ms) is None  # not Opus


def test_a_copy_that_is_not_a_whole_number_of_packets_back_is_left_out() -> None:
    # offset 100 samples, length 3: no sequence number can be worked out for it
    header = bytes([0x80 | OPUS, 100 >> 6, (100 & 0x3F) << 2, 3, OPUS])
    payload = header + b"abc" + b"p"
    unpacked = unpack(10, 5000, payload)
    assert unpacked is not None and unpacked.primary == b"p" and unpacked.copies == ()


@given(st.binary(max_size=2000))
def test_any_bytes_from_a_peer_unpack_or_are_refused_within_bounds(payload: bytes) -> None:
    unpacked = unpack(7, 123456, payload)
    if unpacked is not None:
        assert len(unpacked.copies) <= red.MAX_COPIES
        assert len(unpacked.primary) + sum(len(c.payload) for c in unpacked.copies) < len(payload)


def test_the_copies_sent_follow_the_loss_the_receiver_reports() -> None:
    assert [red.distance_for(p) for p in (0, 1, 5, 9, 10, 30)] == [0, 1, 1, 1, 2, 2]
    video_kbps: list[int | None] = [None]  # an audio-only call
    encoder = RedEncoder(SpeechEncoder(), OPUS, lambda: video_kbps[0])
    assert encoder.redundancy == 0  # a clean link: no copies
    encoder.report_loss(0.05)
    assert encoder.redundancy == 1 and encoder.expected_loss_percent == 5
    encoder.report_loss(0.15)
    assert encoder.redundancy == 2
    for _ in range(8):  # the loss stops: the copies stop within seconds (FEC stays longer)
        encoder.report_loss(0.0)
    assert encoder.redundancy == 0 and encoder.expected_loss_percent > 0
    # A video sent below THIN_VIDEO_KBPS has found a thin link, whose losses copies would worsen.
    video_kbps[0] = RedEncoder.THIN_VIDEO_KBPS - 100
    encoder.report_loss(0.15)
    assert encoder.redundancy == 0
    video_kbps[0] = RedEncoder.THIN_VIDEO_KBPS
    encoder.report_loss(0.15)
    assert encoder.redundancy == 2


def _feed(buffer: AudioJitterBuffer, seq: int, lost: set[int], distance: int) -> None:
    """Packet `seq` arrives on time (unless lost) with copies of the `distance` before it."""
    if seq in lost:
        return
    at = seq * PACKET_S + 0.010
    buffer.insert(seq, seq * FRAME, b"p%d" % seq, at, samples=FRAME, cover=distance)
    for back in range(1, distance + 1):
        if seq - back >= 0:
            old = seq - back
            buffer.insert_copy(old, old * FRAME, b"p%d" % old, samples=FRAME)


def _play(lost: set[int], distance: int, count: int = 120) -> tuple[AudioJitterBuffer, list]:
    buffer = AudioJitterBuffer()
    played = []
    seq = 0
    while True:
        due = buffer.next_due()
        if seq < count and (due is None or seq * PACKET_S + 0.010 <= due):
            _feed(buffer, seq, lost, distance)
            seq += 1
            continue
        if due is None or due > count * PACKET_S:
            return buffer, played
        played += [p for p in buffer.pop(due) if p.audible]


def test_lost_packets_play_from_the_copies_a_later_packet_carried() -> None:
    lost = {50, 51, 80}  # a burst of two, and one alone
    buffer, played = _play(lost, distance=2)
    plays = [p.payload for p in played if p.step is Step.PLAY]
    for seq in (*lost, 49, 52, 81):
        assert b"p%d" % seq in plays
    assert buffer.counters.red_recovered == 3 and buffer.counters.lost == 3
    assert buffer.counters.concealed == 0 and buffer.counters.received == 120 - 3
    # The order is kept: each copy plays where its packet was lost.
    assert plays.index(b"p50") < plays.index(b"p51") < plays.index(b"p52")


def test_copies_of_packets_that_came_change_nothing() -> None:
    clean, _ = _play(set(), distance=0)
    copied, played = _play(set(), distance=2)
    assert copied.counters.red_recovered == 0 and copied.counters.duplicates == 0
    assert copied.counters.received == clean.counters.received
    assert copied.delay() == clean.delay()  # copies say nothing of the network's delay
    assert len([p for p in played if p.step is Step.PLAY]) >= 115


def test_a_copy_never_starts_the_buffer() -> None:
    buffer = AudioJitterBuffer()
    assert buffer.insert_copy(5, 5 * FRAME, b"old", samples=FRAME) == "ignored"
    assert not buffer.started


def test_a_packet_after_a_skipped_frame_carries_no_copy_the_receiver_would_misplace() -> None:
    packer = red.RedPacker(OPUS)
    packer.distance = 2
    packer.pack(opus(0), 0)
    packer.pack(opus(1), FRAME)
    packed = packer.pack(opus(3), 3 * FRAME)  # frame 2 was never sent: sequence numbers go on
    unpacked = unpack(2, 3 * FRAME, packed)
    assert unpacked is not None and unpacked.copies == ()

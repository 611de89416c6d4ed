"""The video receive path under loss (engine/media/video_receive.py), packet by packet with a fake
clock: complete frames leave at once, missing packets are asked for again on a timer, a hole past
its deadline is skipped with a keyframe request and decoding resumes at the keyframe, and memory
stays bounded whatever the peer sends."""

from __future__ import annotations

import random

import pytest

from tcall.engine.media import video_receive as vr
from tcall.engine.media.video_receive import Output, Packet, VideoReceiveBuffer, is_keyframe

VP8_KEY = b"\x10\x02\x00\x9d\x01\x2a"  # a VP8 frame tag with the keyframe bit clear, start code
VP8_DELTA = b"\x31\x02\x00"


def frame_packets(seq: int, ts: int, parts: int, key: bool = False) -> list[Packet]:
    """A VP8 frame of `parts` packets from `seq` on; the payloads spell out (ts, part)."""
    out = []
    for part in range(parts):
        head = (VP8_KEY if key else VP8_DELTA) if part == 0 else b""
        data = head + f"[{ts}:{part}]".encode()
        out.append(
            Packet(
                seq=(seq + part) % 65536,
                timestamp=ts,
                marker=part == parts - 1,
                data=data,
                codec="VP8",
            )
        )
    return out


def stream(
    frames: int, parts: int = 3, seq: int = 100, keys: tuple[int, ...] = (0,)
) -> list[Packet]:
    packets = []
    for index in range(frames):
        packets += frame_packets(seq + index * parts, 3000 * (index + 1), parts, index in keys)
    return packets


class Fed:
    """A buffer fed at `now`, collecting everything it asks."""

    def __init__(self) -> None:
        self.buffer = VideoReceiveBuffer()
        self.now = 0.0
        self.frames: list[int] = []  # timestamps released, in order
        self.nacks: list[int] = []
        self.keyframe_requests = 0

    def take(self, out: Output) -> Output:
        self.frames += [f.timestamp for f in out.frames]
        self.nacks += out.nacks
        self.keyframe_requests += out.keyframe_request
        return out

    def add(self, *packets: Packet) -> Output:
        total = Output()
        for packet in packets:
            out = self.take(self.buffer.add(packet, self.now))
            total.frames += out.frames
            total.nacks += out.nacks
            total.keyframe_request |= out.keyframe_request
        return total

    def wait(self, seconds: float) -> Output:
        """Let time pass, polling whenever the buffer asked to be woken."""
        end = self.now + seconds
        total = Output()
        while (wake := self.buffer.wake_at()) is not None and wake <= end:
            self.now = max(self.now, wake)
            out = self.take(self.buffer.poll(self.now))
            total.frames += out.frames
            total.nacks += out.nacks
            total.keyframe_request |= out.keyframe_request
        self.now = end
        return total


def test_in_order_frames_leave_on_their_marker() -> None:
    fed = Fed()
    packets = stream(4)
    for index, packet in enumerate(packets):
        out = fed.add(packet)
        assert [f.timestamp for f in out.frames] == ([packet.timestamp] if packet.marker else []), (
            index
        )
    assert fed.frames == [3000, 6000, 9000, 12000]
    assert fed.nacks == [] and fed.keyframe_requests == 0
    assert fed.buffer.held_packets == 0 and fed.buffer.wake_at() is None


def test_a_frame_is_its_packets_joined_in_order() -> None:
    fed = Fed()
    a, b, c = frame_packets(7, 90, 3, key=True)
    (frame,) = fed.add(a, c, b).frames  # reordered: complete once the middle one is in
    assert frame.data == a.data + b.data + c.data and frame.keyframe


def test_a_repaired_hole_releases_every_frame_completed_behind_it_at_once() -> None:
    fed = Fed()
    packets = stream(6)
    lost = packets[4]  # frame 2's middle packet
    fed.add(*packets[:4])
    assert fed.frames == [3000]
    out = fed.add(*packets[5:])
    assert out.frames == [] and fed.nacks == [lost.seq]  # asked at once, frames 2-6 held
    fed.now += 0.01
    out = fed.add(lost)  # the retransmission
    assert [f.timestamp for f in out.frames] == [6000, 9000, 12000, 15000, 18000]
    assert fed.buffer.counts.repaired == 1


def test_reordered_packets_are_not_lost() -> None:
    fed = Fed()
    packets = stream(20)
    shuffled = packets[:1] + random.Random(5).sample(packets[1:], len(packets) - 1)
    fed.add(*shuffled)
    fed.wait(0.01)
    assert fed.frames == [p.timestamp for p in packets if p.marker]
    assert fed.keyframe_requests == 0 and fed.buffer.counts.skipped == 0


def test_duplicates_and_late_packets_are_ignored() -> None:
    fed = Fed()
    packets = stream(3)
    fed.add(*packets, *packets, packets[0])
    assert fed.frames == [3000, 6000, 9000]


def test_sequence_numbers_wrap() -> None:
    fed = Fed()
    packets = stream(10, seq=65530)
    fed.add(*packets[:5], *packets[6:])
    fed.now += 0.01
    fed.add(packets[5])
    assert fed.frames == [3000 * (i + 1) for i in range(10)]
    assert fed.nacks == [packets[5].seq] == [65535]


def test_padding_between_frames_is_never_a_frame() -> None:
    """Senders pad for bandwidth probes with empty packets that take sequence numbers."""
    fed = Fed()
    a, b = frame_packets(1, 90, 1, key=True), frame_packets(4, 180, 2)
    padding = [Packet(seq=s, timestamp=90, marker=False, data=b"", codec="VP8") for s in (2, 3)]
    fed.add(*a, *padding, *b)
    assert fed.frames == [90, 180] and fed.keyframe_requests == 0


def test_a_frame_with_no_marker_ends_where_the_next_timestamp_begins() -> None:
    fed = Fed()
    no_marker = [Packet(seq=s, timestamp=90 * (s // 2), marker=False, data=b"x") for s in range(10)]
    fed.add(*no_marker)
    assert fed.frames == [0, 90, 180, 270]  # the last one may still grow


def test_a_lost_retransmission_is_asked_for_again_on_the_timer() -> None:
    fed = Fed()
    packets = stream(4)
    lost = packets[4]
    fed.add(*packets[:4], *packets[5:])
    assert fed.nacks == [lost.seq]
    retry = fed.buffer.retry
    out = fed.wait(retry * 0.9)
    assert out.nacks == []  # not before its retry
    out = fed.wait(retry * 0.2)
    assert out.nacks == [lost.seq] and fed.buffer.counts.asked_again == 1
    fed.add(lost)  # the second retransmission arrives
    assert fed.frames == [3000, 6000, 9000, 12000]
    assert fed.keyframe_requests == 0


def test_the_retry_follows_the_measured_repair_time() -> None:
    fed = Fed()
    assert fed.buffer.retry == pytest.approx(2 * vr.FIRST_REPAIR)
    seq = 0
    for index in range(40):  # every frame loses one packet, repaired 4 ms after it is asked
        a, b, c = frame_packets(seq, 90 * index, 3, key=index == 0)
        fed.add(a, c)
        fed.now += 0.004
        fed.add(b)
        fed.now += 0.03
        seq += 3
    assert len(fed.frames) == 40
    assert fed.buffer.repair_time == pytest.approx(0.004, abs=0.001)
    assert fed.buffer.retry == vr.RETRY_MIN  # twice 4 ms is below the floor


def test_a_hole_is_skipped_after_its_last_ask_and_a_keyframe_is_requested() -> None:
    fed = Fed()
    packets = stream(6)
    lost = packets[4]  # frame 2
    fed.add(*packets[:4], *packets[5:12])  # frames 2-4 held behind the hole
    out = fed.wait(vr.MAX_ASKS * fed.buffer.retry + 0.001)
    assert fed.nacks == [lost.seq] * vr.MAX_ASKS
    assert out.keyframe_request and fed.keyframe_requests == 1
    assert fed.buffer.counts.skipped == 1
    # Frames 3 and 4 are complete, but refer to frame 2: nothing is decoded until a keyframe.
    assert fed.frames == [3000]
    fed.add(*packets[12:])  # frames 5 and 6, not keyframes
    assert fed.frames == [3000] and fed.buffer.counts.dropped == 4
    # The request is repeated while no keyframe comes.
    fed.wait(vr.KEYFRAME_RETRY * 1.01)
    assert fed.keyframe_requests == 2
    key = frame_packets(packets[-1].seq + 1, 99000, 4, key=True)
    out = fed.add(*key)
    assert [(f.timestamp, f.keyframe) for f in out.frames] == [(99000, True)]
    after = frame_packets(key[-1].seq + 1, 102000, 2)
    assert [f.timestamp for f in fed.add(*after).frames] == [102000]  # decoding goes on
    assert not fed.buffer.awaiting_keyframe and fed.buffer.wake_at() is None


def test_one_loss_costs_at_most_the_asks_then_a_keyframe() -> None:
    """However slow the repairs were measured, a hole is given up within DEADLINE."""
    fed = Fed()
    fed.buffer.repair_time = 10.0  # absurdly slow: the retry is capped, and the deadline holds
    packets = stream(3)
    fed.add(*packets[:4], *packets[5:])
    fed.wait(vr.DEADLINE * 1.01)
    assert fed.keyframe_requests == 1
    assert fed.buffer.retry == vr.RETRY_MAX


def test_a_keyframe_on_its_way_postpones_the_repeated_request() -> None:
    fed = Fed()
    packets = stream(3)
    fed.add(*packets[:4], *packets[5:])
    fed.wait(1.0)
    requests = fed.keyframe_requests
    key = frame_packets(packets[-1].seq + 1, 50000, 30, key=True)
    fed.add(key[0])  # its first packet: the rest comes slowly (a paced sender)
    fed.wait(vr.KEYFRAME_RETRY * 0.9)
    assert fed.keyframe_requests == requests
    fed.add(*key[1:])
    assert fed.frames[-1] == 50000


def test_a_lost_marker_packet_skips_to_the_next_frame_boundary() -> None:
    fed = Fed()
    packets = stream(5)
    fed.add(*packets[:5], *packets[6:])  # frame 2's marker packet is lost for good
    fed.wait(1.0)
    assert fed.frames == [3000] and fed.keyframe_requests >= 1
    key = frame_packets(packets[-1].seq + 1, 77000, 2, key=True)
    fed.add(*key)
    assert fed.frames == [3000, 77000]


def test_lost_packets_before_a_keyframe_do_not_hold_it() -> None:
    """After a skip whose frame boundary was lost too, the next marker tells where frames start."""
    fed = Fed()
    packets = stream(4)
    fed.add(*packets[:4])  # then frames 2-4 are lost whole
    fed.add(packets[11])  # frame 4's marker: a gap of seven
    fed.wait(1.0)
    assert fed.keyframe_requests >= 1
    key = frame_packets(packets[-1].seq + 1, 88000, 3, key=True)
    fed.add(*key)
    assert fed.frames == [3000, 88000]


def test_ten_percent_loss_both_ways_keeps_the_video_moving() -> None:
    """A simulated call at 30 fps, 4 packets a frame: each packet, NACK and retransmission is lost
    at 10%, a retransmission comes 5 ms after its NACK, and the sender answers a keyframe request
    with its next frame. Frames leave in order, nearly all of them, and never 200 ms apart."""
    rng = random.Random(16)
    fed = Fed()
    sent: dict[int, Packet] = {}
    pending: list[tuple[float, Packet]] = []  # retransmissions on their way
    answered = requests = 0
    released_at: list[float] = []

    def answer() -> None:
        nonlocal answered
        for seq in fed.nacks[answered:]:
            if rng.random() >= 0.19:  # the NACK and its retransmission both got through
                pending.append((fed.now + 0.005, sent[seq]))
        answered = len(fed.nacks)

    def deliver(packet: Packet) -> None:
        if fed.add(packet).frames:
            released_at.append(fed.now)
        answer()

    def advance(to: float) -> None:
        while True:
            due = [when for when, _ in pending]
            wake = fed.buffer.wake_at()
            soonest = min([*due, *([wake] if wake is not None else [])], default=None)
            if soonest is None or soonest > to:
                break
            fed.now = max(fed.now, soonest)
            for item in [p for p in pending if p[0] <= fed.now]:
                pending.remove(item)
                deliver(item[1])
            if (wake := fed.buffer.wake_at()) is not None and wake <= fed.now:
                if fed.take(fed.buffer.poll(fed.now)).frames:
                    released_at.append(fed.now)
                answer()
        fed.now = to

    seq = 0
    for index in range(300):
        advance(index * 0.033)
        key = index == 0 or fed.keyframe_requests > requests
        requests = fed.keyframe_requests
        for packet in frame_packets(seq, 3000 * (index + 1), 4, key):
            sent[packet.seq] = packet
            if index == 0 or rng.random() >= 0.1:
                deliver(packet)
        seq += 4
    advance(300 * 0.033 + 1.0)
    counts = fed.buffer.counts
    assert fed.frames == sorted(fed.frames) and len(set(fed.frames)) == len(fed.frames)
    assert counts.repaired > 50 and counts.asked_again > 5, counts  # the timer's asks were needed
    assert len(fed.frames) >= 290, counts
    gaps = [b - a for a, b in zip(released_at, released_at[1:], strict=False)]
    assert max(gaps) < 0.2, (max(gaps), counts)


def test_vp8_and_h264_keyframes_are_told_apart() -> None:
    assert is_keyframe("VP8", VP8_KEY) and not is_keyframe("VP8", VP8_DELTA)
    assert not is_keyframe("VP8", b"")
    sps, idr, slice_ = (
        b"\x00\x00\x00\x01\x67\x42",
        b"\x00\x00\x00\x01\x65\x88",
        b"\x00\x00\x01\x41\x9a",
    )
    assert is_keyframe("H264", sps) and is_keyframe("H264", slice_ + idr)
    assert not is_keyframe("H264", slice_) and not is_keyframe("H264", b"\x00\x00\x01")
    assert is_keyframe("", b"anything")  # an unknown codec never waits for a keyframe


# --- a peer can send anything ----------------------------------------------------------------


def test_memory_is_bounded_by_capacity_when_no_frame_ever_ends() -> None:
    fed = Fed()
    big = b"x" * 1200
    for seq in range(5 * vr.CAPACITY):  # markers never come: no frame is ever complete
        fed.add(Packet(seq=seq % 65536, timestamp=1, marker=False, data=big, codec="VP8"))
        assert fed.buffer.held_packets <= vr.CAPACITY
    assert fed.buffer.held_bytes <= vr.CAPACITY * len(big)
    assert fed.frames == []


def test_memory_is_bounded_in_bytes() -> None:
    fed = Fed()
    huge = b"y" * 60000
    peak = 0
    for seq in [0, *range(2, 400)]:  # packet 1 never comes: every frame after it waits
        fed.add(Packet(seq=seq, timestamp=seq, marker=True, data=huge, codec="VP8"))
        assert fed.buffer.held_bytes <= vr.MAX_BYTES
        peak = max(peak, fed.buffer.held_bytes)
    assert peak >= vr.MAX_BYTES - len(huge)  # the bound is what held it back
    assert fed.buffer.counts.skipped >= 1 and fed.keyframe_requests >= 1


def test_holes_and_nacks_are_bounded() -> None:
    fed = Fed()
    fed.add(Packet(seq=0, timestamp=0, marker=True, data=b"a"))
    out = fed.add(Packet(seq=200, timestamp=5, marker=True, data=b"b"))
    assert len(out.nacks) == vr.MAX_NACK and len(fed.buffer.missing) == 199
    assert all(len(fed.wait(0.05).nacks) <= vr.MAX_NACK for _ in range(5))
    # Every other packet of a long run lost: the oldest frames are given up past MAX_HOLES.
    for seq in range(1000, 2000, 2):
        fed.add(Packet(seq=seq, timestamp=seq, marker=False, data=b"c"))
        assert len(fed.buffer.missing) <= vr.MAX_HOLES
    assert fed.buffer.counts.skipped >= 1


def test_a_jump_far_ahead_starts_afresh_and_waits_for_a_keyframe() -> None:
    fed = Fed()
    fed.add(*stream(2, seq=10))
    out = fed.add(*frame_packets(30000, 99, 2))
    assert out.keyframe_request and out.nacks == [] and fed.buffer.counts.restarts == 1
    assert fed.frames == [3000, 6000]  # the delta frame after the jump is not decoded
    fed.add(*frame_packets(30002, 199, 2, key=True))
    assert fed.frames == [3000, 6000, 199]


def test_random_packets_never_raise_and_stay_bounded() -> None:
    rng = random.Random(1)
    fed = Fed()
    for _ in range(20000):
        fed.now += rng.random() * 0.01
        packet = Packet(
            seq=rng.randrange(65536) if rng.random() < 0.3 else (rng.randrange(200) + 1000) % 65536,
            timestamp=rng.randrange(2**32),
            marker=rng.random() < 0.3,
            data=rng.randbytes(rng.randrange(100)),
            codec=rng.choice(["VP8", "H264", ""]),
        )
        fed.add(packet)
        if rng.random() < 0.1:
            fed.wait(rng.random() * 0.1)
        assert fed.buffer.held_packets <= vr.CAPACITY
        assert len(fed.buffer.missing) <= vr.MAX_HOLES

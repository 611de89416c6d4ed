"""The video receive path under loss: which frames go to the decoder, and what to ask the sender for.

A sans-I/O object (no clock, no socket: `now` comes in, frames and requests come out), so its rules
are tested packet by packet (tests/media/test_video_receive.py); engine/compat/aiortc.py puts it into
aiortc's receiver and performs what it returns.

- **Every complete frame leaves at once.** A frame is complete when every sequence number from its
  first packet (the one after the previous frame's last) to its marker packet is here. When a
  retransmission fills a hole, every frame completed behind it leaves with it (aiortc's buffer let
  one frame out per arriving packet, so a backlog drained slowly and its delay stayed).
- **Missing packets are asked for, then asked again.** A gap is NACKed as soon as it is seen, and a
  packet still missing `retry` later is NACKed again, up to MAX_ASKS times. `retry` is twice the
  measured repair time (a NACK to its retransmission: about one round trip), within
  [RETRY_MIN, RETRY_MAX]. aiortc asked only once, and again only when a new gap happened to appear.
- **Then the hole is skipped.** A packet not here after its last ask's `retry`, or DEADLINE after it
  went missing, is given up: its frame and everything up to the next frame boundary go, a keyframe
  is requested (PLI), and frames are dropped until a keyframe arrives, since each of them refers to
  the frame lost (decoding them shows garbage or fails). The request is repeated every
  KEYFRAME_RETRY while none has started to arrive.
- **Memory is bounded, whatever the peer sends**: at most CAPACITY sequence numbers between the
  oldest packet held and the newest, and at most MAX_BYTES of payload. Past either, the oldest frame
  is given up as a hole would be, and so it is past MAX_HOLES missing packets; a jump of more than
  CAPACITY ahead, or behind the packets already released, starts the stream afresh. NACKs name at
  most MAX_NACK packets at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CAPACITY = 1024  # sequence numbers held, oldest to newest (a 1080p keyframe is about 300 packets)
MAX_BYTES = 4 * 1024 * 1024  # payload held
MAX_ASKS = 3  # NACKs per missing packet: at 10% loss each way, 0.7% of losses outlive three
RETRY_MIN = 0.02  # s: a re-ask sooner than this only duplicates a retransmission still on its way
RETRY_MAX = 0.2  # s
FIRST_REPAIR = 0.05  # s: the repair time assumed until one is measured (retry 100 ms)
DEADLINE = 0.5  # s: no packet is waited for longer, however slow the repairs have been
KEYFRAME_RETRY = 0.3  # s: a keyframe request is repeated when no keyframe has started by then
MAX_NACK = 128  # packets named in one NACK (aiortc's senders keep the last 128 packets)
MAX_HOLES = 256  # missing packets tracked (each costs a little on every packet and every poll)

_SEQ = 1 << 16


@dataclass(frozen=True, slots=True)
class Packet:
    """What the receive path needs of an RTP packet: `data` is its depayloaded payload."""

    seq: int  # the 16-bit RTP sequence number
    timestamp: int
    marker: bool
    data: bytes
    codec: str = (
        ""  # "VP8", "H264" (aiortc's names): how to tell a keyframe; "" never waits for one
    )
    payload_type: int = 0  # handed back with the frame


@dataclass(frozen=True, slots=True)
class Frame:
    timestamp: int
    data: bytes
    keyframe: bool
    payload_type: int


@dataclass
class Output:
    """What one step asks for: frames to decode (in order), NACKs to send, and a keyframe request."""

    frames: list[Frame] = field(default_factory=list)
    nacks: list[int] = field(default_factory=list)  # 16-bit sequence numbers
    keyframe_request: bool = False


@dataclass
class Counts:
    frames: int = 0  # released to the decoder
    dropped: int = 0  # complete, but waiting for a keyframe
    asked: int = 0  # packets NACKed for the first time
    asked_again: int = 0  # NACKs repeated by the timer
    repaired: int = 0  # asked for, and arrived
    skipped: int = 0  # holes given up
    keyframe_requests: int = 0
    restarts: int = 0  # jumps that started the stream afresh


@dataclass
class _Hole:
    since: float
    asks: int
    asked_at: float


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether `data` (a frame, or the first packet of one) starts a keyframe. Unknown codecs: True,
    so that they never wait for one."""
    name = codec.upper()
    if name == "VP8":
        # RFC 6386 9.1: the frame tag's lowest bit is 0 for a keyframe, whose header then carries
        # the start code 9d 01 2a.
        return len(data) >= 6 and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a"
    if name == "H264":
        # Annex B, as aiortc depayloads it: an IDR slice (5) or a sequence parameter set (7),
        # which senders put at the start of a keyframe.
        at = data.find(b"\x00\x00\x01")
        while 0 <= at < len(data) - 3:
            if data[at + 3] & 0x1F in (5, 7):
                return True
            at = data.find(b"\x00\x00\x01", at + 3)
        return False
    return True


class VideoReceiveBuffer:
    def __init__(self) -> None:
        self.counts = Counts()
        self.repair_time = FIRST_REPAIR  # s, smoothed
        self._held: dict[int, Packet] = {}  # by extended sequence number
        self._bytes = 0
        self._holes: dict[int, _Hole] = {}
        self._highest: int | None = None
        self._floor = 0  # everything before this was released or given up
        self._next: int | None = None  # where the next frame starts; None: not known yet
        self._scan = 0  # from _next up to here, every packet is here and none is a frame's end
        self._awaiting_keyframe = False
        self._keyframe_due = 0.0  # when to repeat the keyframe request

    # --- what the receiver asks -----------------------------------------------------------

    @property
    def retry(self) -> float:
        """How long a NACK waits for its retransmission before it is sent again."""
        return min(RETRY_MAX, max(RETRY_MIN, 2 * self.repair_time))

    @property
    def held_bytes(self) -> int:
        return self._bytes

    @property
    def held_packets(self) -> int:
        return len(self._held)

    @property
    def missing(self) -> list[int]:
        """The 16-bit sequence numbers being asked for."""
        return [ext % _SEQ for ext in sorted(self._holes)]

    @property
    def awaiting_keyframe(self) -> bool:
        return self._awaiting_keyframe

    def wake_at(self) -> float | None:
        """When poll() next has something to do (a NACK to repeat, a hole to give up, a keyframe
        request to repeat); None: nothing until the next packet."""
        times = [h.asked_at + self.retry for h in self._holes.values()]
        times += [h.since + DEADLINE for h in self._holes.values()]
        if self._awaiting_keyframe:
            times.append(self._keyframe_due)
        return min(times, default=None)

    # --- events in --------------------------------------------------------------------------

    def add(self, packet: Packet, now: float) -> Output:
        out = Output()
        ext = self._extend(packet.seq)
        if self._highest is None or ext > self._highest + CAPACITY or ext < self._floor - CAPACITY:
            if self._highest is not None:  # a jump no reordering explains: a new stream
                self.counts.restarts += 1
                self._awaiting_keyframe = True
                self._request_keyframe(out, now)
            self._restart(ext)
        elif ext < self._floor or ext in self._held:
            return out  # late (released or given up already), or a duplicate
        if self._awaiting_keyframe and is_keyframe(packet.codec, packet.data):
            # A keyframe is on its way: give it time to arrive before asking again.
            self._keyframe_due = max(self._keyframe_due, now + KEYFRAME_RETRY)
        hole = self._holes.pop(ext, None)
        if hole is not None:
            self.counts.repaired += 1
            if hole.asks == 1:  # unambiguous: the answer to the one NACK
                self.repair_time += (now - hole.asked_at - self.repair_time) / 4
        assert self._highest is not None
        if ext > self._highest:
            if self._next is not None:
                self._note_missing(range(self._highest + 1, ext), now, out)
            self._highest = ext
        self._held[ext] = packet
        self._bytes += len(packet.data)
        if self._next is None and packet.marker:
            self._resync(now, out)
        while (
            self._highest - self._floor >= CAPACITY
            or self._bytes > MAX_BYTES
            or len(self._holes) > MAX_HOLES
        ):
            self._give_up(self._first_blocked(), now, out)
        self._release(out)
        return out

    def poll(self, now: float) -> Output:
        """Repeat NACKs whose retry has passed, give up holes past their deadline, and repeat a
        keyframe request; call at wake_at() (earlier or later is harmless)."""
        out = Output()
        retry = self.retry
        for ext in sorted(self._holes):
            hole = self._holes.get(ext)
            if hole is None:
                continue  # gone with a hole given up before it
            # (Compared as wake_at() adds them, so that a poll at wake_at() always acts.)
            if hole.since + DEADLINE <= now or (
                hole.asks >= MAX_ASKS and hole.asked_at + retry <= now
            ):
                self._give_up(ext, now, out)
            elif hole.asked_at + retry <= now:
                hole.asked_at = now
                if len(out.nacks) < MAX_NACK:  # the oldest first; the others wait a retry
                    hole.asks += 1
                    self.counts.asked_again += 1
                    out.nacks.append(ext % _SEQ)
        if self._awaiting_keyframe and now >= self._keyframe_due and not out.keyframe_request:
            self._request_keyframe(out, now)
        self._release(out)
        return out

    # --- the rules --------------------------------------------------------------------------

    def _extend(self, seq: int) -> int:
        """The sequence number, unwrapped: counted on from the highest seen, either way."""
        if self._highest is None:
            return seq + _SEQ  # room below, for packets reordered before the first
        delta = (seq - self._highest + _SEQ // 2) % _SEQ - _SEQ // 2
        return self._highest + delta

    def _restart(self, ext: int) -> None:
        """Forget everything: `ext` is taken as a frame's start (the first packet of a stream is;
        a wrong guess costs one frame the decoder refuses, as a loss would)."""
        self._held.clear()
        self._holes.clear()
        self._bytes = 0
        self._highest = ext
        self._floor = self._next = self._scan = ext

    def _note_missing(self, seqs: range, now: float, out: Output) -> None:
        for ext in seqs:
            if ext not in self._held and ext not in self._holes:
                self._holes[ext] = _Hole(since=now, asks=1, asked_at=now)
                self.counts.asked += 1
                if len(out.nacks) < MAX_NACK:
                    out.nacks.append(ext % _SEQ)

    def _first_blocked(self) -> int:
        """The oldest sequence number that holds frames back: the first hole, or the oldest
        packet (a frame whose end has not come)."""
        return min(self._holes, default=self._floor)

    def _give_up(self, at: int, now: float, out: Output) -> None:
        """Skip the frame that `at` belongs to: everything up to the first marker after it goes,
        and decoding waits for a keyframe."""
        self.counts.skipped += 1
        assert self._highest is not None
        end = next(
            (s for s in range(at, self._highest + 1) if s in self._held and self._held[s].marker),
            None,
        )
        self._drop_through(self._highest if end is None else end)
        if end is None:
            self._next = None
            self._holes.clear()  # a frame's start is not known: nothing is worth asking for yet
        else:
            self._next = self._scan = end + 1
        self._awaiting_keyframe = True
        self._request_keyframe(out, now)

    def _resync(self, now: float, out: Output) -> None:
        """With no known frame start, the first marker held gives one: the packet after it."""
        assert self._highest is not None
        end = next(
            (
                s
                for s in range(self._floor, self._highest + 1)
                if s in self._held and self._held[s].marker
            ),
            None,
        )
        if end is None:
            return
        self._drop_through(end)
        self._next = self._scan = end + 1
        self._note_missing(range(end + 1, self._highest + 1), now, out)

    def _first_marker(self, start: int) -> int | None:
        assert self._highest is not None
        for ext in range(start, self._highest + 1):
            packet = self._held.get(ext)
            if packet is not None and packet.marker:
                return ext
        return None

    def _drop_through(self, end: int) -> None:
        for ext in [s for s in self._held if s <= end]:
            self._bytes -= len(self._held.pop(ext).data)
        for ext in [s for s in self._holes if s <= end]:
            del self._holes[ext]
        self._floor = end + 1

    def _request_keyframe(self, out: Output, now: float) -> None:
        out.keyframe_request = True
        self.counts.keyframe_requests += 1
        self._keyframe_due = now + KEYFRAME_RETRY

    def _release(self, out: Output) -> None:
        while (end := self._complete_frame()) is not None:
            assert self._next is not None
            packets = [self._held.pop(s) for s in range(self._next, end + 1)]
            data = b"".join(p.data for p in packets)
            self._bytes -= len(data)
            self._floor = self._next = self._scan = end + 1
            if not data:
                continue  # padding a sender sent on the media stream (no picture to decode)
            first = packets[0]
            keyframe = is_keyframe(first.codec, data)
            if self._awaiting_keyframe and not keyframe:
                self.counts.dropped += 1
                continue
            self._awaiting_keyframe = False
            self.counts.frames += 1
            out.frames.append(Frame(first.timestamp, data, keyframe, first.payload_type))

    def _complete_frame(self) -> int | None:
        """The last sequence number of the frame at _next, if all of it is here."""
        if self._next is None or self._next not in self._held:
            return None
        timestamp = self._held[self._next].timestamp
        seq = max(self._scan, self._next)
        while (packet := self._held.get(seq)) is not None:
            if packet.timestamp != timestamp:
                return seq - 1  # no marker, but the next frame has begun: this one is whole
            if packet.marker:
                return seq
            seq += 1
        self._scan = seq
        return None

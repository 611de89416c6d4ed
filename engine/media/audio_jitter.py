"""An adaptive jitter buffer for received audio packets: packets go in as they arrive (in any order,
at any time), and at each playout tick it says what to play: a packet, a lost packet rebuilt from the
next one's in-band FEC, or concealment. It does no I/O and owns no clock (the caller passes arrival
and tick times) and knows nothing of the codec (the caller says how long each packet is, whether it
carries FEC for the one before, and whether it is quiet).

The playout offset O maps RTP time to playout time: the packet with timestamp ts plays at
ts / rate + O. A packet is on time when its transit (arrival - ts / rate) is at most O. So the
target offset is a high quantile of the recent transits (the network's jitter, measured) plus a small
margin for the playout thread waking late, plus one packet when packets are being lost and carry FEC
(the next packet must be here when a lost one is due, or its FEC cannot be used). O moves toward the
target one packet at a time:

- down (the buffer holds more than the network needs): a quiet packet is decoded but not played;
  when far too full (after a delay spike), any packet is;
- up: a packet missing at its tick with nothing after it is an underrun, not a loss; 10 ms of
  concealment fill the wait and the buffer looks again (O grows 10 ms at a time, as far as the
  packet is late: the way delay spikes grow it); when the target rises without an underrun, a
  concealed packet is slipped in before a quiet one.

A packet missing at its tick while a later one is here is lost: rebuilt from the next packet's FEC
when that one is here and carries it, else concealed. With RED (engine/media/red.py) a later
packet carries whole copies of the ones before it (`insert_copy`): a copy takes a lost packet's
place and plays as it would have; the FEC margin is then as many packets as the copies reach back.
A lost packet that arrives later is dropped
(late). Nothing is ever played as silence or left as a gap. After STALL of concealment with
nothing arriving, the buffer goes idle (the sender stopped); the next packet starts it again.

Memory is bounded: at most CAPACITY packets are held, from the next one to play onward; a packet
further ahead is dropped, and RESYNC of those in a row (a sender that restarted its sequence numbers,
or one that floods) restart the buffer at the newest one; the transit history is a fixed window.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

CAPACITY = 64  # packets held at most (1.28 s of 20 ms packets)
RESYNC = 3  # packets beyond the window, in a row, that restart the buffer
HISTORY = 250  # transits kept for the jitter estimate (5 s of 20 ms packets: spikes are remembered)
QUANTILE = 0.97  # the share of packets that should be on time
MARGIN = 0.004  # s: the playout thread's wake-up jitter and decoding time
START_EXTRA = 0.020  # s: added at the start, before there is any jitter measured
# s from a stream's first packet during which transits are not measured: a connection's first
# packets come in a burst (what the sender queued while it opened), 50-90 ms later than the
# steady ones after them. Counted, they held the target that much too high until they left the
# 97th percentile, 3-5 s in, and the buffer then shrank in the middle of the first sentences.
SETTLE = 0.5
MAX_DELAY = 0.400  # s: the target never exceeds the fastest transit by more
SHRINK_HYSTERESIS = 0.003  # s beyond one packet over the target before shrinking
FORCE_SHRINK = 0.080  # s over the target: shrink even during speech
FORCE_EVERY = 5  # ticks between two forced shrinks (spread the cuts)
GROW_HYSTERESIS = 0.005  # s under the target before slipping a packet in
LOSS_MEMORY = 500  # packets (10 s at 20 ms) during which a loss keeps the FEC margin
STALL = 0.200  # s of concealment with nothing arriving: the sender has stopped
UNDERRUN_STEP = 480  # samples (10 ms) concealed at a time while waiting: the delay grows no more


class Step(enum.Enum):
    PLAY = "play"  # decode `payload`
    RECOVER = "recover"  # decode the `samples` before `payload` from its in-band FEC
    CONCEAL = "conceal"  # the decoder's concealment for `samples`


@dataclass(frozen=True)
class Playout:
    step: Step
    samples: int
    payload: bytes | None = None
    audible: bool = True  # False: decoded to keep the decoder's state, then dropped
    skip: int = 0  # samples at the start of the decoded audio not to play (stood in for already)


@dataclass
class _Packet:
    seq: int  # sequence number, unwrapped
    ts: int  # RTP timestamp, unwrapped
    payload: bytes
    samples: int
    fec: bool
    quiet: bool
    copy: bool = False  # a RED copy carried by a later packet: the original was not here


@dataclass
class Counters:
    received: int = 0
    duplicates: int = 0
    late: int = 0  # arrived after their tick (already rebuilt or concealed)
    discarded: int = 0  # too far ahead of the window
    lost: int = 0  # missing at their tick while later packets were here
    recovered: int = 0  # lost, rebuilt from the next packet's FEC
    red_recovered: int = 0  # lost, played from a copy a later packet carried (RED)
    concealed: int = 0  # lost, concealed
    underruns: int = 0  # ticks with nothing to play (concealed; the delay grew)
    dropped: int = 0  # decoded but not played (the delay shrank)
    inserted: int = 0  # concealment slipped in before a quiet packet (the delay grew)
    samples_played: int = 0
    samples_concealed: int = 0  # of samples_played: concealment (losses, underruns, slips)
    resyncs: int = 0


def _packet_sized(samples: int) -> bool:
    """An Opus packet's duration at 48 kHz: 2.5 ms steps, at most 120 ms."""
    return 0 < samples <= 5760 and samples % 120 == 0


def _unwrap(value: int, reference: int, bits: int) -> int:
    """The unwrapped number nearest `reference` whose low `bits` are `value`."""
    span = 1 << bits
    delta = (value - reference) % span
    return reference + delta - span if delta >= span // 2 else reference + delta


@dataclass
class AudioJitterBuffer:
    rate: int = 48000
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        self._held: dict[int, _Packet] = {}
        self._transits: deque[float] = deque(maxlen=HISTORY)
        # Per packet: how many packets before it its arrival can stand in for (in-band FEC: one;
        # RED: its copies), so while packets are lost the buffer waits for that many more.
        self._cover_seen: deque[int] = deque(maxlen=HISTORY)
        self._next_seq: int | None = None  # unwrapped: the next packet to play
        self._cursor_ts = 0  # unwrapped timestamp of the next audio to play
        self._offset = 0.0  # O, seconds
        self._frame = 960  # samples per packet, as last seen
        self._ahead = 0  # packets beyond the window in a row
        self._last_loss_seq: int | None = None
        self._stalled_for = 0.0  # s of underrun concealment in a row
        self._waited = 0  # samples concealed while waiting for the next packet (this underrun)
        self._last_forced = 0  # ticks since the last forced shrink
        self._fresh = False  # a new stream comes next: its first packet starts afresh
        self._started_at = 0.0  # arrival of the stream's first packet

    # --- packets in --------------------------------------------------------------------------

    def insert(
        self,
        seq: int,
        timestamp: int,
        payload: bytes,
        arrival: float,
        *,
        samples: int,
        fec: bool = False,
        quiet: bool = False,
        cover: int = 0,
    ) -> str:
        """Add a packet (16-bit sequence number, 32-bit timestamp); says what became of it:
        "buffered", "started", "duplicate", "late", "discarded" or "resync". `cover` is how many
        copies of the packets before it it carried (RED: each inserted with insert_copy)."""
        self._cover_seen.append(max(cover, 1 if fec else 0))
        self.counters.received += 1
        if self._next_seq is None or self._fresh:
            self._fresh = False
            self._start(seq, timestamp, arrival)
            self._store(seq, timestamp, payload, samples, fec, quiet, arrival)
            return "started"
        ext_seq = _unwrap(seq, self._next_seq, 16)
        if ext_seq < self._next_seq:
            self.counters.late += 1
            return "late"
        if ext_seq in self._held:
            self.counters.duplicates += 1
            return "duplicate"
        if ext_seq >= self._next_seq + CAPACITY:
            self._ahead += 1
            if self._ahead < RESYNC:
                self.counters.discarded += 1
                return "discarded"
            self.counters.resyncs += 1
            self._start(seq, timestamp, arrival)
            self._store(seq, timestamp, payload, samples, fec, quiet, arrival)
            return "resync"
        self._ahead = 0
        self._store(ext_seq, timestamp, payload, samples, fec, quiet, arrival)
        return "buffered"

    def insert_copy(
        self, seq: int, timestamp: int, payload: bytes, *, samples: int, fec: bool = False
    ) -> str:
        """Add a copy of an earlier packet that a later one carried (RED). It fills the place of a
        packet that has not come and is not yet due; otherwise it is ignored ("ignored"), and it
        never starts the buffer, counts as received, or says anything of the network's delay
        (it arrived with the packet that carried it, not when it was sent)."""
        if self._next_seq is None or self._fresh:
            return "ignored"
        ext_seq = _unwrap(seq, self._next_seq, 16)
        if not self._next_seq <= ext_seq < self._next_seq + CAPACITY or ext_seq in self._held:
            return "ignored"
        ext_ts = _unwrap(timestamp, self._cursor_ts, 32)
        self._held[ext_seq] = _Packet(ext_seq, ext_ts, payload, samples, fec, False, copy=True)
        return "buffered"

    def new_stream(self) -> None:
        """The sender changed (a renewed connection: a new SSRC, with its own random sequence
        numbers and timestamps): the next packet starts the schedule afresh, whatever its
        numbers, instead of being judged late or far ahead against the old stream's."""
        self._fresh = True

    def _start(self, seq: int, timestamp: int, arrival: float) -> None:
        self._held.clear()
        self._transits.clear()
        self._ahead = 0
        self._stalled_for = 0.0
        base = self._next_seq if self._next_seq is not None else seq
        self._next_seq = _unwrap(seq, base, 16)
        self._cursor_ts = _unwrap(timestamp, self._cursor_ts, 32)
        self._offset = arrival - self._cursor_ts / self.rate + MARGIN + START_EXTRA
        self._started_at = arrival

    def _store(
        self,
        seq: int,
        timestamp: int,
        payload: bytes,
        samples: int,
        fec: bool,
        quiet: bool,
        arrival: float,
    ) -> None:
        assert self._next_seq is not None
        ext_seq = _unwrap(seq, self._next_seq, 16)
        ext_ts = _unwrap(timestamp, self._cursor_ts, 32)
        self._held[ext_seq] = _Packet(ext_seq, ext_ts, payload, samples, fec, quiet)
        if arrival - self._started_at >= SETTLE:
            self._transits.append(arrival - ext_ts / self.rate)
        self._frame = samples
        self._stalled_for = 0.0

    # --- the playout schedule ----------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._next_seq is not None

    def next_due(self) -> float | None:
        """When the next tick is due (on the caller's clock), or None while idle."""
        if self._next_seq is None:
            return None
        return self._cursor_ts / self.rate + self._offset

    def target(self) -> float:
        """The playout offset the buffer steers toward (seconds, on the caller's clock)."""
        if not self._transits:
            return self._offset
        ordered = sorted(self._transits)
        fastest = ordered[0]
        wanted = ordered[min(len(ordered) - 1, int(QUANTILE * len(ordered)))] + MARGIN
        if self._recent_loss():
            wanted += max(self._cover_seen, default=0) * self._frame / self.rate
        return min(wanted, fastest + MAX_DELAY)

    def delay(self) -> float:
        """How long the fastest recent packets wait before they play: the buffer's depth (s)."""
        if not self._transits:
            return 0.0
        return max(0.0, self._offset - min(self._transits))

    def target_delay(self) -> float:
        """The depth the buffer steers toward (s), as delay() measures it."""
        if not self._transits:
            return 0.0
        return max(0.0, self.target() - min(self._transits))

    def postpone(self, seconds: float) -> None:
        """Move the whole schedule later (the caller could not keep it); the buffer shrinks back."""
        self._offset += seconds

    def _recent_loss(self) -> bool:
        return (
            self._last_loss_seq is not None
            and self._next_seq is not None
            and self._next_seq - self._last_loss_seq <= LOSS_MEMORY
        )

    # --- packets out -------------------------------------------------------------------------

    def pop(self, due: float) -> list[Playout]:
        """What to play at the tick due at `due` (next_due()); empty while idle."""
        if self._next_seq is None:
            return []
        self._last_forced += 1
        packet = self._held.get(self._next_seq)
        if packet is None:
            return self._missing()
        self._stalled_for = 0.0
        self._waited = 0
        excess = self._offset - self.target()
        follower = self._held.get(self._next_seq + 1)
        frame_s = packet.samples / self.rate
        if follower is not None and excess >= frame_s + SHRINK_HYSTERESIS:
            forced = excess >= FORCE_SHRINK and self._last_forced >= FORCE_EVERY
            if packet.quiet or forced:
                if forced:
                    self._last_forced = 0
                return [self._drop(packet), self._play(follower)]
        if -excess >= GROW_HYSTERESIS and packet.quiet:
            self.counters.inserted += 1
            return [self._conceal(packet.samples, advance=False)]
        return [self._play(packet)]

    def _play(self, packet: _Packet) -> Playout:
        self._consume(packet)
        if packet.copy:  # its original was lost on the way
            self.counters.lost += 1
            self.counters.red_recovered += 1
            self._last_loss_seq = packet.seq
        self.counters.samples_played += packet.samples
        return Playout(Step.PLAY, packet.samples, packet.payload)

    def _drop(self, packet: _Packet) -> Playout:
        self._consume(packet)
        self._offset -= packet.samples / self.rate
        self.counters.dropped += 1
        return Playout(Step.PLAY, packet.samples, packet.payload, audible=False)

    def _consume(self, packet: _Packet) -> None:
        del self._held[packet.seq]
        self._next_seq = packet.seq + 1
        self._cursor_ts = packet.ts + packet.samples

    def _conceal(self, samples: int, *, advance: bool) -> Playout:
        if not advance:
            self._offset += samples / self.rate  # the same audio now plays one tick later
        self.counters.samples_played += samples
        self.counters.samples_concealed += samples
        return Playout(Step.CONCEAL, samples)

    def _missing(self) -> list[Playout]:
        assert self._next_seq is not None
        later = [seq for seq in self._held if seq > self._next_seq]
        if not later:
            return self._underrun()
        self._stalled_for = 0.0
        nearest = self._held[min(later)]
        credit = self._count_waited_as_lost(nearest)
        if nearest.seq == self._next_seq:
            self._waited = 0
            return [self._play(nearest)]
        self.counters.lost += 1
        self._last_loss_seq = self._next_seq
        missing = nearest.seq - self._next_seq
        gap = nearest.ts - self._cursor_ts
        if missing == 1 and nearest.fec and _packet_sized(gap):  # a credit is under one packet
            self.counters.recovered += 1
            self._next_seq += 1
            self._cursor_ts = nearest.ts
            self.counters.samples_played += gap - credit
            return [Playout(Step.RECOVER, gap, nearest.payload, skip=credit)]
        self.counters.concealed += 1
        per_packet = gap // missing if gap > 0 and gap % missing == 0 else self._frame
        samples = per_packet if _packet_sized(per_packet) else self._frame
        self._next_seq += 1
        self._cursor_ts += samples
        return [self._conceal(samples - credit, advance=True)]

    def _count_waited_as_lost(self, nearest: _Packet) -> int:
        """The concealment played while waiting (an underrun) turns out to have stood in for lost
        packets, not late ones: count it as theirs, so a burst of losses does not grow the delay.
        The last lost packet is left to be rebuilt from `nearest`'s FEC when it carries some.
        Returns the samples of waiting left over (less than a packet of a valid duration): they
        stood in for the start of the next lost packet, which then plays only its rest. Counted as growth instead,
        each burst would move the schedule by up to a packet in the middle of speech."""
        assert self._next_seq is not None
        missing = nearest.seq - self._next_seq
        span = nearest.ts - self._cursor_ts
        if not self._waited or missing <= 0 or span <= 0 or span % missing:
            return 0
        per_packet = span // missing
        covered = min(self._waited // per_packet, missing - 1 if nearest.fec else missing)
        if covered > 0:
            self._next_seq += covered
            self._cursor_ts += covered * per_packet
            self._offset -= covered * per_packet / self.rate
            self._waited -= covered * per_packet
            self.counters.lost += covered
            self.counters.concealed += covered
            self._last_loss_seq = self._next_seq - 1
        if covered == missing or self._waited >= per_packet or not _packet_sized(per_packet):
            return 0  # nothing left to stand in for, or a packet late besides: the delay grew
        credit = self._waited
        self._offset -= credit / self.rate
        self._waited = 0
        return credit

    def _underrun(self) -> list[Playout]:
        if self._stalled_for >= STALL:
            self._next_seq = None  # idle until the next packet starts the buffer again
            return []
        self.counters.underruns += 1
        samples = min(UNDERRUN_STEP, self._frame)
        self._stalled_for += samples / self.rate
        self._waited += samples
        return [self._conceal(samples, advance=False)]

    def __len__(self) -> int:
        return len(self._held)

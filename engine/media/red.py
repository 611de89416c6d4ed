"""Audio redundancy (RED, RFC 2198): each packet also carries copies of the one or two Opus packets
before it, so a packet lost on the way is played from the next packet's copy at full quality.

Opus's in-band FEC rebuilds only the packet just before one that arrives, at a lower quality, so a
burst of losses is concealed past its first packet (bench/audio.py's burst row: 2.1-2.8 PESQ where
the goal is 3.0). Browsers send the same RED format (Chrome, "red/48000/2"); tcall offers it
first, so two tcall peers use it, and a browser that offers Opus first gets plain Opus.

What a packet carries follows the loss its receiver reports, as the FEC does (`distance_for`):
nothing on a clean link, one copy while packets are lost, two when a tenth or more are. Each copy
is a whole Opus packet, with its own in-band FEC for the packet before it, so two copies cover a
burst of three.

Everything here is sans-I/O: bytes in, bytes out. A peer chooses every byte of what arrives, so
`unpack` checks each length against what is there and refuses a malformed packet whole.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MIME = "audio/red"
PAYLOAD_TYPE = 63  # Chrome's, so an offer from Chrome and ours name it alike
MAX_DISTANCE = 2  # copies sent at most
MAX_COPIES = 3  # copies taken from a received packet at most: the nearest ones
TWO_COPIES_AT = 10  # percent of packets lost, expected: from here two copies, below it one
_MAX_OFFSET = (1 << 14) - 1  # the header's timestamp offset field
_MAX_LENGTH = (1 << 10) - 1  # the header's block length field


def distance_for(expected_loss_percent: int) -> int:
    """How many earlier packets to copy into each one, for the loss expected."""
    if expected_loss_percent <= 0:
        return 0
    return 1 if expected_loss_percent < TWO_COPIES_AT else MAX_DISTANCE


class RedPacker:
    """Wraps each Opus payload in a RED payload with copies of the ones before it. `payload_type`
    is the negotiated Opus payload type, which every block names."""

    def __init__(self, payload_type: int, frame: int = 960) -> None:
        self.payload_type = payload_type
        self.frame = frame  # samples per packet: the encoders' 20 ms
        self.distance = 0
        self.copies_sent = 0
        self._history: deque[tuple[int, bytes]] = deque(maxlen=MAX_DISTANCE)

    def pack(self, payload: bytes, timestamp: int) -> bytes:
        """The RED payload for one Opus payload sent at `timestamp` (the encoder's own count)."""
        # The receiver places a copy `offset / frame` sequence numbers back, so only packets sent
        # one after the other are copied (an encoder that skipped a frame broke the chain).
        recent = list(self._history)[len(self._history) - self.distance :] if self.distance else []
        copies = [
            (timestamp - at, old)
            for back, (at, old) in enumerate(reversed(recent), start=1)
            if timestamp - at == back * self.frame <= _MAX_OFFSET and len(old) <= _MAX_LENGTH
        ][::-1]
        self._history.append((timestamp, payload))
        headers = bytearray()
        for offset, old in copies:
            headers += bytes(
                (
                    0x80 | self.payload_type,
                    offset >> 6,
                    ((offset & 0x3F) << 2) | (len(old) >> 8),
                    len(old) & 0xFF,
                )
            )
        headers.append(self.payload_type)
        self.copies_sent += len(copies)
        return bytes(headers) + b"".join(old for _, old in copies) + payload


def fmtp_payload_type(parameters: Mapping[str, object]) -> int | None:
    """The payload type a RED codec's format parameters name for its blocks ("96/96"), if one."""
    for key in parameters:
        first = str(key).split("/")[0]
        if first.isdigit() and int(first) < 128:
            return int(first)
    return None


@dataclass(frozen=True)
class Copy:
    seq: int  # 16-bit RTP sequence number the copied packet had
    timestamp: int  # 32-bit RTP timestamp
    payload: bytes
    samples: int  # per channel, as `unpack`'s `samples` measured it


@dataclass(frozen=True)
class Unpacked:
    primary: bytes
    copies: tuple[Copy, ...]  # oldest first


def unpack(
    seq: int,
    timestamp: int,
    payload: bytes,
    opus_types: frozenset[int],
    samples: Callable[[bytes], int | None],
) -> Unpacked | None:
    """A received RED packet's Opus primary and the copies in it; None when it is malformed or its
    primary is not Opus. A copy's sequence number is not sent, so it is worked out from its
    timestamp offset and its length in samples (`samples(payload)`, None for a payload that is
    not Opus): a copy whose offset is not a whole number of its packets is left out."""
    blocks: list[tuple[int, int, int]] = []  # (payload type, offset, length)
    at = 0
    while True:
        if at >= len(payload):
            return None
        first = payload[at]
        if not first & 0x80:
            primary_type = first & 0x7F
            at += 1
            break
        if at + 4 > len(payload):
            return None
        offset = (payload[at + 1] << 6) | (payload[at + 2] >> 2)
        length = ((payload[at + 2] & 0x03) << 8) | payload[at + 3]
        blocks.append((first & 0x7F, offset, length))
        at += 4
    if primary_type not in opus_types:
        return None
    copies: list[Copy] = []
    for block_type, offset, length in blocks:
        data = payload[at : at + length]
        at += length
        if len(data) < length:
            return None
        if block_type not in opus_types or not data or offset <= 0:
            continue
        each = samples(data)
        if not each or offset % each:
            continue
        back = offset // each
        copies.append(Copy((seq - back) & 0xFFFF, (timestamp - offset) & 0xFFFFFFFF, data, each))
    primary = payload[at:]
    if not primary:
        return None
    return Unpacked(primary, tuple(copies[-MAX_COPIES:]))

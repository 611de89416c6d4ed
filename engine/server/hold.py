"""Payloads for offline mailboxes, kept in memory for a short while, without a clock of its own.

Nothing here is ever written anywhere: a relay restart forgets every held payload, by design.

Every cap counts what an entry really costs in memory, not only its payload: `ENTRY_COST` and
`BOX_COST` are what CPython spends on an entry and on a mailbox beside the payload bytes
(tests/relay/test_relay_limits.py checks them against tracemalloc). The caps:

- in all: `max_bytes` of that cost and `max_entries` entries;
- per sender (the signed-in mailbox a payload came from): `per_sender_bytes`, so a few links cannot
  take the whole hold;
- per mailbox: `per_mailbox` slots, of which one sender may hold `per_sender_share`; when a box is
  full, a sender holding fewer of its slots than the biggest holder takes that holder's oldest
  slot. Whoever fills a box, a sender that has not sent to it yet still gets in, unless
  `per_mailbox` different senders hold one slot each.

Every entry lives `seconds`, so entries expire in the order they came: `expire` pops them from the
front of one queue, and costs only what it forgets (no scan over every mailbox).
"""

from __future__ import annotations

from collections import deque

ENTRY_COST = 136  # bytes per entry beside its payload: the entry, its float, list and queue slots
BOX_COST = 184  # bytes per mailbox with something held: the id string, its list, the dict slot
BYTES_COST = 33  # a bytes object's own header


class _Entry:
    __slots__ = ("expiry", "mailbox", "sender", "payload", "alive")

    def __init__(self, expiry: float, mailbox: str, sender: str, payload: bytes) -> None:
        self.expiry = expiry
        self.mailbox = mailbox
        self.sender = sender
        self.payload = payload
        self.alive = True


class MailboxHold:
    """Holds payloads for offline mailboxes for `seconds`, within the caps above."""

    def __init__(
        self,
        seconds: float,
        per_mailbox: int = 32,
        max_bytes: int = 32 << 20,
        max_entries: int = 100_000,
        per_sender_bytes: int = 1 << 20,
        per_sender_share: int = 8,
    ) -> None:
        self.seconds = seconds
        self.per_mailbox = per_mailbox
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.per_sender_bytes = per_sender_bytes
        self.per_sender_share = per_sender_share
        self.bytes = 0  # memory cost of everything held, as counted above
        self.entries = 0  # entries in the queue, including ones taken but not yet expired
        self._live = 0
        self._queue: deque[_Entry] = deque()
        self._boxes: dict[str, list[_Entry]] = {}
        self._senders: dict[str, int] = {}  # cost held per sender

    def __len__(self) -> int:
        """Payloads held (not yet taken nor expired)."""
        return self._live

    def sender_bytes(self, sender: str) -> int:
        return self._senders.get(sender, 0)

    def put(self, mailbox: str, payload: bytes, now: float, sender: str = "") -> bool:
        """Hold `payload` for `mailbox` from `sender`; False when a cap says drop it."""
        if self.seconds <= 0:
            return False
        self.expire(now)
        own = ENTRY_COST + BYTES_COST + len(payload)  # what the sender is charged
        box = self._boxes.get(mailbox)
        cost = own + BOX_COST if box is None else own
        if box is not None:
            mailbox = box[0].mailbox  # one id string per box, not one per entry
            mine = sum(1 for entry in box if entry.sender == sender)
            if mine >= self.per_sender_share:
                return False
            if len(box) >= self.per_mailbox and not self._make_room(box, sender, mine):
                return False
        held = self._senders.get(sender, 0)
        if (
            self.bytes + cost > self.max_bytes
            or self.entries >= self.max_entries
            or held + own > self.per_sender_bytes
        ):
            return False
        entry = _Entry(now + self.seconds, mailbox, sender, payload)
        if box is None:
            self._boxes[mailbox] = [entry]
        else:
            box.append(entry)
        self._queue.append(entry)
        self._senders[sender] = held + own
        self.bytes += cost
        self.entries += 1
        self._live += 1
        return True

    def take(self, mailbox: str, now: float) -> list[bytes]:
        """Remove and return the unexpired payloads for `mailbox`, oldest first."""
        box = self._boxes.pop(mailbox, None)
        if box is None:
            return []
        self.bytes -= BOX_COST
        out = [entry.payload for entry in box if entry.expiry > now]
        for entry in box:
            self._release(entry)
        return out

    def expire(self, now: float) -> int:
        """Forget every payload whose time is up; returns how many were forgotten."""
        queue, dropped = self._queue, 0
        while queue and queue[0].expiry <= now:
            entry = queue.popleft()
            self.bytes -= ENTRY_COST
            self.entries -= 1
            if entry.alive:
                dropped += 1
                box = self._boxes[entry.mailbox]
                box.remove(entry)  # the oldest, so the first: every entry lives as long
                if not box:
                    del self._boxes[entry.mailbox]
                    self.bytes -= BOX_COST
                self._release(entry)
        return dropped

    def _make_room(self, box: list[_Entry], sender: str, mine: int) -> bool:
        """Free a slot in a full box for `sender`, who holds `mine` of them, if that is fair."""
        counts: dict[str, int] = {}
        for entry in box:
            counts[entry.sender] = counts.get(entry.sender, 0) + 1
        biggest = max(counts, key=counts.__getitem__)
        if counts[biggest] <= mine + 1:
            return False  # nobody holds more than a fair share over this sender
        victim = next(entry for entry in box if entry.sender == biggest)
        box.remove(victim)
        self._release(victim)
        return True

    def _release(self, entry: _Entry) -> None:
        """An entry leaves its box: its payload's cost is freed now; the entry's own cost when
        it leaves the queue (it stays there, dead, until its time is up)."""
        entry.alive = False
        size = BYTES_COST + len(entry.payload)
        entry.payload = b""
        self.bytes -= size
        self._live -= 1
        left = self._senders[entry.sender] - ENTRY_COST - size
        if left > 0:
            self._senders[entry.sender] = left
        else:
            del self._senders[entry.sender]

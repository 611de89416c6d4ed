"""Payloads for offline mailboxes, kept in memory for a short while, without a clock of its own.

Nothing here is ever written anywhere: a relay restart forgets every held payload, by design.
"""

from __future__ import annotations

from collections import deque


class MailboxHold:
    """Holds up to `per_mailbox` payloads per mailbox for `seconds`, and `max_bytes` in all."""

    def __init__(self, seconds: float, per_mailbox: int = 32, max_bytes: int = 32 << 20) -> None:
        self.seconds = seconds
        self.per_mailbox = per_mailbox
        self.max_bytes = max_bytes
        self.bytes = 0
        self._boxes: dict[str, deque[tuple[float, bytes]]] = {}

    def __len__(self) -> int:
        return sum(len(box) for box in self._boxes.values())

    def put(self, mailbox: str, payload: bytes, now: float) -> bool:
        """Hold `payload` for `mailbox`; False when it was dropped because a cap is reached."""
        if self.seconds <= 0 or self.bytes + len(payload) > self.max_bytes:
            return False
        box = self._boxes.setdefault(mailbox, deque())
        if len(box) >= self.per_mailbox:
            return False
        box.append((now + self.seconds, payload))
        self.bytes += len(payload)
        return True

    def take(self, mailbox: str, now: float) -> list[bytes]:
        """Remove and return the unexpired payloads for `mailbox`, oldest first."""
        box = self._boxes.pop(mailbox, None)
        if box is None:
            return []
        self.bytes -= sum(len(payload) for _, payload in box)
        return [payload for expiry, payload in box if expiry > now]

    def expire(self, now: float) -> int:
        """Forget every payload whose time is up; returns how many were forgotten."""
        dropped = 0
        for mailbox in list(self._boxes):
            box = self._boxes[mailbox]
            while box and box[0][0] <= now:
                self.bytes -= len(box.popleft()[1])
                dropped += 1
            if not box:
                del self._boxes[mailbox]
        return dropped

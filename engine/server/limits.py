"""Per-connection rate limiting, without a clock of its own: the caller passes the time in."""

from __future__ import annotations


class TokenBucket:
    """Allows `rate` events a second on average, with bursts of up to `burst`."""

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def take(self, now: float, count: int = 1) -> bool:
        """Spend `count` tokens if there are; False means the caller is over its limit."""
        tokens = self._tokens
        if now > self._last:
            tokens += (now - self._last) * self.rate
            if tokens > self.burst:
                tokens = self.burst
            self._last = now
        if tokens < count:
            self._tokens = tokens
            return False
        self._tokens = tokens - count
        return True

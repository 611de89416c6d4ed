"""The token bucket and the offline hold: pure, with the clock passed in."""

from __future__ import annotations

import pytest

from tcall.engine.server.hold import MailboxHold
from tcall.engine.server.limits import TokenBucket


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.05) is False  # half a token
    assert bucket.take(0.1) is True
    assert bucket.take(0.1) is False
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # never over burst


def test_token_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)


def test_hold_returns_unexpired_payloads_in_order_once() -> None:
    hold = MailboxHold(seconds=10)
    assert hold.put("a", b"1", now=0) and hold.put("a", b"2", now=5) and hold.put("b", b"3", now=0)
    assert hold.take("a", now=11) == [b"2"]
    assert hold.take("a", now=11) == []
    assert len(hold) == 1 and hold.bytes == 1


def test_hold_expires_and_caps() -> None:
    hold = MailboxHold(seconds=10, per_mailbox=2, max_bytes=5)
    assert hold.put("a", b"12", now=0) and hold.put("a", b"3", now=1)
    assert not hold.put("a", b"4", now=1)  # per-mailbox cap
    assert hold.put("b", b"45", now=2)
    assert not hold.put("c", b"6", now=2)  # byte cap
    assert hold.expire(now=10.5) == 1
    assert hold.bytes == 3 and hold.take("a", now=10.5) == [b"3"]
    assert hold.expire(now=100) == 1 and len(hold) == 0 and hold.bytes == 0


def test_hold_of_zero_seconds_keeps_nothing() -> None:
    assert not MailboxHold(seconds=0).put("a", b"x", now=0)

"""The token bucket and the offline hold: pure, with the clock passed in."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from tcall.engine.server.hold import BOX_COST, BYTES_COST, ENTRY_COST, MailboxHold
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
    assert len(hold) == 1
    assert hold.take("b", now=1) == [b"3"] and len(hold) == 0
    assert hold.expire(now=100) == 0 and hold.bytes == 0 and hold.entries == 0


def test_hold_expires_and_caps() -> None:
    per_entry = ENTRY_COST + BYTES_COST + 1
    hold = MailboxHold(seconds=10, per_mailbox=2, max_bytes=3 * per_entry + 2 * BOX_COST)
    assert hold.put("a", b"1", now=0) and hold.put("a", b"3", now=1)
    assert not hold.put("a", b"4", now=1)  # per-mailbox cap
    assert hold.put("b", b"5", now=2)
    assert not hold.put("c", b"6", now=2)  # memory cap, the entries' own cost counted
    assert hold.expire(now=10.5) == 1
    assert hold.take("a", now=10.5) == [b"3"]
    assert hold.expire(now=100) == 1 and len(hold) == 0 and hold.bytes == 0


def test_hold_caps_entries_and_each_senders_memory() -> None:
    hold = MailboxHold(seconds=10, max_entries=5, per_sender_bytes=3 * (ENTRY_COST + 100))
    assert [hold.put(f"box{i}", b"x" * 60, 0, sender="s") for i in range(4)] == [True] * 3 + [False]
    assert hold.sender_bytes("s") <= 3 * (ENTRY_COST + 100)
    assert hold.put("box", b"y", 0, sender="t") and hold.put("box", b"z", 0, sender="u")
    assert not hold.put("box", b"w", 0, sender="v")  # 5 entries in all
    hold.take("box0", now=1)
    assert hold.sender_bytes("s") < 3 * (ENTRY_COST + 60)
    assert hold.put("box9", b"x" * 60, 1, sender="s") is False  # entry cost kept until expiry
    hold.expire(now=10)
    assert hold.put("box9", b"x" * 60, 10, sender="s")


def test_no_sender_fills_a_mailbox_and_a_new_sender_always_gets_in() -> None:
    hold = MailboxHold(seconds=10, per_mailbox=32, per_sender_share=8)
    # One sender gets 8 slots, then nothing more.
    assert sum(hold.put("owner", b"junk", 0, sender="spam0") for _ in range(40)) == 8
    # Four senders fill the box; a fifth still gets in, taking the oldest of a biggest holder.
    for n in range(1, 4):
        assert sum(hold.put("owner", b"junk", 0, sender=f"spam{n}") for _ in range(40)) == 8
    assert len(hold) == 32
    assert hold.put("owner", b"the real offer", 1, sender="friend")
    assert not hold.put("owner", b"junk", 1, sender="spam0")  # not at the friend's expense
    assert len(hold) == 32
    assert b"the real offer" in hold.take("owner", 2)


def test_expiry_pops_only_what_is_due() -> None:
    hold = MailboxHold(seconds=10)
    for i in range(1000):
        hold.put(f"box{i}", b"x", now=i / 100)
    assert hold.expire(now=10.0) == 1  # box0 only: nothing else is looked at
    assert hold.expire(now=15.0) == 500 and len(hold) == 499


def test_hold_cost_covers_what_python_really_spends() -> None:
    """ENTRY_COST and BOX_COST are no guesses: the hold's own count is at least what tracemalloc
    sees, for 1-byte payloads to as many mailboxes as entries (the issue's attack), and to few."""
    for spread in (3_000, 50):
        hold = MailboxHold(60, per_mailbox=1 << 30, max_entries=1 << 30, per_sender_share=1 << 30)
        hold.max_bytes = hold.per_sender_bytes = 1 << 40
        boxes = [os.urandom(16) for _ in range(spread)]
        senders = [os.urandom(16).hex() for _ in range(300)]
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(3_000):
                # As the relay makes them: a new id string and payload for every message.
                hold.put(boxes[i % spread].hex(), os.urandom(1), 0.0, senders[i % 300])
            used = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(hold) == 3_000
        assert used <= hold.bytes <= 1.5 * used

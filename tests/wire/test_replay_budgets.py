"""A stranger who floods us with validly signed, sealed messages from fresh keys fills only the
strangers' replay budget: a contact's messages are still taken (issue #12, item 5)."""

from __future__ import annotations

import pytest

from tcall.engine.identity import Identity
from tcall.engine.wire import (
    ReplayGuardFull,
    ReplayGuards,
    SenderStatus,
    open_message,
    seal_message,
)

ME = Identity.from_seed(b"\x01" * 32)
BOB = Identity.from_seed(b"\x02" * 32)


def lookup(key: bytes) -> SenderStatus:
    return SenderStatus.known("bob") if key == BOB.public_key else SenderStatus.unknown()


def test_a_flood_from_fresh_keys_never_crowds_out_a_contact() -> None:
    guards = ReplayGuards(strangers=40, per_contact=10)
    now = 1_000_000.0
    for seed in range(40):
        stranger = Identity.from_seed(seed.to_bytes(32, "big"))
        open_message(
            ME,
            seal_message(stranger, ME.public_key, "ring", "a" * 16, now),
            now,
            guards,
            lookup,
            allow_unknown=True,
        )
    fresh = Identity.from_seed(b"\xff" * 32)
    with pytest.raises(ReplayGuardFull) as full:
        open_message(
            ME,
            seal_message(fresh, ME.public_key, "ring", "a" * 16, now),
            now,
            guards,
            lookup,
            allow_unknown=True,
        )
    assert full.value.sender_key == fresh.public_key  # refused after its signature was checked
    received = open_message(
        ME,
        seal_message(BOB, ME.public_key, "ring", "b" * 16, now),
        now,
        guards,
        lookup,
        allow_unknown=True,
    )
    assert received.contact == "bob"

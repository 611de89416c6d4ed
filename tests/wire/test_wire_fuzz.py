"""Hypothesis against `open_message`: random bytes, mutated ciphertext, mutated/random plaintext.

The only allowed outcome is a clean refusal (a WireRefusal, which is a TcallError); any other
exception fails the test, and pytest-timeout turns a hang into a failure.
"""

from __future__ import annotations

import json
from typing import Any

import nacl.public
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcall.engine.wire import MAX_MESSAGE_BYTES, Received, ReplayGuard, WireRefusal
from tests.support.fuzz import examples
from tests.support.wire_pair import SDP, ConnectionPair

PAIR = ConnectionPair()
VALID = PAIR.seal(PAIR.alice, "offer", sdp=SDP, video=True)
VALID_PLAIN = nacl.public.SealedBox(PAIR.bob.box_private_key()).decrypt(VALID)
BOX_TO_BOB = nacl.public.SealedBox(PAIR.bob.box_private_key().public_key)
FUZZ = settings(
    max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _open(data: bytes) -> Received | None:
    """Open `data` at Bob's side with a fresh replay guard; None means a clean refusal."""
    PAIR.guards[PAIR.bob.public_key] = ReplayGuard()
    try:
        return PAIR.deliver(PAIR.bob, data, allow_unknown=True)
    except WireRefusal:
        return None


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, pos, value in edits:
        if not buf:
            break
        i = pos % len(buf)
        if op == 0:
            buf[i] ^= value or 1
        elif op == 1:
            del buf[i:]
        else:
            buf[i:i] = bytes([value])
    return bytes(buf)


EDITS = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4
)


def test_the_unmutated_message_opens() -> None:
    received = _open(VALID)
    assert received is not None and received.message.sdp == SDP


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    assert _open(data) is None


@FUZZ
@given(EDITS)
def test_mutated_ciphertext(edits: list[tuple[int, int, int]]) -> None:
    data = _mutate(VALID, edits)
    if data != VALID:
        assert _open(data) is None


@FUZZ
@given(EDITS)
def test_mutated_plaintext_resealed(edits: list[tuple[int, int, int]]) -> None:
    plain = _mutate(VALID_PLAIN, edits)
    received = _open(bytes(BOX_TO_BOB.encrypt(plain)))
    if received is not None:
        # Only an edit that keeps the signed content identical may pass (e.g. JSON whitespace).
        assert json.loads(plain) == json.loads(VALID_PLAIN)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


KEYS = sorted(json.loads(VALID_PLAIN))


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), JSON, max_size=12), st.sets(st.sampled_from(KEYS)))
def test_random_fields_resealed(fields: dict[str, Any], dropped: set[str]) -> None:
    base = json.loads(VALID_PLAIN)
    changed = {k: v for k, v in (base | fields).items() if k not in dropped}
    plain = json.dumps(changed).encode()
    if len(plain) < MAX_MESSAGE_BYTES - 100:
        received = _open(bytes(BOX_TO_BOB.encrypt(plain)))
        assert received is None or changed == base

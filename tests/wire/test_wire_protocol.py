"""Sealed, signed signaling messages: every kind round-trips; every refusal has its own reason."""

from __future__ import annotations

import json
from typing import Any

import nacl.public
import pytest

from tcall.engine.core.group import RosterEntry
from tcall.engine.errors import ExitCode, IdentityError, ProtocolError
from tcall.engine.identity import Identity
from tcall.engine.wire import (
    KINDS,
    MAX_MESSAGE_BYTES,
    BadSignature,
    ChangedKey,
    MalformedMessage,
    NotForUs,
    OversizeMessage,
    ReplayedMessage,
    ReplayGuard,
    ReplayGuardFull,
    SenderStatus,
    StaleMessage,
    UncoveredSdp,
    UndecryptableMessage,
    UnknownSender,
    WireRefusal,
    open_message,
    sdp_credentials,
    seal_message,
    sign_and_seal,
)
from tests.support.wire_pair import CALL_ID, SDP, ConnectionPair

MALLORY = Identity.from_seed(b"\x66" * 32)


@pytest.fixture
def pair() -> ConnectionPair:
    return ConnectionPair()


def _plaintext(receiver: Identity, data: bytes) -> dict[str, Any]:
    opened = nacl.public.SealedBox(receiver.box_private_key()).decrypt(data)
    fields: dict[str, Any] = json.loads(opened)
    return fields


def _valid_fields(pair: ConnectionPair, kind: str = "offer") -> dict[str, Any]:
    extra: dict[str, Any] = {"sdp": SDP, "video": True} if kind in ("offer", "answer") else {}
    fields = _plaintext(pair.bob, pair.seal(pair.alice, kind, **extra))
    del fields["sig"]
    return fields


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips(pair: ConnectionPair, kind: str) -> None:
    extras: dict[str, dict[str, Any]] = {
        "offer": {"sdp": SDP, "video": True},
        "answer": {"sdp": SDP, "video": False},
        "video": {"video": True},
        "presence": {"presence": "online"},
        "request": {"relay": "ws://relay.example:7711", "name": "alice"},
        "reoffer": {"sdp": SDP, "video": True, "attempt": 1},
        "reanswer": {"sdp": SDP, "video": False, "attempt": 3},
        "added": {"member": RosterEntry(bytes(32), "ws://relay.example:7711")},
        "mic": {"muted": True},
    }
    extra = extras.get(kind, {})
    received = pair.send(pair.alice, kind, **extra)
    message = received.message
    assert received.contact == "alice"
    assert (message.kind, message.sender, message.recipient) == (
        kind,
        pair.alice.public_key,
        pair.bob.public_key,
    )
    assert message.call_id == ("" if kind in ("presence", "request") else CALL_ID)
    assert message.timestamp == pair.now
    assert message.sdp == extra.get("sdp")
    assert message.video == extra.get("video")
    assert message.presence == extra.get("presence")
    assert (message.relay, message.name) == (extra.get("relay"), extra.get("name"))
    assert message.attempt == extra.get("attempt")
    assert message.member == extra.get("member")
    assert message.muted == extra.get("muted")
    assert len(message.nonce) == 16


def test_signed_lists_cover_every_fingerprint_and_ice_credential() -> None:
    creds = sdp_credentials(SDP)
    assert len(creds.dtls) == 3  # the session-level one and both media-level ones
    assert creds.ice_ufrag == ["ufA1"]
    assert creds.ice_pwd == ["pwdAAAAAAAAAAAAAAAAAAAAA"]


def test_the_relay_sees_no_sdp_no_keys_no_call_id(pair: ConnectionPair) -> None:
    data = pair.seal(pair.alice, "offer", sdp=SDP, video=True)
    for secret in [b"ufA1", CALL_ID.encode(), b"offer", b"fingerprint", pair.alice.public_key]:
        assert secret not in data


# --- refusals, one per reason -----------------------------------------------------------------


def test_bad_signature(pair: ConnectionPair) -> None:
    fields = _valid_fields(pair)
    forged = sign_and_seal(MALLORY, pair.bob.public_key, fields)  # "from" still says alice
    with pytest.raises(BadSignature, match="bad signature") as info:
        pair.deliver(pair.bob, forged)
    assert info.value.code == ExitCode.IDENTITY


def test_signature_covers_every_field(pair: ConnectionPair) -> None:
    fields = _valid_fields(pair)
    signed = _plaintext(pair.bob, sign_and_seal(pair.alice, pair.bob.public_key, fields))
    for key, value in [("call_id", "0therca11id0000"), ("ts", fields["ts"] + 1), ("video", False)]:
        tampered = dict(signed, **{key: value})
        with pytest.raises(BadSignature):
            pair.deliver(pair.bob, _seal_raw(pair, json.dumps(tampered).encode()))


@pytest.mark.parametrize(
    ("field", "drop"),
    [("dtls", 0), ("dtls", 2), ("ice_ufrag", 0), ("ice_pwd", 0)],
)
def test_sdp_not_covered_by_the_signed_lists(pair: ConnectionPair, field: str, drop: int) -> None:
    fields = _valid_fields(pair)
    fields[field] = [v for i, v in enumerate(fields[field]) if i != drop]
    data = sign_and_seal(pair.alice, pair.bob.public_key, fields)
    with pytest.raises(UncoveredSdp, match="not cover"):
        pair.deliver(pair.bob, data)


def test_sdp_without_any_fingerprint(pair: ConnectionPair) -> None:
    fields = _valid_fields(pair)
    fields["sdp"] = "\r\n".join(x for x in SDP.split("\r\n") if "fingerprint" not in x)
    data = sign_and_seal(pair.alice, pair.bob.public_key, fields)
    with pytest.raises(UncoveredSdp, match="no DTLS fingerprint"):
        pair.deliver(pair.bob, data)


def test_unknown_sender_is_refused_unless_the_caller_allows_it(pair: ConnectionPair) -> None:
    data = seal_message(MALLORY, pair.bob.public_key, "ring", CALL_ID, pair.now)
    with pytest.raises(UnknownSender, match="unknown key") as info:
        pair.deliver(pair.bob, data)
    assert info.value.sender_key == MALLORY.public_key
    received = pair.deliver(pair.bob, data, allow_unknown=True)
    assert received.contact is None and received.message.sender == MALLORY.public_key


def test_changed_key_is_always_refused(pair: ConnectionPair) -> None:
    """A relay swaps Bob's answer for one signed by another key: Alice expected Bob's pinned key."""

    def expecting_bob(key: bytes) -> SenderStatus:
        return (
            SenderStatus.known("bob") if key == pair.bob.public_key else SenderStatus.changed("bob")
        )

    swapped = seal_message(
        MALLORY, pair.alice.public_key, "answer", CALL_ID, pair.now, sdp=SDP, video=True
    )
    for allow in (False, True):
        with pytest.raises(ChangedKey, match="key of contact bob has changed") as info:
            pair.deliver(pair.alice, swapped, lookup=expecting_bob, allow_unknown=allow)
        assert info.value.contact == "bob"


@pytest.mark.parametrize("skew", [-121.0, 121.0, 1e9])
def test_stale_timestamp(pair: ConnectionPair, skew: float) -> None:
    data = pair.seal(pair.alice, "ring")
    pair.now += skew
    with pytest.raises(StaleMessage, match="stale"):
        pair.deliver(pair.bob, data)


@pytest.mark.parametrize("skew", [-119.0, 119.0])
def test_timestamp_inside_the_window_is_fine(pair: ConnectionPair, skew: float) -> None:
    data = pair.seal(pair.alice, "ring")
    pair.now += skew
    assert pair.deliver(pair.bob, data).message.kind == "ring"


def test_replayed_nonce(pair: ConnectionPair) -> None:
    data = pair.seal(pair.alice, "hangup")
    pair.deliver(pair.bob, data)
    with pytest.raises(ReplayedMessage, match="replayed"):
        pair.deliver(pair.bob, data)
    pair.now += 60
    with pytest.raises(ReplayedMessage):
        pair.deliver(pair.bob, data)
    pair.now += 61  # the guard may forget now, because the timestamp check refuses it
    with pytest.raises(StaleMessage):
        pair.deliver(pair.bob, data)


def test_replay_guard_forgets_expired_nonces_and_has_a_cap() -> None:
    guard = ReplayGuard(window=120, max_entries=2)
    guard.check_and_remember(b"k", b"n1", timestamp=0, now=0)
    guard.check_and_remember(b"k", b"n2", timestamp=0, now=0)
    with pytest.raises(ReplayGuardFull):
        guard.check_and_remember(b"k", b"n3", timestamp=0, now=0)
    guard.check_and_remember(b"k", b"n3", timestamp=200, now=200)
    assert len(guard) == 1


def test_oversize_is_refused_before_decrypting(
    pair: ConnectionPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decrypt(*args: object) -> bytes:
        raise AssertionError("decrypted an oversize message")

    monkeypatch.setattr(nacl.public.SealedBox, "decrypt", no_decrypt)
    with pytest.raises(OversizeMessage) as info:
        pair.deliver(pair.bob, b"\0" * (MAX_MESSAGE_BYTES + 1))
    assert info.value.code == ExitCode.PROTOCOL


def test_sender_refuses_to_build_an_oversize_message(pair: ConnectionPair) -> None:
    with pytest.raises(ProtocolError, match="over the limit"):
        pair.seal(pair.alice, "offer", sdp=SDP + "a=x:" + "y" * MAX_MESSAGE_BYTES, video=True)


def test_not_addressed_to_us(pair: ConnectionPair) -> None:
    """Bob re-seals Alice's signed offer to Carol, hoping Carol takes it as Alice calling her."""
    carol = Identity.from_seed(b"\x0c" * 32)
    plaintext = nacl.public.SealedBox(pair.bob.box_private_key()).decrypt(
        pair.seal(pair.alice, "offer", sdp=SDP, video=True)
    )
    resealed = nacl.public.SealedBox(carol.box_private_key().public_key).encrypt(plaintext)
    guard = ReplayGuard()
    with pytest.raises(NotForUs, match="addressed to another"):
        open_message(carol, resealed, pair.now, guard, pair.lookup)


def test_undecryptable(pair: ConnectionPair) -> None:
    to_alice = pair.seal(pair.bob, "ring")
    with pytest.raises(UndecryptableMessage):
        pair.deliver(pair.bob, to_alice)


def _seal_raw(pair: ConnectionPair, plaintext: bytes) -> bytes:
    return bytes(nacl.public.SealedBox(pair.bob.box_private_key().public_key).encrypt(plaintext))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda f: f.update(v=2),
        lambda f: f.update(v=True),
        lambda f: f.update(type="dial"),
        lambda f: f.update(type=["offer"]),
        lambda f: f.update(call_id="short"),
        lambda f: f.update(call_id=7),
        lambda f: f.update(ts=1.5),
        lambda f: f.update(ts=10**400),
        lambda f: f.update(ts=-1),
        lambda f: f.update(video="yes"),
        lambda f: f.update(extra=1),
        lambda f: f.pop("nonce"),
        lambda f: f.pop("sig"),
        lambda f: f.update(nonce="AAAA"),
        lambda f: f.update(nonce="!!"),
        lambda f: f.update(dtls="sha-256 AA"),
        lambda f: f.update(sdp=None),
        lambda f: f.update(**{"from": 5}),
    ],
)
def test_malformed_fields(pair: ConnectionPair, mutate: Any) -> None:
    fields = _plaintext(
        pair.bob, sign_and_seal(pair.alice, pair.bob.public_key, _valid_fields(pair))
    )
    mutate(fields)
    # Re-signed, so that only the malformation can be the reason for the refusal.
    if "sig" in fields:
        fields = _plaintext(pair.bob, sign_and_seal(pair.alice, pair.bob.public_key, fields))
    with pytest.raises(MalformedMessage, match="malformed"):
        pair.deliver(pair.bob, _seal_raw(pair, json.dumps(fields).encode()))


@pytest.mark.parametrize(
    "plaintext", [b"", b"\xff\xfe", b"[]", b"null", b"{", b"[" * 100_000, b'{"v": NaN}']
)
def test_malformed_plaintext(pair: ConnectionPair, plaintext: bytes) -> None:
    with pytest.raises(MalformedMessage):
        pair.deliver(pair.bob, _seal_raw(pair, plaintext[: MAX_MESSAGE_BYTES - 100]))


@pytest.mark.parametrize("attempt", [0, -1, 1_000_001, 1.0, True, "1", None])
def test_a_reoffer_needs_an_attempt_number_in_range(pair: ConnectionPair, attempt: Any) -> None:
    fields = _valid_fields(pair)
    fields.update(type="reoffer", attempt=attempt)
    with pytest.raises(MalformedMessage, match="malformed"):
        pair.deliver(pair.bob, sign_and_seal(pair.alice, pair.bob.public_key, fields))


def test_only_reoffer_and_reanswer_carry_an_attempt(pair: ConnectionPair) -> None:
    fields = _valid_fields(pair)
    fields.update(attempt=1)  # an offer
    with pytest.raises(MalformedMessage, match="wrong fields"):
        pair.deliver(pair.bob, sign_and_seal(pair.alice, pair.bob.public_key, fields))


def test_presence_needs_an_empty_call_id_and_a_known_state(pair: ConnectionPair) -> None:
    with pytest.raises(MalformedMessage):
        pair.seal(pair.alice, "presence", presence="online", call_id=CALL_ID)
    with pytest.raises(MalformedMessage):
        pair.seal(pair.alice, "presence", presence="hiding")


def test_every_refusal_has_a_distinct_reason_and_the_right_error_family() -> None:
    identity: list[type[WireRefusal]] = [
        BadSignature,
        UncoveredSdp,
        UnknownSender,
        ChangedKey,
        StaleMessage,
        ReplayedMessage,
        NotForUs,
    ]
    protocol: list[type[WireRefusal]] = [
        OversizeMessage,
        UndecryptableMessage,
        MalformedMessage,
        ReplayGuardFull,
    ]
    reasons = [cls.reason for cls in identity + protocol]
    assert len(set(reasons)) == len(reasons)
    assert all(issubclass(c, IdentityError) and issubclass(c, WireRefusal) for c in identity)
    assert all(issubclass(c, ProtocolError) and issubclass(c, WireRefusal) for c in protocol)

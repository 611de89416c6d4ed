"""A relay that tampers with the call: every kind of tampering is refused and no media flows.

The hostile relay here is omniscient (the test can open alice's mail with her key), which makes it
stronger than any real relay: it can even put the right call id into a forged answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcall.engine.identity import Identity, load_identity
from tcall.engine.relay.protocol import mailbox_id
from tcall.engine.wire import seal_message
from tests.support.hostile import HostileRelay, drop, peek, replay, substitute
from tests.support.users import User


def identity_of(user: User) -> Identity:
    return load_identity(user.home / "identity.key")


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[HostileRelay, User, User, User]]:
    with HostileRelay() as relay:
        alice = User("alice", tmp_path / "alice", relay.url)
        bob = User("bob", tmp_path / "bob", relay.url)
        mallory = User("mallory", tmp_path / "mallory", relay.url)
        alice.add(bob)
        bob.add(alice)
        bob.set("answer_with_camera", "on")
        yield relay, alice, bob, mallory


def mailbox(user: User) -> str:
    return mailbox_id(identity_of(user).public_key)


def assert_no_media(summary: dict[str, object]) -> None:
    assert summary["frames_received"] == 0


def test_answer_swapped_for_one_signed_by_another_key(
    hostile: tuple[HostileRelay, User, User, User],
) -> None:
    relay, alice, bob, mallory = hostile
    alice_id, mallory_id = identity_of(alice), identity_of(mallory)

    def swap_answer(to: str, payload: bytes) -> bytes:
        message = peek(alice_id, payload) if to == mailbox(alice) else None
        if message is None or message.kind != "answer":
            return payload
        return seal_message(
            mallory_id,
            alice_id.public_key,
            "answer",
            message.call_id,
            time.time(),
            sdp=message.sdp,
            video=True,
        )

    relay.on_route = substitute(swap_answer)
    listener = bob.listen("--auto-answer")
    code, out, err = alice.call("bob", "--duration", "3")
    listener.stop()
    assert code == 7, err
    assert out[-1]["outcome"] == "identity_error"
    assert "signed by another key" in out[-1]["reason"]
    assert_no_media(out[-1])


def test_replayed_messages_are_refused(hostile: tuple[HostileRelay, User, User, User]) -> None:
    relay, alice, bob, _ = hostile
    relay.on_route = replay(2)
    listener = bob.listen("--auto-answer")
    code, out, err = alice.call("bob", "--duration", "3")
    assert code == 7, out
    assert out[-1]["outcome"] == "identity_error"
    assert "replayed" in out[-1]["reason"]
    assert_no_media(out[-1])
    listener.wait_for("refused", reason="replayed")
    listener.stop()


def test_reordered_replies_end_the_call(hostile: tuple[HostileRelay, User, User, User]) -> None:
    relay, alice, bob, _ = hostile
    alice_id = identity_of(alice)
    held: list[bytes] = []

    def ring_after_answer(to: str, payload: bytes) -> list[tuple[str, bytes]]:
        message = peek(alice_id, payload) if to == mailbox(alice) else None
        if message is not None and message.kind == "ring":
            held.append(payload)
            return []
        if message is not None and message.kind == "answer":
            return [(to, payload)] + [(to, p) for p in held]
        return [(to, payload)]

    relay.on_route = ring_after_answer
    listener = bob.listen("--auto-answer")
    code, out, err = alice.call("bob", "--duration", "3")
    listener.stop()
    assert code == 11, err
    assert out[-1]["outcome"] == "protocol_error"
    assert "unexpected ring" in out[-1]["reason"]


def test_forged_offer_is_refused_with_the_identity_error(
    hostile: tuple[HostileRelay, User, User, User],
) -> None:
    relay, alice, bob, mallory = hostile
    listener = bob.listen("--auto-answer")
    bob_id, alice_key = identity_of(bob), identity_of(alice).public_key
    forged = seal_message(identity_of(mallory), bob_id.public_key, "ring", "a" * 32, time.time())
    # Mallory claims to be alice: rewrite the sender inside her own (validly sealed) message.
    from tcall.engine.wire import _b64, sign_and_seal  # noqa: PLC0415 - test-only forging helpers

    fields = {
        "v": 1,
        "type": "offer",
        "call_id": "b" * 32,
        "from": _b64(alice_key),
        "to": _b64(bob_id.public_key),
        "nonce": _b64(b"n" * 16),
        "ts": int(time.time() * 1000),
        "sdp": "v=0\r\na=fingerprint:sha-256 00:11\r\n",
        "dtls": ["sha-256 00:11"],
        "ice_ufrag": [],
        "ice_pwd": [],
        "video": True,
    }
    relay.inject(mailbox(bob), forged)
    relay.inject(mailbox(bob), sign_and_seal(identity_of(mallory), bob_id.public_key, fields))
    refused = listener.wait_for("refused", reason="bad_signature")
    assert "bad signature" in refused["message"]
    listener.stop()
    assert not [e for e in listener.events if e["event"] == "incoming"]


def test_corrupted_envelopes_are_refused_and_nothing_rings(
    hostile: tuple[HostileRelay, User, User, User],
) -> None:
    relay, alice, bob, _ = hostile
    bob_box = mailbox(bob)

    def corrupt(to: str, payload: bytes) -> bytes:
        return payload[:40] + bytes([payload[40] ^ 1]) + payload[41:] if to == bob_box else payload

    relay.on_route = substitute(corrupt)
    listener = bob.listen("--auto-answer")
    code, out, _ = alice.call("bob", "--ring-timeout", "3")
    assert code == 10
    assert_no_media(out[-1])
    listener.wait_for("refused", reason="undecryptable")
    listener.stop()
    assert not [e for e in listener.events if e["event"] == "incoming"]


def test_dropping_relay_can_only_deny_service(
    hostile: tuple[HostileRelay, User, User, User],
) -> None:
    relay, alice, bob, _ = hostile
    relay.on_route = drop()
    listener = bob.listen("--auto-answer")
    code, out, _ = alice.call("bob", "--ring-timeout", "3")
    listener.stop()
    assert code == 10
    assert out[-1]["outcome"] == "no_answer"
    assert_no_media(out[-1])
    assert not [e for e in listener.events if e["event"] == "incoming"]

"""Which call a verified message belongs to, and what an offer for a new call becomes."""

from __future__ import annotations

from datetime import datetime

from tcall.engine.contacts import Contact
from tcall.engine.core.call import CallCore, CallSettings, PeerMessage
from tcall.engine.core.quota import Quota
from tcall.engine.core.switchboard import (
    ForCall,
    Ignore,
    NotRinging,
    Refuse,
    Ring,
    refusal,
    route,
)
from tcall.engine.events import CallPhase, Missed, Silenced
from tcall.engine.settings import Settings
from tcall.engine.wire import Message, ReplayedMessage, StaleMessage, UndecryptableMessage

ME = b"m" * 32
BOB = Contact("bob", b"b" * 32, verified=True)
CAROL = Contact("carol", b"c" * 32)
STRANGER = b"s" * 32
NOON = datetime(2026, 12, 2, 12, 0)


def message(kind: str, sender: bytes, call_id: str = "call-1", **fields: object) -> Message:
    return Message(kind, call_id, sender, ME, b"n" * 16, 0.0, **fields)  # type: ignore[arg-type]


def routed(
    msg: Message, contact: Contact | None, calls: dict[str, CallCore] | None = None
) -> object:
    return route(
        msg,
        contact,
        calls or {},
        Settings.load(),
        NOON,
        auto_answer_contacts=False,
        call_settings=CallSettings(),
    )


def our_call_with_bob() -> dict[str, CallCore]:
    return {"call-1": CallCore("call-1", "bob", True, BOB.public_key, is_contact=True)}


def test_an_offer_from_a_contact_rings() -> None:
    verdict = routed(message("offer", BOB.public_key, sdp="v=0", video=True), BOB)
    assert isinstance(verdict, Ring) and not verdict.auto_answer
    core = verdict.core
    assert (core.peer, core.peer_key, core.verified, core.is_contact) == (
        "bob",
        BOB.public_key,
        True,
        True,
    )
    assert core.offer_sdp == "v=0" and core.peer_camera


def test_an_offer_from_a_stranger_is_silenced_by_default() -> None:
    verdict = routed(message("offer", STRANGER, sdp="v=0", video=False), None)
    assert isinstance(verdict, NotRinging) and isinstance(verdict.event, Silenced)
    assert verdict.event.peer.startswith("unknown ") and not verdict.reply_busy


def test_an_offer_while_in_a_call_is_missed_and_the_caller_hears_busy() -> None:
    verdict = routed(
        message("offer", CAROL.public_key, "call-2", sdp="v=0", video=True),
        CAROL,
        our_call_with_bob(),
    )
    assert isinstance(verdict, NotRinging) and isinstance(verdict.event, Missed)
    assert verdict.reply_busy


def test_a_message_for_our_call_from_its_peer_goes_to_the_call() -> None:
    verdict = routed(message("ring", BOB.public_key), BOB, our_call_with_bob())
    assert verdict == ForCall("call-1", PeerMessage("ring"))


def test_late_mail_is_refused_but_ends_no_call() -> None:
    verdict = routed(message("hangup", BOB.public_key, "old-call-9"), BOB, our_call_with_bob())
    assert isinstance(verdict, Refuse) and verdict.fail_call is None
    assert verdict.event.reason == "protocol"


def test_junk_and_strangers_messages_never_end_a_ringing_call() -> None:
    """Anyone who knows our address can send junk, or validly signed stale messages of their own;
    only verified evidence about the call's own path may end it."""
    calls = our_call_with_bob()
    junk = refusal(UndecryptableMessage("junk"), calls)
    stale = StaleMessage("stale")
    stale.sender_key, stale.call_id = STRANGER, "call-1"
    assert junk.fail_call is None and refusal(stale, calls).fail_call is None


def test_a_replay_of_the_peers_own_message_ends_the_ringing_call() -> None:
    calls = our_call_with_bob()
    replayed = ReplayedMessage("replayed message")
    replayed.sender_key, replayed.call_id = BOB.public_key, "call-1"
    assert refusal(replayed, calls).fail_call == "call-1"
    calls["call-1"].phase = CallPhase.CONNECTED  # once set up, the call no longer needs the relay
    assert refusal(replayed, calls).fail_call is None


def test_an_unknown_key_speaking_for_a_contacts_call_is_a_changed_key() -> None:
    verdict = routed(message("answer", STRANGER, sdp="v=0", video=True), None, our_call_with_bob())
    assert isinstance(verdict, Refuse) and verdict.fail_call == "call-1"
    assert verdict.event.reason == "changed_key"
    assert "signed by another key" in verdict.event.message
    assert "the key of contact bob has changed" in verdict.event.message


def test_another_contact_speaking_for_the_call_is_an_identity_error() -> None:
    verdict = routed(
        message("answer", CAROL.public_key, sdp="v=0", video=True), CAROL, our_call_with_bob()
    )
    assert isinstance(verdict, Refuse) and verdict.fail_call == "call-1"
    assert verdict.event.reason == "identity"


def test_a_quota_shows_a_few_reports_a_window_and_counts_the_rest() -> None:
    quota = Quota(window_s=60.0, shown=2)
    assert [quota.report(now=1.0) for _ in range(5)] == [True, True, False, False, False]
    assert quota.close() == 3
    assert quota.report(now=70.0) and quota.opens_window


def test_late_mail_for_a_call_we_know_is_over_is_dropped_quietly() -> None:
    """A silenced caller's courtesy hangup is expected: no false alarm (issue #13, item 10)."""
    verdict = route(
        message("hangup", STRANGER, "silenced-call-1"),
        None,
        {},
        Settings.load(),
        NOON,
        auto_answer_contacts=False,
        call_settings=CallSettings(),
        over={"silenced-call-1"},
    )
    assert verdict == Ignore()

"""Which call a verified message belongs to, and what happens to an offer for a new call.

The Phone opens and verifies every message (`tcall.engine.wire`) and then asks `route` what it
means: input for one of our calls, a new incoming call (judged by `policy` before anything rings),
a call that policy does not let ring, or a message to refuse; and `contact_request` what an offer
or a request from someone who is not a contact asks of our contacts. Pure functions over the calls
in progress; the Phone performs the answer.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import datetime

from tcall.engine.contacts import Contact
from tcall.engine.core.call import CallCore, CallSettings, PeerMessage
from tcall.engine.core.policy import decide_incoming
from tcall.engine.errors import ExitCode, IdentityError, ProtocolError, TcallError
from tcall.engine.events import Missed, NotRung, Refused, Silenced
from tcall.engine.identity import fingerprint
from tcall.engine.requests import ContactRequest, suggested_name
from tcall.engine.settings import Settings
from tcall.engine.wire import ChangedKey, Message, WireRefusal


@dataclass(frozen=True)
class ForCall:
    call_id: str
    input: PeerMessage


@dataclass(frozen=True)
class Ring:
    """A new incoming call that may ring (and may be answered at once)."""

    core: CallCore
    auto_answer: bool


@dataclass(frozen=True)
class NotRinging:
    """An offer that policy did not let ring: logged, reported, and the caller hears nothing
    (or "busy" when we are in another call)."""

    event: NotRung
    video: bool
    reply_busy: bool


@dataclass(frozen=True)
class Refuse:
    """A message we cannot trust or use: always reported. It ends a call (`fail_call`, with
    `error`) only when it is verified evidence that the path to that call's peer is tampered with:
    signed by the peer and carrying the call's id (a replay, a stale copy) or carrying the call's id
    under another key, while the call still waits for its answer. Anything else (junk, strangers'
    messages, late mail) ends nothing: a stranger who knows our address must not be able to end a
    ringing call, and calls already set up never depend on the relay."""

    event: Refused
    error: TcallError
    fail_call: str | None = None


@dataclass(frozen=True)
class Ignore:
    """Late mail for a call we know is over (one policy never let ring, or one that ended): the
    caller's courtesy hangup after we silenced it, a hangup that crossed ours. Nothing is wrong."""


Route = ForCall | Ring | NotRinging | Refuse | Ignore


def refusal(error: TcallError, calls: Mapping[str, CallCore], call_id: str | None = None) -> Refuse:
    """Report `error`; end call `call_id` with it if that call still waits for its answer. A
    refusal from `open_message` names its own call id, and counts only if its sender is that
    call's peer."""
    reason = getattr(error, "reason", "identity" if error.code == ExitCode.IDENTITY else "protocol")
    if call_id is None and isinstance(error, WireRefusal) and error.call_id is not None:
        claimed = calls.get(error.call_id)
        if claimed is not None and claimed.peer_key == error.sender_key:
            call_id = error.call_id
    call = calls.get(call_id) if call_id is not None else None
    fail = call_id if call is not None and call.waiting else None
    return Refuse(Refused(reason, str(error)), error, fail)


def contact_request(
    message: Message, contact: Contact | None, taken: Container[str], now: float
) -> ContactRequest | None:
    """The contact request a verified offer or request makes, if any: only a stranger's does
    (`contact` None), whatever policy does with the call, and it never rings. A contact's, blocked
    or not, makes none: a blocked one is dropped, and the others are our contacts already. `taken`
    holds our contacts' names, which a stranger may not take (`suggested_name`)."""
    if contact is not None or message.kind not in ("offer", "request"):
        return None
    name = suggested_name(message.name, taken)
    return ContactRequest(message.sender, name, message.relay or "", now)


def peer_name(contact: Contact | None, key: bytes) -> str:
    return contact.name if contact else f"unknown {fingerprint(key)[:19]}"


def route(
    message: Message,
    contact: Contact | None,
    calls: Mapping[str, CallCore],
    settings: Settings,
    now: datetime,
    *,
    auto_answer_contacts: bool,
    call_settings: CallSettings,
    over: Container[str] = (),
) -> Route:
    """What a verified call message (anything but presence) means to us. `over` holds the ids of
    recent calls that are over, so their late mail is dropped quietly."""
    call = calls.get(message.call_id)
    if call is None and message.call_id in over:
        return Ignore()
    if message.kind == "offer" and call is None:
        return _offer(message, contact, calls, settings, now, auto_answer_contacts, call_settings)
    if call is None:
        # Late mail for a call that is over (the relay holds messages for a while): reported, but
        # it must not end the call we are making now.
        return refusal(ProtocolError(f"a {message.kind} for no call of ours"), calls)
    if message.sender != call.peer_key:
        text = f"a {message.kind} for our call with {call.peer} was signed by another key"
        if call.is_contact and contact is None:
            # An unknown key speaking for a contact: to us, that contact's key has changed.
            changed = ChangedKey.for_contact(call.peer, message.sender)
            error: TcallError = ChangedKey(f"{text}: {changed}", call.peer, message.sender)
        else:
            error = IdentityError(text)
        return refusal(error, calls, call.call_id)
    return ForCall(
        call.call_id, PeerMessage(message.kind, message.sdp, message.video, message.attempt)
    )


def _offer(
    message: Message,
    contact: Contact | None,
    calls: Mapping[str, CallCore],
    settings: Settings,
    now: datetime,
    auto_answer_contacts: bool,
    call_settings: CallSettings,
) -> Route:
    peer = peer_name(contact, message.sender)
    decision = decide_incoming(
        settings,
        contact,
        wants_video=True,  # the offer's flag is the caller's camera; any call may turn video on
        now=now,
        in_call=any(not c.ended for c in calls.values()),
        auto_answer_contacts=auto_answer_contacts,
    )
    if decision.action == "silence":
        return NotRinging(Silenced(peer, decision.reason), bool(message.video), False)
    if decision.action in ("miss", "busy"):
        busy = decision.action == "busy" and contact is not None
        return NotRinging(Missed(peer, decision.reason), bool(message.video), busy)
    core = CallCore(
        call_id=message.call_id,
        peer=peer,
        peer_key=message.sender,
        outgoing=False,
        settings=call_settings,
        video_allowed=decision.video,
        verified=bool(contact and contact.verified),
        is_contact=contact is not None,
        offer_sdp=message.sdp,
        peer_camera=bool(message.video),
    )
    return Ring(core, decision.action == "auto_answer")

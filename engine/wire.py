"""The signaling wire protocol, sans-I/O: build and open the sealed messages that cross the relay.

Messages: offer, answer, ring, decline, busy, hangup, presence, video (mid-call: the
sender's camera went on or off, so the receiver can ask its user before showing it), request (a
contact request: "add me back"), and the three that bring a connected call's media back over a new
path (issue #16): reoffer and reanswer (a fresh peer connection's SDP under the same call id, with
an "attempt" number so that a late answer to an earlier attempt is recognised) and reconnect (the
callee's network changed: please re-offer; only the caller re-offers, so offers never cross). Offers and answers carry full-gathering SDP (every ICE candidate is
already in it), so there are no trickle-ICE messages.

A request carries the sender's own relay URL ("relay", "" for none) and the name they suggest for
themselves ("name", "" for none), so someone who has our key but whom we never added can add us back
with one command; an offer may carry the relay too, so a first call is a request as well (with no
name). Both are the sender's words: the wire checks only their shape (a relay URL or "", a name of at
most 64 characters); what the name may be used for is decided by the receiver, which never trusts it.

Each message is a JSON object, signed, then sealed:

    {"v": 1, "type": "offer", "call_id": "…", "from": b64(sender Ed25519 key),
     "to": b64(recipient Ed25519 key), "nonce": b64(16 random bytes), "ts": <unix ms>,
     ...type-specific fields..., "sig": b64(Ed25519 signature)}

- The signature covers `"tcall-signal-v1\\0"` followed by the canonical JSON (sorted keys, no
  spaces, ASCII) of every field except "sig": the type, call id, both keys, nonce, timestamp
  and, for offer/answer, the SDP and the explicit lists "dtls" (every `a=fingerprint:` line,
  session and media level), "ice_ufrag" and "ice_pwd" (every ICE credential in the SDP).
- The signed JSON is sealed with libsodium's sealed box (PyNaCl `SealedBox`) to the recipient's
  X25519 key, converted from their Ed25519 key. The relay sees ciphertext and its size only.

`open_message` checks, in this order, and refuses with a distinct `WireRefusal` subclass whose
`reason` a caller can put in JSON: oversize (before decrypting), undecryptable, malformed,
not addressed to us, bad signature, SDP credentials not covered by the signed lists, stale
timestamp, changed key, unknown sender (unless the caller allows unknown senders), replay.
Nothing here owns a clock or a socket: `now` (unix seconds) is always passed in.
"""

from __future__ import annotations

import base64
import heapq
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import nacl.exceptions
import nacl.public
import nacl.signing
import nacl.utils

from tcall.engine.address import check_relay_url
from tcall.engine.core.group import Roster, RosterEntry, entry_from_wire, entry_to_wire
from tcall.engine.errors import IdentityError, ProtocolError, TcallError
from tcall.engine.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Identity, box_public_key
from tcall.engine.identity import fingerprint as key_fingerprint

VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MAX_SKEW_SECONDS = 120.0
NONCE_BYTES = 16
KINDS = (
    "offer",
    "answer",
    "ring",
    "decline",
    "busy",
    "hangup",
    "presence",
    "video",
    "request",
    "reoffer",
    "reanswer",
    "reconnect",
    "join",
    "added",
    "leave",
    "mic",
)
MAX_ATTEMPT = 1_000_000  # re-offers in one call: about one every few seconds for a long outage
NO_CALL_KINDS = ("presence", "request")  # messages about no call: their call id is ""
MAX_NAME_CHARS = 64  # a suggested name: as long as a contact name may be
MAX_RELAY_CHARS = 512
PRESENCE_STATES = ("online", "offline")
_SIGNING_CONTEXT = b"tcall-signal-v1\0"
_CALL_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_COMMON_FIELDS = {"v", "type", "call_id", "from", "to", "nonce", "ts", "sig"}
_SDP_FIELDS = {"sdp", "dtls", "ice_ufrag", "ice_pwd", "video"}
_KIND_FIELDS: dict[str, set[str]] = {
    "offer": _SDP_FIELDS,
    "answer": _SDP_FIELDS,
    "reoffer": _SDP_FIELDS | {"attempt"},
    "reanswer": _SDP_FIELDS | {"attempt"},
    "reconnect": set(),
    "video": {"video"},  # mid-call: the sender turned its camera on (true) or off (false)
    "presence": {"presence"},
    "request": {"relay", "name"},  # a contact request: how to reach the sender, and a name
    "ring": set(),
    "decline": set(),
    "busy": set(),
    "hangup": set(),
    # Group calls (engine/core/group.py), under the group's id: I am in; I invited "member"; I left.
    "join": set(),
    "added": {"member"},
    "leave": set(),
    "mic": {"muted"},  # the sender muted (true) or unmuted (false) their microphone
}
# Fields a kind may carry or leave out: an offer may be a contact request too, and an invitation
# to a group call (or a group member's pair call) when it carries the group's roster.
_OPTIONAL_FIELDS: dict[str, set[str]] = {"offer": {"relay", "group"}}


class WireRefusal(TcallError):
    """A message that `open_message` refused; `reason` is a stable code for JSON output.

    A refusal made after the signature was verified (stale, replayed, ...) names the `sender_key`
    and `call_id` it came with, so a caller can tell whether it concerns one of its calls; before
    that, nothing in the message can be trusted and both are None.
    """

    reason: ClassVar[str] = "refused"
    sender_key: bytes | None = None
    call_id: str | None = None


class OversizeMessage(WireRefusal, ProtocolError):
    reason = "oversize"


class UndecryptableMessage(WireRefusal, ProtocolError):
    reason = "undecryptable"


class MalformedMessage(WireRefusal, ProtocolError):
    reason = "malformed"


class NotForUs(WireRefusal, IdentityError):
    reason = "not_for_us"


class BadSignature(WireRefusal, IdentityError):
    reason = "bad_signature"


class UncoveredSdp(WireRefusal, IdentityError):
    reason = "uncovered_sdp"


class StaleMessage(WireRefusal, IdentityError):
    reason = "stale"


class ReplayedMessage(WireRefusal, IdentityError):
    reason = "replayed"


class ReplayGuardFull(WireRefusal, ProtocolError):
    reason = "flood"


class UnknownSender(WireRefusal, IdentityError):
    """A correctly signed message from a key that belongs to no contact."""

    reason = "unknown_sender"

    def __init__(self, message: str, sender_key: bytes) -> None:
        super().__init__(message)
        self.sender_key = sender_key


class ChangedKey(WireRefusal, IdentityError):
    """A message from a key other than the one pinned for the contact it must come from."""

    reason = "changed_key"

    def __init__(self, message: str, contact: str, sender_key: bytes) -> None:
        super().__init__(message)
        self.contact = contact
        self.sender_key = sender_key

    @classmethod
    def for_contact(cls, contact: str, sender_key: bytes) -> ChangedKey:
        return cls(
            f"the key of contact {contact} has changed (new fingerprint "
            f"{key_fingerprint(sender_key)}); refusing until you re-add and verify {contact}",
            contact=contact,
            sender_key=sender_key,
        )


@dataclass(frozen=True)
class SenderStatus:
    """What the contact book says about a sender key."""

    kind: Literal["known", "unknown", "changed"]
    name: str | None = None

    @classmethod
    def known(cls, name: str) -> SenderStatus:
        return cls("known", name)

    @classmethod
    def unknown(cls) -> SenderStatus:
        return cls("unknown")

    @classmethod
    def changed(cls, name: str) -> SenderStatus:
        return cls("changed", name)


PinnedKeyLookup = Callable[[bytes], SenderStatus]


@dataclass(frozen=True)
class Message:
    """One verified signaling message."""

    kind: str
    call_id: str
    sender: bytes
    recipient: bytes
    nonce: bytes
    timestamp: float  # unix seconds, millisecond resolution
    sdp: str | None = None
    video: bool | None = None
    presence: str | None = None
    relay: str | None = None  # request, and offers that carry it: the sender's relay URL, or ""
    name: str | None = None  # request: the name the sender suggests for themselves, or ""
    attempt: int | None = None  # reoffer, reanswer: which re-offer of the call
    group: Roster | None = None  # an offer within a group call: the group's roster
    member: RosterEntry | None = None  # added: whom the sender invited
    muted: bool | None = None  # mic: the sender's microphone is muted


@dataclass(frozen=True)
class Received:
    """An opened message and who sent it: a contact name, or None for an unknown key."""

    message: Message
    contact: str | None


@dataclass(frozen=True)
class SdpCredentials:
    """Every DTLS fingerprint and ICE credential an SDP carries, as sorted unique lists."""

    dtls: list[str]
    ice_ufrag: list[str]
    ice_pwd: list[str]


def sdp_credentials(sdp: str) -> SdpCredentials:
    """Read fingerprints and ICE credentials the way aiortc's SDP parser reads them."""
    dtls: set[str] = set()
    ufrags: set[str] = set()
    pwds: set[str] = set()
    for line in sdp.splitlines():
        if not line.startswith("a=") or ":" not in line:
            continue
        attr, value = line[2:].split(":", 1)
        if attr == "fingerprint":
            dtls.add(" ".join(value.split()))
        elif attr == "ice-ufrag":
            ufrags.add(value)
        elif attr == "ice-pwd":
            pwds.add(value)
    return SdpCredentials(sorted(dtls), sorted(ufrags), sorted(pwds))


def new_call_id() -> str:
    return nacl.utils.random(16).hex()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _canonical(fields: dict[str, Any]) -> bytes:
    body = {k: v for k, v in fields.items() if k != "sig"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _SIGNING_CONTEXT + text.encode("ascii")


def sign_and_seal(identity: Identity, recipient_key: bytes, fields: dict[str, Any]) -> bytes:
    """Low level: sign `fields` as they are and seal them. `seal_message` builds valid fields;
    tests use this directly to forge the messages a hostile peer could send."""
    signed = dict(fields, sig=_b64(identity.sign(_canonical(fields))))
    plaintext = json.dumps(signed, separators=(",", ":")).encode("ascii")
    return bytes(nacl.public.SealedBox(box_public_key(recipient_key)).encrypt(plaintext))


def seal_message(
    identity: Identity,
    recipient_key: bytes,
    kind: str,
    call_id: str,
    now: float,
    *,
    sdp: str | None = None,
    video: bool | None = None,
    presence: str | None = None,
    relay: str | None = None,
    name: str | None = None,
    attempt: int | None = None,
    group: Roster | None = None,
    member: RosterEntry | None = None,
    muted: bool | None = None,
) -> bytes:
    """A signed message sealed to `recipient_key`, ready to hand to the relay.

    offer/answer need `sdp` (full-gathering) and `video`; video needs `video`;
    presence needs `presence` ("online"/"offline") and an empty call id; request needs `relay`
    and `name` (either may be "") and an empty call id, and an offer may carry `relay`.
    """
    fields: dict[str, Any] = {
        "v": VERSION,
        "type": kind,
        "call_id": call_id,
        "from": _b64(identity.public_key),
        "to": _b64(recipient_key),
        "nonce": _b64(nacl.utils.random(NONCE_BYTES)),
        "ts": int(round(now * 1000)),
    }
    if sdp is not None:
        creds = sdp_credentials(sdp)
        fields.update(sdp=sdp, dtls=creds.dtls, ice_ufrag=creds.ice_ufrag, ice_pwd=creds.ice_pwd)
    if video is not None:
        fields["video"] = video
    if presence is not None:
        fields["presence"] = presence
    if relay is not None:
        fields["relay"] = relay
    if name is not None:
        fields["name"] = name
    if attempt is not None:
        fields["attempt"] = attempt
    if group is not None:
        fields["group"] = group.to_wire()
    if member is not None:
        fields["member"] = entry_to_wire(member)
    if muted is not None:
        fields["muted"] = muted
    _check_fields(fields)
    sealed = sign_and_seal(identity, recipient_key, fields)
    if len(sealed) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a {kind} message would be {len(sealed)} bytes, over the limit")
    return sealed


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _decode(value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedMessage(f"malformed message: {what} is not a string")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise MalformedMessage(f"malformed message: {what} is not base64") from None
    if len(raw) != size:
        raise MalformedMessage(f"malformed message: {what} has {len(raw)} bytes, not {size}")
    return raw


def _check_fields(fields: dict[str, Any]) -> None:
    """Raise MalformedMessage unless `fields` has exactly the right fields of the right types."""
    kind = fields.get("type")
    if fields.get("v") != VERSION or type(fields.get("v")) is not int:
        raise MalformedMessage(f"malformed message: unsupported version {fields.get('v')!r}")
    if not isinstance(kind, str) or kind not in _KIND_FIELDS:
        raise MalformedMessage(f"malformed message: unknown type {str(kind)[:20]!r}")
    expected = _COMMON_FIELDS | _KIND_FIELDS[kind]
    present = set(fields) - {"sig"}
    if not expected - {"sig"} <= present <= expected | _OPTIONAL_FIELDS.get(kind, set()):
        raise MalformedMessage(f"malformed message: wrong fields for a {kind} message")
    call_id = fields["call_id"]
    if not isinstance(call_id, str) or not (
        call_id == "" if kind in NO_CALL_KINDS else _CALL_ID.fullmatch(call_id)
    ):
        raise MalformedMessage("malformed message: bad call id")
    if type(fields["ts"]) is not int or not 0 <= fields["ts"] < 2**53:
        raise MalformedMessage("malformed message: bad timestamp")
    if "attempt" in fields and not (
        type(fields["attempt"]) is int and 1 <= fields["attempt"] <= MAX_ATTEMPT
    ):
        raise MalformedMessage(f"malformed message: the attempt is not a number 1-{MAX_ATTEMPT}")
    if "muted" in fields and not isinstance(fields["muted"], bool):
        raise MalformedMessage("malformed message: 'muted' is not true/false")
    if "video" in fields and not isinstance(fields["video"], bool):
        raise MalformedMessage("malformed message: 'video' is not true/false")
    if "presence" in fields and fields["presence"] not in PRESENCE_STATES:
        raise MalformedMessage("malformed message: bad presence state")
    if "relay" in fields:
        _check_relay(fields["relay"])
    if "name" in fields and not (
        isinstance(fields["name"], str) and len(fields["name"]) <= MAX_NAME_CHARS
    ):
        raise MalformedMessage(
            f"malformed message: the name is not text of at most {MAX_NAME_CHARS} characters"
        )
    try:
        members: list[RosterEntry] = []
        if "group" in fields:
            members += _roster(fields["group"]).members
        if "member" in fields:
            members.append(entry_from_wire(fields["member"]))
    except ProtocolError as exc:
        raise MalformedMessage(f"malformed message: {exc}") from None
    for entry in members:
        _check_relay(entry.relay)
    if "sdp" in fields and not (
        isinstance(fields["sdp"], str)
        and all(_is_str_list(fields[k]) for k in ("dtls", "ice_ufrag", "ice_pwd"))
    ):
        raise MalformedMessage("malformed message: bad SDP fields")


def _check_relay(relay: Any) -> None:
    if not isinstance(relay, str) or len(relay) > MAX_RELAY_CHARS:
        raise MalformedMessage("malformed message: the relay URL is not text of a usable size")
    if relay:
        try:
            check_relay_url(relay)
        except ValueError:
            raise MalformedMessage("malformed message: not a relay URL") from None


def _parse(plaintext: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedMessage("malformed message: not JSON") from None
    if not isinstance(fields, dict) or "sig" not in fields:
        raise MalformedMessage("malformed message: not a signed JSON object")
    _check_fields(fields)
    return fields


def _check_sdp_covered(fields: dict[str, Any]) -> None:
    found = sdp_credentials(fields["sdp"])
    if not found.dtls:
        raise UncoveredSdp("the SDP carries no DTLS fingerprint")
    signed = [set(fields["dtls"]), set(fields["ice_ufrag"]), set(fields["ice_pwd"])]
    if not set(found.dtls) <= signed[0]:
        raise UncoveredSdp("the SDP has a DTLS fingerprint that the signature does not cover")
    if not (set(found.ice_ufrag) <= signed[1] and set(found.ice_pwd) <= signed[2]):
        raise UncoveredSdp("the SDP has ICE credentials that the signature does not cover")


@dataclass
class ReplayGuard:
    """Remembers the nonces of accepted messages for as long as their timestamps stay fresh."""

    window: float = MAX_SKEW_SECONDS
    max_entries: int = 100_000
    _seen: set[tuple[bytes, bytes]] = field(default_factory=set)
    _expiry: list[tuple[float, bytes, bytes]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_remember(self, sender: bytes, nonce: bytes, timestamp: float, now: float) -> None:
        """Refuse a nonce seen before (ReplayedMessage), or any when full (ReplayGuardFull)."""
        while self._expiry and self._expiry[0][0] < now:
            _, old_sender, old_nonce = heapq.heappop(self._expiry)
            self._seen.discard((old_sender, old_nonce))
        if (sender, nonce) in self._seen:
            raise ReplayedMessage("replayed message: this nonce was already used")
        if len(self._seen) >= self.max_entries:
            raise ReplayGuardFull("too many messages in the replay window; try again shortly")
        self._seen.add((sender, nonce))
        # A copy stops passing the timestamp check once `now` passes timestamp + window.
        heapq.heappush(self._expiry, (timestamp + self.window, sender, nonce))


# Messages from strangers remembered at once (for MAX_SKEW_SECONDS each): far more than people who
# are not your contacts send you in two minutes; a flood beyond it refuses only strangers.
STRANGERS_REPLAY_BUDGET = 1000


@dataclass
class ReplayGuards:
    """A replay guard for each contact and one that every stranger shares.

    A flood of validly signed messages from fresh keys fills only the strangers' guard, so it can
    never crowd out a contact (each contact's own guard is far larger than a contact sends in the
    replay window); strangers are refused only while their own guard is full.
    """

    window: float = MAX_SKEW_SECONDS
    per_contact: int = 10_000
    strangers: int = STRANGERS_REPLAY_BUDGET
    _contacts: dict[bytes, ReplayGuard] = field(default_factory=dict)
    _strangers: ReplayGuard | None = None

    def for_sender(self, sender: bytes, known: bool) -> ReplayGuard:
        if not known:
            if self._strangers is None:
                self._strangers = ReplayGuard(self.window, self.strangers)
            return self._strangers
        guard = self._contacts.get(sender)
        if guard is None:
            guard = self._contacts[sender] = ReplayGuard(self.window, self.per_contact)
        return guard


def open_message(
    identity: Identity,
    data: bytes,
    now: float,
    replay_guard: ReplayGuard | ReplayGuards,
    pinned_key_lookup: PinnedKeyLookup,
    *,
    allow_unknown: bool = False,
) -> Received:
    """Decrypt and verify one message for `identity`; raise a WireRefusal if anything is off.

    With `allow_unknown`, a correctly signed message from a key that is no contact is returned
    with `contact=None`, so the policy layer can silence or ring it. A changed key is refused.
    """
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_MESSAGE_BYTES:
        raise OversizeMessage(f"message over {MAX_MESSAGE_BYTES} bytes refused unread")
    try:
        plaintext = nacl.public.SealedBox(identity.box_private_key()).decrypt(bytes(data))
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise UndecryptableMessage("message could not be opened with our key") from None
    fields = _parse(plaintext)
    sender = _decode(fields["from"], PUBLIC_KEY_BYTES, "sender key")
    recipient = _decode(fields["to"], PUBLIC_KEY_BYTES, "recipient key")
    nonce = _decode(fields["nonce"], NONCE_BYTES, "nonce")
    signature = _decode(fields["sig"], SIGNATURE_BYTES, "signature")
    if recipient != identity.public_key:
        raise NotForUs("message addressed to another identity (re-sealed by someone else)")
    try:
        nacl.signing.VerifyKey(sender).verify(_canonical(fields), signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise BadSignature("bad signature: the message was not signed by its sender key") from None
    try:
        _check_verified(fields, sender, nonce, now, replay_guard, pinned_key_lookup, allow_unknown)
    except WireRefusal as refusal:
        refusal.sender_key, refusal.call_id = sender, fields["call_id"]
        raise
    status = pinned_key_lookup(sender)
    message = Message(
        kind=fields["type"],
        call_id=fields["call_id"],
        sender=sender,
        recipient=recipient,
        nonce=nonce,
        timestamp=fields["ts"] / 1000,
        sdp=fields.get("sdp"),
        video=fields.get("video"),
        presence=fields.get("presence"),
        relay=fields.get("relay"),
        name=fields.get("name"),
        attempt=fields.get("attempt"),
        group=_roster(fields["group"]) if "group" in fields else None,
        member=entry_from_wire(fields["member"]) if "member" in fields else None,
        muted=fields.get("muted"),
    )
    return Received(message, status.name if status.kind == "known" else None)


def _roster(value: Any) -> Roster:
    return Roster.from_wire(value, lambda text: bool(_CALL_ID.fullmatch(text)))


def _check_verified(
    fields: dict[str, Any],
    sender: bytes,
    nonce: bytes,
    now: float,
    replay_guard: ReplayGuard | ReplayGuards,
    pinned_key_lookup: PinnedKeyLookup,
    allow_unknown: bool,
) -> None:
    """The checks of a message whose signature is good: SDP coverage, age, key, replay."""
    if "sdp" in fields:
        _check_sdp_covered(fields)
    timestamp = fields["ts"] / 1000
    if abs(now - timestamp) > MAX_SKEW_SECONDS:
        raise StaleMessage(
            f"stale message: its timestamp is {abs(now - timestamp):.0f} s from our clock "
            f"(limit {MAX_SKEW_SECONDS:.0f} s)"
        )
    status = pinned_key_lookup(sender)
    if status.kind == "changed":
        raise ChangedKey.for_contact(status.name or "?", sender)
    if status.kind == "unknown" and not allow_unknown:
        raise UnknownSender(
            f"message from an unknown key {key_fingerprint(sender)}", sender_key=sender
        )
    if isinstance(replay_guard, ReplayGuards):
        replay_guard = replay_guard.for_sender(sender, known=status.kind == "known")
    replay_guard.check_and_remember(sender, nonce, timestamp, now)

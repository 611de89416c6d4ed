"""A group call's roster and its rules, without I/O (issue #17): inputs in, actions out.

A group call is a full mesh. Every pair of members has its own call (a `CallCore`, its own peer
connection, offers and answers signed by both identity keys exactly as in a 1:1 call), so the media
is end-to-end encrypted by construction and no server holds a key. What this module adds is who
belongs: the roster, and the signed messages that change it.

- The creator's invitation is the offer of the pair call to each invitee, carrying the roster
  (`Roster`). The invitee's phone rings as for a call from the inviter: the invitee's own policy
  (who may call, blocked, do-not-disturb, silence, auto-answer) judges the inviter.
- An invitee who answers tells every other member `join`. A member in the call that learns of a
  join sets up their pair: the member with the smaller key offers; the other says `join` back,
  so that the smaller one offers (a join can arrive before the invitation it follows, and is
  then lost). So two members never offer to each other at once, whatever order their joins
  cross in, and never wait for each other.
- A member may bring someone in (`invite`) when the creator allows it (`Roster.open`), and the
  creator always may: the inviter tells every member `added` (signed by the inviter, accepted only
  from a member who is in the call and may invite) and offers to the new member.
- `leave` tells every member that one has gone; a pair call that ends says the same of its peer.
- A member we blocked can neither join a call we are in nor be sent our media: we never set up
  our pair with them (they show as blocked), though the other members may.
- The group code: a number computed from the group id and the sorted keys of the members in the
  call, the same on every member's screen once everyone's joins have arrived, and different when
  the roster changes, to read out loud.

Pair call ids: the pair of the creator and the first invitee uses the group id itself (so a 1:1
call that someone is invited into keeps its call); every other pair's id is derived from the group
id and the two keys, so both ends know it without asking.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tcall.engine.errors import IdentityError, ProtocolError

MAX_MEMBERS = 6
CODE_ITERATIONS = 5200  # as the safety number's (engine/safety.py): slow enough to keep honest
_CODE_CONTEXT = b"tcall-group-code-v1\0"
_PAIR_CONTEXT = b"tcall-group-pair-v1\0"
KEY_BYTES = 32
MAX_RELAY_CHARS = 512


@dataclass(frozen=True)
class RosterEntry:
    key: bytes
    relay: str  # how to reach them: their relay URL ("" for ours)


@dataclass(frozen=True)
class Roster:
    """Who a group call is for, as its creator (or an inviter) signed it: members[0] is the
    creator."""

    group_id: str
    open: bool  # members other than the creator may invite
    members: tuple[RosterEntry, ...]

    @property
    def creator(self) -> bytes:
        return self.members[0].key

    def member_keys(self) -> list[bytes]:
        return [m.key for m in self.members]

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.group_id,
            "open": self.open,
            "members": [entry_to_wire(m) for m in self.members],
        }

    @classmethod
    def from_wire(cls, value: Any, group_id_ok: Callable[[str], bool]) -> Roster:
        """The roster a message carries; ProtocolError for anything but a well-formed one of 2 to
        MAX_MEMBERS distinct keys (a peer's words: checked as an adversary's)."""
        if not isinstance(value, dict) or set(value) != {"id", "open", "members"}:
            raise ProtocolError("malformed roster: wrong fields")
        group_id, is_open, members = value["id"], value["open"], value["members"]
        if not isinstance(group_id, str) or not group_id_ok(group_id):
            raise ProtocolError("malformed roster: bad group id")
        if not isinstance(is_open, bool):
            raise ProtocolError("malformed roster: 'open' is not true/false")
        if not isinstance(members, list) or not 2 <= len(members) <= MAX_MEMBERS:
            raise ProtocolError(f"malformed roster: not 2 to {MAX_MEMBERS} members")
        entries = tuple(entry_from_wire(m) for m in members)
        if len({e.key for e in entries}) != len(entries):
            raise ProtocolError("malformed roster: a member is listed twice")
        return cls(group_id, is_open, entries)


def entry_to_wire(entry: RosterEntry) -> dict[str, str]:
    return {"key": base64.b64encode(entry.key).decode("ascii"), "relay": entry.relay}


def entry_from_wire(value: Any) -> RosterEntry:
    if not isinstance(value, dict) or set(value) != {"key", "relay"}:
        raise ProtocolError("malformed roster: a member has the wrong fields")
    key, relay = value["key"], value["relay"]
    try:
        raw = base64.b64decode(key, validate=True) if isinstance(key, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ProtocolError("malformed roster: a member's key is not a key")
    if not isinstance(relay, str) or len(relay) > MAX_RELAY_CHARS:
        raise ProtocolError("malformed roster: a member's relay is not a relay URL")
    return RosterEntry(raw, relay)


def pair_id(group_id: str, first_pair: frozenset[bytes], a: bytes, b: bytes) -> str:
    """The call id of the pair call between `a` and `b` in group `group_id`."""
    if frozenset((a, b)) == first_pair:
        return group_id
    low, high = sorted((a, b))
    digest = hashlib.blake2b(_PAIR_CONTEXT + group_id.encode() + low + high, digest_size=16)
    return digest.hexdigest()


def group_code(group_id: str, keys: Iterable[bytes]) -> str:
    """30 digits for the group id and these members (in any order), as six groups of five."""
    return _code(group_id, tuple(sorted(keys)))


@functools.lru_cache(maxsize=64)
def _code(group_id: str, keys: tuple[bytes, ...]) -> str:
    """The code's 5200 rounds cost milliseconds, and a UI asks for it on every change it shows
    (a new loudest speaker, a mute): each roster's code is worked out once."""
    members = b"".join(keys)
    digest = hashlib.sha512(_CODE_CONTEXT + group_id.encode() + members).digest()
    for _ in range(CODE_ITERATIONS - 1):
        digest = hashlib.sha512(digest + members).digest()
    groups = (int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return " ".join(f"{g:05d}" for g in groups)


class Member(enum.StrEnum):
    INVITED = "invited"  # asked in, has not joined (as far as we know)
    JOINED = "joined"  # in the call; our pair with them is being set up (or waits for them)
    CONNECTED = "connected"  # our pair's media connected
    BLOCKED = "blocked"  # in the call, but blocked by us: no pair
    LEFT = "left"


IN_CALL = (Member.JOINED, Member.CONNECTED, Member.BLOCKED)


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenPair:
    """Place our pair call with `to` (we offer); with the roster when it invites them."""

    to: RosterEntry
    call_id: str
    invite: bool


@dataclass(frozen=True)
class ClosePair:
    key: bytes


@dataclass(frozen=True)
class SendGroup:
    """Send `kind` (join, added, leave) for the group to `to`; `member` for added."""

    kind: str
    to: RosterEntry
    member: RosterEntry | None = None


@dataclass(frozen=True)
class Changed:
    """A member's state changed (or the roster did): show it, say it (joined, left)."""

    key: bytes
    state: Member
    reason: str = ""


@dataclass(frozen=True)
class End:
    """Nobody else is left: the group call is over."""


GroupAction = OpenPair | ClosePair | SendGroup | Changed | End


@dataclass
class GroupCore:
    """One member's view of one group call. `blocked(key)` says whether we blocked that key."""

    roster: Roster
    me: bytes
    blocked: Callable[[bytes], bool]
    in_call: bool = False  # we are in (the creator from the start; an invitee once they answer)
    states: dict[bytes, Member] = field(default_factory=dict)
    _join_sent: set[bytes] = field(default_factory=set)
    _pairs: set[bytes] = field(default_factory=set)  # members we have a pair call with
    # Invited members we stopped waiting for: their join may still come (the inviter may ring
    # longer than we wait), and then they are in, though leaving otherwise takes a new invitation.
    _gave_up: set[bytes] = field(default_factory=set)
    ended: bool = False

    def __post_init__(self) -> None:
        for entry in self.roster.members:
            if entry.key != self.me:
                self.states.setdefault(entry.key, Member.INVITED)
        if self.me not in self.roster.member_keys():
            raise IdentityError("a group call's roster that does not name us")

    # --- what we know ------------------------------------------------------------------------

    @property
    def group_id(self) -> str:
        return self.roster.group_id

    @property
    def first_pair(self) -> frozenset[bytes]:
        return frozenset(self.roster.member_keys()[:2])

    def pair_id(self, key: bytes) -> str:
        return pair_id(self.group_id, self.first_pair, self.me, key)

    def entry(self, key: bytes) -> RosterEntry:
        for entry in self.roster.members:
            if entry.key == key:
                return entry
        raise IdentityError("not a member of this group call")

    def is_member(self, key: bytes) -> bool:
        return key in self.states

    def members_in_call(self) -> list[bytes]:
        """Us, and everyone we know to be in the call: what the group code is computed from."""
        return [self.me, *(k for k, s in self.states.items() if s in IN_CALL)]

    def code(self) -> str:
        return group_code(self.group_id, self.members_in_call())

    def may_invite(self, key: bytes) -> bool:
        return key == self.roster.creator or self.roster.open

    def others(self) -> list[RosterEntry]:
        return [e for e in self.roster.members if e.key != self.me]

    # --- inputs ------------------------------------------------------------------------------

    def create(self) -> list[GroupAction]:
        """We created the call: invite everyone (each invitation is our pair call's offer)."""
        assert self.me == self.roster.creator
        self.in_call = True
        actions: list[GroupAction] = []
        for entry in self.others():
            self._pairs.add(entry.key)
            actions.append(OpenPair(entry, self.pair_id(entry.key), invite=True))
        return actions

    def accepted(self, inviter: bytes) -> list[GroupAction]:
        """We answered `inviter`'s invitation: we are in. Tell everyone else, and set up our pair
        with each member we already know to be in."""
        self.in_call = True
        self._pairs.add(inviter)
        self.states[inviter] = Member.JOINED
        actions: list[GroupAction] = [Changed(inviter, Member.JOINED)]
        for entry in self.others():
            if entry.key != inviter:
                actions += self._meet(entry, known_in=self.states[entry.key] in IN_CALL)
        return actions

    def peer_joined(self, sender: bytes) -> list[GroupAction]:
        """A member says they are in the call."""
        entry = self.entry(sender)  # IdentityError: not a member
        state = self.states[sender]
        if state is Member.LEFT and sender not in self._gave_up:
            raise ProtocolError("a join from a member who left (they must be invited again)")
        self._gave_up.discard(sender)
        actions: list[GroupAction] = []
        if state in (Member.INVITED, Member.LEFT):
            blocked = self.blocked(sender)
            self.states[sender] = Member.BLOCKED if blocked else Member.JOINED
            actions.append(Changed(sender, self.states[sender]))
        if self.in_call:
            actions += self._meet(entry, known_in=True, answer=True)
        return actions

    def _meet(self, entry: RosterEntry, known_in: bool, answer: bool = False) -> list[GroupAction]:
        """Set up our pair with a member: the smaller key offers, the other says join, once, or
        in `answer` to theirs: our first may have reached them before their invitation did, and
        a join for a call they do not know yet is refused (engine/phone.py), so without the answer
        each would wait for the other for ever. One answer per join of theirs bounds it."""
        if entry.key in self._pairs or self.blocked(entry.key):
            return []
        if known_in and self.me < entry.key:
            self._pairs.add(entry.key)
            return [OpenPair(entry, self.pair_id(entry.key), invite=False)]
        if entry.key in self._join_sent and not answer:
            return []
        self._join_sent.add(entry.key)
        return [SendGroup("join", entry)]

    def pair_offered(self, sender: bytes) -> list[GroupAction]:
        """A member offers our pair call (after our join): accept it if they may."""
        if not self.in_call:
            raise ProtocolError("a group member's offer before we are in the call")
        self.entry(sender)
        if self.blocked(sender):
            raise IdentityError("an offer from a member we blocked")
        if self.states[sender] is Member.LEFT:
            raise ProtocolError("an offer from a member who left")
        self._pairs.add(sender)
        actions: list[GroupAction] = []
        if self.states[sender] is Member.INVITED:
            self.states[sender] = Member.JOINED
            actions.append(Changed(sender, Member.JOINED))
        return actions

    def peer_mic(self, sender: bytes) -> None:
        """A member says their microphone was muted or unmuted: only a member in the call may."""
        if not self.is_member(sender) or self.states[sender] not in IN_CALL:
            raise IdentityError("a mute from someone who is not in the call")

    def added(self, sender: bytes, entry: RosterEntry) -> list[GroupAction]:
        """`sender` invited `entry`: accepted from a member in the call who may invite."""
        if not self.is_member(sender) or self.states[sender] not in IN_CALL:
            raise IdentityError("a roster change from someone who is not in the call")
        if not self.may_invite(sender):
            raise IdentityError("a roster change from a member the creator did not let invite")
        if entry.key == self.me or self.is_member(entry.key):
            if self.states.get(entry.key) is Member.LEFT:  # asked back in
                self.states[entry.key] = Member.INVITED
                self._pairs.discard(entry.key)
                self._join_sent.discard(entry.key)
                return [Changed(entry.key, Member.INVITED)]
            return []
        if len(self.roster.members) >= MAX_MEMBERS:
            raise ProtocolError(f"a roster change beyond {MAX_MEMBERS} members")
        self._add(entry)
        return [Changed(entry.key, Member.INVITED)]

    def invite(self, entry: RosterEntry) -> list[GroupAction]:
        """Our user brings `entry` in (UsageError-worthy problems are ProtocolErrors here; the
        driver words them)."""
        if not self.in_call:
            raise ProtocolError("not in the call")
        if not self.may_invite(self.me):
            raise ProtocolError("the call's creator does not let members invite")
        if entry.key == self.me:
            raise ProtocolError("that is you")
        if self.states.get(entry.key) in (Member.INVITED, *IN_CALL):
            raise ProtocolError("already in the call")
        if entry.key not in self.states and len(self.roster.members) >= MAX_MEMBERS:
            raise ProtocolError(f"a group call has at most {MAX_MEMBERS} members")
        if entry.key not in self.states:
            self._add(entry)
        self.states[entry.key] = Member.INVITED
        self._join_sent.discard(entry.key)
        self._pairs.add(entry.key)
        actions: list[GroupAction] = [Changed(entry.key, Member.INVITED)]
        for other in self.others():
            if other.key != entry.key and self.states[other.key] in IN_CALL:
                actions.append(SendGroup("added", other, entry))
        actions.append(OpenPair(self.entry(entry.key), self.pair_id(entry.key), invite=True))
        return actions

    def _add(self, entry: RosterEntry) -> None:
        self.roster = Roster(self.group_id, self.roster.open, (*self.roster.members, entry))
        self.states[entry.key] = Member.INVITED

    def pair_answered(self, key: bytes) -> list[GroupAction]:
        """They answered our invitation (their media is still connecting): they are in."""
        if self.states.get(key) is Member.INVITED:
            self.states[key] = Member.JOINED
            return [Changed(key, Member.JOINED)]
        return []

    def pair_connected(self, key: bytes) -> list[GroupAction]:
        if self.states.get(key) in (Member.INVITED, Member.JOINED):
            self.states[key] = Member.CONNECTED
            return [Changed(key, Member.CONNECTED)]
        return []

    def invite_expired(self, key: bytes) -> list[GroupAction]:
        """An invited member has not joined in the time an invitation rings: they did not answer
        (as far as we know: see `_gave_up`)."""
        if self.states.get(key) is not Member.INVITED:
            return []
        self._gave_up.add(key)
        return self.peer_left(key, "no_answer")

    def peer_left(self, sender: bytes, reason: str = "left") -> list[GroupAction]:
        """A member said leave, or our pair call with them ended (`reason`)."""
        self.entry(sender)
        if self.states[sender] is Member.LEFT:
            return []
        self.states[sender] = Member.LEFT
        actions: list[GroupAction] = [Changed(sender, Member.LEFT, reason)]
        if sender in self._pairs:
            self._pairs.discard(sender)
            actions.append(ClosePair(sender))
        self._join_sent.discard(sender)
        return actions + self._end_if_alone()

    def _end_if_alone(self) -> list[GroupAction]:
        waiting = (Member.INVITED, Member.JOINED, Member.CONNECTED)
        if self.ended or any(s in waiting for s in self.states.values()):
            return []
        self.ended = True
        return [End()]

    def leave(self, told: frozenset[bytes] = frozenset()) -> list[GroupAction]:
        """We hang up: tell everyone who is (or may come) in, close our pairs. `told`: members
        whose pair call already says it (a ringing invitation we decline): a leave beside it
        could reach them first and turn our decline into "left"."""
        if self.ended:
            return []
        self.ended = True
        actions: list[GroupAction] = []
        for entry in self.others():
            if self.states[entry.key] is not Member.LEFT:
                if entry.key in self._pairs:
                    actions.append(ClosePair(entry.key))  # its hangup says it
                elif entry.key not in told:
                    actions.append(SendGroup("leave", entry))
        return [*actions, End()]


# --- who is speaking -------------------------------------------------------------------------

SPEAKING_DB = -45.0  # the loudest member is highlighted only when someone is louder than this
SWITCH_DB = 3.0  # and it moves only to someone this much louder than the one who has it


def loudest(levels: dict[bytes, float], current: bytes | None) -> bytes | None:
    """Whom to highlight, from each member's recent level (dBFS): the loudest above SPEAKING_DB,
    but `current` keeps it while still speaking unless someone is SWITCH_DB louder, so two members
    talking at about the same level do not make the highlight (and the grid's borders) flicker."""
    speaking = {key: level for key, level in levels.items() if level >= SPEAKING_DB}
    if not speaking:
        return None
    top = max(speaking, key=lambda key: speaking[key])
    if current in speaking and speaking[top] < speaking[current] + SWITCH_DB:
        return current
    return top

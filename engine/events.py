"""What the engine tells a UI: one frozen dataclass per kind of event, each with its `--json` form.

`to_json()` gives exactly the object `tcall ... --json` prints (README's contract; the keys and
values are pinned by tests/core/test_events.py). Events that belong to a call carry its `call_id`.
Call states come from one vocabulary, `CallPhase`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar


class CallPhase(enum.StrEnum):
    """A call's state as every UI sees it."""

    CALLING = "calling"  # our offer is out
    RINGING = "ringing"  # the callee's phone rings
    INCOMING = "incoming"  # our phone rings
    CONNECTING = "connecting"  # answered; ICE and DTLS under way
    CONNECTED = "connected"  # media flows
    RECONNECTING = "reconnecting"  # connected, but nothing has arrived for a while: waiting for it
    CLOSED = "closed"  # over; a Summary follows


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class RelayChanged(Event):
    kind: ClassVar[str] = "relay"
    state: str  # online | connecting | offline
    url: str

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "state": self.state, "url": self.url}


@dataclass(frozen=True)
class PresenceChanged(Event):
    kind: ClassVar[str] = "presence"
    contact: str
    online: bool

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "contact": self.contact, "online": self.online}


@dataclass(frozen=True)
class IncomingCall(Event):
    kind: ClassVar[str] = "incoming"
    call_id: str
    peer: str
    verified: bool
    video: bool
    # An invitation to a group call: the other members (names, or "unknown <fingerprint>").
    members: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        event = {
            "event": self.kind,
            "call_id": self.call_id,
            "from": self.peer,
            "verified": self.verified,
            "video": self.video,
        }
        if self.members:
            event["members"] = list(self.members)
        return event


@dataclass(frozen=True)
class NotRung(Event):
    """An incoming call that policy did not let ring: silenced, or missed (do-not-disturb, busy)."""

    kind: ClassVar[str] = "silenced"
    peer: str
    reason: str  # for the local user only; never sent to the caller

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "from": self.peer, "reason": self.reason}


@dataclass(frozen=True)
class Silenced(NotRung):
    kind: ClassVar[str] = "silenced"


@dataclass(frozen=True)
class Missed(NotRung):
    kind: ClassVar[str] = "missed"


@dataclass(frozen=True)
class ContactRequested(Event):
    """Someone who is not a contact asks to be added back (`tcall contacts request`, or their first
    call): kept as a pending request (engine/requests.py), never rung. `name` is the name they
    suggest ("" if none, or if it was unusable), `relay` the relay URL they said they use."""

    kind: ClassVar[str] = "request"
    name: str
    fingerprint: str
    relay: str

    @property
    def label(self) -> str:
        return self.name or f"unknown {self.fingerprint[:19]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "relay": self.relay,
        }


@dataclass(frozen=True)
class Refused(Event):
    """A message that could not be trusted (bad signature, replay, out of order, ...)."""

    kind: ClassVar[str] = "refused"
    reason: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "reason": self.reason, "message": self.message}


@dataclass(frozen=True)
class Notice(Event):
    kind: ClassVar[str] = "notice"
    message: str
    call_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        event: dict[str, Any] = {"event": self.kind, "message": self.message}
        if self.call_id is not None:
            event["call_id"] = self.call_id
        return event


@dataclass(frozen=True)
class CallState(Event):
    kind: ClassVar[str] = "state"
    call_id: str
    state: CallPhase

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "state": str(self.state), "call_id": self.call_id}


@dataclass(frozen=True)
class Stats(Event):
    """Figures for the last interval (about a second) of a connected call."""

    kind: ClassVar[str] = "stats"
    call_id: str
    fps_sent: float
    fps_received: float
    resolution: str
    kbps_sent: float
    kbps_received: float
    packets_lost: int
    rtt_ms: float | None
    latency_ms: float | None
    route: str | None
    # Received audio and the FEC of sent audio (engine/session.py audio_figures): audio_* keys,
    # added to the JSON event after the keys above; none in a call without audio.
    audio: dict[str, Any] = field(default_factory=dict, compare=False)
    member: str | None = None  # a group call: whose pair these figures are (after call_id)

    def to_json(self) -> dict[str, Any]:
        event = {
            "event": self.kind,
            "fps_sent": self.fps_sent,
            "fps_received": self.fps_received,
            "resolution": self.resolution,
            "kbps_sent": self.kbps_sent,
            "kbps_received": self.kbps_received,
            "packets_lost": self.packets_lost,
            "rtt_ms": self.rtt_ms,
            "latency_ms": self.latency_ms,
            "route": self.route,
            **self.audio,
            "call_id": self.call_id,
        }
        if self.member is not None:
            event["member"] = self.member
        return event


@dataclass(frozen=True)
class VideoRequest(Event):
    """ask_before_video: the peer turned video on; it stays hidden until the user allows it."""

    kind: ClassVar[str] = "video_request"
    call_id: str
    peer: str

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "call_id": self.call_id, "from": self.peer}


@dataclass(frozen=True)
class PeerVideo(Event):
    kind: ClassVar[str] = "peer_video"
    call_id: str
    on: bool

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "call_id": self.call_id, "on": self.on}


@dataclass(frozen=True)
class MediaFigures:
    """What a call's media measured, for its summary."""

    frames_sent: int
    frames_received: int
    fps_received: float
    latency_ms_median: float | None
    latency_ms_p95: float | None
    setup_ms: float | None  # dial to the first remote frame; None if none came
    route: str | None = None  # the candidate pair's types, "host/host" to "relay/relay"

    def to_json(self) -> dict[str, Any]:
        return {
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "fps_received": self.fps_received,
            "latency_ms_median": self.latency_ms_median,
            "latency_ms_p95": self.latency_ms_p95,
            "setup_ms": self.setup_ms,
            "route": self.route,
        }


@dataclass(frozen=True)
class Summary(Event):
    """The last event of every call. `media` is None for a call that never opened media."""

    kind: ClassVar[str] = "summary"
    outcome: str  # an Outcome value
    call_id: str | None = None
    peer: str | None = None
    media: MediaFigures | None = None
    reason: str | None = None
    # A group call: each other member, with what their media measured (None: it never connected).
    members: tuple[tuple[str, MediaFigures | None], ...] = ()
    frames_sent: int | None = None  # a group call: frames our camera captured
    video_encodes: int | None = None  # a group call: video frames encoded, for every member at once

    def to_json(self) -> dict[str, Any]:
        event: dict[str, Any] = {"event": self.kind, "outcome": self.outcome}
        if self.media is not None:
            event |= self.media.to_json()
        if self.frames_sent is not None:
            event["frames_sent"] = self.frames_sent
        if self.video_encodes is not None:
            event["video_encodes"] = self.video_encodes
        if self.members:
            event["members"] = [
                {"member": name, **(media.to_json() if media else {})}
                for name, media in self.members
            ]
        if self.reason:
            event["reason"] = self.reason
        if self.call_id is not None:
            event["call_id"] = self.call_id
        if self.peer is not None:
            event["peer"] = self.peer
        return event


@dataclass(frozen=True)
class SnapshotChanged(Event):
    """The engine republished its snapshot (contacts, presence, settings, identity, relay).

    Not printed by `--json`: a UI reads `Phone.snapshot` when it gets this.
    """

    kind: ClassVar[str] = "snapshot"

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind}


# --- group calls (issue #17) -------------------------------------------------------------------


@dataclass(frozen=True)
class GroupChanged(Event):
    """A group call's view changed (a member's state, mute, camera, the loudest speaker, the group
    code): a UI reads the group handle's `view` when it gets this. Not printed by `--json`."""

    kind: ClassVar[str] = "group"
    call_id: str

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "call_id": self.call_id}


@dataclass(frozen=True)
class MemberJoined(Event):
    """A member is in the group call: their media connected with ours (`code`: the group code
    now, which every member's screen shows the same)."""

    kind: ClassVar[str] = "joined"
    call_id: str
    member: str
    verified: bool
    code: str

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "call_id": self.call_id,
            "member": self.member,
            "verified": self.verified,
            "code": self.code,
        }


@dataclass(frozen=True)
class MemberLeft(Event):
    """A member left the group call (or declined, never answered, or was lost: `reason`), with what
    their media measured while they were in (None if it never connected)."""

    kind: ClassVar[str] = "left"
    call_id: str
    member: str
    reason: str
    code: str
    media: MediaFigures | None = None

    def to_json(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event": self.kind,
            "call_id": self.call_id,
            "member": self.member,
            "reason": self.reason,
            "code": self.code,
        }
        if self.media is not None:
            event["media"] = self.media.to_json()
        return event

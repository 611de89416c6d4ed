"""What a UI shows of a group call (issue #17): its members, their state, and the group code.

A group call is a full mesh: every pair of members has its own peer connection, signed by both
identity keys exactly as a 1:1 call is. The engine republishes a `GroupView` whole (never changed
in place) whenever something a UI shows changes, and emits `GroupChanged`; a UI on another thread
reads `GroupHandle.view` and each member's `VideoHandle` at its own rate.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any

from tcall.engine.media.handle import VideoHandle
from tcall.engine.media.levels import MicLevel

MAX_MEMBERS = 6  # a mesh: every member sends to every other; see README "Group calls"


class MemberState(enum.StrEnum):
    INVITED = "invited"  # asked in; their phone rings (or they have not answered yet)
    CONNECTING = "connecting"  # in the call; our pair connection is being set up
    CONNECTED = "connected"  # media flows between us
    RECONNECTING = "reconnecting"  # connected, but nothing arrived for a while
    BLOCKED = "blocked"  # in the call, but blocked by us: no media either way between us
    LEFT = "left"  # left, declined, never answered, or lost


@dataclass(frozen=True)
class MemberView:
    """One member as a tile shows them. `you` is our own tile (its video is our self-view:
    `video.self_view()`); the others' pictures are `video.remote()`."""

    key: bytes
    name: str  # our contact name for them, else "unknown <fingerprint prefix>"
    fingerprint: str
    verified: bool  # a contact whose safety number we verified
    you: bool
    state: MemberState
    muted: bool  # their microphone, as they told us (ours for our own tile)
    camera: bool  # their camera sends (ours for our own tile)
    speaking: bool  # the loudest speaker right now (at most one member)
    video: VideoHandle = field(compare=False)


@dataclass(frozen=True)
class GroupView:
    call_id: str
    code: str  # the group code, grouped digits: the same on every member's screen
    members: tuple[MemberView, ...]  # we come first, then in the order they were asked in
    can_invite: bool  # the creator lets members invite (always true for the creator)

    def present(self) -> tuple[MemberView, ...]:
        """The members a grid shows: everyone who has not left."""
        return tuple(m for m in self.members if m.state is not MemberState.LEFT)


@dataclass
class GroupHandle:
    """What a UI holds of a group call. `view` is replaced whole on each change."""

    call_id: str
    view: GroupView
    done: asyncio.Future[Any]
    camera_on: bool
    mic: MicLevel

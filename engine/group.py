"""A group call in progress: performs what its GroupCore decides (issue #17).

Each pair of members is an ordinary pair call (a `LiveCall` with its own `CallCore` and peer
connection, registered with the Phone like any call so its messages route as a 1:1 call's do); the
group owns the roster (`tcall.engine.core.group.GroupCore`), the media every pair shares (one
capture and one encode per frame, one speaker: `GroupMedia`), and what a UI sees: one `GroupView`,
the members' events (`joined`, `left`, stats per member) and one summary for the whole call.
The pair calls' own events are turned into those: a UI never sees a pair's call id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from tcall.engine.call import CallOptions
from tcall.engine.core.call import (
    Accept,
    CallCore,
    CallSettings,
    Failed,
    HangUp,
    Interrupt,
    SetCamera,
    SetMuted,
    Start,
)
from tcall.engine.core.group import (
    IN_CALL,
    Changed,
    ClosePair,
    End,
    GroupAction,
    GroupCore,
    Member,
    OpenPair,
    RosterEntry,
    SendGroup,
    loudest,
)
from tcall.engine.core.outcome import Outcome
from tcall.engine.errors import ProtocolError, TcallError
from tcall.engine.events import (
    CallPhase,
    CallState,
    Event,
    GroupChanged,
    IncomingCall,
    MediaFigures,
    MemberJoined,
    MemberLeft,
    Notice,
    PeerVideo,
    Stats,
    Summary,
    VideoRequest,
)
from tcall.engine.group_view import GroupHandle, GroupView, MemberState, MemberView
from tcall.engine.identity import fingerprint
from tcall.engine.live import LiveCall
from tcall.engine.media.group import GroupMedia
from tcall.engine.media.handle import VideoHandle
from tcall.engine.media.levels import MicLevel
from tcall.engine.session import Session, StateListener

if TYPE_CHECKING:
    from tcall.engine.phone import Phone

# A member who was invited by someone else and has not joined this long after we learnt of it has
# not answered: they leave our roster (the inviter's own pair call rings for ring_timeout).
INVITE_GRACE_S = 5.0
# A member whose media stopped: as long as this, then they count as lost and the rest go on.
GROUP_RECONNECT_S = 10.0
LEVELS_HZ = 4
GROUP_SIZE = (320, 240)
GROUP_FPS = 15.0
# A member's roster state as a UI shows it (RECONNECTING comes from the pair's media, not the roster).
_SHOWN_STATES = {
    Member.INVITED: MemberState.INVITED,
    Member.JOINED: MemberState.CONNECTING,
    Member.CONNECTED: MemberState.CONNECTED,
    Member.BLOCKED: MemberState.BLOCKED,
    Member.LEFT: MemberState.LEFT,
}
# The group's outcome when no member connected: the pairs' outcomes, most telling first.
_OUTCOME_ORDER = (
    Outcome.ANSWERED,
    Outcome.INTERRUPTED,
    Outcome.IDENTITY_ERROR,
    Outcome.PROTOCOL_ERROR,
    Outcome.TIMEOUT,
    Outcome.FAILED,
    Outcome.DECLINED,
    Outcome.BUSY,
    Outcome.NO_ANSWER,
    Outcome.CANCELLED,
    Outcome.MISSED,
)


def group_options(options: CallOptions) -> CallOptions:
    """A group call's media: every member sends to every other, so at most 320x240 at 15 fps
    unless asked for less (five uplinks of it fit a home connection: README "Group calls")."""
    return dataclasses.replace(
        options,
        width=min(options.width, GROUP_SIZE[0]),
        height=min(options.height, GROUP_SIZE[1]),
        fps=min(options.fps, GROUP_FPS),
    )


@dataclasses.dataclass
class _Member:
    entry: RosterEntry
    name: str
    verified: bool
    video: VideoHandle
    pair: LiveCall | None = None
    camera: bool = False
    muted: bool = False  # their microphone, as they told us
    reconnecting: bool = False
    figures: MediaFigures | None = None
    outcome: Outcome | None = None


class GroupCall:
    def __init__(
        self,
        phone: Phone,
        core: GroupCore,
        options: CallOptions,
        emit: Callable[[Event], None],
        on_over: Callable[[GroupCall], None],
    ) -> None:
        self.phone = phone
        self.core = core
        self.options = options
        # Opened when the first pair needs it: an invitation that rings must not turn the camera on.
        self._media: GroupMedia | None = None
        self.camera_on = options.camera_on
        self.muted = False
        # Whether members' video may be shown: our video_calling setting, as judged for the
        # invitation (every pair of the call follows it), or our own call's options.
        self.video_allowed = options.video != "none"
        self._emit = emit
        self._on_over = on_over
        self.mic = MicLevel()
        self.done: asyncio.Future[Summary] = asyncio.get_running_loop().create_future()
        self._members: dict[bytes, _Member] = {}
        self._invite_timers: dict[bytes, asyncio.TimerHandle] = {}
        self._duration: asyncio.TimerHandle | None = None
        self._speaking: bytes | None = None
        self._interrupted = False
        self._finishing: asyncio.Task[None] | None = None
        self._self_video = VideoHandle()
        self._self_video.attach_self_view(lambda: self._media.self_view() if self._media else None)
        self._levels = asyncio.create_task(self._watch_levels(), name=f"group {self.call_id}")
        for entry in core.others():
            self._member(entry)
            self._expect_join(entry.key)
        self.handle = GroupHandle(self.call_id, self._view(), self.done, self.camera_on, self.mic)

    # --- the media every pair shares -----------------------------------------------------------

    def media(self) -> GroupMedia:
        """Our sources and speaker, opened once (DeviceError if a named device is missing)."""
        if self._media is None:
            self._media = GroupMedia.open(
                self.options, lambda text: self._emit(Notice(text, self.call_id)), self.mic
            )
            self._media.camera_on = self.camera_on
            self._media.muted = self.muted
        return self._media

    def session(
        self,
        options: CallOptions,
        notice: Callable[[str], None],
        on_state: StateListener,
        level: MicLevel,
    ) -> Session:
        """A pair's Session (LiveCall's SessionFactory): its senders share our encoders."""
        return self.media().session(options.ice, on_state)

    def release(self, session: Session) -> None:
        if self._media is not None:
            self._media.release(session)

    @property
    def call_id(self) -> str:
        return self.core.group_id

    # --- what a UI sees ----------------------------------------------------------------------

    def _member(self, entry: RosterEntry) -> _Member:
        member = self._members.get(entry.key)
        if member is None:
            contact = self.phone.contact_for(entry.key)
            name = contact.name if contact else f"unknown {fingerprint(entry.key)[:19]}"
            verified = bool(contact and contact.verified)
            member = self._members[entry.key] = _Member(entry, name, verified, VideoHandle())
        return member

    def video_of(self, key: bytes) -> VideoHandle:
        return self._members[key].video

    def name(self, key: bytes) -> str:
        return self._members[key].name

    def _state(self, key: bytes) -> MemberState:
        state = self.core.states[key]
        if state is Member.CONNECTED and self._members[key].reconnecting:
            return MemberState.RECONNECTING
        return _SHOWN_STATES[state]

    def _view(self) -> GroupView:
        me = self.phone.public_key
        ours = MemberView(
            key=me,
            name="you",
            fingerprint=fingerprint(me),
            verified=True,
            you=True,
            state=MemberState.CONNECTED if self.core.in_call else MemberState.INVITED,
            muted=self.muted,
            camera=self.camera_on,
            speaking=self._speaking == me,
            video=self._self_video,
        )
        others = tuple(
            MemberView(
                key=key,
                name=m.name,
                fingerprint=fingerprint(key),
                verified=m.verified,
                you=False,
                state=self._state(key),
                muted=m.muted,
                camera=m.camera,
                speaking=self._speaking == key,
                video=m.video,
            )
            for key, m in self._members.items()
        )
        return GroupView(self.call_id, self.core.code(), (ours, *others), self.core.may_invite(me))

    def _republish(self) -> None:
        self.handle.view = self._view()
        self._emit(GroupChanged(self.call_id))

    async def _watch_levels(self) -> None:
        """The loudest member, a few times a second (only a change is published)."""
        while True:
            await asyncio.sleep(1 / LEVELS_HZ)
            if self._media is None:
                continue
            by_session = self._media.speaking_levels()
            levels = {
                key: by_session[m.pair.session]
                for key, m in self._members.items()
                if m.pair is not None and m.pair.session in by_session
            }
            levels[self.phone.public_key] = -100.0 if self.muted else self.mic.reading.level_db
            speaking = loudest(levels, self._speaking)
            if speaking != self._speaking:
                self._speaking = speaking
                self._republish()

    # --- performing the core's actions -------------------------------------------------------

    def perform(self, actions: list[GroupAction]) -> None:
        for action in actions:
            match action:
                case OpenPair(to, call_id, invite):
                    self._open_pair(to, call_id, invite)
                case SendGroup(kind, to, member):
                    asyncio.ensure_future(self._send(kind, to, member))
                case ClosePair(key):
                    pair = self._members[key].pair
                    if pair is not None and not pair.core.ended:
                        pair.feed(Interrupt() if self._interrupted else HangUp())
                case Changed():
                    self._changed(action)
                case End():
                    self._finish_soon()

    def _changed(self, action: Changed) -> None:
        key, state = action.key, action.state
        member = self._member(self.core.entry(key))
        code = self.core.code()
        if state is Member.CONNECTED:
            self._emit(MemberJoined(self.call_id, member.name, member.verified, code))
            if self._duration is None and self.options.duration:
                self._duration = asyncio.get_running_loop().call_later(
                    self.options.duration, self._leave
                )
        elif state is Member.LEFT:
            self._cancel_invite_timer(key)
            self._emit(MemberLeft(self.call_id, member.name, action.reason, code, member.figures))
        elif state is Member.INVITED:
            self._expect_join(key)
        elif state is Member.BLOCKED:
            self._emit(
                Notice(
                    f"{member.name} joined the call, whom you blocked: you do not see or hear "
                    "each other (the others do)",
                    self.call_id,
                )
            )
        self._republish()

    def _expect_join(self, key: bytes) -> None:
        """An invited member who never joins did not answer: without this, the last one left
        would wait for them for ever. (When we invited them our own pair call rings out first;
        when someone else did, only their join would tell us.)"""
        self._cancel_invite_timer(key)
        self._invite_timers[key] = asyncio.get_running_loop().call_later(
            self.phone.ring_timeout + INVITE_GRACE_S, self._invite_expired, key
        )

    def _cancel_invite_timer(self, key: bytes) -> None:
        timer = self._invite_timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _invite_expired(self, key: bytes) -> None:
        self._invite_timers.pop(key, None)
        self.perform(self.core.invite_expired(key))

    async def _send(self, kind: str, to: RosterEntry, member: RosterEntry | None) -> None:
        try:
            await self.phone.send_group(to, kind, self.call_id, member=member)
        except TcallError as exc:
            self._emit(Notice(f"could not reach {self.name(to.key)}: {exc}", self.call_id))

    def _open_pair(self, to: RosterEntry, call_id: str, invite: bool) -> None:
        member = self._member(to)
        core = CallCore(
            call_id,
            member.name,
            outgoing=True,
            peer_key=to.key,
            settings=self.pair_settings(),
            verified=member.verified,
            is_contact=self.phone.contact_for(to.key) is not None,
        )
        core.video_allowed = self.video_allowed
        live = self.phone.group_pair(self, core, to)
        member.pair = live
        try:
            live.open_media()
        except TcallError as exc:
            self._emit(Notice(str(exc), self.call_id))
            live.feed(Failed(exc))
            return
        live.feed(Start())

    def pair_settings(self) -> CallSettings:
        settings = self.phone.call_settings(self.options)
        return dataclasses.replace(
            settings,
            duration=None,  # the group's own timer hangs up every pair at once
            ask_before_video=False,  # joining a video call is the consent (README "Group calls")
            reconnect_timeout=GROUP_RECONNECT_S,
            camera_on=self.camera_on,
            answer_with_camera=self.camera_on,
        )

    # --- a member's pair call, from the Phone --------------------------------------------------

    def ring(self, live: LiveCall, inviter: bytes, auto_answer: bool) -> None:
        """The invitation (our pair call with `inviter`) rings here."""
        self._members[inviter].pair = live
        live.perform(live.core.ring())
        if auto_answer:
            self.accept(live.core.video_allowed)

    def accept(self, video: bool) -> None:
        """We answer the invitation: the pair with the inviter answers, and we join."""
        inviter = next(
            (
                k
                for k, m in self._members.items()
                if m.pair is not None and not m.pair.core.outgoing
            ),
            None,
        )
        if inviter is None or self.core.in_call:
            raise ProtocolError("this group call does not ring here")
        pair = self._members[inviter].pair
        assert pair is not None
        self.camera_on = video and self.camera_on
        pair.feed(Accept(video))
        self.perform(self.core.accepted(inviter))
        self._republish()

    def decline(self) -> None:
        self._leave()

    def offered(self, live: LiveCall, sender: bytes) -> None:
        """A member in the call offers our pair (after our join): answered at once."""
        self._members[sender].pair = live
        live.feed(Accept(self.camera_on))

    def pair_event(self, key: bytes, event: Event) -> None:
        """What a member's pair call says, as the group's events."""
        member = self._members[key]
        match event:
            case CallState(state=CallPhase.CONNECTED):
                if member.pair is not None:
                    member.camera = member.pair.core.peer_camera
                if self.muted and not member.reconnecting:  # they came in after we muted
                    asyncio.ensure_future(self._send_mic(member.entry, True))
                if member.reconnecting:
                    member.reconnecting = False
                    self._republish()
                self.perform(self.core.pair_connected(key))
            case CallState(state=CallPhase.RECONNECTING):
                member.reconnecting = True
                self._republish()
            case CallState(state=CallPhase.RINGING):
                self._republish()
            case CallState(state=CallPhase.CONNECTING):
                self.perform(self.core.pair_answered(key))
            case Stats():
                self._emit(dataclasses.replace(event, call_id=self.call_id, member=member.name))
            case PeerVideo(on=on):
                member.camera = on
                self._republish()
            case IncomingCall():
                names = tuple(m.name for k, m in self._members.items() if k != key)
                self._emit(dataclasses.replace(event, call_id=self.call_id, members=names))
            case VideoRequest():
                pass  # group pairs never ask (see pair_settings)
            case Summary():
                member.figures = event.media
                member.outcome = Outcome(event.outcome)
                member.camera = False
                reason = "left" if event.outcome == Outcome.ANSWERED else event.outcome
                self.perform(self.core.peer_left(key, reason))
                if not self.core.in_call:  # the invitation is over, unanswered: so is the call
                    self.perform(self.core.leave())
            case Notice():
                self._emit(dataclasses.replace(event, call_id=self.call_id))
            case _:
                pass

    # --- commands ------------------------------------------------------------------------------

    def invite(self, entry: RosterEntry) -> None:
        """ProtocolError, with nothing changed, when the roster rules say no."""
        self.perform(self.core.invite(entry))  # its Changed and OpenPair add the member's tile
        self._republish()

    def set_camera(self, on: bool) -> None:
        self.camera_on = on
        if self._media is not None:
            self._media.camera_on = on
        for pair in self._pairs():
            pair.feed(SetCamera(on))
        self._republish()

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        if self._media is not None:
            self._media.muted = muted
        for pair in self._pairs():
            pair.feed(SetMuted(muted))
        for entry in self.core.others():  # so their tiles show it
            if self.core.states[entry.key] in (Member.JOINED, Member.CONNECTED):
                asyncio.ensure_future(self._send_mic(entry, muted))
        self._republish()

    async def _send_mic(self, to: RosterEntry, muted: bool) -> None:
        with contextlib.suppress(TcallError):
            await self.phone.send_group(to, "mic", self.call_id, muted=muted)

    def member_muted(self, key: bytes, muted: bool) -> None:
        self._members[key].muted = muted
        self._republish()

    def pairs(self) -> list[LiveCall]:
        """Every pair call this group made or took, ended ones too."""
        return [m.pair for m in self._members.values() if m.pair is not None]

    def _pairs(self) -> list[LiveCall]:
        return [
            m.pair
            for m in self._members.values()
            if m.pair is not None and not m.pair.core.ended and m.pair.core.has_media
        ]

    def hang_up(self) -> None:
        self._leave()

    def interrupt(self) -> None:
        self._interrupted = True
        self._leave()

    def _leave(self) -> None:
        told = set()
        for key, member in self._members.items():  # a ringing invitation is declined, not left open
            if member.pair is not None and not member.pair.core.ended:
                member.pair.feed(Interrupt() if self._interrupted else HangUp())
                told.add(key)
        self.perform(self.core.leave(frozenset(told)))

    # --- the end -------------------------------------------------------------------------------

    def _finish_soon(self) -> None:
        if self._finishing is None:
            self._finishing = asyncio.create_task(self._finish(), name=f"end {self.call_id}")

    async def _finish(self) -> None:
        for timer in self._invite_timers.values():
            timer.cancel()
        if self._duration is not None:
            self._duration.cancel()
        pairs = [m.pair for m in self._members.values() if m.pair is not None]
        for pair in pairs:
            if not pair.core.ended:
                pair.feed(Interrupt() if self._interrupted else HangUp())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(asyncio.shield(p.done) for p in pairs), return_exceptions=True),
                5,
            )
        self._levels.cancel()
        frames = self._media.frames_captured if self._media else 0
        encodes = self._media.video_encodes if self._media else 0
        if self._media is not None:
            await self._media.close()
        summary = Summary(
            outcome=str(self._outcome()),
            call_id=self.call_id,
            members=tuple((m.name, m.figures) for m in self._members.values()),
            frames_sent=frames,
            video_encodes=encodes,
        )
        self._emit(summary)
        self._on_over(self)
        if not self.done.done():
            self.done.set_result(summary)

    def _outcome(self) -> Outcome:
        outcomes = {m.outcome for m in self._members.values() if m.outcome is not None}
        if any(state in IN_CALL for state in self.core.states.values()) and not outcomes:
            outcomes.add(Outcome.ANSWERED)
        if self._interrupted and Outcome.ANSWERED in outcomes:
            return Outcome.INTERRUPTED
        for outcome in _OUTCOME_ORDER:
            if outcome in outcomes:
                return outcome
        return (
            Outcome.CANCELLED
            if self.core.roster.creator == self.phone.public_key
            else (Outcome.MISSED)
        )

"""The engine API that every UI drives: commands in, typed events and immutable snapshots out.

A Phone is one identity (one TCALL_HOME): its key, contacts, settings and history, and its links to
relays. Every method runs on the engine's asyncio loop; a UI on another thread calls it through
that loop and reads `snapshot` (replaced whole, never changed in place) and each call's
`VideoHandle`. Events (`tcall.engine.events`) go out through `emit`.

The Phone is the driver of the call core: it opens and verifies each message (`tcall.engine.wire`),
asks `tcall.engine.core.switchboard` what it means, and lets each call's `LiveCall` perform what its
`CallCore` decides. No rule about a call's state lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nacl.signing

from tcall.engine.address import format_address
from tcall.engine.call import CallOptions, audio_settings, open_session
from tcall.engine.contacts import Contact, ContactBook, check_name
from tcall.engine.core.call import (
    Accept,
    AllowVideo,
    CallCore,
    CallSettings,
    Decline,
    Failed,
    HangUp,
    Interrupt,
    SetCamera,
    SetMuted,
    Start,
)
from tcall.engine.core.group import MAX_MEMBERS, GroupCore, Roster, RosterEntry, pair_id
from tcall.engine.core.outcome import Outcome
from tcall.engine.core.quota import Quota
from tcall.engine.core.switchboard import (
    ForCall,
    Ignore,
    NotRinging,
    Refuse,
    Ring,
    contact_request,
    refusal,
    route,
)
from tcall.engine.echo import EchoChannel
from tcall.engine.errors import (
    IdentityError,
    ProtocolError,
    RelayUnreachable,
    TcallError,
    UsageError,
)
from tcall.engine.events import (
    CallPhase,
    ContactRequested,
    Event,
    MediaFigures,
    Notice,
    PresenceChanged,
    RelayChanged,
    Silenced,
    SnapshotChanged,
)
from tcall.engine.group import GroupCall, group_options
from tcall.engine.group_view import GroupHandle
from tcall.engine.history import CallRecord, History
from tcall.engine.ice import IceSettings, choose_turn, stun_answers
from tcall.engine.identity import Identity, identity_path, load_or_create_identity
from tcall.engine.live import Channel, LiveCall, SessionFactory
from tcall.engine.locking import hold_online
from tcall.engine.media.handle import VideoHandle
from tcall.engine.media.levels import MicLevel
from tcall.engine.media.warmup import warm_up_soon
from tcall.engine.relay.client import RelayClient
from tcall.engine.relay.protocol import mailbox_id
from tcall.engine.requests import ContactRequest, RequestBook
from tcall.engine.requests import accept as accept_request
from tcall.engine.requests import block as block_request
from tcall.engine.requests import ignore as ignore_request
from tcall.engine.session import Session
from tcall.engine.settings import Settings
from tcall.engine.wire import (
    Message,
    ReplayGuards,
    WireRefusal,
    new_call_id,
    open_message,
    seal_message,
)

GROUP_KINDS = ("join", "added", "leave", "mic")
ECHO = "echo"  # `tcall call echo`: the built-in echo peer, dialled like a contact
RECONNECT_FIRST_S = 1.0  # after the relay link drops: 1, 2, 4, ... s, each +-20%,
RECONNECT_MAX_S = 30.0  # and never more than this between tries
# Strangers' calls that policy silences, their contact requests, and messages we refuse, cost a few
# events a minute however many come (engine/core/quota.py); silenced calls one history entry for the
# first of a minute and one "strangers" entry for the rest; requests a write of requests.json for
# each one shown and one for the rest.
QUOTA_WINDOW_S = 60.0
# A callee who is online rings within a round trip or two; by then nothing rang: say "offline".
OFFLINE_NOTICE_S = 2.0
SHOWN_PER_WINDOW = 5
STRANGERS = "strangers"
OVER_IDS_KEPT = 1000  # call ids whose late mail is dropped quietly (a bounded memory)
Clock = Callable[[], float]
EmitEvent = Callable[[Event], None]


@dataclass(frozen=True)
class ContactView:
    """A contact as a UI shows it."""

    name: str
    public_key: bytes
    fingerprint: str
    relay_url: str
    verified: bool
    blocked: bool
    online: bool


@dataclass(frozen=True)
class Snapshot:
    """Everything a UI shows outside a call, as of one moment. Replaced whole on each change."""

    public_key: bytes
    fingerprint: str
    address: str
    relay_url: str
    relay_state: str  # online | connecting | offline | "not set"
    contacts: tuple[ContactView, ...]
    settings: tuple[tuple[str, Any], ...]  # (key, value), in the settings' own order
    history: tuple[CallRecord, ...]  # newest first
    requests: tuple[ContactRequest, ...] = ()  # pending contact requests, newest first

    def contact(self, name: str) -> ContactView:
        for contact in self.contacts:
            if contact.name == name:
                return contact
        raise UsageError(f"unknown contact: {name}")

    def setting(self, key: str) -> Any:
        return dict(self.settings)[key]


@dataclass(frozen=True)
class CallHandle:
    """What a UI holds of a call: its id, its frames, and its summary when it ends."""

    call_id: str
    peer: str
    verified: bool
    video: VideoHandle
    done: asyncio.Future[Any]
    camera_on: bool  # our camera sends, as the call starts (answering may leave it off)
    mic: MicLevel  # what our microphone sends: its level, and whether we are speaking


class RelayChannel:
    """Signaling for a call with a contact (or a stranger calling us): sealed, through a relay."""

    records_history = True

    def __init__(
        self,
        phone: Phone,
        peer_key: bytes,
        relay_url: str,
        roster: Callable[[], Roster] | None = None,
    ) -> None:
        self._phone = phone
        self._peer_key = peer_key
        self._relay_url = relay_url
        self._roster = roster  # a group call's pair: its offer carries the group's roster

    async def send(
        self,
        kind: str,
        call_id: str,
        *,
        sdp: str | None = None,
        video: bool | None = None,
        attempt: int | None = None,
    ) -> None:
        fields: dict[str, Any] = {}
        if kind in ("offer", "answer", "reoffer", "reanswer"):
            fields = {"sdp": sdp, "video": bool(video)}
            if kind == "offer":  # so that a callee who never added us can add us back
                fields["relay"] = self._phone.relay_url
                if self._roster is not None:
                    fields["group"] = self._roster()
            if attempt is not None:
                fields["attempt"] = attempt
        elif kind == "video":
            fields = {"video": bool(video)}
        await self._phone._send(self._peer_key, self._relay_url, kind, call_id, **fields)

    def review(
        self, outcome: Outcome, reason: str | None, figures: MediaFigures | None
    ) -> tuple[Outcome, str | None]:
        return outcome, reason

    def network_changed(self) -> None:
        self._phone.network_changed()

    async def close(self) -> None:
        pass


class Phone:
    def __init__(
        self,
        emit: EmitEvent,
        *,
        clock: Clock = time.time,
        auto_answer_contacts: bool = False,
        ring_timeout: float = 30.0,
        incoming_options: CallOptions | None = None,
        reconnect: bool = True,
    ) -> None:
        self._emit = emit
        self.reconnect = reconnect  # False: a lost relay link stays lost (`relay_lost`)
        self.relay_lost: TcallError | None = None  # the link is gone and will not come back
        self.clock = clock
        self.auto_answer_contacts = auto_answer_contacts
        self.ring_timeout = ring_timeout
        self.incoming_options = incoming_options or CallOptions()
        self._identity: Identity = load_or_create_identity()
        self._contacts = ContactBook.load()
        self._settings = Settings.load()
        self._history = History.open(self._settings.history_retention_days, clock)
        self._replay_guard = ReplayGuards()
        self._calls: dict[str, LiveCall] = {}  # 1:1 calls, and each group call's pair calls
        self._groups: dict[str, GroupCall] = {}
        self._online: set[str] = set()
        self._relay_state = "offline" if self._settings.relay_url else "not set"
        self._links: dict[str, RelayClient] = {}
        self._readers: list[asyncio.Task[None]] = []
        self._dropping: set[asyncio.Task[None]] = set()  # links being closed (network_changed)
        self._warm_ice: asyncio.Task[IceSettings] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._closing = False
        self._online_claim: int | None = None  # held while this process may sign in (locking.py)
        self._silenced = Quota(QUOTA_WINDOW_S, SHOWN_PER_WINDOW)
        self._refused = Quota(QUOTA_WINDOW_S, SHOWN_PER_WINDOW)
        self._requests = RequestBook.load()
        self._requested = Quota(QUOTA_WINDOW_S, SHOWN_PER_WINDOW)
        self._quota_timers: dict[str, asyncio.TimerHandle] = {}
        # Ids of recent calls, in arrival order, so late mail for them is expected, not refused.
        self._over_ids: dict[str, None] = {}
        self.snapshot = self._take_snapshot()

    # --- snapshots -------------------------------------------------------------------------

    def _take_snapshot(self) -> Snapshot:
        identity = self._identity
        return Snapshot(
            public_key=identity.public_key,
            fingerprint=identity.fingerprint,
            address=format_address(identity.public_key, self._settings.relay_url),
            relay_url=self._settings.relay_url,
            relay_state=self._relay_state,
            contacts=tuple(
                ContactView(
                    name=c.name,
                    public_key=c.public_key,
                    fingerprint=c.fingerprint,
                    relay_url=c.relay_url,
                    verified=c.verified,
                    blocked=c.blocked,
                    online=c.name in self._online,
                )
                for c in self._contacts.contacts()
            ),
            settings=tuple(self._settings.as_dict().items()),
            history=tuple(self._history.records),
            requests=tuple(self._requests.pending()),
        )

    def _republish(self) -> None:
        self.snapshot = self._take_snapshot()
        self._emit(SnapshotChanged())

    @property
    def relay_url(self) -> str:
        return self._settings.relay_url

    @property
    def public_key(self) -> bytes:
        return self._identity.public_key

    def contact_for(self, key: bytes) -> Contact | None:
        return self._contacts.by_key(key)

    def call_ids(self) -> list[str]:
        """The calls in progress, oldest first: 1:1 calls and group calls (never their pairs)."""
        pairs = {pair for group in self._groups.values() for pair in group.pairs()}
        calls = [call_id for call_id, live in self._calls.items() if live not in pairs]
        return [*calls, *(g for g in self._groups if g not in calls)]

    def call_history(self) -> list[CallRecord]:
        return list(self._history.records)

    # --- the relay -------------------------------------------------------------------------

    def ice_settings(self) -> IceSettings:
        """The ICE servers the user configured (none unless they set some)."""
        turn = [(t.url, t.username, t.credential) for t in self._settings.turn_servers]
        return IceSettings(
            stun_servers=tuple(self._settings.stun_servers),
            turn_servers=tuple(turn),
            relay_only=self._settings.relay_only,
        )

    async def call_ice(self) -> IceSettings:
        """The ICE servers for a new call: the user's own if they configured any, else those our
        relay handed out when we signed in (TURN only while its credentials are fresh), else none.
        """
        own = self.ice_settings()
        link = self._links.get(self.relay_url)
        if own.stun_servers or own.turn_servers or link is None:
            return own
        fresh = link.ice_expires is None or link.ice_expires > time.monotonic()
        stun = [url for s in link.ice_servers for url in s.urls if url.startswith("stun:")]
        turn = [
            (url, s.username, s.credential)
            for s in link.ice_servers
            for url in s.urls
            if url.startswith(("turn:", "turns:")) and s.username and s.credential and fresh
        ]
        chosen = await choose_turn(turn)
        # A STUN server that UDP cannot reach (a network that lets only TCP out) would cost every
        # call aioice's whole 5 s gathering limit, waiting for its answer.
        reachable = [url for url in stun if await stun_answers(url)]
        return IceSettings(tuple(reachable), tuple(chosen), own.relay_only)

    async def start(self) -> None:
        """Sign in to our relay (RelayUnreachable if we cannot) and tell contacts we are online."""
        if not self.relay_url:
            raise UsageError("no relay configured: tcall settings set relay_url ws://HOST:PORT")
        if self._online_claim is None:
            self._online_claim = hold_online(identity_path().parent)
        self._set_relay_state("connecting")
        warm_up_soon()  # while the relay answers, so that calls start warm
        try:
            await self._link(self.relay_url)
        except TcallError:
            self._set_relay_state("offline")
            raise
        self._set_relay_state("online")
        # Learn now which of the relay's TURN transports work from here, not when a call waits.
        self._warm_ice = asyncio.create_task(self.call_ice())
        if self._settings.presence == "contacts":
            for contact in self._contacts.contacts():
                if not contact.blocked and self._on_our_relay(contact):
                    await self._send_quietly(contact, "presence", "", presence="online")

    async def stay_online(self) -> None:
        """Sign in to our relay, and keep trying (with backoff) until it works; never raises for an
        unreachable relay: RelayChanged events tell how it goes."""
        try:
            await self.start()
        except RelayUnreachable as exc:
            self._emit_notice(str(exc))
            self._keep_trying()

    def _keep_trying(self) -> None:
        if self._reconnector is None or self._reconnector.done():
            self._reconnector = asyncio.create_task(self._reconnect(), name="relay reconnect")

    async def _reconnect(self) -> None:
        delay = RECONNECT_FIRST_S
        while not self._closing and self.relay_url:
            # The jitter keeps every client of a restarted relay from coming back at once.
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            try:
                await self.start()
                return
            except RelayUnreachable:
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def close(self) -> None:
        self._closing = True
        if self._warm_ice is not None:
            self._warm_ice.cancel()
        for timer in self._quota_timers.values():
            timer.cancel()
        self._close_silenced()
        self._close_refused()
        self._close_requests()
        if self._reconnector is not None:
            self._reconnector.cancel()
        for group in list(self._groups.values()):
            group.hang_up()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(group.done), 8)
        for call in list(self._calls.values()):
            with contextlib.suppress(TcallError):
                await self.hangup(call.call_id)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(call.done), 5)
        if self._settings.presence == "contacts" and self._links:
            for contact in self._contacts.contacts():
                if contact.name in self._online and self._on_our_relay(contact):
                    await self._send_quietly(contact, "presence", "", presence="offline")
        for reader in self._readers:
            reader.cancel()
        for link in self._links.values():
            await link.close()
        self._links.clear()
        if self._online_claim is not None:
            os.close(self._online_claim)
            self._online_claim = None
        if self._relay_state in ("online", "connecting"):
            self._set_relay_state("offline")

    def _set_relay_state(self, state: str) -> None:
        self._relay_state = state
        self._emit(RelayChanged(state, self.relay_url))
        self._republish()

    async def _link(self, url: str) -> RelayClient:
        link = self._links.get(url)
        if link is None:
            signing_key = nacl.signing.SigningKey(self._identity.seed)
            link = await RelayClient.connect(url, signing_key)
            self._links[url] = link
            self._readers.append(asyncio.create_task(self._read(link), name=f"relay {url}"))
        return link

    async def _read(self, link: RelayClient) -> None:
        try:
            while True:
                payload = await link.receive()
                try:
                    await self._dispatch(payload)
                except TcallError as exc:  # e.g. the caller's relay is down: not our link's fault
                    self._emit_notice(str(exc))
        except TcallError as exc:
            if self._links.get(link.url) is link:  # not already replaced (network_changed)
                del self._links[link.url]
            self._fail_waiting(exc)
            if link.url != self.relay_url or self._closing:
                return
            self._set_relay_state("offline")
            self._emit_notice(str(exc))
            if link.replaced:
                # Coming back would only push the other one off in turn, for ever.
                self.relay_lost = RelayUnreachable(
                    f"{exc}: this identity signed in to the relay from somewhere else"
                )
            elif self.reconnect:
                self._keep_trying()
            else:
                self.relay_lost = exc

    def network_changed(self) -> None:
        """An address of ours went away: a relay link bound to it is dead, though TCP may not
        notice for minutes. Drop every link now, so that the next message (a call's re-offer)
        opens a fresh one; our own relay's reader then signs in again as after any loss."""
        links, self._links = list(self._links.values()), {}
        for link in links:
            task = asyncio.create_task(link.close(), name=f"drop relay link {link.url}")
            self._dropping.add(task)
            task.add_done_callback(self._dropping.discard)

    def _emit_notice(self, message: str) -> None:
        self._emit(Notice(message))

    async def _send(
        self, peer_key: bytes, relay_url: str, kind: str, call_id: str, **fields: Any
    ) -> None:
        link = await self._link(relay_url or self.relay_url)
        payload = seal_message(self._identity, peer_key, kind, call_id, self.clock(), **fields)
        await link.send(mailbox_id(peer_key), payload)

    def _on_our_relay(self, contact: Contact) -> bool:
        """Presence goes only to contacts on our own relay: tcall connects to another relay only
        to call someone there (or to answer their call), never just to say it is online, so a
        contact's relay learns our IP address only when we call through it, and a dead one never
        slows anything else down."""
        return not contact.relay_url or contact.relay_url == self.relay_url

    async def _send_quietly(self, contact: Contact, kind: str, call_id: str, **fields: Any) -> None:
        with contextlib.suppress(TcallError):
            await self._send(contact.public_key, contact.relay_url, kind, call_id, **fields)

    # --- incoming messages -----------------------------------------------------------------

    async def _dispatch(self, payload: bytes) -> None:
        """Handle one message, in arrival order (an offer's call exists before the hangup the
        relay may have held right behind it)."""
        try:
            received = open_message(
                self._identity,
                payload,
                self.clock(),
                self._replay_guard,
                self._contacts.lookup,
                allow_unknown=True,
            )
        except WireRefusal as exc:
            self._refuse(refusal(exc, self._cores()))
            return
        message = received.message
        contact = self._contacts.by_key(message.sender)
        if message.kind in GROUP_KINDS:
            self._group_message(message)
            return
        if message.kind == "offer" and message.group is not None:
            group = self._groups.get(message.group.group_id)
            if group is not None:
                self._member_offer(group, message)
                return
            if not self._invitation_ok(message):
                return
        if message.kind == "presence":
            self._presence(received.contact, message.presence == "online")
            return
        if message.kind == "request":
            self._contact_request(message, contact)
            return
        verdict = route(
            message,
            contact,
            self._cores(),
            self._settings,
            datetime.fromtimestamp(self.clock()),
            auto_answer_contacts=self.auto_answer_contacts,
            call_settings=self.call_settings(self.incoming_options),
            over=self._over_ids,
        )
        if isinstance(verdict, NotRinging):
            self._remember_over(message.call_id)  # the caller's courtesy hangup is expected
        match verdict:
            case Ignore():
                pass
            case ForCall(call_id, event):
                self._calls[call_id].feed(event)
            case Refuse():
                self._refuse(verdict)
            case NotRinging(Silenced() as silenced, video, _) if contact is None:
                self._stranger_silenced(silenced, video)
            case NotRinging(event, video, reply_busy):
                self._history.add(
                    CallRecord(event.peer, "incoming", self.clock(), 0.0, event.kind, video)
                )
                self._emit(event)
                self._republish()
                if reply_busy and contact is not None:
                    await self._send_quietly(contact, "busy", message.call_id)
            case Ring(core, auto_answer) if message.group is not None:
                await self._ring_group(core, auto_answer, message)
            case Ring(core, auto_answer):
                relay = contact.relay_url if contact else ""
                channel = RelayChannel(self, core.peer_key, relay)
                live = self._live_call(core, self.incoming_options, channel, await self.call_ice())
                live.perform(core.ring())
                if auto_answer:
                    live.feed(Accept(video=core.video_allowed))
        if isinstance(verdict, Ring | NotRinging) and contact is None:
            self._contact_request(message, contact)  # a stranger's first call asks to be added

    # --- group calls (engine/group.py) ----------------------------------------------------------

    def _group_message(self, message: Message) -> None:
        """join, added, leave, mic: a member's word about a group call we know."""
        group = self._groups.get(message.call_id)
        if group is None:
            # A join may come before the invitation it follows: dropped without a word, since
            # its sender says it again in answer to ours (engine/core/group.py _meet).
            if message.kind != "join" and message.call_id not in self._over_ids:
                self._refuse(refusal(ProtocolError(f"a {message.kind} for no call of ours"), {}))
            return
        core = group.core
        try:
            match message.kind:
                case "join":
                    actions = core.peer_joined(message.sender)
                case "leave":
                    actions = core.peer_left(message.sender)
                case "mic":
                    core.peer_mic(message.sender)
                    group.member_muted(message.sender, bool(message.muted))
                    return
                case _:
                    assert message.member is not None
                    actions = core.added(message.sender, message.member)
        except TcallError as exc:
            self._refuse(refusal(exc, {}))
            return
        group.perform(actions)

    def _invitation_ok(self, message: Message) -> bool:
        """An invitation to a group call we are not in: its roster must name us and its sender,
        and its call id must be our pair's with the sender."""
        roster = message.group
        assert roster is not None
        me, keys = self.public_key, roster.member_keys()
        if me not in keys or message.sender not in keys:
            error: TcallError = IdentityError("an invitation whose roster does not name us both")
        elif message.call_id != pair_id(roster.group_id, frozenset(keys[:2]), message.sender, me):
            error = ProtocolError("an invitation whose call id is not its pair's")
        else:
            return True
        self._refuse(refusal(error, {}))
        return False

    def _member_offer(self, group: GroupCall, message: Message) -> None:
        """A member of a group call we are in offers our pair: no ringing (the roster vouches for
        them), but only as the roster rules allow."""
        sender = message.sender
        try:
            if message.call_id != group.core.pair_id(sender) or message.call_id in self._calls:
                raise ProtocolError("a group member's offer under another call id")
            group.perform(group.core.pair_offered(sender))
        except TcallError as exc:
            self._refuse(refusal(exc, {}))
            return
        contact = self._contacts.by_key(sender)
        core = CallCore(
            call_id=message.call_id,
            peer=group.name(sender),
            peer_key=sender,
            outgoing=False,
            settings=group.pair_settings(),
            verified=bool(contact and contact.verified),
            is_contact=contact is not None,
            offer_sdp=message.sdp,
            peer_camera=bool(message.video),
        )
        core.video_allowed = group.video_allowed
        live = self.group_pair(group, core, group.core.entry(sender))
        group.offered(live, sender)

    async def _ring_group(self, core: CallCore, auto_answer: bool, message: Message) -> None:
        """An invitation that policy lets ring: a group call we are invited to."""
        roster = message.group
        assert roster is not None
        incoming = self.incoming_options
        camera = incoming.camera_on if incoming.camera_chosen else self._settings.answer_with_camera
        options = dataclasses.replace(
            group_options(incoming), ice=await self.call_ice(), camera_on=camera
        )
        group_core = GroupCore(roster, self.public_key, self._is_blocked)
        group = GroupCall(self, group_core, options, self._emit, self._group_over)
        group.video_allowed = core.video_allowed  # policy (video_calling) judged the invitation
        self._groups[roster.group_id] = group
        self._remember_over(roster.group_id)
        core.settings = group.pair_settings()
        live = self.group_pair(group, core, group_core.entry(message.sender))
        group.ring(live, message.sender, auto_answer)

    def _is_blocked(self, key: bytes) -> bool:
        contact = self._contacts.by_key(key)
        return contact is not None and contact.blocked

    def group_pair(self, group: GroupCall, core: CallCore, peer: RosterEntry) -> LiveCall:
        """A pair call of `group` with `peer`, registered like any call so its messages route."""
        live = self._live_call(
            core,
            group.options,
            RelayChannel(self, peer.key, peer.relay, lambda: group.core.roster),
            group.options.ice,
            emit=lambda event: group.pair_event(peer.key, event),
            sessions=group.session,
            release=group.release,
        )
        live.video = group.video_of(peer.key)  # the member's tile shows what this pair receives
        return live

    async def send_group(
        self,
        to: RosterEntry,
        kind: str,
        group_id: str,
        member: RosterEntry | None = None,
        muted: bool | None = None,
    ) -> None:
        await self._send(to.key, to.relay, kind, group_id, member=member, muted=muted)

    def _group_over(self, group: GroupCall) -> None:
        self._groups.pop(group.call_id, None)
        self._republish()

    async def dial_group(
        self, names: list[str], options: CallOptions, *, invites: bool = True
    ) -> GroupHandle:
        """Call these contacts together (a group call of up to MAX_MEMBERS, us included);
        `invites` False: only we may bring more people in."""
        if len(set(names)) != len(names):
            raise UsageError("a contact is named twice")
        if not 2 <= len(names) + 1 <= MAX_MEMBERS:
            raise UsageError(f"a group call has 3 to {MAX_MEMBERS} members, you included")
        contacts = [self._contacts.get(name) for name in names]
        for contact in contacts:
            if contact.blocked:
                raise UsageError(
                    f"{contact.name} is blocked: unblock them first "
                    f"(tcall contacts unblock {contact.name})"
                )
        if not self.relay_url:
            raise UsageError("no relay configured: tcall settings set relay_url ws://HOST:PORT")
        roster = Roster(
            new_call_id(),
            invites,
            (
                RosterEntry(self.public_key, self.relay_url),
                *(RosterEntry(c.public_key, c.relay_url) for c in contacts),
            ),
        )
        group = GroupCall(
            self,
            GroupCore(roster, self.public_key, self._is_blocked),
            dataclasses.replace(group_options(options), ice=await self.call_ice()),
            self._emit,
            self._group_over,
        )
        self._groups[roster.group_id] = group
        self._remember_over(roster.group_id)
        group.media()  # a missing device: DeviceError now, before anyone is called
        group.perform(group.core.create())
        return group.handle

    async def invite(self, call_id: str, name: str) -> None:
        """Bring contact `name` into group call `call_id`; a 1:1 call becomes a group call."""
        group = self._groups.get(call_id)
        contact = self._contacts.get(name)
        if contact.blocked:
            raise UsageError(
                f"{name} is blocked: unblock them first (tcall contacts unblock {name})"
            )
        if group is None:
            raise UsageError("inviting into a 1:1 call is not supported yet: start a group call")
        try:
            group.invite(RosterEntry(contact.public_key, contact.relay_url))
        except ProtocolError as exc:
            raise UsageError(f"cannot invite {name}: {exc}") from None

    def group_handle(self, call_id: str) -> GroupHandle | None:
        group = self._groups.get(call_id)
        return group.handle if group else None

    def _contact_request(self, message: Message, contact: Contact | None) -> None:
        """Keep a stranger's contact request; never ring for it. Like silenced calls, a flood of
        them costs a few events and writes a minute: the rest are noted in memory (at most
        MAX_REQUESTS of them) and written, and counted in a notice, when the minute is over."""
        taken = {c.name for c in self._contacts.contacts()}
        request = contact_request(message, contact, taken, self.clock())
        if request is None:
            return
        self._requests.note(request)
        if self._requested.report(self.clock()):
            self._requests.save()
            self._emit(ContactRequested(request.name, request.fingerprint, request.relay_url))
            self._republish()
        if self._requested.opens_window:
            self._close_later(self._close_requests)

    def _close_requests(self) -> None:
        hidden = self._requested.close()
        if self._requests.unsaved:
            self._requests.save()
            self._republish()
        if hidden:
            self._emit_notice(
                f"{hidden} more contact requests from strangers in the last minute "
                "(tcall contacts requests lists them)"
            )

    def _stranger_silenced(self, event: Silenced, video: bool) -> None:
        """A stranger's call that policy silenced: cheap however many come (a flood must not
        rewrite the history file thousands of times, nor delay a contact's call)."""
        if self._silenced.report(self.clock()):
            self._emit(event)
        if self._silenced.opens_window:
            self._history.add(
                CallRecord(event.peer, "incoming", self.clock(), 0.0, "silenced", video)
            )
            self._republish()
            self._close_later(self._close_silenced)

    def _close_silenced(self) -> None:
        """Log the window's other silenced strangers' calls as one entry, and say how many."""
        more = self._silenced.count - 1
        hidden = self._silenced.close()
        if more > 0:
            start = self.clock() - QUOTA_WINDOW_S
            self._history.add(
                CallRecord(STRANGERS, "incoming", start, 0.0, "silenced", False, more)
            )
            self._republish()
        if hidden:
            self._emit_notice(f"silenced {hidden} more calls from strangers in the last minute")

    def _close_refused(self) -> None:
        if hidden := self._refused.close():
            self._emit_notice(f"refused {hidden} more messages in the last minute")

    def _close_later(self, close: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        self._quota_timers[close.__name__] = loop.call_later(QUOTA_WINDOW_S, close)

    def _remember_over(self, call_id: str) -> None:
        self._over_ids[call_id] = None
        if len(self._over_ids) > OVER_IDS_KEPT:
            del self._over_ids[next(iter(self._over_ids))]

    def _cores(self) -> dict[str, CallCore]:
        return {call_id: live.core for call_id, live in self._calls.items()}

    def _refuse(self, verdict: Refuse) -> None:
        if verdict.fail_call is not None:  # about our own call: always said, never counted
            self._emit(verdict.event)
            self._calls[verdict.fail_call].feed(Failed(verdict.error))
            return
        if self._refused.report(self.clock()):
            self._emit(verdict.event)
        if self._refused.opens_window:
            self._close_later(self._close_refused)

    def _fail_waiting(self, error: TcallError) -> None:
        for live in list(self._calls.values()):
            if live.core.waiting:
                live.feed(Failed(error))

    def _presence(self, contact: str | None, online: bool) -> None:
        if contact is None or self._settings.presence != "contacts":
            return
        if self._contacts.get(contact).blocked:
            return  # a blocked contact must not learn we are online: the same as offline
        was_online = contact in self._online
        (self._online.add if online else self._online.discard)(contact)
        if online != was_online:
            self._emit(PresenceChanged(contact, online))
            self._republish()
        if online and not was_online and self._on_our_relay(self._contacts.get(contact)):
            asyncio.ensure_future(
                self._send_quietly(self._contacts.get(contact), "presence", "", presence="online")
            )

    # --- calls -----------------------------------------------------------------------------

    def call_settings(self, options: CallOptions) -> CallSettings:
        return CallSettings(
            ring_timeout=self.ring_timeout,
            connect_timeout=options.connect_timeout,
            duration=options.duration,
            ask_before_video=self._settings.ask_before_video,
            answer_with_camera=(
                options.camera_on if options.camera_chosen else self._settings.answer_with_camera
            ),
            camera_on=options.camera_on,
        )

    def _live_call(
        self,
        core: CallCore,
        options: CallOptions,
        channel: Channel,
        ice: IceSettings,
        *,
        emit: EmitEvent | None = None,
        sessions: SessionFactory = open_session,
        release: Callable[[Session], None] | None = None,
    ) -> LiveCall:
        """A call registered with us, so its messages route to it. A group call's pair (see
        group_pair) reports to its group and takes its Session from the group's media."""
        options = dataclasses.replace(options, ice=ice)
        live = LiveCall(
            core,
            options,
            channel,
            emit or self._emit,
            self._history,
            self.clock,
            self._over,
            sessions=sessions,
            release=release,
        )
        self._calls[core.call_id] = live
        self._remember_over(core.call_id)
        return live

    def _over(self, live: LiveCall) -> None:
        self._calls.pop(live.call_id, None)
        self._republish()  # its history record

    def _handle(self, live: LiveCall) -> CallHandle:
        core = live.core
        return CallHandle(
            core.call_id,
            core.peer,
            core.verified,
            live.video,
            live.done,
            core.camera,
            live.mic_level,
        )

    async def dial(self, name: str, options: CallOptions) -> CallHandle:
        """Call contact `name` (or `echo`); the handle's `done` resolves to the Summary.

        Media opens before anything is sent: a missing device is a DeviceError here.
        """
        call_id = new_call_id()
        if name == ECHO and ECHO not in {c.name for c in self._contacts.contacts()}:
            # The echo runs in this process over loopback: its path cannot die, so no re-offers.
            settings = dataclasses.replace(
                self.call_settings(options), ask_before_video=False, renew=False
            )
            core = CallCore(call_id, ECHO, outgoing=True, settings=settings, verified=True)
            core.video_allowed = options.video != "none"
            # The echo peer is on this machine: host candidates only. Our side: as configured.
            channel: Channel = EchoChannel(
                IceSettings(),
                options.low_latency,
                lambda m: live.feed(m),
                audio_bitrate=audio_settings(options)[1],  # the echo sends as we do
            )
            ice = self.ice_settings()
            via_relay = False
        else:
            contact = self._contacts.get(name)
            if not (contact.relay_url or self.relay_url):
                raise UsageError(
                    "no relay configured: set relay_url in Settings (s on the contacts screen) "
                    "or: tcall settings set relay_url ws://HOST:PORT"
                )
            if contact.blocked:
                raise UsageError(
                    f"{name} is blocked: unblock them first (tcall contacts unblock {name})"
                )
            core = CallCore(
                call_id,
                name,
                outgoing=True,
                peer_key=contact.public_key,
                settings=self.call_settings(options),
                verified=contact.verified,
                is_contact=True,
            )
            core.video_allowed = options.video != "none"
            channel = RelayChannel(self, contact.public_key, contact.relay_url)
            ice = await self.call_ice()
            via_relay = True
        live = self._live_call(core, options, channel, ice)
        try:
            live.open_media()
        except TcallError:
            self._calls.pop(call_id, None)
            await channel.close()
            raise
        live.feed(Start())
        if via_relay:
            asyncio.get_running_loop().call_later(OFFLINE_NOTICE_S, self._say_offline, live)
        return self._handle(live)

    def _say_offline(self, live: LiveCall) -> None:
        """Nothing rang and the callee does not show as online: say so now, not after the whole
        ring time; the call still rings if they come online in time (the relay holds the offer).
        A callee who blocked us, or whose do-not-disturb is on, looks exactly the same."""
        core = live.core
        if core.ended or core.phase is not CallPhase.CALLING or core.peer in self._online:
            return
        wait = core.settings.ring_timeout - OFFLINE_NOTICE_S
        self._emit(
            Notice(
                f"{core.peer} appears to be offline; ringing for {wait:g} s more in case they "
                "come online",
                core.call_id,
            )
        )

    def _live(self, call_id: str) -> LiveCall:
        live = self._calls.get(call_id)
        if live is None or live.core.ended:
            raise UsageError(f"no such call: {call_id}")
        return live

    async def accept(
        self, call_id: str, video: bool = True, options: CallOptions | None = None
    ) -> CallHandle | GroupHandle:
        """Answer a ringing call (audio only with `video=False`); `options` name the devices. An
        invitation to a group call gives the group's handle."""
        group = self._groups.get(call_id)
        if group is not None:
            if options is not None:
                group.options = dataclasses.replace(group_options(options), ice=group.options.ice)
            try:
                group.accept(video)
            except ProtocolError as exc:
                raise UsageError(str(exc)) from None
            return group.handle
        live = self._live(call_id)
        if options is not None:
            live.options = dataclasses.replace(options, ice=live.options.ice)
        live.feed(Accept(video))
        return self._handle(live)

    async def decline(self, call_id: str) -> None:
        if call_id in self._groups:
            self._groups[call_id].decline()
            return
        self._live(call_id).feed(Decline())

    async def hangup(self, call_id: str) -> None:
        """End a call: cancel it while it rings, decline it while it rings here, or hang up."""
        if call_id in self._groups:
            self._groups[call_id].hang_up()
            return
        live = self._calls.get(call_id)
        if live is not None and not live.core.ended:
            live.feed(HangUp())

    async def interrupt(self, call_id: str) -> None:
        """Ctrl-C: end the call now, whatever its state (outcome `interrupted`)."""
        if call_id in self._groups:
            self._groups[call_id].interrupt()
            return
        live = self._calls.get(call_id)
        if live is not None and not live.core.ended:
            live.feed(Interrupt())

    async def set_camera(self, call_id: str, on: bool) -> None:
        """Turn our camera on or off mid-call, and tell the peer (who may be asked first)."""
        if call_id in self._groups:
            self._groups[call_id].set_camera(on)
            return
        self._live(call_id).feed(SetCamera(on))

    async def set_muted(self, call_id: str, muted: bool) -> None:
        if call_id in self._groups:
            self._groups[call_id].set_muted(muted)
            return
        self._live(call_id).feed(SetMuted(muted))

    async def allow_video(self, call_id: str) -> None:
        """Show the peer's video (the answer to a `video_request`)."""
        self._live(call_id).feed(AllowVideo())

    # --- contacts, settings, history -------------------------------------------------------

    async def add_contact(self, name: str, public_key: bytes, relay_url: str = "") -> ContactView:
        self._contacts.add(name, public_key, relay_url)
        self._requests.discard(public_key)  # a request from them is answered
        self._republish()
        return self.snapshot.contact(name)

    async def send_request(self, name: str, as_name: str = "") -> None:
        """Ask contact `name` to add us back: a `request` message with our relay URL (offers carry
        it too) and `as_name`, the name we suggest for ourselves ("" for none: they see our
        fingerprint). Through a link we have, else through
        one of its own that is closed at once, so that nothing meant for us lands here; that
        link signs in, so RelayUnreachable if the relay cannot be reached or this identity is
        online elsewhere on this machine (signing in there would push that one off)."""
        contact = self._contacts.get(name)
        if contact.blocked:
            raise UsageError(
                f"{name} is blocked: unblock them first (tcall contacts unblock {name})"
            )
        if not (contact.relay_url or self.relay_url):
            raise UsageError("no relay configured: tcall settings set relay_url ws://HOST:PORT")
        if as_name:
            check_name(as_name)
        url = contact.relay_url or self.relay_url
        payload = seal_message(
            self._identity,
            contact.public_key,
            "request",
            "",
            self.clock(),
            relay=self.relay_url,
            name=as_name,
        )
        link = self._links.get(url)
        if link is not None:
            await link.send(mailbox_id(contact.public_key), payload)
            return
        if self._online_claim is None:
            self._online_claim = hold_online(identity_path().parent)
        link = await RelayClient.connect(url, nacl.signing.SigningKey(self._identity.seed))
        try:
            await link.send(mailbox_id(contact.public_key), payload)
        finally:
            await link.close()

    async def accept_request(self, ref: str, name: str = "") -> ContactView:
        """Add the sender of a pending request (named by its suggested name or fingerprint) as a
        contact called `name` (default: the name they suggested)."""
        contact = accept_request(self._requests, self._contacts, ref, name)
        self._republish()
        return self.snapshot.contact(contact.name)

    async def ignore_request(self, ref: str) -> None:
        ignore_request(self._requests, ref)
        self._republish()

    async def block_request(self, ref: str, name: str = "") -> ContactView:
        """Block the sender of a pending request: a blocked contact from now on."""
        contact = block_request(self._requests, self._contacts, ref, name)
        self._republish()
        return self.snapshot.contact(contact.name)

    async def remove_contact(self, name: str) -> None:
        self._contacts.remove(name)
        self._online.discard(name)
        self._republish()

    async def set_blocked(self, name: str, blocked: bool) -> None:
        self._contacts.set_blocked(name, blocked)
        self._republish()

    async def set_verified(self, name: str, verified: bool) -> None:
        self._contacts.set_verified(name, verified)
        self._republish()

    async def set_setting(self, key: str, text: str) -> None:
        """Change one setting (UsageError naming the key if the value is bad) and apply it."""
        old_relay = self.relay_url
        self._settings.set(key, text)
        self._history.retention_days = self._settings.history_retention_days
        if self.relay_url != old_relay:
            for link in list(self._links.values()):
                await link.close()
            self._links.clear()
            self._relay_state = "offline" if self.relay_url else "not set"
        self._republish()

    async def clear_history(self) -> None:
        self._history.clear()
        self._republish()

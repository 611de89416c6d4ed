"""The engine facade that the command line and the TUI drive: methods in, events out.

A Phone is one identity (one TCALL_HOME): its key, contacts, settings and history, and its link to
the relay. `dial`, `accept`, `decline` and `hangup` go in; dict events come out through `emit`:
`relay`, `presence`, `incoming`, `silenced`, `missed`, `refused`, `state`, `stats`, `notice` and
`summary`, each call event tagged with its `call_id`. Every incoming message is opened and verified
by `engine.wire` and every incoming call is judged by `engine.policy` before anything rings.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import nacl.signing

from tcall.engine.call import CallOptions, outcome_of, run_call
from tcall.engine.callstate import CallMachine, Event, State
from tcall.engine.contacts import Contact, ContactBook
from tcall.engine.errors import ExitCode, IdentityError, ProtocolError, TcallError, UsageError
from tcall.engine.history import CallRecord, History
from tcall.engine.ice import IceSettings
from tcall.engine.identity import Identity, fingerprint, load_or_create_identity
from tcall.engine.policy import Decision, decide_incoming
from tcall.engine.relay.client import RelayClient
from tcall.engine.relay.protocol import mailbox_id
from tcall.engine.session import Emit, Session
from tcall.engine.settings import Settings
from tcall.engine.wire import (
    Message,
    ReplayGuard,
    WireRefusal,
    new_call_id,
    open_message,
    seal_message,
)

Clock = Callable[[], float]
REPLIES = {"ring": Event.RING, "answer": Event.ANSWER, "decline": Event.DECLINE, "busy": Event.BUSY}
WAITING = (State.CALLING, State.RINGING)


@dataclass
class Call:
    """One call, outgoing or incoming, from first message to summary."""

    call_id: str
    peer: str  # contact name, or "unknown <fingerprint>"
    peer_key: bytes
    contact: Contact | None
    machine: CallMachine
    options: CallOptions
    video: bool  # video is allowed in this call (policy), though either camera may be off
    started_at: float
    offer_sdp: str | None = None
    inbox: asyncio.Queue[Message | TcallError] = field(default_factory=asyncio.Queue)
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # interrupt (Ctrl-C)
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # a normal hang-up
    peer_hung_up: bool = False
    error: TcallError | None = None  # set when tampering or a broken peer ends the call
    peer_camera: bool = False  # the peer's camera was on when the call was set up
    session: Session | None = None
    task: asyncio.Task[None] | None = None
    done: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def outgoing(self) -> bool:
        return self.machine.outgoing

    @property
    def verified(self) -> bool:
        return bool(self.contact and self.contact.verified)


class Phone:
    def __init__(
        self,
        emit: Emit,
        *,
        clock: Clock = time.time,
        auto_answer_contacts: bool = False,
        ring_timeout: float = 30.0,
        incoming_options: CallOptions | None = None,
    ) -> None:
        self._emit = emit
        self.clock = clock
        self.auto_answer_contacts = auto_answer_contacts
        self.ring_timeout = ring_timeout
        self.identity: Identity = load_or_create_identity()
        self.contacts = ContactBook.load()
        self.settings = Settings.load()
        self.history = History.open(self.settings.history_retention_days, clock)
        self.incoming_options = incoming_options or CallOptions()
        self.replay_guard = ReplayGuard()
        self.calls: dict[str, Call] = {}
        self.relay_state = "offline"
        self.online: set[str] = set()
        self._links: dict[str, RelayClient] = {}
        self._readers: list[asyncio.Task[None]] = []

    # --- relay -----------------------------------------------------------------------------

    @property
    def relay_url(self) -> str:
        return self.settings.relay_url

    def ice_settings(self) -> IceSettings:
        turn = [(t.url, t.username, t.credential) for t in self.settings.turn_servers]
        return IceSettings(
            stun_servers=tuple(self.settings.stun_servers),
            turn_servers=tuple(turn),
            relay_only=self.settings.relay_only,
        )

    async def start(self) -> None:
        """Sign in to our relay (RelayUnreachable if we cannot) and tell contacts we are online."""
        if not self.relay_url:
            raise UsageError("no relay configured: tcall settings set relay_url ws://HOST:PORT")
        self._set_relay_state("connecting")
        try:
            await self._link(self.relay_url)
        except TcallError:
            self._set_relay_state("offline")
            raise
        self._set_relay_state("online")
        if self.settings.presence == "contacts":
            for contact in self.contacts.contacts():
                if not contact.blocked:
                    await self._send_quietly(contact, "presence", "", presence="online")

    async def close(self) -> None:
        for call in list(self.calls.values()):
            await self.hangup(call.call_id)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(call.done), 5)
        if self.settings.presence == "contacts" and self._links:
            for contact in self.contacts.contacts():
                if contact.name in self.online:
                    await self._send_quietly(contact, "presence", "", presence="offline")
        for reader in self._readers:
            reader.cancel()
        for link in self._links.values():
            await link.close()
        self._links.clear()
        self._set_relay_state("offline")

    def _set_relay_state(self, state: str) -> None:
        self.relay_state = state
        self._emit({"event": "relay", "state": state, "url": self.relay_url})

    async def _link(self, url: str) -> RelayClient:
        link = self._links.get(url)
        if link is None:
            signing_key = nacl.signing.SigningKey(self.identity.seed)
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
                    self._emit({"event": "notice", "message": str(exc)})
        except TcallError as exc:
            self._links.pop(link.url, None)
            if link.url == self.relay_url:
                self._set_relay_state("offline")
                self._emit({"event": "notice", "message": str(exc)})
            for call in self.calls.values():
                if call.machine.state in WAITING:
                    call.inbox.put_nowait(exc)

    async def _send(
        self, peer_key: bytes, relay_url: str, kind: str, call_id: str, **fields: Any
    ) -> None:
        link = await self._link(relay_url or self.relay_url)
        payload = seal_message(self.identity, peer_key, kind, call_id, self.clock(), **fields)
        await link.send(mailbox_id(peer_key), payload)

    async def _send_quietly(self, contact: Contact, kind: str, call_id: str, **fields: Any) -> None:
        with contextlib.suppress(TcallError):
            await self._send(contact.public_key, contact.relay_url, kind, call_id, **fields)

    async def _send_to_call(self, call: Call, kind: str, **fields: Any) -> None:
        relay = call.contact.relay_url if call.contact else ""
        await self._send(call.peer_key, relay, kind, call.call_id, **fields)

    # --- incoming messages -----------------------------------------------------------------

    async def _dispatch(self, payload: bytes) -> None:
        """Handle one message. Awaited in arrival order, so an offer's call exists before the
        hangup the relay may have held right behind it."""
        try:
            received = open_message(
                self.identity,
                payload,
                self.clock(),
                self.replay_guard,
                self.contacts.lookup,
                allow_unknown=True,
            )
        except WireRefusal as exc:
            self._refused(exc)
            return
        message = received.message
        call = self.calls.get(message.call_id)
        if message.kind == "presence":
            self._presence(received.contact, message)
        elif message.kind == "offer" and call is None:
            await self._incoming(message)
        elif call is None:
            # Late mail for a call that is over (the relay holds messages for a while): report it,
            # but it must not end the call we are making now.
            self._refused(ProtocolError(f"a {message.kind} for no call of ours"), waiting=False)
        elif message.sender != call.peer_key:
            self._refused(
                IdentityError(
                    f"a {message.kind} for our call with {call.peer} was signed by another key"
                )
            )
        else:
            self._for_call(call, message)

    def _refused(self, error: TcallError, waiting: bool = True) -> None:
        """A message we could not trust. A call waiting for its answer ends with that error, or a
        tampering relay could stall it silently. Calls already set up go on: strangers who know
        our address must not be able to cut them off with junk."""
        reason = getattr(
            error, "reason", "identity" if error.code == ExitCode.IDENTITY else "protocol"
        )
        self._emit({"event": "refused", "reason": reason, "message": str(error)})
        if waiting:
            for call in self.calls.values():
                if call.outgoing and call.machine.state in (State.CALLING, State.RINGING):
                    call.inbox.put_nowait(error)

    def _presence(self, contact: str | None, message: Message) -> None:
        if contact is None or self.settings.presence != "contacts":
            return
        if self.contacts.get(contact).blocked:
            return  # a blocked contact must not learn we are online: the same as offline
        online = message.presence == "online"
        was_online = contact in self.online
        (self.online.add if online else self.online.discard)(contact)
        if online != was_online:
            self._emit({"event": "presence", "contact": contact, "online": online})
        if online and not was_online:
            asyncio.ensure_future(
                self._send_quietly(self.contacts.get(contact), "presence", "", presence="online")
            )

    def _for_call(self, call: Call, message: Message) -> None:
        state = call.machine.state
        if call.machine.ended:  # late mail for a call that just ended: its first error stands
            self._refused(ProtocolError(f"a {message.kind} after the call ended"), waiting=False)
            return
        reply = REPLIES.get(message.kind)
        if call.outgoing and reply is not None and call.machine.can(reply):
            # The machine moves as each message arrives, so order is checked on arrival.
            call.machine.handle(reply)
            call.inbox.put_nowait(message)
        elif message.kind == "hangup" and state is State.INCOMING:
            call.peer_hung_up = True
            call.machine.handle(Event.HANGUP)
            self._finish_unanswered(call, "missed")
        elif message.kind == "hangup" and state in (State.CONNECTING, State.ACTIVE):
            call.peer_hung_up = True
            call.ended.set()
        elif message.kind == "video" and state in (State.CONNECTING, State.ACTIVE):
            self._peer_video(call, bool(message.video))
        else:
            # Out of order or duplicated: the relay is tampering or the peer is broken.
            error = ProtocolError(f"unexpected {message.kind} while the call is {state}")
            self._emit({"event": "refused", "reason": "out_of_order", "message": str(error)})
            self._fail(call, error)

    def _fail(self, call: Call, error: TcallError) -> None:
        """End `call` with `error`, whatever state it is in; the first error is the one reported."""
        if call.machine.ended:
            return
        if call.machine.state in WAITING:
            call.inbox.put_nowait(error)
        elif call.machine.state is State.INCOMING:
            call.machine.handle(Event.FAILED)
            self._finish_unanswered(call, "failed")
        elif call.error is None:
            call.error = error
            call.ended.set()

    # --- outgoing calls --------------------------------------------------------------------

    async def dial(self, name: str, options: CallOptions) -> Call:
        """Start calling contact `name`; the returned Call's `done` resolves to its summary."""
        contact = self.contacts.get(name)
        if contact.blocked:
            raise UsageError(
                f"{name} is blocked: unblock them first (tcall contacts unblock {name})"
            )
        options = dataclasses.replace(options, ice=self.ice_settings())
        call = Call(
            call_id=new_call_id(),
            peer=name,
            peer_key=contact.public_key,
            contact=contact,
            machine=CallMachine(outgoing=True),
            options=options,
            video=options.video != "none",
            started_at=self.clock(),
        )
        self.calls[call.call_id] = call
        call.task = asyncio.create_task(self._run(call, self._ring_and_answer(call)))
        return call

    def _ring_and_answer(self, call: Call) -> Callable[[Session], Any]:
        async def connect(session: Session) -> None:
            call.session = session
            offer = await session.create_offer()
            camera = session.video_track is not None and session.video_track.enabled
            await self._send_to_call(call, "offer", sdp=offer, video=camera)
            self._call_state(call, State.CALLING)
            deadline = time.monotonic() + self.ring_timeout
            while True:
                try:
                    item = await asyncio.wait_for(call.inbox.get(), deadline - time.monotonic())
                except TimeoutError:
                    call.machine.handle(Event.TIMEOUT)
                    with contextlib.suppress(TcallError):  # cancelling is a courtesy
                        await self._send_to_call(call, "hangup")
                    raise TcallError(
                        f"{call.peer} is unavailable (no answer)", ExitCode.NO_ANSWER
                    ) from None
                if isinstance(item, TcallError):
                    if call.machine.can(Event.FAILED):
                        call.machine.handle(Event.FAILED)
                    raise item
                if item.kind == "ring":
                    self._call_state(call, State.RINGING)
                elif item.kind == "answer":
                    assert item.sdp is not None  # wire guarantees an answer carries SDP
                    # Video the callee sent when answering is part of the call we placed.
                    session.video_sink.allowed = (
                        bool(item.video) or not self.settings.ask_before_video
                    )
                    await session.accept_answer(item.sdp)
                    return
                elif item.kind == "decline":
                    raise TcallError(f"{call.peer} is unavailable (declined)", ExitCode.DECLINED)
                elif item.kind == "busy":
                    raise TcallError(f"{call.peer} is busy", ExitCode.BUSY)

        return connect

    # --- incoming calls --------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return any(not c.machine.ended for c in self.calls.values())

    async def _incoming(self, message: Message) -> None:
        contact = self.contacts.by_key(message.sender)
        peer = contact.name if contact else f"unknown {fingerprint(message.sender)[:19]}"
        decision = decide_incoming(
            self.settings,
            contact,
            wants_video=True,  # the offer's flag is the caller's camera; any call may turn video on
            now=datetime.fromtimestamp(self.clock()),
            in_call=self.busy,
            auto_answer_contacts=self.auto_answer_contacts,
        )
        if decision.action in ("silence", "miss", "busy"):
            outcome = {"silence": "silenced", "miss": "missed", "busy": "missed"}[decision.action]
            self._log(peer, "incoming", 0.0, outcome, bool(message.video))
            self._emit({"event": outcome, "from": peer, "reason": decision.reason})
            if decision.action == "busy" and contact is not None:
                await self._send_quietly(contact, "busy", message.call_id)
            return
        call = self._incoming_call(message, contact, peer, decision)
        try:
            await self._send_to_call(call, "ring")
        except TcallError:
            self.calls.pop(call.call_id, None)  # we cannot reach the caller: nothing to ring for
            raise
        self._emit(
            {
                "event": "incoming",
                "call_id": call.call_id,
                "from": peer,
                "verified": call.verified,
                "video": call.video and call.peer_camera,
            }
        )
        asyncio.get_running_loop().call_later(self.ring_timeout, self._ring_timed_out, call)
        if decision.action == "auto_answer":
            await self.accept(call.call_id, video=call.video)

    def _incoming_call(
        self, message: Message, contact: Contact | None, peer: str, decision: Decision
    ) -> Call:
        options = dataclasses.replace(
            self.incoming_options,
            ice=self.ice_settings(),
            camera_on=self.settings.answer_with_camera and self.incoming_options.camera_on,
        )
        call = Call(
            call_id=message.call_id,
            peer=peer,
            peer_key=message.sender,
            contact=contact,
            machine=CallMachine(outgoing=False),
            options=options,
            video=decision.video,
            started_at=self.clock(),
            offer_sdp=message.sdp,
            peer_camera=bool(message.video),
        )
        self.calls[call.call_id] = call
        return call

    def _ring_timed_out(self, call: Call) -> None:
        if call.machine.state is State.INCOMING:
            call.machine.handle(Event.TIMEOUT)
            self._finish_unanswered(call, "missed")

    async def accept(self, call_id: str, video: bool = True) -> None:
        call = self._call(call_id)
        call.machine.handle(Event.ANSWER)
        with_video = video and call.video
        if not call.video:  # video calling is off: a strictly audio-only call
            call.options = dataclasses.replace(call.options, video="none", receive_video=False)
        elif not video:  # audio now; either side may turn video on later
            call.options = dataclasses.replace(call.options, camera_on=False)

        async def connect(session: Session) -> None:
            call.session = session
            assert call.offer_sdp is not None
            # Accepting with video accepts the caller's video as it was offered; anything later asks.
            session.video_sink.allowed = (
                with_video and call.peer_camera
            ) or not self.settings.ask_before_video
            answer = await session.create_answer(call.offer_sdp)
            camera = session.video_track is not None and session.video_track.enabled
            await self._send_to_call(call, "answer", sdp=answer, video=camera)

        call.task = asyncio.create_task(self._run(call, connect))

    async def decline(self, call_id: str) -> None:
        call = self._call(call_id)
        call.machine.handle(Event.DECLINE)
        await self._send_to_call(call, "decline")
        self._finish_unanswered(call, "declined")

    async def hangup(self, call_id: str) -> None:
        """End a call: cancel it while it rings, decline it while it rings here, or hang up."""
        call = self.calls.get(call_id)
        if call is None or call.machine.ended:
            return
        if call.machine.state is State.INCOMING:
            await self.decline(call_id)
        else:
            call.ended.set()

    # --- in a call ---------------------------------------------------------------------------

    def _peer_video(self, call: Call, on: bool) -> None:
        sink = call.session.video_sink if call.session else None
        if on and sink is not None and not sink.allowed:
            # ask_before_video: the peer's new video stays hidden until the user allows it.
            self._emit({"event": "video_request", "call_id": call.call_id, "from": call.peer})
            return
        self._emit({"event": "peer_video", "call_id": call.call_id, "on": on})

    async def allow_video(self, call_id: str) -> None:
        """Show the peer's video (the answer to a `video_request`)."""
        call = self._call(call_id)
        if call.session is not None:
            call.session.video_sink.allowed = True
        self._emit({"event": "peer_video", "call_id": call_id, "on": True})

    async def set_camera(self, call_id: str, on: bool) -> None:
        """Turn our camera on or off mid-call, and tell the peer (who may be asked first)."""
        call = self._call(call_id)
        track = call.session.video_track if call.session else None
        if track is None:
            raise UsageError("this call has no camera (audio only)")
        track.enabled = on
        await self._send_to_call(call, "video", video=on)

    def set_muted(self, call_id: str, muted: bool) -> None:
        call = self._call(call_id)
        track = call.session.audio_track if call.session else None
        if track is not None:
            track.muted = muted

    def _call(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None or call.machine.ended:
            raise UsageError(f"no such call: {call_id}")
        return call

    # --- running a call --------------------------------------------------------------------

    def _call_state(self, call: Call, state: State) -> None:
        """Report `calling` and `ringing`; from `connecting` on, the Session reports the state."""
        self._emit({"event": "state", "call_id": call.call_id, "state": str(state)})

    async def _run(self, call: Call, connect: Callable[[Session], Any]) -> None:
        def emit(event: dict[str, Any]) -> None:
            if event["event"] == "state" and event.get("state") == "connected":
                with contextlib.suppress(ProtocolError):
                    call.machine.handle(Event.CONNECTED)
            self._emit({**event, "call_id": call.call_id})

        summary = await run_call(call.options, connect, emit, call.stop, call.ended)
        if call.error is not None:
            summary.update(outcome=outcome_of(call.error), reason=str(call.error))
        if not call.machine.ended:
            with contextlib.suppress(ProtocolError):
                call.machine.handle(
                    Event.HANGUP if summary["outcome"] == "answered" else Event.FAILED
                )
        if summary["outcome"] == "cancelled" and not call.outgoing:
            summary["outcome"] = "missed"
        if not call.peer_hung_up and summary["outcome"] not in ("declined", "busy", "no_answer"):
            with contextlib.suppress(TcallError):
                await self._send_to_call(call, "hangup")
        answered = summary["outcome"] in ("answered", "interrupted")
        duration = self.clock() - call.started_at if answered else 0.0
        direction = "outgoing" if call.outgoing else "incoming"
        self._log(call.peer, direction, duration, _history_outcome(summary["outcome"]), call.video)
        summary = {**summary, "call_id": call.call_id, "peer": call.peer}
        self._emit(summary)
        call.done.set_result(summary)
        self.calls.pop(call.call_id, None)

    def _finish_unanswered(self, call: Call, outcome: str) -> None:
        self._log(call.peer, "incoming", 0.0, outcome, call.video)
        summary = {
            "event": "summary",
            "call_id": call.call_id,
            "peer": call.peer,
            "outcome": outcome,
        }
        self._emit(summary)
        if not call.done.done():
            call.done.set_result(summary)
        self.calls.pop(call.call_id, None)

    def _log(self, peer: str, direction: str, duration: float, outcome: str, video: bool) -> None:
        self.history.add(
            CallRecord(
                contact=peer,
                direction=direction,
                started_at=self.clock() - duration,  # logged at the end; stamped at the start
                duration_s=round(duration, 1),
                outcome=outcome,
                video=video,
            )
        )


def _history_outcome(outcome: str) -> str:
    if outcome in ("answered", "interrupted"):
        return "answered"
    if outcome in ("declined", "busy", "no_answer", "missed"):
        return outcome
    if outcome == "cancelled":
        return "no_answer"
    return "failed"

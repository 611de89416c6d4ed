"""One call's rules, without I/O: inputs in, actions out.

A `CallCore` is fed what happened (a verified message from the peer, a timer that expired, media that
connected or failed, a command from the local user) and answers with the actions the driver
(`tcall.engine.phone`) must perform, in order. It owns no clock, socket or task: timers are actions
too, and come back as `TimerExpired`. Every rule that depends on a call's state lives here: which
message is valid when, when a call rings out or times out, how each call ends and what that ending
is called, whether the peer's video may be shown, and what goes into history.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from tcall.engine.core.outcome import Outcome, history_outcome, outcome_of
from tcall.engine.errors import ExitCode, ProtocolError, TcallError
from tcall.engine.events import (
    CallPhase,
    CallState,
    Event,
    IncomingCall,
    Notice,
    PeerVideo,
    Refused,
    VideoRequest,
)

# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Place the outgoing call (its media is open)."""


@dataclass(frozen=True)
class Accept:
    video: bool = True  # False: answer audio-only now; either side may turn video on later


@dataclass(frozen=True)
class Decline:
    pass


@dataclass(frozen=True)
class HangUp:
    pass


@dataclass(frozen=True)
class Interrupt:
    """Ctrl-C or SIGTERM: end the call at once, whatever its state."""


@dataclass(frozen=True)
class SetCamera:
    on: bool


@dataclass(frozen=True)
class SetMuted:
    muted: bool


@dataclass(frozen=True)
class AllowVideo:
    """The user agreed to see the peer's video (the answer to a VideoRequest)."""


@dataclass(frozen=True)
class PeerMessage:
    """A verified message from this call's peer (the Switchboard checked who signed it)."""

    kind: str
    sdp: str | None = None
    video: bool | None = None
    attempt: int | None = None  # reoffer, reanswer


@dataclass(frozen=True)
class OfferReady:
    sdp: str
    camera: bool  # our camera is on in the call we offer


@dataclass(frozen=True)
class AnswerReady:
    sdp: str
    camera: bool


@dataclass(frozen=True)
class ReofferReady:
    """The caller's fresh peer connection for re-offer `attempt` has its offer."""

    sdp: str
    attempt: int


@dataclass(frozen=True)
class ReanswerReady:
    sdp: str
    attempt: int


@dataclass(frozen=True)
class AddressesChanged:
    """Our network addresses changed mid-call (an interface went down or up, a new IP): the
    path the call uses may be gone, so its media is brought back over a new one at once."""


@dataclass(frozen=True)
class MediaConnected:
    """The peer connection connected: the first one, or a renewed one that took over."""


@dataclass(frozen=True)
class MediaCount:
    """What has arrived from the peer so far (packets of any kind: RTP, RTCP, DTLS), counted at
    `at` (seconds, the driver's monotonic clock): the answer to CountMedia."""

    received: int
    at: float


@dataclass(frozen=True)
class MediaFailed:
    """ICE or DTLS failed, or the connection closed under us."""


@dataclass(frozen=True)
class Failed:
    """Something outside the peer's messages ended the call: a refused message while we wait for
    an answer, the relay link lost, SDP that aiortc could not take, a device that would not open."""

    error: TcallError


@dataclass(frozen=True)
class SendFailed:
    kind: str
    error: TcallError


class Timer(enum.StrEnum):
    RING = "ring"  # nobody answered in time
    CONNECT = "connect"  # answered, but media did not connect in time
    DURATION = "duration"  # the call ran as long as asked (`--duration`)
    STATS = "stats"  # a stats event each second while connected
    WATCH = "watch"  # media arrival checked twice a second while connected
    RECONNECT = "reconnect"  # media stopped and did not come back in time
    RENEW = "renew"  # a re-offer got no connection in time: the caller tries again


@dataclass(frozen=True)
class TimerExpired:
    timer: Timer


Input = (
    Start
    | Accept
    | Decline
    | HangUp
    | Interrupt
    | SetCamera
    | SetMuted
    | AllowVideo
    | PeerMessage
    | OfferReady
    | AnswerReady
    | ReofferReady
    | ReanswerReady
    | AddressesChanged
    | MediaConnected
    | MediaCount
    | MediaFailed
    | Failed
    | SendFailed
    | TimerExpired
)

# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaPlan:
    """The media a call opens: what we send and receive, and whether the camera starts on."""

    send_video: bool
    receive_video: bool
    camera_on: bool


@dataclass(frozen=True)
class CreateOffer:
    pass


@dataclass(frozen=True)
class CreateAnswer:
    offer_sdp: str
    plan: MediaPlan


@dataclass(frozen=True)
class ApplyAnswer:
    sdp: str


@dataclass(frozen=True)
class CreateReoffer:
    """Open a fresh peer connection behind the call's tracks and sinks and make its offer; the
    current one keeps carrying media until the fresh one connects and takes over."""

    attempt: int


@dataclass(frozen=True)
class CreateReanswer:
    offer_sdp: str
    attempt: int


@dataclass(frozen=True)
class ApplyReanswer:
    sdp: str
    attempt: int


@dataclass(frozen=True)
class ShowVideo:
    on: bool  # False: received video is withheld from every viewer


@dataclass(frozen=True)
class CameraTrack:
    on: bool


@dataclass(frozen=True)
class Microphone:
    muted: bool


@dataclass(frozen=True)
class CountMedia:
    """Count what has arrived from the peer and feed it back as MediaCount."""


@dataclass(frozen=True)
class CloseMedia:
    pass


@dataclass(frozen=True)
class Send:
    kind: str
    sdp: str | None = None
    video: bool | None = None
    courtesy: bool = False  # a failure to send changes nothing (hangup, decline: best effort)
    attempt: int | None = None


@dataclass(frozen=True)
class StartTimer:
    timer: Timer
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    timer: Timer


@dataclass(frozen=True)
class Emit:
    event: Event


@dataclass(frozen=True)
class EmitStats:
    pass


@dataclass(frozen=True)
class Record:
    """Write the call into history; the driver stamps the times."""

    outcome: str  # a history outcome
    outgoing: bool
    video: bool
    connected: bool  # the duration counts from the start only if it connected


@dataclass(frozen=True)
class Finish:
    """The call is over: close it, report its Summary (with media figures if it had media)."""

    outcome: Outcome
    reason: str | None


@dataclass(frozen=True)
class Forget:
    """Drop the call without a summary: it never rang (we could not reach the caller)."""


Action = (
    CreateOffer
    | CreateAnswer
    | ApplyAnswer
    | CreateReoffer
    | CreateReanswer
    | ApplyReanswer
    | ShowVideo
    | CameraTrack
    | Microphone
    | CountMedia
    | CloseMedia
    | Send
    | StartTimer
    | CancelTimer
    | Emit
    | EmitStats
    | Record
    | Finish
    | Forget
)

# --- the rules -------------------------------------------------------------------------------

STATS_INTERVAL_S = 1.0
WATCH_INTERVAL_S = 0.5
# Nothing at all from the peer for this long (audio alone is 50 packets a second, RTCP one or more a
# second even with every track off): the path is suspect, and the call shows `reconnecting`.
STALL_S = 2.0
# A re-offer whose connection has not taken over by then is tried again (a fresh connection, a
# new attempt number): ICE and DTLS take about a second on a working path, longer through TURN.
RENEW_S = 5.0
# The peer's messages that bring media back over a new path, and who may send each: only the
# caller re-offers (so offers never cross); the callee answers, or asks for one.
RENEWAL_KINDS = {"reoffer": True, "reanswer": False, "reconnect": False}  # kind -> from the caller

# (phase, message kind) -> next phase, for the peer's messages that move a call along. Anything not
# here is out of order (a reordering or forging relay, or a broken peer) and ends the call, except
# `video`, which is valid while media is up, and the endings below.
MESSAGE_TRANSITIONS: dict[tuple[CallPhase, str], CallPhase] = {
    (CallPhase.CALLING, "ring"): CallPhase.RINGING,
    (CallPhase.CALLING, "answer"): CallPhase.CONNECTING,
    (CallPhase.RINGING, "answer"): CallPhase.CONNECTING,
}

# (phase, message kind, outgoing) -> how the call ends when the peer sends it.
MESSAGE_ENDINGS: dict[tuple[CallPhase, str, bool], tuple[Outcome, str]] = {
    (CallPhase.CALLING, "decline", True): (Outcome.DECLINED, "{peer} is unavailable (declined)"),
    (CallPhase.RINGING, "decline", True): (Outcome.DECLINED, "{peer} is unavailable (declined)"),
    (CallPhase.CALLING, "busy", True): (Outcome.BUSY, "{peer} is busy"),
    (CallPhase.RINGING, "busy", True): (Outcome.BUSY, "{peer} is busy"),
    (CallPhase.INCOMING, "hangup", False): (Outcome.MISSED, ""),
    # The callee gave up before media connected (an ICE timeout, say): the call never connected.
    (CallPhase.CONNECTING, "hangup", True): (
        Outcome.FAILED,
        "{peer} hung up before the call connected",
    ),
    (CallPhase.CONNECTING, "hangup", False): (Outcome.MISSED, ""),
    (CallPhase.CONNECTED, "hangup", True): (Outcome.ANSWERED, ""),
    (CallPhase.CONNECTED, "hangup", False): (Outcome.ANSWERED, ""),
    (CallPhase.RECONNECTING, "hangup", True): (Outcome.ANSWERED, ""),
    (CallPhase.RECONNECTING, "hangup", False): (Outcome.ANSWERED, ""),
}

# What the local user's hang-up means in each phase (an incoming call that rings is declined).
LOCAL_HANGUP: dict[CallPhase, Outcome] = {
    CallPhase.CALLING: Outcome.CANCELLED,
    CallPhase.RINGING: Outcome.CANCELLED,
    CallPhase.CONNECTING: Outcome.CANCELLED,
    CallPhase.CONNECTED: Outcome.ANSWERED,
    CallPhase.RECONNECTING: Outcome.ANSWERED,
}

# Connected, whether media flows right now or the call waits for it to come back.
LIVE = (CallPhase.CONNECTED, CallPhase.RECONNECTING)


@dataclass
class CallSettings:
    """The settings one call runs with, fixed when it starts."""

    ring_timeout: float = 30.0
    connect_timeout: float = 15.0
    reconnect_timeout: float = 30.0  # connected, media gone this long: the call has failed
    renew_after: float = RENEW_S  # a re-offer not connected this long: try again
    renew: bool = True  # False: media that stalls is only waited for (the in-process echo)
    duration: float | None = None  # hang up after this long connected; None: until stopped
    ask_before_video: bool = True
    answer_with_camera: bool = False  # incoming: the camera starts on when answering with video
    camera_on: bool = True  # outgoing: the camera starts on


@dataclass
class CallCore:
    call_id: str
    peer: str
    outgoing: bool
    peer_key: bytes = b""  # the key every message of this call must be signed by
    settings: CallSettings = field(default_factory=CallSettings)
    video_allowed: bool = True  # policy: this call may carry video (video_calling)
    verified: bool = False
    is_contact: bool = False  # the peer is in our contacts (else a stranger or the echo)
    offer_sdp: str | None = None  # incoming: the caller's offer
    peer_camera: bool = False  # the peer's camera was on when it offered or answered
    phase: CallPhase = field(init=False)
    outcome: Outcome | None = None
    history: list[CallPhase] = field(default_factory=list)
    has_media: bool = False
    video_shown: bool = False
    camera: bool = False  # our camera sends (mirrors the track)
    _peer_knows: bool = False  # the peer has heard of this call: end it with a hangup
    _arrived: tuple[int, float] | None = None  # the last MediaCount that saw new packets
    _attempt: int = 0  # the latest re-offer made (caller) or answered (callee)
    _renewing: bool = False  # a re-offer (or, from the callee, a request for one) is under way

    def __post_init__(self) -> None:
        self.phase = CallPhase.CALLING if self.outgoing else CallPhase.INCOMING
        self.history.append(self.phase)

    @property
    def ended(self) -> bool:
        return self.phase is CallPhase.CLOSED

    @property
    def waiting(self) -> bool:
        """An outgoing call waiting for its answer: a refused message or a lost relay ends it."""
        return self.outgoing and self.phase in (CallPhase.CALLING, CallPhase.RINGING)

    # --- entry points --------------------------------------------------------------------------

    def ring(self) -> list[Action]:
        """An incoming call that policy lets ring: tell the caller, ring here, start the clock."""
        return [
            Send("ring"),
            Emit(
                IncomingCall(
                    self.call_id, self.peer, self.verified, self.video_allowed and self.peer_camera
                )
            ),
            StartTimer(Timer.RING, self.settings.ring_timeout),
        ]

    def handle(self, event: Input) -> list[Action]:
        """Apply one input; return what to do. Inputs after the call ended change nothing."""
        if self.ended:
            return []
        match event:
            case Start():
                self.has_media = True
                self.camera = self.settings.camera_on
                return [CreateOffer()]
            case OfferReady(sdp, camera) if self.outgoing and self.phase is CallPhase.CALLING:
                self._peer_knows = True
                return [
                    Send("offer", sdp=sdp, video=camera),
                    Emit(CallState(self.call_id, CallPhase.CALLING)),
                    StartTimer(Timer.RING, self.settings.ring_timeout),
                ]
            case Accept(video) if self.phase is CallPhase.INCOMING:
                return self._accept(video)
            case AnswerReady(sdp, camera) if not self.outgoing:
                return [Send("answer", sdp=sdp, video=camera)]
            case ReofferReady(sdp, attempt) if self.outgoing:
                if self.phase not in LIVE or attempt != self._attempt:
                    return []  # overtaken by a newer attempt, or the call moved on
                return [Send("reoffer", sdp=sdp, video=self.camera, attempt=attempt)]
            case ReanswerReady(sdp, attempt) if not self.outgoing:
                if self.phase not in LIVE or attempt != self._attempt:
                    return []
                return [Send("reanswer", sdp=sdp, video=self.camera, attempt=attempt)]
            case AddressesChanged():
                return self._renew() if self.phase in LIVE else []
            case Decline() if self.phase is CallPhase.INCOMING:
                return [Send("decline", courtesy=True), *self._end(Outcome.DECLINED, None)]
            case HangUp() if self.phase is CallPhase.INCOMING:
                return self.handle(Decline())
            case HangUp():
                return self._end(LOCAL_HANGUP[self.phase], None)
            case Interrupt():
                return self._end(Outcome.INTERRUPTED, None)
            case PeerMessage():
                return self._message(event)
            case MediaConnected() if self.phase is CallPhase.CONNECTING:
                return self._connected()
            case MediaConnected() if self.phase is CallPhase.RECONNECTING:
                # A re-offered connection took over.
                return [
                    CancelTimer(Timer.RECONNECT),
                    *self._renewed(),
                    *self._move(CallPhase.CONNECTED),
                ]
            case MediaConnected():
                return self._renewed() if self.phase in LIVE else []
            case MediaCount(received, at):
                return self._media_count(received, at)
            case MediaFailed() if self.phase is CallPhase.CONNECTED:
                return self._end(Outcome.ANSWERED, "the connection was lost")
            case MediaFailed() if self.phase is CallPhase.RECONNECTING:
                return []  # the connection we are replacing gave up: the RECONNECT timer decides
            case MediaFailed() if self.phase is CallPhase.CONNECTING:
                return self._end(
                    Outcome.FAILED, "connection failed (ICE or DTLS): no media path to the peer"
                )
            case MediaFailed():
                return []
            case Failed(error):
                return self._end(outcome_of(error.code), str(error))
            case SendFailed("ring", error) if self.phase is CallPhase.INCOMING:
                # We cannot reach the caller: there is nothing to ring for.
                self._close()
                return [Emit(Notice(str(error))), CloseMedia(), Forget()]
            case SendFailed(kind, error) if kind in ("offer", "answer"):
                return self._end(outcome_of(error.code), str(error))
            case SendFailed(kind, error) if kind in RENEWAL_KINDS:
                # The relay is out of reach too: the RENEW timer tries again.
                return [
                    Emit(
                        Notice(
                            f"reconnecting: the relay is out of reach ({error}); "
                            f"trying again in {self.settings.renew_after:g} s",
                            self.call_id,
                        )
                    )
                ]
            case SendFailed(_, error):
                return [Emit(Notice(str(error), self.call_id))]
            case TimerExpired(timer):
                return self._timer(timer)
            case SetCamera(on):
                return self._set_camera(on)
            case SetMuted(muted) if self.has_media:
                return [Microphone(muted)]
            case AllowVideo() if self.has_media:
                self.video_shown = True
                return [ShowVideo(True), Emit(PeerVideo(self.call_id, True))]
        raise ProtocolError(f"cannot {type(event).__name__} while the call is {self.phase}")

    # --- the rules -----------------------------------------------------------------------------

    def _accept(self, video: bool) -> list[Action]:
        assert self.offer_sdp is not None
        with_video = video and self.video_allowed
        camera_on = with_video and self.settings.answer_with_camera
        plan = MediaPlan(
            send_video=self.video_allowed,  # video calling off: strictly audio-only
            receive_video=self.video_allowed,
            camera_on=camera_on,
        )
        # Accepting with video accepts the caller's video as offered; anything later asks first.
        self.video_shown = (with_video and self.peer_camera) or not self.settings.ask_before_video
        self.has_media = True
        self.camera = camera_on
        self._peer_knows = True
        return [
            CancelTimer(Timer.RING),
            *self._move(CallPhase.CONNECTING),
            CreateAnswer(self.offer_sdp, plan),
            ShowVideo(self.video_shown),
            StartTimer(Timer.CONNECT, self.settings.connect_timeout),
        ]

    def _message(self, message: PeerMessage) -> list[Action]:
        kind = message.kind
        next_phase = MESSAGE_TRANSITIONS.get((self.phase, kind)) if self.outgoing else None
        if next_phase is CallPhase.RINGING:
            return self._move(CallPhase.RINGING)
        if next_phase is CallPhase.CONNECTING and message.sdp is not None:
            self.peer_camera = bool(message.video)
            # Video the callee sent when answering is part of the call we placed.
            self.video_shown = self.peer_camera or not self.settings.ask_before_video
            return [
                CancelTimer(Timer.RING),
                *self._move(CallPhase.CONNECTING),
                ShowVideo(self.video_shown),
                ApplyAnswer(message.sdp),
                StartTimer(Timer.CONNECT, self.settings.connect_timeout),
            ]
        ending = MESSAGE_ENDINGS.get((self.phase, kind, self.outgoing))
        if ending is not None:
            outcome, reason = ending
            self._peer_knows = False  # it ended the call itself: no hangup back
            return self._end(outcome, reason.format(peer=self.peer) or None)
        if kind == "video" and self.phase in (CallPhase.CONNECTING, *LIVE):
            return self._peer_video(bool(message.video))
        if kind in RENEWAL_KINDS and RENEWAL_KINDS[kind] != self.outgoing:
            if self.phase not in LIVE:
                return []  # crossed with the call's own setup or end: nothing to renew
            return self._renewal_message(message)
        error = ProtocolError(f"unexpected {kind} while the call is {self.phase}")
        return [
            Emit(Refused("out_of_order", str(error))),
            *self._end(outcome_of(error.code), str(error)),
        ]

    def _renewal_message(self, message: PeerMessage) -> list[Action]:
        attempt = message.attempt or 0
        if message.kind == "reconnect":
            # The callee lost media, or its network changed. A re-offer already under way
            # answers that: starting over would keep a slow path from ever connecting.
            return [] if self._renewing else self._renew()
        if message.kind == "reoffer" and message.sdp is not None:
            if attempt <= self._attempt:
                return []  # an older re-offer, overtaken by one we answered already
            self._attempt = attempt
            return [CreateReanswer(message.sdp, attempt)]
        if message.kind == "reanswer" and message.sdp is not None and attempt == self._attempt:
            return [ApplyReanswer(message.sdp, attempt)]
        return []  # the answer to an attempt we have given up on

    def _renew(self) -> list[Action]:
        """Bring media back over a new path: the caller re-offers, the callee asks it to; both
        try again after `renew_after` while the call is still reconnecting."""
        if not self.settings.renew:
            return []
        self._renewing = True
        retry = StartTimer(Timer.RENEW, self.settings.renew_after)
        if not self.outgoing:
            return [Send("reconnect"), retry]
        self._attempt += 1
        return [CreateReoffer(self._attempt), retry]

    def _renewed(self) -> list[Action]:
        self._renewing = False
        return [CancelTimer(Timer.RENEW)]

    def _peer_video(self, on: bool) -> list[Action]:
        if on and not self.video_shown:
            return [Emit(VideoRequest(self.call_id, self.peer))]
        return [Emit(PeerVideo(self.call_id, on))]

    def _set_camera(self, on: bool) -> list[Action]:
        if not self.has_media:
            raise ProtocolError("the call has no media yet")
        if not self.video_allowed:
            raise TcallError("this call has no camera (audio only)", ExitCode.USAGE)
        self.camera = on
        return [CameraTrack(on), Send("video", video=on)]

    def _connected(self) -> list[Action]:
        actions: list[Action] = [CancelTimer(Timer.CONNECT), *self._move(CallPhase.CONNECTED)]
        if self.settings.duration is not None:
            actions.append(StartTimer(Timer.DURATION, self.settings.duration))
        actions.append(StartTimer(Timer.STATS, STATS_INTERVAL_S))
        actions.append(StartTimer(Timer.WATCH, WATCH_INTERVAL_S))
        return actions

    def _media_count(self, received: int, at: float) -> list[Action]:
        """Media stopped arriving for STALL_S: `reconnecting` (the call and its clock go on);
        anything arriving again: `connected`. The RECONNECT timer gives up."""
        if self.phase not in LIVE:
            return []
        if self._arrived is None or received != self._arrived[0]:
            self._arrived = (received, at)
            if self.phase is CallPhase.RECONNECTING:
                return [
                    CancelTimer(Timer.RECONNECT),
                    *self._renewed(),
                    *self._move(CallPhase.CONNECTED),
                ]
            return []
        if self.phase is CallPhase.CONNECTED and at - self._arrived[1] >= STALL_S:
            return [
                *self._move(CallPhase.RECONNECTING),
                StartTimer(Timer.RECONNECT, self.settings.reconnect_timeout),
                *([] if self._renewing else self._renew()),  # an address change's is under way
            ]
        return []

    def _timer(self, timer: Timer) -> list[Action]:
        if timer is Timer.RING and self.waiting:
            return self._end(Outcome.NO_ANSWER, f"{self.peer} is unavailable (no answer)")
        if timer is Timer.RING and self.phase is CallPhase.INCOMING:
            return self._end(Outcome.MISSED, None)
        if timer is Timer.CONNECT and self.phase is CallPhase.CONNECTING:
            return self._end(
                Outcome.TIMEOUT, f"not connected after {self.settings.connect_timeout:g} s"
            )
        if timer is Timer.DURATION and self.phase in LIVE:
            return self._end(Outcome.ANSWERED, None)
        if timer is Timer.STATS and self.phase in LIVE:
            return [EmitStats(), StartTimer(Timer.STATS, STATS_INTERVAL_S)]
        if timer is Timer.WATCH and self.phase in LIVE:
            return [CountMedia(), StartTimer(Timer.WATCH, WATCH_INTERVAL_S)]
        if timer is Timer.RENEW and self.phase is CallPhase.RECONNECTING:
            return self._renew()
        if timer is Timer.RENEW and self.phase is CallPhase.CONNECTED:
            self._renewing = False  # media kept flowing the old way: a later stall starts afresh
            return []
        if timer is Timer.RECONNECT and self.phase is CallPhase.RECONNECTING:
            return self._end(
                Outcome.FAILED,
                "the connection was lost and did not come back within "
                f"{self.settings.reconnect_timeout:g} s",
            )
        return []  # a timer that lost a race with the state it was for

    def _move(self, phase: CallPhase) -> list[Action]:
        self.phase = phase
        self.history.append(phase)
        return [Emit(CallState(self.call_id, phase))]

    def _close(self) -> None:
        self.phase = CallPhase.CLOSED
        self.history.append(CallPhase.CLOSED)

    def _end(self, outcome: Outcome, reason: str | None) -> list[Action]:
        connected = self.phase in LIVE
        self.outcome = outcome
        actions: list[Action] = [CancelTimer(timer) for timer in Timer]
        if self._peer_knows:
            actions.append(Send("hangup", courtesy=True))
        if self.has_media:
            if connected and outcome is Outcome.INTERRUPTED:
                actions.append(EmitStats())  # the figures up to the moment it was stopped
            actions += [CloseMedia(), Emit(CallState(self.call_id, CallPhase.CLOSED))]
        self._close()
        actions.append(
            Record(
                history_outcome(outcome, self.outgoing),
                self.outgoing,
                self.video_allowed,
                connected,
            )
        )
        actions.append(Finish(outcome, reason))
        return actions

"""Two call cores wired together with a fake clock and a network the test controls (h11's
ConnectionPair is the model): what one side sends waits in `network` until the test delivers,
drops, reorders or duplicates it; timers fire only when the test advances the clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from tcall.engine.core.call import (
    Accept,
    Action,
    AnswerReady,
    ApplyAnswer,
    ApplyReanswer,
    CallCore,
    CallSettings,
    CancelTimer,
    CreateAnswer,
    CreateOffer,
    CreateReanswer,
    CreateReoffer,
    Emit,
    Finish,
    Input,
    MediaConnected,
    OfferReady,
    PeerMessage,
    ReanswerReady,
    Record,
    ReofferReady,
    Send,
    Start,
    StartTimer,
    Timer,
    TimerExpired,
)
from tcall.engine.events import CallState, Event

ALICE_KEY = b"a" * 32
BOB_KEY = b"b" * 32


@dataclass
class Side:
    name: str
    core: CallCore | None = None
    actions: list[Action] = field(default_factory=list)
    timers: dict[Timer, float] = field(default_factory=dict)
    media_ready: bool = False  # our SDP is out and, for the caller, the answer is applied
    renewal: int | None = None  # the re-offer attempt whose fresh connection is set up

    @property
    def events(self) -> list[Event]:
        return [a.event for a in self.actions if isinstance(a, Emit)]

    @property
    def finishes(self) -> list[Finish]:
        return [a for a in self.actions if isinstance(a, Finish)]

    @property
    def records(self) -> list[Record]:
        return [a for a in self.actions if isinstance(a, Record)]

    def sent(self) -> list[str]:
        return [a.kind for a in self.actions if isinstance(a, Send)]


@dataclass
class Wire:
    to: str  # "alice" or "bob"
    message: PeerMessage


class CorePair:
    """alice calls bob. Bob's core appears when alice's offer is delivered."""

    def __init__(
        self, settings: CallSettings | None = None, bob_settings: CallSettings | None = None
    ):
        self.now = 0.0
        self.network: list[Wire] = []
        self.delivered: list[Wire] = []
        self.bob_settings = bob_settings or CallSettings()
        self.alice = Side(
            "alice", CallCore("call-1", "bob", True, BOB_KEY, settings or CallSettings())
        )
        self.bob = Side("bob")
        self.alice.core.video_allowed = True  # type: ignore[union-attr]
        self.apply(self.alice, Start())

    def side(self, name: str) -> Side:
        return self.alice if name == "alice" else self.bob

    def other(self, side: Side) -> Side:
        return self.bob if side is self.alice else self.alice

    def apply(self, side: Side, event: Input) -> list[Action]:
        assert side.core is not None
        actions = side.core.handle(event)
        side.actions += actions
        for action in actions:
            self._perform(side, action)
        return actions

    def _perform(self, side: Side, action: Action) -> None:
        match action:
            case CreateOffer():
                self.apply(side, OfferReady("v=0 offer", camera=True))
            case CreateAnswer():
                side.media_ready = True
                self.apply(side, AnswerReady("v=0 answer", camera=False))
            case ApplyAnswer():
                side.media_ready = True
            case CreateReoffer(attempt):
                self.apply(side, ReofferReady(f"v=0 reoffer {attempt}", attempt))
            case CreateReanswer(_, attempt):
                side.renewal = attempt
                self.apply(side, ReanswerReady(f"v=0 reanswer {attempt}", attempt))
            case ApplyReanswer(_, attempt):
                side.renewal = attempt
            case Send(kind, sdp, video, _, attempt):
                message = PeerMessage(kind, sdp, video, attempt)
                self.network.append(Wire(self.other(side).name, message))
            case StartTimer(timer, seconds):
                side.timers[timer] = self.now + seconds
            case CancelTimer(timer):
                side.timers.pop(timer, None)

    # --- the network -------------------------------------------------------------------------

    def deliver(self, index: int = 0) -> Wire:
        wire = self.network.pop(index)
        self.delivered.append(wire)
        self._arrive(wire)
        return wire

    def deliver_all(self) -> None:
        while self.network:
            self.deliver()

    def replay(self, wire: Wire) -> None:
        self._arrive(wire)

    def _arrive(self, wire: Wire) -> None:
        side = self.side(wire.to)
        if side.core is None:
            if wire.message.kind != "offer":
                return  # nobody is listening for that call yet
            side.core = CallCore(
                "call-1",
                "alice",
                False,
                ALICE_KEY,
                self.bob_settings,
                offer_sdp=wire.message.sdp,
                peer_camera=bool(wire.message.video),
                is_contact=True,
            )
            actions = side.core.ring()
            side.actions += actions
            for action in actions:
                self._perform(side, action)
            return
        self.apply(side, wire.message)

    # --- time and media ----------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the clock; fire every timer that falls due, earliest first."""
        end = self.now + seconds
        while True:
            due = [
                (deadline, side.name, timer)
                for side in (self.alice, self.bob)
                for timer, deadline in side.timers.items()
                if deadline <= end and side.core is not None
            ]
            if not due:
                break
            deadline, name, timer = min(due)
            side = self.side(name)
            self.now = deadline
            del side.timers[timer]
            self.apply(side, TimerExpired(timer))
        self.now = end

    def connect_renewal(self) -> None:
        """The fresh connections of the latest re-offer connect on both sides and take over."""
        for side in (self.alice, self.bob):
            if side.renewal is not None and side.core is not None and not side.core.ended:
                side.renewal = None
                self.apply(side, MediaConnected())

    def connect_media(self) -> None:
        """ICE and DTLS complete on both sides that have set up their media."""
        for side in (self.alice, self.bob):
            if side.media_ready and side.core is not None and not side.core.ended:
                self.apply(side, MediaConnected())


def states(side: Side) -> list[str]:
    """The call states `side` emitted, in order."""
    return [str(e.state) for e in side.events if isinstance(e, CallState)]


def answered_call(**settings: object) -> CorePair:
    """alice called bob, he answered with video, and media connected."""
    pair = CorePair(CallSettings(**settings))  # type: ignore[arg-type]
    pair.deliver_all()  # offer -> bob rings; ring -> alice
    assert pair.bob.core is not None
    pair.apply(pair.bob, Accept(video=True))
    pair.deliver_all()  # answer
    pair.connect_media()
    return pair

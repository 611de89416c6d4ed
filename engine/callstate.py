"""The call state machine, sans-I/O: events in, the new state and the call's outcome out.

Everything that moves a call from one state to the next lives in TRANSITIONS, a table of data in
the manner of h11's `_state.py`. The Phone feeds it local actions, verified signaling messages,
timers and media events, and acts on the result. It owns no clock, socket or task.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from tcall.engine.errors import ProtocolError


class State(enum.StrEnum):
    CALLING = "calling"  # we sent an offer; nothing back yet
    RINGING = "ringing"  # the callee's phone rings
    INCOMING = "incoming"  # our phone rings
    CONNECTING = "connecting"  # answered; ICE and DTLS under way
    ACTIVE = "active"  # media flows
    ENDED = "ended"


class Event(enum.StrEnum):
    RING = "ring"  # remote: the callee is being rung
    ANSWER = "answer"  # remote answer (caller) or local accept (callee)
    DECLINE = "decline"  # remote or local decline
    BUSY = "busy"  # remote: in another call
    HANGUP = "hangup"  # either side ends the call
    TIMEOUT = "timeout"  # nobody answered in time
    CONNECTED = "connected"  # ICE+DTLS done
    FAILED = "failed"  # ICE/DTLS failed, or an identity/protocol error


# (state, event) -> (next state, outcome when the call ends there)
TRANSITIONS: dict[tuple[State, Event], tuple[State, str | None]] = {
    (State.CALLING, Event.RING): (State.RINGING, None),
    (State.CALLING, Event.ANSWER): (State.CONNECTING, None),
    (State.RINGING, Event.ANSWER): (State.CONNECTING, None),
    (State.CALLING, Event.DECLINE): (State.ENDED, "declined"),
    (State.RINGING, Event.DECLINE): (State.ENDED, "declined"),
    (State.CALLING, Event.BUSY): (State.ENDED, "busy"),
    (State.RINGING, Event.BUSY): (State.ENDED, "busy"),
    (State.CALLING, Event.TIMEOUT): (State.ENDED, "no_answer"),
    (State.RINGING, Event.TIMEOUT): (State.ENDED, "no_answer"),
    (State.CALLING, Event.HANGUP): (State.ENDED, "cancelled"),
    (State.RINGING, Event.HANGUP): (State.ENDED, "cancelled"),
    (State.INCOMING, Event.ANSWER): (State.CONNECTING, None),
    (State.INCOMING, Event.DECLINE): (State.ENDED, "declined"),
    (State.INCOMING, Event.HANGUP): (State.ENDED, "missed"),
    (State.INCOMING, Event.TIMEOUT): (State.ENDED, "missed"),
    (State.CONNECTING, Event.CONNECTED): (State.ACTIVE, None),
    (State.CONNECTING, Event.HANGUP): (State.ENDED, "answered"),
    (State.ACTIVE, Event.HANGUP): (State.ENDED, "answered"),
    (State.ACTIVE, Event.FAILED): (State.ENDED, "failed"),
    (State.CONNECTING, Event.FAILED): (State.ENDED, "failed"),
    (State.CALLING, Event.FAILED): (State.ENDED, "failed"),
    (State.RINGING, Event.FAILED): (State.ENDED, "failed"),
    (State.INCOMING, Event.FAILED): (State.ENDED, "failed"),
}


@dataclass
class CallMachine:
    outgoing: bool
    state: State = field(init=False)
    outcome: str | None = None
    history: list[State] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = State.CALLING if self.outgoing else State.INCOMING
        self.history.append(self.state)

    def can(self, event: Event) -> bool:
        return (self.state, event) in TRANSITIONS

    def handle(self, event: Event) -> State:
        """Apply `event`; ProtocolError if it makes no sense now (a reordered or forged message)."""
        try:
            self.state, outcome = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise ProtocolError(f"unexpected {event} while the call is {self.state}") from None
        if outcome is not None:
            self.outcome = outcome
        self.history.append(self.state)
        return self.state

    @property
    def ended(self) -> bool:
        return self.state is State.ENDED

"""How a call ended: one `Outcome`, and beside it the exit code and the history entry for each."""

from __future__ import annotations

import enum

from tcall.engine.errors import ExitCode


class Outcome(enum.StrEnum):
    ANSWERED = "answered"  # connected, then ended by either side
    INTERRUPTED = "interrupted"  # Ctrl-C (or SIGTERM) on our side
    CANCELLED = "cancelled"  # we hung up before it connected
    DECLINED = "declined"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    MISSED = "missed"  # an incoming call nobody took
    SILENCED = "silenced"  # an incoming call policy never let ring
    TIMEOUT = "timeout"  # answered, but media did not connect in time
    FAILED = "failed"
    RELAY_UNREACHABLE = "relay_unreachable"
    IDENTITY_ERROR = "identity_error"
    PROTOCOL_ERROR = "protocol_error"


# README's exit-code table. A call that never connected never exits 0.
EXIT_CODES: dict[Outcome, ExitCode] = {
    Outcome.ANSWERED: ExitCode.OK,
    Outcome.INTERRUPTED: ExitCode.INTERRUPTED,
    Outcome.CANCELLED: ExitCode.NO_ANSWER,
    Outcome.DECLINED: ExitCode.DECLINED,
    Outcome.BUSY: ExitCode.BUSY,
    Outcome.NO_ANSWER: ExitCode.NO_ANSWER,
    Outcome.MISSED: ExitCode.NO_ANSWER,
    Outcome.SILENCED: ExitCode.NO_ANSWER,
    Outcome.TIMEOUT: ExitCode.TIMEOUT,
    Outcome.FAILED: ExitCode.CALL_FAILED,
    Outcome.RELAY_UNREACHABLE: ExitCode.RELAY_UNREACHABLE,
    Outcome.IDENTITY_ERROR: ExitCode.IDENTITY,
    Outcome.PROTOCOL_ERROR: ExitCode.PROTOCOL,
}

# What `tcall history` keeps (engine/history.py OUTCOMES), by direction.
_HISTORY_OUTGOING: dict[Outcome, str] = {
    Outcome.ANSWERED: "answered",
    Outcome.INTERRUPTED: "answered",
    Outcome.CANCELLED: "no_answer",
    Outcome.DECLINED: "declined",
    Outcome.BUSY: "busy",
    Outcome.NO_ANSWER: "no_answer",
}
_HISTORY_INCOMING: dict[Outcome, str] = {
    Outcome.ANSWERED: "answered",
    Outcome.INTERRUPTED: "answered",
    Outcome.CANCELLED: "missed",
    Outcome.DECLINED: "declined",
    Outcome.MISSED: "missed",
    Outcome.SILENCED: "silenced",
    Outcome.NO_ANSWER: "missed",
}


# What a UI shows for an outcome, a Summary's or a history entry's: words, never the JSON code.
_WORDS: dict[str, str] = {
    Outcome.NO_ANSWER: "no answer",
    Outcome.TIMEOUT: "could not connect in time",
    Outcome.RELAY_UNREACHABLE: "relay unreachable",
    Outcome.IDENTITY_ERROR: "identity check failed",
    Outcome.PROTOCOL_ERROR: "protocol error",
}


def outcome_words(outcome: str) -> str:
    """`no_answer` -> "no answer": the words for an outcome code (an unknown one, its spaced code)."""
    return _WORDS.get(outcome, outcome.replace("_", " "))


def history_outcome(outcome: Outcome, outgoing: bool) -> str:
    table = _HISTORY_OUTGOING if outgoing else _HISTORY_INCOMING
    return table.get(outcome, "failed")


def exit_code(outcome: str) -> ExitCode:
    """The exit code of a summary's outcome (an unknown one is a failure)."""
    try:
        return EXIT_CODES[Outcome(outcome)]
    except ValueError:
        return ExitCode.CALL_FAILED


_BY_CODE: dict[ExitCode, Outcome] = {
    ExitCode.CALL_FAILED: Outcome.FAILED,
    ExitCode.TIMEOUT: Outcome.TIMEOUT,
    ExitCode.RELAY_UNREACHABLE: Outcome.RELAY_UNREACHABLE,
    ExitCode.IDENTITY: Outcome.IDENTITY_ERROR,
    ExitCode.PROTOCOL: Outcome.PROTOCOL_ERROR,
    ExitCode.DECLINED: Outcome.DECLINED,
    ExitCode.BUSY: Outcome.BUSY,
    ExitCode.NO_ANSWER: Outcome.NO_ANSWER,
}


def outcome_of(code: ExitCode) -> Outcome:
    """The outcome of a call that an error with this exit code ended."""
    return _BY_CODE.get(code, Outcome.FAILED)

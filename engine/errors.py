"""The one place where failure classes map to exit codes, and the error type that carries them."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes of `tcall`; README.md documents each one."""

    OK = 0
    ERROR = 1  # an unexpected failure; reported in one line, never a traceback
    USAGE = 2  # bad command line, bad setting value, garbled address, unknown contact
    DEVICE_MISSING = 3  # camera, microphone or media file could not be opened
    CALL_FAILED = 4  # ICE/DTLS failed, or media never arrived
    TIMEOUT = 5  # the call did not connect in time
    RELAY_UNREACHABLE = 6  # the relay could not be reached or dropped us
    IDENTITY = 7  # signature, pinned key, fingerprint or replay check failed
    DECLINED = 8  # the callee declined (or is unavailable: tcall never says why)
    BUSY = 9  # the callee is in another call
    NO_ANSWER = 10  # nobody answered before --ring-timeout
    PROTOCOL = 11  # a malformed, oversize or out-of-order message
    CONFIG = 12  # a config, contacts or key file is unreadable or invalid
    INTERRUPTED = 130  # Ctrl-C; the call still ends cleanly and prints its summary


class TcallError(Exception):
    """An error the user can act on: one line of text and the exit code it maps to."""

    code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, code: ExitCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class DeviceError(TcallError):
    code = ExitCode.DEVICE_MISSING


class CallFailed(TcallError):
    code = ExitCode.CALL_FAILED


class IdentityError(TcallError):
    code = ExitCode.IDENTITY


class ProtocolError(TcallError):
    code = ExitCode.PROTOCOL


class ConfigError(TcallError):
    code = ExitCode.CONFIG


class UsageError(TcallError):
    code = ExitCode.USAGE


class RelayUnreachable(TcallError):
    code = ExitCode.RELAY_UNREACHABLE


class CompatError(TcallError):
    """A library no longer has a private name tcall patches or reads (see engine/compat, tui/compat)."""

    def __init__(self, library: str, problem: str, supported: str) -> None:
        super().__init__(
            f"{library} {_version(library)}: {problem}; tcall supports {library} {supported}"
        )


def _version(library: str) -> str:
    # Imported here: importlib.metadata costs 40 ms, and every command imports this module.
    from importlib.metadata import version

    return version(library)

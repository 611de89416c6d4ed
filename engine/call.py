"""Running a call to the end and summarising it: the shared loop behind `tcall call` and the TUI.

A call here is: open the media, connect a Session to a peer, emit a stats event each second until the
duration is up, the user stops it or the peer leaves, then emit one summary. The peer is pluggable:
the built-in echo, or a contact reached through the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tcall.engine.errors import ExitCode, TcallError
from tcall.engine.ice import IceSettings
from tcall.engine.media.audio import (
    AudioSource,
    microphone_available,
    open_audio_source,
    parse_audio_spec,
)
from tcall.engine.media.sinks import median, open_audio_sink, percentile
from tcall.engine.media.video import (
    VideoSource,
    camera_available,
    open_video_source,
    parse_video_spec,
)
from tcall.engine.session import Emit, Session

OUTCOME_EXIT = {
    "answered": ExitCode.OK,
    "interrupted": ExitCode.INTERRUPTED,
    "timeout": ExitCode.TIMEOUT,
    "failed": ExitCode.CALL_FAILED,
    "declined": ExitCode.DECLINED,
    "busy": ExitCode.BUSY,
    "no_answer": ExitCode.NO_ANSWER,
    "relay_unreachable": ExitCode.RELAY_UNREACHABLE,
    "identity_error": ExitCode.IDENTITY,
    "protocol_error": ExitCode.PROTOCOL,
    "cancelled": ExitCode.OK,
    "missed": ExitCode.NO_ANSWER,
}


@dataclass
class CallOptions:
    video: str = "auto"  # auto: the camera if there is one, else the test pattern
    audio: str = "auto"  # auto: the microphone if there is one, else a sine tone
    codec: str = "vp8"
    duration: float | None = None  # None: until stopped
    connect_timeout: float = 15.0
    width: int = 640
    height: int = 480
    fps: float = 30.0
    speaker: str | None = None
    ice: IceSettings = field(default_factory=IceSettings)
    low_latency: bool = True
    camera_on: bool = True  # False: the call starts with the camera off (black frames)
    receive_video: bool = True  # False: an audio-only call


def open_media(options: CallOptions, emit: Emit) -> tuple[VideoSource | None, AudioSource | None]:
    """Open the sources the options name; `auto` falls back to generated media with a notice."""
    video_spec, audio_spec = options.video, options.audio
    parse_video_spec(video_spec)
    parse_audio_spec(audio_spec)
    if video_spec == "auto":
        video_spec = "camera" if camera_available() else "pattern"
        if video_spec == "pattern":
            emit({"event": "notice", "message": "no camera found: sending a test pattern"})
    if audio_spec == "auto":
        audio_spec = "mic" if microphone_available() else "sine"
        if audio_spec == "sine":
            emit({"event": "notice", "message": "no microphone found: sending a 440 Hz tone"})
    video = (
        None
        if video_spec == "none"
        else open_video_source(video_spec, options.width, options.height, options.fps)
    )
    try:
        audio = None if audio_spec == "none" else open_audio_source(audio_spec)
    except TcallError:
        if video:
            video.stop()
        raise
    return video, audio


def open_session(options: CallOptions, emit: Emit) -> Session:
    video, audio = open_media(options, emit)
    sink = open_audio_sink(options.speaker)
    if sink.notice:
        emit({"event": "notice", "message": sink.notice})
    session = Session(
        ice=options.ice,
        video=video,
        audio=audio,
        audio_sink=sink,
        emit=emit,
        codec=options.codec,
        low_latency=options.low_latency,
        receive_video=options.receive_video,
    )
    if session.video_track is not None:
        session.video_track.enabled = options.camera_on
    return session


Connect = Callable[[Session], Awaitable[None]]


class CallEnded(Exception):
    """Raised inside a call when the peer or the local user hung up before media flowed."""


async def run_call(
    options: CallOptions,
    connect: Connect,
    emit: Emit,
    stop: asyncio.Event,
    ended: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Open media, let `connect` do the signaling, run until done, and return the summary event.

    `stop` interrupts (Ctrl-C: outcome "interrupted"); `ended` is a normal hang-up by either side.
    """
    dialed = time.monotonic()
    session = open_session(options, emit)
    ended = ended or asyncio.Event()
    outcome = "failed"
    reason: str | None = None
    try:
        await _until(_connect(session, connect, options.connect_timeout), stop, ended)
        outcome = await _run_media(session, options.duration, emit, stop, ended)
    except _Stopped:
        outcome = "interrupted"
    except CallEnded:
        outcome = "cancelled"
    except TimeoutError:
        outcome, reason = "timeout", f"not connected after {options.connect_timeout:g} s"
    except TcallError as exc:
        outcome, reason = outcome_of(exc), str(exc)
    finally:
        summary = summarise(session, dialed, outcome, reason)
        await session.close()
    return summary


class _Stopped(Exception):
    pass


async def _connect(session: Session, connect: Connect, timeout: float) -> None:
    await connect(session)
    await session.wait_connected(timeout)


async def _until(work: Awaitable[None], stop: asyncio.Event, ended: asyncio.Event) -> None:
    """Run `work` unless `stop` (raises _Stopped) or `ended` (raises CallEnded) comes first."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    ending = asyncio.ensure_future(ended.wait())
    try:
        await asyncio.wait({task, stopping, ending}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        ending.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise _Stopped if stop.is_set() else CallEnded
    task.result()


async def _run_media(
    session: Session,
    duration: float | None,
    emit: Emit,
    stop: asyncio.Event,
    ended: asyncio.Event,
) -> str:
    started = time.monotonic()
    while True:
        left = None if duration is None else duration - (time.monotonic() - started)
        if left is not None and left <= 0:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                _first(stop.wait(), ended.wait(), session.wait_closed()), min(1.0, left or 1.0)
            )
        if stop.is_set():
            emit(await session.stats())
            return "interrupted"
        if session.closed or ended.is_set():
            break
        emit(await session.stats())
    return "answered"


async def _first(*awaitables: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def outcome_of(error: TcallError) -> str:
    for outcome, code in OUTCOME_EXIT.items():
        if code == error.code and outcome != "answered":
            return outcome
    return "failed"


def summarise(session: Session, dialed: float, outcome: str, reason: str | None) -> dict[str, Any]:
    sink = session.video_sink
    first = sink.first_frame_at
    receiving_for = time.monotonic() - first if first else 0.0
    summary: dict[str, Any] = {
        "event": "summary",
        "outcome": outcome,
        "frames_sent": session.video_track.frames_sent if session.video_track else 0,
        "frames_received": sink.frames_received,
        "fps_received": round(sink.frames_received / receiving_for, 1) if receiving_for else 0.0,
        "latency_ms_median": _round(median(sink.latencies_ms)),
        "latency_ms_p95": _round(percentile(sink.latencies_ms, 0.95)),
        "setup_ms": None if first is None else round((first - dialed) * 1000, 1),
    }
    if reason:
        summary["reason"] = reason
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

"""A call in progress: performs what its CallCore decides, with real media, timers and signaling.

`LiveCall.feed` hands an input to the core at once (so its state moves as things happen, and a
local command that makes no sense fails in the caller's hands) and queues the actions the core
returned; one task performs them in order. Media operations that can take a while (creating an
offer or answer, applying the answer) run beside it and report back as inputs, so a hang-up never
waits behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from tcall.engine import compat
from tcall.engine.call import CallOptions, media_figures, open_session
from tcall.engine.core.call import (
    Action,
    AddressesChanged,
    AnswerReady,
    ApplyAnswer,
    ApplyReanswer,
    CallCore,
    CameraTrack,
    CancelTimer,
    CloseMedia,
    CountMedia,
    CreateAnswer,
    CreateOffer,
    CreateReanswer,
    CreateReoffer,
    Emit,
    EmitStats,
    Failed,
    Finish,
    Forget,
    Input,
    MediaConnected,
    MediaCount,
    MediaFailed,
    MediaPlan,
    Microphone,
    OfferReady,
    ReanswerReady,
    Record,
    ReofferReady,
    Send,
    SendFailed,
    ShowVideo,
    StartTimer,
    Timer,
    TimerExpired,
)
from tcall.engine.core.outcome import Outcome
from tcall.engine.errors import CallFailed, ProtocolError, TcallError
from tcall.engine.events import Event, MediaFigures, Notice, Stats, Summary
from tcall.engine.history import CallRecord, History
from tcall.engine.media.handle import VideoHandle
from tcall.engine.media.levels import MicLevel
from tcall.engine.session import Session, StateListener


class Channel(Protocol):
    """How a call's signaling reaches its peer: the relay, or the in-process echo."""

    records_history: bool  # the echo test is not a call anyone wants in their history

    async def send(
        self,
        kind: str,
        call_id: str,
        *,
        sdp: str | None = None,
        video: bool | None = None,
        attempt: int | None = None,
    ) -> None: ...

    def network_changed(self) -> None:
        """Our addresses changed: a link to the relay may be dead without knowing it yet."""

    def review(
        self, outcome: Outcome, reason: str | None, figures: MediaFigures | None
    ) -> tuple[Outcome, str | None]: ...

    async def close(self) -> None: ...


# How a call gets its Session: `open_session` for a call of its own; a group call's pairs share
# one GroupMedia (engine/group.py), and `release` hands a pair's Session back before it closes.
SessionFactory = Callable[[CallOptions, Callable[[str], None], StateListener, MicLevel], Session]


class LiveCall:
    def __init__(
        self,
        core: CallCore,
        options: CallOptions,
        channel: Channel,
        emit: Callable[[Event], None],
        history: History,
        clock: Callable[[], float],
        on_over: Callable[[LiveCall], None],
        sessions: SessionFactory = open_session,
        release: Callable[[Session], None] | None = None,
    ) -> None:
        self.core = core
        self.options = options
        self.channel = channel
        self.video = VideoHandle()
        self.mic_level = MicLevel()  # what our microphone sends, for the UI's meter
        self.session: Session | None = None
        self.done: asyncio.Future[Summary | None] = asyncio.get_running_loop().create_future()
        self._emit = emit
        self._sessions = sessions
        self._release = release
        self._history = history
        self._clock = clock
        self._on_over = on_over
        self._dialed = time.monotonic()
        self._started_at = clock()
        self._show_video = True
        self._figures: MediaFigures | None = None
        self._timers: dict[Timer, asyncio.TimerHandle] = {}
        self._media_work: set[asyncio.Task[None]] = set()
        self._actions: asyncio.Queue[list[Action]] = asyncio.Queue()
        self._addresses: frozenset[str] | None = None  # ours, as last looked at
        self._worker = asyncio.create_task(self._perform_all(), name=f"call {core.call_id}")

    @property
    def call_id(self) -> str:
        return self.core.call_id

    def feed(self, event: Input) -> None:
        """Give the core one input; a command it cannot take raises here (TcallError)."""
        self._actions.put_nowait(self.core.handle(event))

    def perform(self, actions: list[Action]) -> None:
        self._actions.put_nowait(actions)

    def _feed_quietly(self, event: Input) -> None:
        """For inputs from media and timers: one that lost a race with the call's end is dropped."""
        with contextlib.suppress(TcallError):
            self.feed(event)

    # --- media -----------------------------------------------------------------------------

    def open_media(self, plan: MediaPlan | None = None) -> None:
        """Open sources, sinks and the peer connection (DeviceError if a named device is missing)."""
        options = self.options
        if plan is not None:
            options = dataclasses.replace(
                options,
                video=options.video if plan.send_video else "none",
                receive_video=plan.receive_video,
                camera_on=plan.camera_on,
            )
        session = self._sessions(options, self._notice, self._media_state, self.mic_level)
        if session.video_track is not None:
            session.video_track.enabled = options.camera_on
            track = session.video_track
            self.video.attach_self_view(lambda: track.latest)
        session.video_sink.viewer = self.video
        session.video_sink.allowed = self._show_video
        self.session = session

    def _notice(self, message: str) -> None:
        self._emit(Notice(message, self.call_id))

    def _media_state(self, state: str) -> None:
        if state == "connected":
            self._feed_quietly(MediaConnected())
        elif state in ("failed", "closed"):
            self._feed_quietly(MediaFailed())

    def _media_task(self, work: Coroutine[Any, Any, Input | None]) -> None:
        """Run a media step beside the action queue; its result (or its error) is fed back."""

        async def run() -> None:
            try:
                result = await work
            except TcallError as exc:
                result = Failed(exc)
            except Exception as exc:  # aiortc refusing the peer's SDP: the peer's fault
                result = Failed(ProtocolError(f"the peer's call setup was refused: {exc}"))
            if result is not None:
                self._feed_quietly(result)

        task = asyncio.create_task(run())
        self._media_work.add(task)
        task.add_done_callback(self._media_work.discard)

    async def _offer(self) -> Input:
        assert self.session is not None
        sdp = await self.session.create_offer()
        self._check_turn(sdp)
        return OfferReady(sdp, self._camera_on())

    async def _answer(self, offer_sdp: str, plan: MediaPlan) -> Input:
        self.open_media(plan)
        assert self.session is not None
        sdp = await self.session.create_answer(offer_sdp)
        self._check_turn(sdp)
        return AnswerReady(sdp, self._camera_on())

    def _check_turn(self, sdp: str) -> None:
        """aioice drops a TURN server that fails without a word: say so (the call goes on with
        the other routes, and without TURN a call across a symmetric NAT cannot connect)."""
        turn = self.options.ice.turn_servers
        if turn and "typ relay" not in sdp:
            server = turn[0][0].split("?")[0]
            self._notice(
                f"the TURN server {server} gave no relay address (unreachable, or the "
                "credentials were refused): trying the other routes"
            )

    async def _apply(self, sdp: str) -> None:
        assert self.session is not None
        await self.session.accept_answer(sdp)

    async def _reoffer(self, attempt: int) -> Input:
        assert self.session is not None
        return ReofferReady(await self.session.renew_offer(attempt), attempt)

    async def _reanswer(self, offer_sdp: str, attempt: int) -> Input:
        assert self.session is not None
        return ReanswerReady(await self.session.renew_answer(offer_sdp, attempt), attempt)

    async def _apply_reanswer(self, sdp: str, attempt: int) -> None:
        assert self.session is not None
        await self.session.accept_renewed_answer(sdp, attempt)

    def _count_media(self) -> None:
        """What has arrived, for the core's watch; and whether our addresses changed since the
        last look (a Wi-Fi roam, a cable pulled: the path the call uses may be gone)."""
        assert self.session is not None
        self.feed(MediaCount(self.session.packets_received(), time.monotonic()))
        addresses = frozenset(compat.aioice.host_addresses(use_ipv4=True, use_ipv6=True))
        if self._addresses is not None and addresses != self._addresses:
            if self._addresses - addresses:  # one we had is gone: so is anything bound to it
                self.channel.network_changed()
            self.feed(AddressesChanged())
        self._addresses = addresses

    def _camera_on(self) -> bool:
        track = self.session.video_track if self.session else None
        return track is not None and track.enabled

    # --- performing actions ----------------------------------------------------------------

    async def _perform_all(self) -> None:
        while True:
            actions = await self._actions.get()
            for action in actions:
                try:
                    go_on = await self._perform(action)
                except TcallError as exc:
                    if isinstance(action, Send):
                        self._feed_quietly(SendFailed(action.kind, exc))
                        break  # the rest of this batch assumed the message went out
                    self._feed_quietly(Failed(exc))
                    break
                except Exception as exc:  # a library's surprise must not leave the call hanging
                    self._feed_quietly(Failed(CallFailed(f"{type(action).__name__} failed: {exc}")))
                    break
                if not go_on:
                    return

    async def _perform(self, action: Action) -> bool:
        """Do one action; False once the call is over."""
        match action:
            case CreateOffer():
                self._media_task(self._offer())
            case CreateAnswer(offer_sdp, plan):
                self._media_task(self._answer(offer_sdp, plan))
            case ApplyAnswer(sdp):
                self._media_task(self._apply(sdp))
            case CreateReoffer(attempt):
                self._media_task(self._reoffer(attempt))
            case CreateReanswer(offer_sdp, attempt):
                self._media_task(self._reanswer(offer_sdp, attempt))
            case ApplyReanswer(sdp, attempt):
                self._media_task(self._apply_reanswer(sdp, attempt))
            case ShowVideo(on):
                self._show_video = on
                if self.session is not None:
                    self.session.video_sink.allowed = on
            case CameraTrack(on):
                if self.session is not None and self.session.video_track is not None:
                    self.session.video_track.enabled = on
            case Microphone(muted):
                if self.session is not None and self.session.audio_track is not None:
                    self.session.audio_track.muted = muted
            case Send(kind, sdp, video, courtesy, attempt):
                try:
                    await self.channel.send(
                        kind, self.call_id, sdp=sdp, video=video, attempt=attempt
                    )
                except TcallError:
                    if not courtesy:
                        raise
            case StartTimer(timer, seconds):
                self._cancel(timer)
                self._timers[timer] = asyncio.get_running_loop().call_later(
                    seconds, self._feed_quietly, TimerExpired(timer)
                )
            case CancelTimer(timer):
                self._cancel(timer)
            case Emit(event):
                self._emit(event)
            case EmitStats():
                await self._stats()
            case CountMedia():
                if self.session is not None:
                    self._count_media()
            case CloseMedia():
                await self._close_media()
            case Record():
                self._record(action)
            case Finish(outcome, reason):
                await self._finish(outcome, reason)
                return False
            case Forget():
                await self._over(None)
                return False
        return True

    def _cancel(self, timer: Timer) -> None:
        handle = self._timers.pop(timer, None)
        if handle is not None:
            handle.cancel()

    async def _stats(self) -> None:
        if self.session is None:
            return
        figures = await self.session.stats()
        figures.pop("event", None)
        self._emit(Stats(call_id=self.call_id, **figures))

    async def _close_media(self) -> None:
        for task in list(self._media_work):
            task.cancel()
        if self.session is not None:
            self._figures = media_figures(self.session, self._dialed)
            if self._release is not None:
                self._release(self.session)
            await self.session.close()

    def _record(self, record: Record) -> None:
        if not self.channel.records_history:
            return
        duration = self._clock() - self._started_at if record.connected else 0.0
        self._history.add(
            CallRecord(
                contact=self.core.peer,
                direction="outgoing" if record.outgoing else "incoming",
                started_at=self._clock() - duration,  # logged at the end; stamped at the start
                duration_s=round(duration, 1),
                outcome=record.outcome,
                video=record.video,
            )
        )

    async def _finish(self, outcome: Outcome, reason: str | None) -> None:
        outcome, reason = self.channel.review(outcome, reason, self._figures)
        summary = Summary(
            outcome=str(outcome),
            call_id=self.call_id,
            peer=self.core.peer,
            media=self._figures,
            reason=reason,
        )
        self._emit(summary)
        await self._over(summary)

    async def _over(self, summary: Summary | None) -> None:
        for timer in list(self._timers):
            self._cancel(timer)
        with contextlib.suppress(Exception):
            await self.channel.close()
        self._on_over(self)
        if not self.done.done():
            self.done.set_result(summary)

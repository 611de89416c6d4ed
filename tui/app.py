"""The tcall TUI (`tcall` with no arguments): the App that owns the engine and routes its events.

The engine runs on its own asyncio loop in a thread: `bench/tui_loop.py` measured Textual's loop
lagging less there during a call (key presses wait on that lag). Screens and widgets post Messages
up; the App turns them into engine calls in workers, and engine events come back as `EngineEvent`
messages (Textual's `post_message` is thread-safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

from tcall.engine.call import CallOptions
from tcall.engine.echo import run_echo_call
from tcall.engine.errors import TcallError
from tcall.engine.phone import Phone
from tcall.engine.session import Session
from tcall.tui.render import TEXT_MODES
from tcall.tui.render.probe import choose_mode, from_env
from tcall.tui.screens.call import CallScreen, Control, HangUp
from tcall.tui.screens.contacts import (
    ECHO,
    AddContact,
    Block,
    ContactsScreen,
    Dial,
    RemoveContact,
    Verify,
)
from tcall.tui.screens.dialogs import ConfirmDialog
from tcall.tui.screens.history import ClearHistory, HistoryScreen
from tcall.tui.screens.incoming import IncomingCallScreen
from tcall.tui.screens.settings import ChangeSetting

T = TypeVar("T")
RECONNECT_S = 5.0


class EngineEvent(Message):
    """One event dict from the engine facade (`relay`, `incoming`, `state`, `summary`, ...)."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event


class EngineLoop:
    """The engine's asyncio loop, run in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="tcall-engine", daemon=True
        )
        self._thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the engine loop and wait for its result here."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a plain engine function on the engine loop, so it never races the engine's tasks."""

        async def call() -> T:
            return fn(*args)

        return await self.run(call())

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@dataclass
class EchoCall:
    """The built-in echo test: the engine's echo peer, with a handle on its Session for the UI."""

    call_id: str
    session: Session | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, options: CallOptions, emit: Callable[[dict[str, Any]], None]) -> None:
        def keep(session: Session) -> None:
            self.session = session

        summary = await run_echo_call(options, emit, asyncio.Event(), self.ended, keep)
        emit({**summary, "peer": ECHO})


def render_modes(setting: str, env: dict[str, str]) -> list[str]:
    """The renderers `r` cycles through, the preferred one first."""
    caps = from_env(env)
    best = choose_mode(caps) if setting == "auto" else setting
    text = ["halfblock", "256", "ascii"] if caps.truecolor else ["256", "ascii", "halfblock"]
    return [best] + [m for m in text if m != best and m in TEXT_MODES]


class TcallApp(App[None]):
    """Contacts, calls, incoming calls, settings, history and identity, all by keyboard."""

    CSS_PATH = "app.tcss"
    TITLE = "tcall"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", id="quit", show=False)]

    relay_state: reactive[str] = reactive("offline")
    """The relay link: online, connecting, offline, or "not set"."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.phone = Phone(self._emit)
        self.engine: EngineLoop | None = None
        self._calls: dict[str, CallScreen] = {}
        self._early: dict[str, list[dict[str, Any]]] = {}
        self._ringing: dict[str, IncomingCallScreen] = {}
        self._echo: EchoCall | None = None
        self._echo_count = 0

    # --- lifecycle -------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.engine = EngineLoop()
        self.push_screen(ContactsScreen(self.phone))
        self.connect_relay()
        self.set_interval(RECONNECT_S, self._reconnect)

    async def on_unmount(self) -> None:
        if self.engine is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.engine.run(self.phone.close()), 5)
            self.engine.stop()

    def _emit(self, event: dict[str, Any]) -> None:
        self.post_message(EngineEvent(event))

    def _engine(self) -> EngineLoop:
        assert self.engine is not None, "the engine starts when the app mounts"
        return self.engine

    def call_options(self, video: bool) -> CallOptions:
        """Media for a call, from the device settings; a missing device falls back to generated media."""
        settings = self.phone.settings
        camera = "auto" if settings.camera == "camera" else settings.camera
        mic = "auto" if settings.microphone == "mic" else settings.microphone
        return CallOptions(
            video=camera if video else "none",
            audio=mic,
            speaker=None if settings.speaker == "default" else settings.speaker,
            receive_video=video,
            camera_on=True,
        )

    def render_modes(self) -> list[str]:
        return render_modes(self.phone.settings.render, dict(os.environ))

    # --- the relay -------------------------------------------------------------------------

    @work(exclusive=True, group="relay", exit_on_error=False)
    async def connect_relay(self) -> None:
        if not self.phone.relay_url:
            self.relay_state = "not set"
            return
        try:
            await self._engine().run(self.phone.start())
        except TcallError as exc:
            self.relay_state = "offline"
            self.notify(str(exc), title="Relay", severity="warning")

    def _reconnect(self) -> None:
        if self.relay_state == "offline" and self.phone.relay_url:
            self.connect_relay()

    # --- engine events ---------------------------------------------------------------------

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        kind = event["event"]
        call_id = event.get("call_id")
        if kind == "relay":
            self.relay_state = event["state"]
        elif kind == "presence":
            self._contacts_changed()
        elif kind == "incoming":
            self._ring(event)
        elif kind == "video_request":
            self._ask_video(event)
        elif kind in ("silenced", "missed", "refused", "notice"):
            self._history_changed()
            if kind != "silenced":
                self.notify(
                    _describe(event), severity="warning" if kind == "refused" else "information"
                )
        elif call_id is not None:
            self._for_call(call_id, event)

    def _for_call(self, call_id: str, event: dict[str, Any]) -> None:
        ended = event["event"] == "summary"
        if ended:
            self._history_changed()
            ringing = self._ringing.pop(call_id, None)
            if ringing is not None:
                if ringing in self.screen_stack:
                    ringing.pop_until_active()
                    ringing.dismiss(None)
                self.notify(_summary_text(event), title="Missed call")
                return
        screen = self._calls.get(call_id)
        if screen is None:
            self._early.setdefault(call_id, []).append(event)
            return
        screen.engine_event(event)
        if ended:
            del self._calls[call_id]
            self.notify(_summary_text(event), title="Call ended")
            self._close(screen)

    def _close(self, screen: CallScreen) -> None:
        """Close the call screen, and any dialog over it."""
        if screen in self.screen_stack:
            screen.pop_until_active()
            self.pop_screen()

    def _track(self, call_id: str, screen: CallScreen) -> None:
        screen.call_id = call_id
        self._calls[call_id] = screen
        for event in self._early.pop(call_id, []):
            self._for_call(call_id, event)

    def _contacts_changed(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, ContactsScreen):
                screen.reload()

    def _history_changed(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, HistoryScreen):
                screen.reload()

    # --- outgoing calls --------------------------------------------------------------------

    def on_dial(self, message: Dial) -> None:
        if any(isinstance(screen, CallScreen) for screen in self.screen_stack):
            self.notify("You are already in a call", severity="warning")
            return
        if message.name == ECHO:
            self._echo_count += 1
            call = EchoCall(f"echo-{self._echo_count}")
            screen = self._open_call_screen(ECHO, True, message.video)
            self._echo = call
            screen.source = call
            self._track(call.call_id, screen)
            self.run_echo(call, message.video)
            return
        contact = self.phone.contacts.get(message.name)
        screen = self._open_call_screen(contact.name, contact.verified, message.video)
        self.dial(message.name, message.video, screen)

    def _open_call_screen(self, peer: str, verified: bool, video: bool) -> CallScreen:
        screen = CallScreen(peer, verified, video, self.render_modes(), clock=self.clock)
        self.push_screen(screen)
        return screen

    @work(group="call", exit_on_error=False)
    async def dial(self, name: str, video: bool, screen: CallScreen) -> None:
        try:
            call = await self._engine().run(self.phone.dial(name, self.call_options(video)))
        except TcallError as exc:
            self.notify(str(exc), title="Call failed", severity="error")
            if screen in self.screen_stack:
                self._close(screen)
            return
        screen.source = call
        self._track(call.call_id, screen)
        if screen.ended or not screen.is_attached:
            await self._engine().run(self.phone.hangup(call.call_id))

    @work(group="call", exit_on_error=False)
    async def run_echo(self, call: EchoCall, video: bool) -> None:
        def emit(event: dict[str, Any]) -> None:
            self._emit({**event, "call_id": call.call_id})

        try:
            await self._engine().run(call.run(self.call_options(video), emit))
        except TcallError as exc:
            emit({"event": "summary", "outcome": "failed", "reason": str(exc), "peer": ECHO})

    def on_hang_up(self, message: HangUp) -> None:
        self.hang_up(message.call_id)

    @work(group="call", exit_on_error=False)
    async def hang_up(self, call_id: str | None) -> None:
        if call_id is None:
            return  # the dial worker hangs up once the engine has given the call an id
        echo = self._echo
        if echo is not None and echo.call_id == call_id:
            self._engine().soon(echo.ended.set)
            return
        await self._engine().run(self.phone.hangup(call_id))

    def on_control(self, message: Control) -> None:
        session = message.session
        if message.what == "microphone" and session.audio_track is not None:
            self._engine().soon(setattr, session.audio_track, "muted", not message.on)
        elif message.what == "camera" and session.video_track is not None:
            if message.call_id is not None and message.call_id in self.phone.calls:
                # A contact's call: the engine also tells the peer, who may be asked first.
                self.set_camera(message.call_id, message.on)
            else:
                self._engine().soon(setattr, session.video_track, "enabled", message.on)

    @work(group="control", exit_on_error=False)
    async def set_camera(self, call_id: str, on: bool) -> None:
        try:
            await self._engine().run(self.phone.set_camera(call_id, on))
        except TcallError as exc:
            self.notify(str(exc), severity="warning")

    def _ask_video(self, event: dict[str, Any]) -> None:
        """ask_before_video: the peer turned video on; show it only if the user says so."""
        call_id = event["call_id"]

        def answered(show: bool | None) -> None:
            if show:
                self.allow_video(call_id)

        self.push_screen(ConfirmDialog(f"{event['from']} turned on video. Show it?"), answered)

    @work(group="control", exit_on_error=False)
    async def allow_video(self, call_id: str) -> None:
        try:
            await self._engine().run(self.phone.allow_video(call_id))
        except TcallError as exc:
            self.notify(str(exc), severity="warning")

    # --- incoming calls --------------------------------------------------------------------

    def _ring(self, event: dict[str, Any]) -> None:
        call_id = event["call_id"]
        screen = IncomingCallScreen(event["from"], bool(event["verified"]), bool(event["video"]))
        self._ringing[call_id] = screen

        def answered(choice: str | None) -> None:
            self._ringing.pop(call_id, None)
            if choice in ("video", "audio"):
                peer = event["from"]
                verified = bool(event["verified"])
                call_screen = self._open_call_screen(peer, verified, choice == "video")
                self._track(call_id, call_screen)
                self.accept(call_id, choice == "video", call_screen)
            elif choice in ("decline", "block"):
                self.decline(call_id, event["from"] if choice == "block" else None)

        self.push_screen(screen, answered)

    @work(group="call", exit_on_error=False)
    async def accept(self, call_id: str, video: bool, screen: CallScreen) -> None:
        engine = self._engine()
        self.phone.incoming_options = self.call_options(video)
        try:
            await engine.run(self.phone.accept(call_id, video=video))
        except TcallError as exc:
            self.notify(str(exc), title="Call failed", severity="error")
            if screen in self.screen_stack:
                self._close(screen)
            return
        screen.source = await engine.call(self.phone.calls.get, call_id)

    @work(group="call", exit_on_error=False)
    async def decline(self, call_id: str, block: str | None) -> None:
        engine = self._engine()
        with contextlib.suppress(TcallError):
            await engine.run(self.phone.decline(call_id))
        if block is not None and not block.startswith("unknown "):
            await engine.call(self.phone.contacts.set_blocked, block, True)
            self.notify(f"Blocked {block}")
            self._contacts_changed()

    # --- contacts, settings, history -------------------------------------------------------

    def on_add_contact(self, message: AddContact) -> None:
        self.add_contact(message)

    def on_remove_contact(self, message: RemoveContact) -> None:
        self.remove_contact(message.name)

    def on_verify(self, message: Verify) -> None:
        self.verify(message.name)

    def on_block(self, message: Block) -> None:
        self.block(message.name, message.blocked)

    def on_change_setting(self, message: ChangeSetting) -> None:
        self.change_setting(message)

    def on_clear_history(self, message: ClearHistory) -> None:
        self.clear_history()

    @work(group="book", exit_on_error=False)
    async def add_contact(self, message: AddContact) -> None:
        try:
            contact = await self._engine().call(
                self.phone.contacts.add, message.name, message.public_key, message.relay_url
            )
        except TcallError as exc:
            self.notify(str(exc), title="Not added", severity="error")
            return
        self.notify(f"Added {contact.name}: press v to compare safety numbers")
        self._contacts_changed()

    @work(group="book", exit_on_error=False)
    async def remove_contact(self, name: str) -> None:
        await self._engine().call(self.phone.contacts.remove, name)
        self.notify(f"Removed {name}")
        self._contacts_changed()

    @work(group="book", exit_on_error=False)
    async def block(self, name: str, blocked: bool) -> None:
        await self._engine().call(self.phone.contacts.set_blocked, name, blocked)
        self.notify(f"{'Blocked' if blocked else 'Unblocked'} {name}")
        self._contacts_changed()

    @work(group="book", exit_on_error=False)
    async def verify(self, name: str) -> None:
        await self._engine().call(self.phone.contacts.set_verified, name, True)
        self.notify(f"{name} is verified")
        self._contacts_changed()

    @work(group="settings", exit_on_error=False)
    async def change_setting(self, message: ChangeSetting) -> None:
        try:
            await self._engine().call(self.phone.settings.set, message.key, message.value)
        except TcallError as exc:
            message.screen.show_error(message.key, str(exc))
            return
        message.screen.saved(message.key)
        if message.key == "history_retention_days":
            self.phone.history.retention_days = self.phone.settings.history_retention_days
        if message.key == "relay_url":
            self.connect_relay()

    @work(group="history", exit_on_error=False)
    async def clear_history(self) -> None:
        await self._engine().call(self.phone.history.clear)
        self._history_changed()


def _describe(event: dict[str, Any]) -> str:
    if event["event"] == "missed":
        return f"Missed call from {event['from']} ({event['reason']})"
    return str(event.get("message", event))


def _summary_text(event: dict[str, Any]) -> str:
    text = f"{event.get('peer', 'call')}: {event.get('outcome', 'ended')}"
    return f"{text} ({event['reason']})" if event.get("reason") else text

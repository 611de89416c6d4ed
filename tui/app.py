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
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.reactive import reactive

from tcall.engine.api import ECHO as ECHO_PEER
from tcall.engine.api import (
    CallHandle,
    CallOptions,
    GroupHandle,
    Phone,
    Snapshot,
    outcome_words,
    printable,
)
from tcall.engine.errors import ExitCode, TcallError
from tcall.engine.events import (
    CallState,
    ContactRequested,
    Event,
    IncomingCall,
    Missed,
    Notice,
    PresenceChanged,
    Refused,
    RelayChanged,
    Silenced,
    SnapshotChanged,
    Stats,
    Summary,
    VideoRequest,
)
from tcall.tui.render import TEXT_MODES
from tcall.tui.render.probe import choose_mode, from_env
from tcall.tui.screens.call import CallScreen, Control, HangUp
from tcall.tui.screens.contacts import (
    ECHO,
    AddContact,
    Block,
    ContactsScreen,
    Dial,
    DialGroup,
    RemoveContact,
    Verify,
)
from tcall.tui.screens.dialogs import ConfirmDialog
from tcall.tui.screens.group_call import GroupCallScreen, Invite
from tcall.tui.screens.help import HelpDialog
from tcall.tui.screens.history import AnswerRequest, ClearHistory, HistoryScreen
from tcall.tui.screens.incoming import IncomingCallScreen
from tcall.tui.screens.settings import ChangeSetting

T = TypeVar("T")


class EngineEvent(Message):
    """One typed event from the engine (`tcall.engine.events`)."""

    def __init__(self, event: Event) -> None:
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

    def run_blocking(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the engine loop and block this thread until it is done."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


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
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="quit", show=False),
        # Not a priority binding: in a text field (a TURN URL has a '?') the key types itself.
        Binding("question_mark,f1", "help", "Keys", id="help"),
    ]

    relay_state: reactive[str] = reactive("offline")
    """The relay link: online, connecting, offline, or "not set"."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.phone = Phone(self._emit)
        self.engine: EngineLoop | None = None
        self._calls: dict[str, CallScreen | GroupCallScreen] = {}
        self._early: dict[str, list[Event]] = {}
        self._ringing: dict[str, IncomingCallScreen] = {}

    # --- lifecycle -------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.engine = EngineLoop()
        self.push_screen(ContactsScreen(self.snapshot))
        self.connect_relay()
        # SIGTERM ends the app as `q` does: every call is hung up, so the peer is told and history
        # is written. So does a closed terminal, SIGHUP, but without the terminal (see below).
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGTERM, self.exit, None, ExitCode.INTERRUPTED
        )
        signal.signal(signal.SIGHUP, self._terminal_closed)

    async def on_unmount(self) -> None:
        if self.engine is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.engine.run(self.phone.close()), 5)
            self.engine.stop()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every toast shows its text as text: never markup, never a control character (a relay's
        or a peer's words may carry either)."""
        super().notify(
            printable(message),
            title=printable(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def snapshot(self) -> Snapshot:
        """The engine's latest snapshot (replaced whole by the engine, so safe to read here)."""
        return self.phone.snapshot

    def _emit(self, event: Event) -> None:
        self.post_message(EngineEvent(event))

    def _engine(self) -> EngineLoop:
        assert self.engine is not None, "the engine starts when the app mounts"
        return self.engine

    def call_options(self, video: bool) -> CallOptions:
        """Media for a call, from the device settings; a missing device falls back to generated media."""
        setting = self.snapshot().setting
        camera = "auto" if setting("camera") == "camera" else setting("camera")
        mic = "auto" if setting("microphone") == "mic" else setting("microphone")
        speaker = setting("speaker")
        return CallOptions(
            video=camera if video else "none",
            audio=mic,
            speaker=None if speaker == "default" else speaker,
            receive_video=video,
            camera_on=True,
        )

    def render_modes(self) -> list[str]:
        return render_modes(str(self.snapshot().setting("render")), dict(os.environ))

    def _terminal_closed(self, signum: int, frame: object) -> None:
        """SIGHUP: the terminal is gone (a dropped SSH session, a killed tmux session).

        Textual's own shutdown would wait forever on the dead terminal (its writer thread dies on
        the first failed write, and every later write waits for it), and its loop may be waiting
        already. Python runs a plain signal handler even then: the engine, on its own thread, hangs
        up every call and writes history, and the process leaves without touching the terminal.
        """
        if self.engine is not None:
            with contextlib.suppress(Exception):
                self.engine.run_blocking(self.phone.close(), 5)
        os._exit(ExitCode.INTERRUPTED)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpDialog):
            self.push_screen(HelpDialog(self.screen))

    # --- the relay -------------------------------------------------------------------------

    @work(exclusive=True, group="relay", exit_on_error=False)
    async def connect_relay(self) -> None:
        """Sign in to the relay; the engine keeps trying by itself while it is unreachable."""
        if not self.snapshot().relay_url:
            self.relay_state = "not set"
            return
        await self._engine().run(self.phone.stay_online())

    # --- engine events ---------------------------------------------------------------------

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        match event:
            case RelayChanged(state=state):
                self.relay_state = state
            case PresenceChanged() | SnapshotChanged():
                self._snapshot_changed()
            case IncomingCall():
                self._ring(event)
            case VideoRequest():
                self._ask_video(event)
            case Silenced():
                self._snapshot_changed()
            case ContactRequested():
                self._snapshot_changed()
                self.notify(f"{event.label} wants to reach you (fingerprint {event.fingerprint})")
            case Missed():
                self._snapshot_changed()
                self.notify(f"Missed call from {event.peer} ({event.reason})")
            case Refused() | Notice(call_id=None):
                self.notify(
                    event.message,
                    severity="warning" if isinstance(event, Refused) else "information",
                )
            case CallState() | Stats() | Summary() | Notice():
                if event.call_id is not None:
                    self._for_call(event.call_id, event)
            case _:
                if (call_id := getattr(event, "call_id", None)) is not None:
                    self._for_call(call_id, event)

    def _for_call(self, call_id: str, event: Event) -> None:
        if isinstance(event, Summary):
            self._snapshot_changed()
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
        if isinstance(event, Notice):
            self.notify(event.message)
            return
        screen.engine_event(event)
        if isinstance(event, Summary):
            del self._calls[call_id]
            self.notify(_summary_text(event), title="Call ended")
            self._close(screen)

    def _close(self, screen: CallScreen | GroupCallScreen) -> None:
        """Close the call screen, and any dialog over it."""
        if screen in self.screen_stack:
            screen.pop_until_active()
            self.pop_screen()

    def _track(self, call_id: str, screen: CallScreen | GroupCallScreen) -> None:
        screen.call_id = call_id
        self._calls[call_id] = screen
        for event in self._early.pop(call_id, []):
            self._for_call(call_id, event)

    def _snapshot_changed(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, ContactsScreen | HistoryScreen):
                screen.reload()

    # --- outgoing calls --------------------------------------------------------------------

    def _in_a_call(self) -> bool:
        if any(isinstance(screen, CallScreen | GroupCallScreen) for screen in self.screen_stack):
            self.notify("You are already in a call", severity="warning")
            return True
        return False

    def on_dial(self, message: Dial) -> None:
        if self._in_a_call():
            return
        if message.name == ECHO:
            screen = self._open_call_screen(ECHO, True, message.video)
            self.dial(ECHO_PEER, message.video, screen)
            return
        contact = self.snapshot().contact(message.name)
        screen = self._open_call_screen(contact.name, contact.verified, message.video)
        self.dial(message.name, message.video, screen)

    def on_dial_group(self, message: DialGroup) -> None:
        if not self._in_a_call():
            self.dial_group(message.names)

    @work(group="call", exit_on_error=False)
    async def dial_group(self, names: list[str]) -> None:
        try:
            group = await self._engine().run(self.phone.dial_group(names, self.call_options(True)))
        except TcallError as exc:
            self.notify(str(exc), title="Call failed", severity="error")
            return
        self._open_group_screen(group)

    def _open_group_screen(self, group: GroupHandle) -> GroupCallScreen:
        screen = GroupCallScreen(group, self.snapshot, self.render_modes(), clock=self.clock)
        self.push_screen(screen)
        self._track(group.call_id, screen)  # replays the events that came before it
        return screen

    def on_invite(self, message: Invite) -> None:
        self.book(
            self.phone.invite(message.call_id, message.name),
            f"Invited {message.name}",
            "Not invited",
        )

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
        screen.attach(call.video, call.camera_on, call.mic)
        self._track(call.call_id, screen)
        if screen.ended or not screen.is_attached:
            await self._engine().run(self.phone.hangup(call.call_id))

    def on_hang_up(self, message: HangUp) -> None:
        self.hang_up(message.call_id)

    @work(group="call", exit_on_error=False)
    async def hang_up(self, call_id: str | None) -> None:
        if call_id is None:
            return  # the dial worker hangs up once the engine has given the call an id
        await self._engine().run(self.phone.hangup(call_id))

    def on_control(self, message: Control) -> None:
        self.control(message)

    @work(group="control", exit_on_error=False)
    async def control(self, message: Control) -> None:
        if message.call_id is None:
            return
        if message.what == "microphone":
            command = self.phone.set_muted(message.call_id, not message.on)
        else:  # the engine also tells the peer, who may be asked first
            command = self.phone.set_camera(message.call_id, message.on)
        try:
            await self._engine().run(command)
        except TcallError as exc:
            self.notify(str(exc), severity="warning")

    def _ask_video(self, event: VideoRequest) -> None:
        """ask_before_video: the peer turned video on; show it only if the user says so."""

        def answered(show: bool | None) -> None:
            if show:
                self.allow_video(event.call_id)

        self.push_screen(ConfirmDialog(f"{event.peer} turned on video. Show it?"), answered)

    @work(group="control", exit_on_error=False)
    async def allow_video(self, call_id: str) -> None:
        try:
            await self._engine().run(self.phone.allow_video(call_id))
        except TcallError as exc:
            self.notify(str(exc), severity="warning")

    # --- incoming calls --------------------------------------------------------------------

    def _ring(self, event: IncomingCall) -> None:
        call_id = event.call_id
        setting = self.snapshot().setting
        screen = IncomingCallScreen(
            event.peer,
            event.verified,
            event.video,
            bell=setting("ring_bell") == "on",
            notify=setting("ring_notify") == "on",
            members=event.members,
        )
        self._ringing[call_id] = screen

        def answered(choice: str | None) -> None:
            self._ringing.pop(call_id, None)
            if choice in ("video", "audio") and event.members:
                self.accept_group(call_id, choice == "video")
            elif choice in ("video", "audio"):
                call_screen = self._open_call_screen(event.peer, event.verified, choice == "video")
                self._track(call_id, call_screen)
                self.accept(call_id, choice == "video", call_screen)
            elif choice in ("decline", "block"):
                self.decline(call_id, event.peer if choice == "block" else None)

        self.push_screen(screen, answered)

    @work(group="call", exit_on_error=False)
    async def accept(self, call_id: str, video: bool, screen: CallScreen) -> None:
        options = self.call_options(video)
        try:
            call = await self._engine().run(self.phone.accept(call_id, video, options))
        except TcallError as exc:
            self.notify(str(exc), title="Call failed", severity="error")
            if screen in self.screen_stack:
                self._close(screen)
            return
        assert isinstance(call, CallHandle)
        screen.attach(call.video, call.camera_on, call.mic)

    @work(group="call", exit_on_error=False)
    async def accept_group(self, call_id: str, video: bool) -> None:
        options = self.call_options(video)
        try:
            group = await self._engine().run(self.phone.accept(call_id, video, options))
        except TcallError as exc:
            self.notify(str(exc), title="Call failed", severity="error")
            return
        assert isinstance(group, GroupHandle)
        self._open_group_screen(group)

    @work(group="call", exit_on_error=False)
    async def decline(self, call_id: str, block: str | None) -> None:
        with contextlib.suppress(TcallError):  # the caller may have given up meanwhile
            await self._engine().run(self.phone.decline(call_id))
        if block is not None and any(c.name == block for c in self.snapshot().contacts):
            self.book(self.phone.set_blocked(block, True), f"Blocked {block}")

    # --- contacts, settings, history -------------------------------------------------------

    def on_add_contact(self, message: AddContact) -> None:
        self.book(
            self.phone.add_contact(message.name, message.public_key, message.relay_url),
            f"Added {message.name}: press v to compare safety numbers",
            "Not added",
        )

    def on_remove_contact(self, message: RemoveContact) -> None:
        self.book(self.phone.remove_contact(message.name), f"Removed {message.name}")

    def on_verify(self, message: Verify) -> None:
        self.book(self.phone.set_verified(message.name, True), f"{message.name} is verified")

    def on_block(self, message: Block) -> None:
        done = f"{'Blocked' if message.blocked else 'Unblocked'} {message.name}"
        self.book(self.phone.set_blocked(message.name, message.blocked), done)

    def on_clear_history(self, message: ClearHistory) -> None:
        self.book(self.phone.clear_history(), "History cleared")

    def on_answer_request(self, message: AnswerRequest) -> None:
        fingerprint = message.fingerprint
        if message.action == "accept":
            added = f"Added {message.name}: press v on contacts to compare safety numbers"
            self.book(self.phone.accept_request(fingerprint, message.name), added, "Not added")
        elif message.action == "ignore":
            self.book(self.phone.ignore_request(fingerprint), "Request ignored")
        else:
            self.book(self.phone.block_request(fingerprint), "Blocked: a blocked contact now")

    @work(group="book", exit_on_error=False)
    async def book(
        self, command: Coroutine[Any, Any, Any], done: str, failed: str = "Not changed"
    ) -> None:
        """Run one contacts or history command on the engine; the engine republishes the snapshot."""
        try:
            await self._engine().run(command)
        except TcallError as exc:
            self.notify(str(exc), title=failed, severity="error")
            return
        self.notify(done)

    def on_change_setting(self, message: ChangeSetting) -> None:
        self.change_setting(message)

    @work(group="settings", exit_on_error=False)
    async def change_setting(self, message: ChangeSetting) -> None:
        relay_before = self.snapshot().relay_url
        try:
            await self._engine().run(self.phone.set_setting(message.key, message.value))
        except TcallError as exc:
            message.screen.show_error(message.key, str(exc))
            return
        message.screen.saved(message.key)
        if self.snapshot().relay_url != relay_before:
            self.connect_relay()


def _summary_text(event: Summary) -> str:
    # Most reasons are sentences that name the peer ("bob is busy"); an outcome is a code.
    text = event.reason or outcome_words(event.outcome)
    return text if event.peer and event.peer in text else f"{event.peer or 'call'}: {text}"

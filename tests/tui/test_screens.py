"""Pilot tests: every screen of the TUI and every key on it, against real files and a real echo call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.app import App
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Select, Static

from tcall.engine.address import format_address
from tcall.engine.api import VideoHandle
from tcall.engine.contacts import ContactBook
from tcall.engine.events import CallPhase, CallState, IncomingCall, Refused, Silenced, Summary
from tcall.engine.history import CallRecord, History
from tcall.engine.identity import Identity
from tcall.engine.settings import Settings
from tcall.tui.app import EngineEvent, TcallApp, render_modes
from tcall.tui.screens import incoming
from tcall.tui.screens.call import CallScreen
from tcall.tui.screens.contacts import ECHO, ContactsScreen, Dial
from tcall.tui.screens.dialogs import AddContactDialog, ConfirmDialog, VerifyDialog, halves
from tcall.tui.screens.history import HistoryScreen
from tcall.tui.screens.identity import IdentityScreen
from tcall.tui.screens.incoming import IncomingCallScreen
from tcall.tui.screens.settings import SettingsScreen
from tcall.tui.widgets.video_view import VideoView

SIZE = (80, 24)


async def until(pilot: Pilot[None], done: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        assert loop.time() < deadline, "timed out waiting for the TUI"
        await pilot.pause(0.05)


def listed(app: TcallApp) -> list[str]:
    options = app.screen.query_one(OptionList)
    return [str(options.get_option_at_index(i).id) for i in range(options.option_count)]


def prompts(app: TcallApp) -> str:
    options = app.screen.query_one(OptionList)
    return "\n".join(
        str(options.get_option_at_index(i).prompt) for i in range(options.option_count)
    )


async def test_contacts_list_echo_first_with_marks(friends: ContactBook) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ContactsScreen)
        assert listed(app) == [ECHO, "alice", "bob", "carol"]
        lines = prompts(app).splitlines()
        assert "alice" in lines[1] and "✔ verified" in lines[1]
        assert "blocked" in lines[2] and "unverified" in lines[2]
        assert "blocked" not in lines[3]
        # carol's presence message, as the engine handles it after opening it
        assert app.engine is not None

        async def online() -> None:
            app.phone._presence("carol", True)

        await app.engine.run(online())
        await pilot.pause()
        assert "●" in prompts(app).splitlines()[3]


async def test_typing_filters_and_escape_clears(friends: ContactBook) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c", "a", "r")
        assert listed(app) == ["carol"]
        await pilot.press("escape")
        assert listed(app) == [ECHO, "alice", "bob", "carol"]
        # `a` is a command on the list; `/` filters with it.
        await pilot.press("slash", "a", "l")
        assert listed(app) == ["alice"]


async def test_enter_and_a_dial_with_and_without_video(friends: ContactBook) -> None:
    messages: list[Message] = []
    app = TcallApp()
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        # carol's relay (port 9) is not listening: each call fails and its screen closes.
        await pilot.press("down", "down", "down")
        for key in ("enter", "a"):
            await pilot.press(key)
            await pilot.pause(0.1)
            await until(pilot, lambda: isinstance(app.screen, ContactsScreen))
    sent = {id(m): m for m in messages if isinstance(m, Dial)}.values()
    dials = [(m.name, m.video) for m in sent]
    assert dials == [("carol", True), ("carol", False)]


async def test_n_adds_a_contact_from_a_pasted_address(tcall_home: Path) -> None:
    key = Identity.from_seed(b"\x07" * 32).public_key
    address = format_address(key, "ws://127.0.0.1:7711")
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        assert isinstance(app.screen, AddContactDialog)
        app.screen.query_one("#address", Input).value = "garbage"
        await pilot.press("enter", *"dave", "enter")
        assert "garbled address" in str(app.screen.query_one("#error").render())
        app.screen.query_one("#address", Input).value = address
        await pilot.press("enter")
        await until(pilot, lambda: "dave" in listed(app))
    dave = ContactBook.load().get("dave")
    assert dave.public_key == key and dave.relay_url == "ws://127.0.0.1:7711"
    assert not dave.verified


async def test_v_shows_both_halves_and_y_verifies(friends: ContactBook) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down", "down", "v")
        dialog = app.screen
        assert isinstance(dialog, VerifyDialog) and dialog.contact == "carol"
        ours, theirs = halves(app.snapshot().public_key, friends.get("carol").public_key)
        assert ours != theirs
        assert sorted([ours, theirs]) == [dialog.number[:30], dialog.number[30:]]
        await pilot.press("y")
        await until(pilot, lambda: ContactBook.load().get("carol").verified)
        await pilot.press("v", "n")
        assert isinstance(app.screen, ContactsScreen)


async def test_delete_asks_then_removes(friends: ContactBook) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "delete")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        assert "alice" in listed(app)
        await pilot.press("delete", "y")
        await until(pilot, lambda: "alice" not in listed(app))
    assert [c.name for c in ContactBook.load().contacts()] == ["bob", "carol"]


async def test_b_toggles_the_block(friends: ContactBook) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "down", "b")
        await until(pilot, lambda: not ContactBook.load().get("bob").blocked)


async def test_i_shows_the_address_qr_and_fingerprint_and_c_copies(tcall_home: Path) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("i")
        screen = app.screen
        assert isinstance(screen, IdentityScreen)
        address = format_address(app.snapshot().public_key, "")
        assert str(screen.query_one("#address", Static).render()) == address
        assert app.snapshot().fingerprint in str(screen.query_one("#fingerprint").render())
        assert "█" in str(screen.query_one("#qr", Static).render())
        await pilot.press("c")
        assert app.clipboard == address
        await pilot.press("escape")
        assert isinstance(app.screen, ContactsScreen)


async def test_h_lists_history_and_c_clears_it(tcall_home: Path) -> None:
    history = History.open(30)
    now = time.time()
    history.add(CallRecord("alice", "outgoing", now - 90, 65.0, "answered"))
    history.add(CallRecord("unknown 1234", "incoming", now - 9, 0.0, "silenced", False))
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        assert isinstance(app.screen, HistoryScreen)
        table = app.screen.query_one("#calls", DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert [r[1] for r in rows] == ["unknown 1234", "alice"]
        assert rows[1][3:5] == ["answered", "1:05"]
        await pilot.press("c", "y")
        await until(pilot, lambda: table.row_count == 0)
    assert History.open(30).records == []


async def test_settings_save_at_once_and_refuse_bad_values(tcall_home: Path) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        screen.query_one("#set-who_can_call", Select).value = "nobody"
        await until(pilot, lambda: Settings.load().who_can_call == "nobody")
        retention = screen.query_one("#set-history_retention_days", Input)
        retention.focus()
        retention.value = "forever"
        await pilot.press("enter")
        note = screen.query_one("#note-history_retention_days")
        await until(pilot, lambda: "allowed" in str(note.render()))
        assert Settings.load().history_retention_days == 30
        retention.value = "7"
        await pilot.press("enter")
        await until(pilot, lambda: Settings.load().history_retention_days == 7)
        assert app.phone._history.retention_days == 7
        await pilot.press("escape")
        assert isinstance(app.screen, ContactsScreen)


async def test_a_bad_setting_shows_its_error_as_text_and_is_not_saved(tcall_home: Path) -> None:
    """Issue #13, item 4: the error (which may hold markup-like text) is shown, never a stale
    "saved", and nothing is written."""
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        for key, bad in (("relay_url", "ftp://relay[/PATH]"), ("turn_servers", "turn:[/PATH]")):
            box = screen.query_one(f"#set-{key}", Input)
            box.focus()
            box.value = bad
            await pilot.press("enter")
            note = screen.query_one(f"#note-{key}")
            await until(pilot, lambda note=note: note.has_class("error"))  # type: ignore[misc]
            assert "saved" not in str(note.render()) and str(note.render()).strip()
        assert Settings.load().relay_url == "" and Settings.load().turn_servers == []


async def test_calling_with_no_relay_says_so_at_once(
    tcall_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #13, item 5: no 30 s of "Calling..." then "no_answer": the engine refuses at once."""
    ContactBook.load().add("dave", Identity.from_seed(b"\x09" * 32).public_key, "")
    shown: list[str] = []
    monkeypatch.setattr(App, "notify", lambda _app, message, **how: shown.append(message))
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(Dial("dave", True))
        await until(pilot, lambda: any("no relay configured" in m for m in shown))
        await until(pilot, lambda: isinstance(app.screen, ContactsScreen))


async def test_a_call_answered_with_the_camera_off_says_so(tcall_home: Path) -> None:
    """Issue #13, item 1: answering "with video" under answer_with_camera = off leaves the camera
    off; the header says so, and the first `c` turns it on (the toggle is in step)."""
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        screen = CallScreen("alice", True, True, ["halfblock"])
        await app.push_screen(screen)
        screen.call_id = "c1"
        screen.attach(VideoHandle(), camera_on=False)
        await pilot.pause()
        assert "camera off (press c)" in str(screen.query_one("#topbar").render())
        await pilot.press("c")
        assert screen.camera_on
        assert "camera off" not in str(screen.query_one("#topbar").render())


async def test_an_incoming_call_rings_the_bell_and_notifies_unless_turned_off(
    friends: ContactBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #13, item 7: BEL while it rings, and one OSC 9 / OSC 777 desktop notification."""
    bells: list[int] = []
    written: list[str] = []
    monkeypatch.setattr(App, "bell", lambda _app: bells.append(1))
    monkeypatch.setattr(incoming, "terminal_write", lambda _app, text: written.append(text))
    for setting, on in (("on", True), ("off", False)):
        bells.clear()
        written.clear()
        Settings.load().set("ring_bell", setting)
        Settings.load().set("ring_notify", setting)
        app = TcallApp()
        async with app.run_test(size=SIZE) as pilot:
            ring(app)
            await until(pilot, lambda app=app: isinstance(app.screen, IncomingCallScreen))  # type: ignore[misc]
            await pilot.pause(2.3)  # a second bell after RING_EVERY_S
        assert (len(bells) >= 2) is on and (len(bells) == 0) is not on
        assert (
            written
            == [
                "\x1b]9;tcall: video call from alice\x07\x1b]777;notify;tcall;tcall: video call from alice\x07"
            ]
        ) is on
        assert (written == []) is not on


async def test_every_privacy_and_device_setting_is_on_screen(tcall_home: Path) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        ids = {w.id for w in app.screen.query("Select, Input")}
    assert ids == {f"set-{key}" for key in Settings.load().as_dict()}


async def test_echo_call_shows_video_and_every_call_key_works(tcall_home: Path) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, CallScreen) and screen.peer == ECHO
        await until(pilot, lambda: screen._shown > 0 and screen.state == "connected")
        # What the keys did is checked on the engine's side of the call.
        assert screen.call_id is not None
        session = app.phone._calls[screen.call_id].session
        assert session is not None and session.audio_track and session.video_track
        remote = screen.remote
        assert remote.grid is not None and remote.mode == "halfblock"
        await pilot.press("m")
        await until(pilot, lambda: session.audio_track is not None and session.audio_track.muted)
        await pilot.press("c")
        await until(
            pilot, lambda: session.video_track is not None and not session.video_track.enabled
        )
        assert "camera off" in str(screen.query_one("#topbar").render())
        await pilot.press("s")
        stats = screen.query_one("#stats", Static)
        assert stats.display
        await until(pilot, lambda: "fps" in str(stats.render()))
        await pilot.press("p")
        assert not screen.query_one("#pip").display
        # The frame timer can fire while `r` has removed the old view and not yet mounted the
        # new one (it crashed the app once in CI): that frame waits for the new view.
        await screen.remote.remove()
        screen.pull_frames()
        await screen.mount(VideoView(screen.modes[0], id="remote"), before="#pip")
        # A tick before the new view has its size (a loaded machine) must not use up the newest
        # frame: the camera is off, so no newer one comes (the view once stayed blank in CI).
        screen.pull_frames()
        await until(pilot, lambda: screen.remote.grid is not None)  # the newest frame, again
        await pilot.press("r")
        await until(pilot, lambda: screen.remote.mode == "256" and screen.remote.grid is not None)
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, ContactsScreen))


async def test_escape_hangs_up_too(tcall_home: Path) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        screen = app.screen
        assert isinstance(screen, CallScreen) and not screen.video
        await until(pilot, lambda: screen.state == "connected")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ContactsScreen))


def ring(app: TcallApp, call_id: str = "c1", video: bool = True) -> None:
    app.post_message(EngineEvent(IncomingCall(call_id, "alice", True, video)))


async def test_incoming_call_pops_over_any_screen_and_goes_when_the_caller_gives_up(
    friends: ContactBook,
) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        ring(app)
        await until(pilot, lambda: isinstance(app.screen, IncomingCallScreen))
        assert "alice" in str(app.screen.query_one("#caller").render())
        assert "verified" in str(app.screen.query_one("#badge").render())
        app.post_message(EngineEvent(Summary("missed", call_id="c1")))
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen))


async def test_silenced_callers_never_pop_up(friends: ContactBook) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(EngineEvent(Silenced("unknown 12", "x")))
        await pilot.pause(0.2)
        assert isinstance(app.screen, ContactsScreen)


async def test_a_relays_or_peers_words_are_shown_as_text(
    friends: ContactBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Escape sequences and markup in a refusal's text reach no terminal (issue #12, item 15)."""
    shown: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(App, "notify", lambda _app, message, **how: shown.append((message, how)))
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(EngineEvent(Refused("protocol", "\x1b]0;pwned\x07 [/PATH]")))
        await until(pilot, lambda: bool(shown))
    message, how = shown[-1]
    assert message == "\\x1b]0;pwned\\x07 [/PATH]" and how["markup"] is False


async def test_incoming_keys_answer_video_audio_decline_block() -> None:
    for keys, video, expected in (
        (("enter",), True, "video"),
        (("y",), True, "video"),
        (("a",), True, "audio"),
        (("enter",), False, "audio"),
        (("d",), True, "decline"),
        (("escape",), True, "decline"),
        (("b",), True, "block"),
    ):
        results: list[str | None] = []
        app = TcallApp()
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(IncomingCallScreen("alice", False, video), results.append)
            await pilot.pause()
            assert "unverified" in str(app.screen.query_one("#badge").render())
            await pilot.press(*keys)
            await pilot.pause()
        assert results == [expected], keys


async def test_block_from_the_incoming_dialog_blocks_the_caller(friends: ContactBook) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        ring(app)
        await until(pilot, lambda: isinstance(app.screen, IncomingCallScreen))
        await pilot.press("b")
        await until(pilot, lambda: ContactBook.load().get("alice").blocked)


def test_render_modes_follow_the_terminal() -> None:
    assert render_modes("auto", {"COLORTERM": "truecolor"})[0] == "halfblock"
    assert render_modes("auto", {"TERM": "xterm-256color"})[0] == "256"
    assert render_modes("auto", {"TERM": "vt100"})[0] == "ascii"
    assert render_modes("ascii", {"COLORTERM": "truecolor"}) == ["ascii", "halfblock", "256"]


async def test_a_call_that_loses_its_media_says_reconnecting_and_its_timer_runs_on(
    tcall_home: Path,
) -> None:
    """Issue #16: the `reconnecting` state is a banner over the video and the top bar, and the call
    timer neither stops nor restarts when media comes back."""
    now = [100.0]
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        screen = CallScreen("alice", True, True, ["halfblock"], clock=lambda: now[0])
        await app.push_screen(screen)
        screen.call_id = "c1"
        screen.engine_event(CallState("c1", CallPhase.CONNECTED))
        now[0] = 130.0
        screen.engine_event(CallState("c1", CallPhase.RECONNECTING))
        await pilot.pause()
        banner = screen.query_one("#banner", Static)
        assert banner.display and "Reconnecting…" in str(banner.render())
        assert "⏱ 00:30" in str(screen.query_one("#topbar").render())
        now[0] = 141.0
        screen.engine_event(CallState("c1", CallPhase.CONNECTED))
        await pilot.pause()
        assert not banner.display
        assert "⏱ 00:41" in str(screen.query_one("#topbar").render())

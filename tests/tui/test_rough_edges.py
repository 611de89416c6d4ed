"""Issue #13, "Rough": what a new user saw at 80x24 and 200x60, each checked on the drawn screen."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Select, Static

from tcall.engine.address import format_address, qr_lines
from tcall.engine.contacts import ContactBook
from tcall.engine.events import Summary
from tcall.engine.history import CallRecord, History
from tcall.engine.settings import Settings
from tcall.tui.app import TcallApp, _summary_text
from tcall.tui.screens.dialogs import VerifyDialog
from tcall.tui.screens.help import HelpDialog
from tcall.tui.screens.identity import IdentityScreen
from tcall.tui.screens.settings import SettingsScreen
from tests.support.decoders import app_screen


def shown(app: TcallApp) -> str:
    """The screen's text, each line stripped, dialog borders and all."""
    return "\n".join(line.strip(" █▀▄") for line in app_screen(app).display)


async def test_the_qr_code_fits_an_80x24_terminal_beside_the_address(tcall_home: Path) -> None:
    relay = "wss://relay.example.org:7711"
    Settings.load().set("relay_url", relay)
    app = TcallApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("i")
        screen = app.screen
        assert isinstance(screen, IdentityScreen)
        address = format_address(app.snapshot().public_key, relay)
        qr = screen.query_one("#qr", Static)
        assert str(qr.render()).splitlines() == qr_lines(address)
        # Every row of the code is on screen, above the relay line and the footer: nothing to scroll.
        status = screen.query_one(".status")
        assert qr.region.y >= 1 and qr.region.bottom <= status.region.y
        assert qr.region.height == len(qr_lines(address))
        rows = app_screen(app).display
        for top, line in enumerate(qr_lines(address), start=qr.region.y):
            assert rows[top][: len(line)] == line
        assert "".join(shown(app).split()).count(address) == 1  # the address, wrapped beside it


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
async def test_the_verify_dialog_shows_its_whole_instruction(
    friends: ContactBook, size: tuple[int, int]
) -> None:
    app = TcallApp()
    async with app.run_test(size=size) as pilot:
        await pilot.press("down", "down", "down", "v")
        assert isinstance(app.screen, VerifyDialog)
        await pilot.pause()
        text = " ".join(shown(app).split())
        assert (
            "Compare it with carol in person or on a call you trust. y if every digit matches."
            in text
        )


async def test_question_mark_lists_every_key_of_the_screen(friends: ContactBook) -> None:
    app = TcallApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        dialog = app.screen
        assert isinstance(dialog, HelpDialog)
        rows = {(group, keys, what) for group, keys, what in dialog.rows}
        # The list's own enter does not hide the screen's; a key the footer leaves out is here.
        assert ("This screen", "⏎", "Call") in rows
        assert ("This screen", "del", "Remove") in rows
        assert ("Everywhere", "? f1", "Keys") in rows
        text = shown(app)
        assert "Type any other letter to filter" in text and "Verify" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpDialog)


async def test_f1_helps_in_a_text_field_where_question_mark_types_itself(tcall_home: Path) -> None:
    app = TcallApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        assert isinstance(app.screen, SettingsScreen)
        field = app.screen.query_one("#set-turn_servers", Input)
        field.focus()
        await pilot.press("question_mark")
        assert field.value.endswith("?") and isinstance(app.screen, SettingsScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpDialog)
        assert "tab and shift+tab move between settings" in " ".join(shown(app).split())


async def test_the_focused_setting_stands_out(tcall_home: Path) -> None:
    app = TcallApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        first = screen.query_one("#set-video_calling", Select)
        second = screen.query_one("#set-who_can_call", Select)
        first.focus()
        await pilot.pause()
        row_of = lambda widget: widget.parent.parent  # noqa: E731 - Select in Horizontal in row
        assert row_of(first).styles.background != row_of(second).styles.background
        second.focus()
        await pilot.pause()
        assert (
            row_of(first).styles.background
            == row_of(screen.query_one("#set-presence")).styles.background
        )
        assert row_of(second).styles.background != row_of(first).styles.background


@pytest.mark.parametrize(
    ("summary", "toast"),
    [
        (Summary("no_answer", peer="bob"), "bob: no answer"),
        (
            Summary("declined", peer="bob", reason="bob is unavailable (declined)"),
            "bob is unavailable (declined)",
        ),
        (Summary("timeout", peer="bob"), "bob: could not connect in time"),
        (
            Summary("relay_unreachable", reason="relay ws://x is unreachable"),
            "call: relay ws://x is unreachable",
        ),
    ],
)
def test_a_call_ends_in_words_not_codes(summary: Summary, toast: str) -> None:
    assert _summary_text(summary) == toast


async def test_history_says_outcomes_in_words(tcall_home: Path) -> None:
    history = History.open(30)
    now = time.time()
    history.add(CallRecord("bob", "outgoing", now - 60, 0.0, "no_answer"))
    history.add(CallRecord("strangers", "incoming", now - 9, 0.0, "silenced", False, 4))
    app = TcallApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("h")
        table = app.screen.query_one("#calls", DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert [row[3] for row in rows] == ["silenced ×4", "no answer"]

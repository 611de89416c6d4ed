"""Contact requests in the TUI (issue #13 item 6): History lists them ("dave wants to reach you",
with the fingerprint), `a` accepts under a name you confirm, `i` ignores, `b` blocks; one arriving
while the app runs is a toast; what the sender chose is shown as text, never as markup."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import DataTable, Input

from tcall.engine.contacts import ContactBook
from tcall.engine.identity import Identity
from tcall.engine.requests import ContactRequest, RequestBook
from tcall.engine.wire import seal_message
from tcall.tui.app import TcallApp
from tcall.tui.screens.dialogs import ConfirmDialog
from tcall.tui.screens.history import AcceptRequestDialog, HistoryScreen
from tests.support.decoders import app_screen

SIZE = (80, 24)
RELAY = "ws://relay.example:7711"
DAVE, ERIN, MALLORY = (Identity.from_seed(bytes([i]) * 32) for i in (0xD, 0xE, 0xF))


async def until(pilot: object, done: object, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out waiting for the TUI"
        await pilot.pause(0.05)  # type: ignore[attr-defined]


def shown(app: TcallApp) -> str:
    return "\n".join(app_screen(app).display)


def requests_table(app: TcallApp) -> DataTable[object]:
    table: DataTable[object] = app.screen.query_one("#requests", DataTable)
    return table


@pytest.fixture
def three_requests(tcall_home: Path) -> list[ContactRequest]:
    book = RequestBook.load()
    made = [
        ContactRequest(DAVE.public_key, "dave", RELAY, 1_800_000_300.0),
        ContactRequest(ERIN.public_key, "", "", 1_800_000_200.0),
        ContactRequest(MALLORY.public_key, "mallory", RELAY, 1_800_000_100.0),
    ]
    for request in made:
        book.note(request)
    book.save()
    return made


async def test_history_lists_requests_and_a_accepts_i_ignores_b_blocks(
    three_requests: list[ContactRequest],
) -> None:
    dave, erin, mallory = three_requests
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        assert isinstance(app.screen, HistoryScreen)
        screen = app.screen
        await until(pilot, lambda: "wants to reach you" in shown(app))
        text = shown(app)
        assert f"dave wants to reach you  (relay {RELAY})" in text
        assert f"fingerprint {dave.fingerprint}" in text  # whole, at 80 columns
        assert f"unknown {erin.fingerprint[:19]} wants to reach you" in text
        assert requests_table(app).has_focus

        await pilot.press("a")  # dave: his own name, confirmed with enter
        assert isinstance(app.screen, AcceptRequestDialog)
        assert app.screen.query_one(Input).value == "dave"
        await pilot.press("enter")
        await until(pilot, lambda: len(app.snapshot().requests) == 2)
        contact = ContactBook.load().get("dave")
        assert (contact.public_key, contact.relay_url) == (DAVE.public_key, RELAY)

        await pilot.press("a")  # erin suggested no name: one must be typed
        assert app.screen.query_one(Input).value == ""
        await pilot.press("enter")
        assert isinstance(app.screen, AcceptRequestDialog)  # nothing leaves without a name
        await pilot.press("e", "r", "i", "n", "enter")
        await until(pilot, lambda: len(app.snapshot().requests) == 1)
        assert ContactBook.load().get("erin").public_key == ERIN.public_key

        await pilot.press("b")
        assert isinstance(app.screen, ConfirmDialog)
        assert mallory.fingerprint in shown(app)
        await pilot.press("y")
        await until(pilot, lambda: not app.snapshot().requests)
        assert app.screen is screen
        assert not requests_table(app).display
        assert ContactBook.load().get("mallory").blocked
        await pilot.press("a", "i", "b")  # no request left: the keys do nothing
        assert app.screen is screen
    assert RequestBook.load().pending() == []


async def test_i_ignores(three_requests: list[ContactRequest]) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h", "down", "i")
        await until(pilot, lambda: len(app.snapshot().requests) == 2)
        assert [r.name for r in RequestBook.load().pending()] == ["dave", "mallory"]
    assert ContactBook.load().contacts() == []


async def test_a_request_that_arrives_is_a_toast_and_is_in_history(
    tcall_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toasts: list[str] = []
    notify = App.notify

    def record(app: App[None], message: str, **how: object) -> None:
        toasts.append(message)
        notify(app, message, **how)  # type: ignore[arg-type]

    monkeypatch.setattr(App, "notify", record)
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        sealed = seal_message(
            DAVE,
            app.snapshot().public_key,
            "request",
            "",
            app.phone.clock(),
            relay=RELAY,
            name="dave",
        )
        assert app.engine is not None
        await app.engine.run(app.phone._dispatch(sealed))
        fingerprint = DAVE.fingerprint
        await until(pilot, lambda: f"dave wants to reach you (fingerprint {fingerprint})" in toasts)
        await pilot.press("h")
        await until(pilot, lambda: "dave wants to reach you" in shown(app))


async def test_what_the_sender_chose_is_shown_as_text(tcall_home: Path) -> None:
    """The engine lets no such name through (tests/core/test_contact_request.py); the screen does
    not count on it."""
    hostile = ContactRequest(DAVE.public_key, "[b]x[/b]\x1b]0;t\x07", RELAY, 1_800_000_000.0)
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:

        async def arrive() -> None:
            app.phone._requests.note(hostile)
            app.phone._republish()

        assert app.engine is not None
        await app.engine.run(arrive())
        await pilot.press("h")
        await until(pilot, lambda: "wants to reach you" in shown(app))
        assert "[b]x[/b]\\x1b]0;t\\x07 wants to reach you" in shown(app)
        await pilot.press("b")
        assert isinstance(app.screen, ConfirmDialog)
        assert "Block [b]x[/b]\\x1b]0;t\\x07" in "".join(shown(app).split("\n"))

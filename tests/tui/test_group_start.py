"""Starting a group call from the contacts screen (issue #17): g, space on contacts, enter."""

from __future__ import annotations

from textual.message import Message
from textual.widgets import Label

from tcall.engine.contacts import ContactBook
from tcall.engine.events import IncomingCall
from tcall.tui.app import EngineEvent, TcallApp
from tcall.tui.screens.contacts import DialGroup
from tcall.tui.screens.group_call import GroupPicker
from tcall.tui.screens.incoming import IncomingCallScreen

SIZE = (80, 24)


async def test_g_marks_contacts_and_enter_calls_them_together(friends: ContactBook) -> None:
    messages: list[Message] = []
    app = TcallApp()
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await pilot.press("g")
        await pilot.pause(0.1)
        assert isinstance(app.screen, GroupPicker)
        listed = app.screen.query_one("SelectionList")
        assert [str(o.prompt).split()[0] for o in listed._options] == [
            "alice",
            "carol",
        ]  # bob is blocked
        await pilot.press("enter")  # nobody marked: not yet
        assert isinstance(app.screen, GroupPicker)
        await pilot.press("space", "down", "space", "enter")
        await pilot.pause(0.2)
    sent = [m.names for m in messages if isinstance(m, DialGroup)]
    assert sent[:1] == [["alice", "carol"]]


async def test_an_invitation_says_who_else_is_in_the_call(friends: ContactBook) -> None:
    app = TcallApp()
    async with app.run_test(size=SIZE) as pilot:
        invitation = IncomingCall(
            "g1", "alice", True, True, members=("carol", "unknown 1234\x1b[2J")
        )
        app.post_message(EngineEvent(invitation))
        for _ in range(50):
            await pilot.pause(0.05)
            if isinstance(app.screen, IncomingCallScreen):
                break
        assert isinstance(app.screen, IncomingCallScreen)
        assert "Incoming group video call" in str(app.screen.query_one(".title", Label).render())
        others = str(app.screen.query_one("#members", Label).render())
        assert others == "with carol, unknown 1234\\x1b[2J"  # a stranger's words, escaped

"""Starting a group call from the contacts screen (issue #17): g, space on contacts, enter."""

from __future__ import annotations

from textual.message import Message

from tcall.engine.contacts import ContactBook
from tcall.tui.app import TcallApp
from tcall.tui.screens.contacts import DialGroup
from tcall.tui.screens.group_call import GroupPicker

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

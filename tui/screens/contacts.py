"""The contacts screen: the echo test on top, then contacts with presence, verified and blocked marks.

Typing a name filters the list; the letters that are commands (a, b, n, v, i, s, h, q) act on the
list, and `/` filters with any letter.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Key
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from tcall.engine.api import ContactView, Snapshot
from tcall.tui.screens.dialogs import AddContactDialog, ConfirmDialog, NewContact, VerifyDialog
from tcall.tui.screens.group_call import GroupPicker
from tcall.tui.screens.history import HistoryScreen
from tcall.tui.screens.identity import IdentityScreen
from tcall.tui.screens.settings import SettingsScreen
from tcall.tui.screens.status import RelayStatus

ECHO = "Echo test"


class Dial(Message):
    """Call `name` (or the echo test), with or without video."""

    def __init__(self, name: str, video: bool) -> None:
        super().__init__()
        self.name = name
        self.video = video


class DialGroup(Message):
    """Call these contacts together: a group call."""

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names


class AddContact(Message):
    def __init__(self, name: str, public_key: bytes, relay_url: str) -> None:
        super().__init__()
        self.name = name
        self.public_key = public_key
        self.relay_url = relay_url


class RemoveContact(Message):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class Verify(Message):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class Block(Message):
    def __init__(self, name: str, blocked: bool) -> None:
        super().__init__()
        self.name = name
        self.blocked = blocked


def describe(contact: ContactView) -> str:
    presence = "[green]●[/] " if contact.online else "[dim]○[/] "
    badge = "[green]✔ verified[/]" if contact.verified else "[yellow]unverified[/]"
    blocked = "  [red]⛔ blocked[/]" if contact.blocked else ""
    return f"{presence}{contact.name}  {badge}{blocked}"


class ContactsScreen(Screen[None]):
    """Who you can call. Enter calls with video."""

    BINDINGS = [
        Binding("enter", "call(True)", "Call", id="call_video"),
        Binding("a", "call(False)", "Audio", id="call_audio"),
        Binding("g", "group", "Group call", id="group"),
        Binding("n", "add", "Add", id="add"),
        Binding("v", "verify", "Verify", id="verify"),
        Binding("b", "block", "Block", id="block", show=False),
        Binding("delete", "remove", "Remove", id="remove", show=False),  # ? lists it
        Binding("slash", "filter", "Filter", id="filter", show=False),
        Binding("i", "identity", "Me", id="identity"),
        Binding("h", "history", "History", id="history"),
        Binding("s", "settings", "Settings", id="settings"),
        Binding("q", "app.quit", "Quit", id="quit"),
    ]
    COMMAND_KEYS = frozenset("angvbishq/?")
    HELP = "Type any other letter to filter the list; ↑ ↓ choose a contact."

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        super().__init__()
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        yield Static("[b]tcall[/b]  contacts", classes="bar")
        yield Input(placeholder="type to filter · enter calls · ↓ to the list", id="filter")
        yield OptionList(id="contacts")
        yield RelayStatus(classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.query_one(OptionList).focus()

    @property
    def selected(self) -> str | None:
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return None
        return options.get_option_at_index(options.highlighted).id

    def reload(self) -> None:
        """Redraw the list from the contact book and presence, keeping the highlighted name."""
        words = self.query_one("#filter", Input).value.strip().casefold()
        keep = self.selected
        options = self.query_one(OptionList)
        entries = [Option(f"[b]☎ {ECHO}[/b]  [dim]see and hear yourself[/]", id=ECHO)]
        for contact in self.snapshot().contacts:
            entries.append(Option(describe(contact), contact.name))
        shown = [o for o in entries if words in str(o.id).casefold()]
        options.clear_options()
        options.add_options(shown)
        ids = [o.id for o in shown]
        if shown:
            options.highlighted = ids.index(keep) if keep in ids else 0

    def on_input_changed(self, event: Input.Changed) -> None:
        self.reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_call(True)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_call(True)

    def on_key(self, event: Key) -> None:
        """Type-to-filter from the list, and back to the list from the filter."""
        filter_box = self.query_one("#filter", Input)
        if filter_box.has_focus:
            if event.key in ("down", "escape"):
                if event.key == "escape":
                    filter_box.value = ""
                self.query_one(OptionList).focus()
                event.stop()
        elif event.is_printable and event.character and event.character not in self.COMMAND_KEYS:
            filter_box.focus()
            filter_box.insert_text_at_cursor(event.character)
            event.stop()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_call(self, video: bool) -> None:
        name = self.selected
        if name is not None:
            self.post_message(Dial(name, video))

    def action_group(self) -> None:
        """Pick two to five contacts and call them together."""
        choices = [c for c in self.snapshot().contacts if not c.blocked]
        if len(choices) < 2:
            self.notify("A group call needs at least two contacts who are not blocked")
            return

        def chosen(names: list[str] | None) -> None:
            if names:
                self.post_message(DialGroup(names))

        self.app.push_screen(GroupPicker(choices), chosen)

    def _contact(self) -> ContactView | None:
        name = self.selected
        if name is None or name == ECHO:
            self.notify("Choose a contact first (the echo test has no key)")
            return None
        return self.snapshot().contact(name)

    def action_add(self) -> None:
        def added(new: NewContact | None) -> None:
            if new is not None:
                self.post_message(
                    AddContact(new.name, new.address.public_key, new.address.relay_url)
                )

        self.app.push_screen(AddContactDialog(), added)

    def action_verify(self) -> None:
        contact = self._contact()
        if contact is None:
            return

        def confirmed(match: bool | None) -> None:
            if match:
                self.post_message(Verify(contact.name))

        ours = self.snapshot().public_key
        self.app.push_screen(VerifyDialog(contact.name, ours, contact.public_key), confirmed)

    def action_block(self) -> None:
        contact = self._contact()
        if contact is not None:
            self.post_message(Block(contact.name, not contact.blocked))

    def action_remove(self) -> None:
        contact = self._contact()
        if contact is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.post_message(RemoveContact(contact.name))

        question = f"Remove {contact.name} and forget their key?"
        self.app.push_screen(ConfirmDialog(question), confirmed)

    def action_identity(self) -> None:
        self.app.push_screen(IdentityScreen(self.snapshot()))

    def action_history(self) -> None:
        self.app.push_screen(HistoryScreen(self.snapshot))

    def action_settings(self) -> None:
        self.app.push_screen(SettingsScreen(self.snapshot))

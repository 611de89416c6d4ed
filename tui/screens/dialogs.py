"""Small dialogs over the contacts and history screens: add a contact, verify one, confirm."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static

from tcall.engine.api import (
    Address,
    check_name,
    grouped,
    parse_address,
    printable,
    safety_number,
)
from tcall.engine.errors import UsageError


@dataclass(frozen=True)
class NewContact:
    name: str
    address: Address


class AddContactDialog(ModalScreen[NewContact | None]):
    """Name and pasted address; nothing leaves the dialog until both are valid."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Add a contact", classes="title")
            yield Static("Their address (they see it with `tcall id`, or under i in the app):")
            yield Input(placeholder="tcall:…", id="address")
            yield Label("Name:")
            yield Input(placeholder="alice", id="name")
            yield Label("", id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Add", variant="primary", id="add")
                yield Button("Cancel", id="cancel")
        yield Footer()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "address":
            self.query_one("#name", Input).focus()
        else:
            self._add()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self._add()
        else:
            self.dismiss(None)

    def _add(self) -> None:
        try:
            address = parse_address(self.query_one("#address", Input).value)
            name = check_name(self.query_one("#name", Input).value.strip())
        except UsageError as exc:
            self.query_one("#error", Label).update(Content(printable(exc)))
            return
        self.dismiss(NewContact(name, address))

    def action_cancel(self) -> None:
        self.dismiss(None)


def halves(ours: bytes, theirs: bytes) -> tuple[str, str]:
    """Each side's 30 digits of the safety number (it is their two halves, sorted)."""
    return safety_number(ours, ours)[:30], safety_number(theirs, theirs)[:30]


class VerifyDialog(ModalScreen[bool]):
    """The two halves of the safety number side by side; `y` marks the contact verified."""

    BINDINGS = [
        Binding("y", "confirm", "They match", id="confirm"),
        Binding("n,escape", "cancel", "Not now", id="cancel"),
    ]

    def __init__(self, name: str, ours: bytes, theirs: bytes) -> None:
        super().__init__()
        self.contact = name
        self.ours, self.theirs = halves(ours, theirs)
        self.number = safety_number(ours, theirs)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Verify {self.contact}", classes="title")
            with Grid(id="halves"):
                yield Static("[b]You[/b]\n" + _block(self.ours))
                yield Static(f"[b]{self.contact}[/b]\n" + _block(self.theirs))
            yield Static(
                f"Safety number (the same on both screens):\n{grouped(self.number)}",
                id="number",
            )
            # Static, not Label: a Label does not wrap, and this sentence is wider than the dialog.
            yield Static(
                f"Compare it with {self.contact} in person or on a call you trust. "
                "y if every digit matches.",
                id="instruction",
            )
        yield Footer()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


def _block(digits: str) -> str:
    groups = [digits[i : i + 5] for i in range(0, len(digits), 5)]
    return "\n".join(" ".join(groups[i : i + 3]) for i in range(0, len(groups), 3))


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; `y` or enter says yes."""

    BINDINGS = [
        Binding("y,enter", "yes", "Yes", id="yes"),
        Binding("n,escape", "no", "No", id="no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="title")
            yield Label("y: yes    n: no")
        yield Footer()

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)

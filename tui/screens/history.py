"""The history screen: contact requests waiting for an answer, then the local call log, newest
first, with a clear action.

A contact request ("dave wants to reach you") comes from someone who is not a contact: what it
says (the name they suggest, their relay) is theirs to choose, so it is shown as plain text, never
as markup, with the fingerprint beside it. `a` accepts (they become a contact under the name you
confirm), `i` ignores, `b` blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Label, Static

from tcall.engine.api import (
    CallRecord,
    ContactRequest,
    Snapshot,
    check_name,
    outcome_words,
    printable,
)
from tcall.engine.errors import UsageError
from tcall.tui.screens.dialogs import ConfirmDialog
from tcall.tui.screens.status import RelayStatus

COLUMNS = ("When", "Contact", "", "Outcome", "Length", "Kind")
REQUEST_COLUMNS = ("When", "Contact request")
RequestAction = Literal["accept", "ignore", "block"]


class ClearHistory(Message):
    """Forget every call in the log."""


class AnswerRequest(Message):
    """Accept (as contact `name`), ignore or block the sender of a pending contact request."""

    def __init__(self, fingerprint: str, action: RequestAction, name: str = "") -> None:
        super().__init__()
        self.fingerprint = fingerprint
        self.action = action
        self.name = name


def wants_to_reach_you(request: ContactRequest) -> str:
    return f"{printable(request.label)} wants to reach you"


def request_row(request: ContactRequest) -> tuple[Text, Text]:
    """A request's cells, two lines high (80 columns hold the fingerprint that way), as plain
    Text: a suggested name or relay never reads as markup."""
    when = datetime.fromtimestamp(request.received_at).strftime("%Y-%m-%d %H:%M")
    via = f"  (relay {printable(request.relay_url)})" if request.relay_url else ""
    what = f"{wants_to_reach_you(request)}{via}\nfingerprint {request.fingerprint}"
    return Text(when), Text(what)


class AcceptRequestDialog(ModalScreen[str | None]):
    """The name a contact request's sender gets as a contact: theirs to start with, yours to
    change; nothing leaves the dialog until it is a valid contact name."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, request: ContactRequest) -> None:
        super().__init__()
        self.request = request

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Content(wants_to_reach_you(self.request)), classes="title")
            yield Label(Content(f"Fingerprint {self.request.fingerprint}"))
            yield Label("Add them as (enter adds, escape cancels):")
            yield Input(self.request.name, placeholder="name", id="name")
            yield Label("", id="error", classes="error")
        yield Footer()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            name = check_name(event.value.strip())
        except UsageError as exc:
            self.query_one("#error", Label).update(Content(printable(exc)))
            return
        self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)


def row(record: CallRecord) -> tuple[str, ...]:
    when = datetime.fromtimestamp(record.started_at).strftime("%Y-%m-%d %H:%M")
    minutes, seconds = divmod(int(record.duration_s), 60)
    arrow = "→" if record.direction == "outgoing" else "←"
    length = f"{minutes}:{seconds:02d}" if record.outcome == "answered" else ""
    return (
        when,
        record.contact,
        arrow,
        outcome_words(record.outcome) + ("" if record.count == 1 else f" ×{record.count}"),
        length,
        "video" if record.video else "audio",
    )


class HistoryScreen(Screen[None]):
    BINDINGS = [
        Binding("a", "request('accept')", "Accept request", id="accept"),
        Binding("i", "request('ignore')", "Ignore request", id="ignore"),
        Binding("b", "request('block')", "Block", id="block"),
        Binding("c", "clear", "Clear", id="clear"),
        Binding("escape,q", "app.pop_screen", "Back", id="back"),
    ]

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        super().__init__()
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        yield Static("[b]tcall[/b]  history  [dim](kept only on this machine)[/]", classes="bar")
        yield Static(
            "Contact requests: [b]a[/b] accept, [b]i[/b] ignore, [b]b[/b] block",
            id="requests-title",
            classes="section",
        )
        yield DataTable(id="requests", cursor_type="row")
        yield DataTable(id="calls", cursor_type="row", zebra_stripes=True)
        yield Static("", id="empty")
        yield RelayStatus(classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#requests", DataTable).add_columns(*REQUEST_COLUMNS)
        self.query_one("#calls", DataTable).add_columns(*COLUMNS)
        self.reload()
        if self.pending:
            self.query_one("#requests", DataTable).focus()

    @property
    def pending(self) -> tuple[ContactRequest, ...]:
        return self.snapshot().requests

    def reload(self) -> None:
        self._reload_requests()
        table = self.query_one("#calls", DataTable)
        table.clear()
        records = self.snapshot().history
        for record in records:
            table.add_row(*row(record))
        self.query_one("#empty", Static).update("" if records else "No calls yet.")

    def _reload_requests(self) -> None:
        table = self.query_one("#requests", DataTable)
        cursor = table.cursor_row
        table.clear()
        for request in self.pending:
            table.add_row(*request_row(request), key=request.fingerprint, height=2)
        table.move_cursor(row=min(cursor, max(0, table.row_count - 1)))
        for widget in (table, self.query_one("#requests-title")):
            widget.display = bool(self.pending)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The request keys only while there are requests."""
        return bool(self.pending) if action == "request" else True

    def _selected(self) -> ContactRequest | None:
        """The request under the cursor (rows are keyed by fingerprint)."""
        table = self.query_one("#requests", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((r for r in self.pending if r.fingerprint == key), None)

    def action_request(self, action: RequestAction) -> None:
        request = self._selected()
        if request is None:
            return
        fingerprint = request.fingerprint
        if action == "ignore":
            self.post_message(AnswerRequest(fingerprint, "ignore"))
        elif action == "accept":

            def named(name: str | None) -> None:
                if name:
                    self.post_message(AnswerRequest(fingerprint, "accept", name))

            self.app.push_screen(AcceptRequestDialog(request), named)
        else:

            def confirmed(yes: bool | None) -> None:
                if yes:
                    self.post_message(AnswerRequest(fingerprint, "block"))

            question = (
                f"Block {printable(request.label)} (fingerprint {fingerprint})? "
                "Their calls and requests will be dropped."
            )
            self.app.push_screen(ConfirmDialog(escape(question)), confirmed)

    def action_clear(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.post_message(ClearHistory())

        self.app.push_screen(ConfirmDialog("Clear the whole call history?"), confirmed)

"""The history screen: the local call log, newest first, with a clear action."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tcall.engine.api import CallRecord, Snapshot
from tcall.tui.screens.dialogs import ConfirmDialog
from tcall.tui.screens.status import RelayStatus

COLUMNS = ("When", "Contact", "", "Outcome", "Length", "Kind")


class ClearHistory(Message):
    """Forget every call in the log."""


def row(record: CallRecord) -> tuple[str, ...]:
    when = datetime.fromtimestamp(record.started_at).strftime("%Y-%m-%d %H:%M")
    minutes, seconds = divmod(int(record.duration_s), 60)
    arrow = "→" if record.direction == "outgoing" else "←"
    length = f"{minutes}:{seconds:02d}" if record.outcome == "answered" else ""
    return (
        when,
        record.contact,
        arrow,
        record.outcome if record.count == 1 else f"{record.outcome} ×{record.count}",
        length,
        "video" if record.video else "audio",
    )


class HistoryScreen(Screen[None]):
    BINDINGS = [
        Binding("c", "clear", "Clear", id="clear"),
        Binding("escape,q", "app.pop_screen", "Back", id="back"),
    ]

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        super().__init__()
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        yield Static("[b]tcall[/b]  history  [dim](kept only on this machine)[/]", classes="bar")
        yield DataTable(id="calls", cursor_type="row", zebra_stripes=True)
        yield Static("", id="empty")
        yield RelayStatus(classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.reload()

    def reload(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        records = self.snapshot().history
        for record in records:
            table.add_row(*row(record))
        self.query_one("#empty", Static).update("" if records else "No calls yet.")

    def action_clear(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.post_message(ClearHistory())

        self.app.push_screen(ConfirmDialog("Clear the whole call history?"), confirmed)

"""The incoming-call dialog: over whatever screen is up, with the caller and whether they are verified."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label

CHOICES = ("video", "audio", "decline", "block")


class IncomingCallScreen(ModalScreen[str | None]):
    """Dismissed with "video", "audio", "decline" or "block" (None: the caller gave up)."""

    BINDINGS = [
        Binding("enter,y", "answer('video')", "Accept", id="accept_video"),
        Binding("a", "answer('audio')", "Audio only", id="accept_audio"),
        Binding("d,escape", "answer('decline')", "Decline", id="decline"),
        Binding("b", "answer('block')", "Block", id="block"),
    ]

    def __init__(self, caller: str, verified: bool, video: bool) -> None:
        super().__init__()
        self.caller = caller
        self.verified = verified
        self.video = video

    def compose(self) -> ComposeResult:
        kind = "video call" if self.video else "audio call"
        badge = (
            "[green]✔ verified[/]"
            if self.verified
            else "[yellow]unverified: compare safety numbers (v) after the call[/]"
        )
        with Vertical(classes="dialog", id="incoming"):
            yield Label(f"Incoming {kind}", classes="title")
            yield Label(f"[b]{self.caller}[/b]", id="caller")
            yield Label(badge, id="badge")
            with Horizontal(classes="buttons"):
                if self.video:
                    yield Button("Accept (enter)", variant="success", id="video")
                yield Button("Audio only (a)", variant="primary", id="audio")
                yield Button("Decline (d)", variant="error", id="decline")
                yield Button("Block (b)", id="block")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id in CHOICES:
            self.dismiss(event.button.id)

    def action_answer(self, choice: str) -> None:
        self.dismiss("audio" if choice == "video" and not self.video else choice)

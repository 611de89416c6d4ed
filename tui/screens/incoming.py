"""The incoming-call dialog: over whatever screen is up, with the caller and whether they are verified."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label

from tcall.engine.api import printable
from tcall.tui.compat.textual import terminal_write

CHOICES = ("video", "audio", "decline", "block")
RING_EVERY_S = 2.0


class IncomingCallScreen(ModalScreen[str | None]):
    """Dismissed with "video", "audio", "decline" or "block" (None: the caller gave up)."""

    BINDINGS = [
        Binding("enter,y", "answer('video')", "Accept", id="accept_video"),
        Binding("a", "answer('audio')", "Audio only", id="accept_audio"),
        Binding("d,escape", "answer('decline')", "Decline", id="decline"),
        Binding("b", "answer('block')", "Block", id="block"),
    ]

    def __init__(
        self,
        caller: str,
        verified: bool,
        video: bool,
        *,
        bell: bool = True,
        notify: bool = True,
        members: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.caller = caller
        self.members = members  # a group call: the others the caller invited too
        self.verified = verified
        self.video = video
        self.bell = bell  # the setting ring_bell: BEL every RING_EVERY_S while it rings
        self.desktop_notification = notify  # ring_notify: one OSC 9 and OSC 777 notification

    def compose(self) -> ComposeResult:
        kind = "video call" if self.video else "audio call"
        badge = (
            "[green]✔ verified[/]"
            if self.verified
            else "[yellow]unverified: compare safety numbers (v) after the call[/]"
        )
        with Vertical(classes="dialog", id="incoming"):
            yield Label(f"Incoming {'group ' if self.members else ''}{kind}", classes="title")
            yield Label(f"[b]{self.caller}[/b]", id="caller")
            if self.members:
                others = ", ".join(printable(name) for name in self.members)
                yield Label(f"with {others}", id="members", markup=False)
            yield Label(badge, id="badge")
            with Horizontal(classes="buttons"):
                if self.video:
                    yield Button("Accept (enter)", variant="success", id="video")
                yield Button("Audio only (a)", variant="primary", id="audio")
                yield Button("Decline (d)", variant="error", id="decline")
                yield Button("Block (b)", id="block")
        yield Footer()

    def on_mount(self) -> None:
        # An incoming call in another tmux window or terminal tab must not go unnoticed.
        if self.bell:
            self.app.bell()
            self.set_interval(RING_EVERY_S, self.app.bell)
        if self.desktop_notification:
            kind = "video call" if self.video else "call"
            text = printable(f"tcall: {kind} from {self.caller}").replace(";", ",")
            # OSC 9 (iTerm2, kitty, WezTerm, Windows Terminal) and OSC 777 (VTE, urxvt, foot).
            terminal_write(self.app, f"\x1b]9;{text}\x07\x1b]777;notify;tcall;{text}\x07")
        self.query_one(Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id in CHOICES:
            self.dismiss(event.button.id)

    def action_answer(self, choice: str) -> None:
        self.dismiss("audio" if choice == "video" and not self.video else choice)

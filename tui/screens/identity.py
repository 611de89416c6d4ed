"""My identity: the address to give friends, as text and as a QR code, and the key's fingerprint."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from tcall.engine.api import Snapshot, qr_lines
from tcall.tui.screens.status import RelayStatus


class IdentityScreen(Screen[None]):
    BINDINGS = [
        Binding("c", "copy", "Copy address", id="copy"),
        Binding("escape,q", "app.pop_screen", "Back", id="back"),
    ]

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.address = snapshot.address
        self.fingerprint = snapshot.fingerprint
        self.relay = snapshot.relay_url

    def compose(self) -> ComposeResult:
        yield Static("[b]tcall[/b]  my identity", classes="bar")
        # The QR code beside the text, not under it: at 80x24 a code under the text was cut off.
        with Horizontal(id="identity"):
            yield Static("\n".join(qr_lines(self.address)), id="qr", markup=False)
            with VerticalScroll(id="about"):
                yield Static("Your address (a friend adds it with n on their contacts screen):")
                yield Static(self.address, id="address", markup=False)
                yield Static(f"Fingerprint: {self.fingerprint}", id="fingerprint")
                if not self.relay:
                    yield Static("[yellow]No relay set: friends cannot reach you yet (s).[/]")
        yield RelayStatus(classes="status")
        yield Footer()

    def action_copy(self) -> None:
        # OSC 52: the terminal (even over SSH) puts the text on the local clipboard.
        self.app.copy_to_clipboard(self.address)
        self.notify("Address copied to the clipboard")

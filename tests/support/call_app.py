"""A call-like screen for VideoView tests: the video, a stats box and a self-view over it, and a
modal dialog to push over all of them."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Center
from textual.screen import ModalScreen
from textual.widgets import Label

from tcall.tui.widgets import VideoView


class Dialog(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        yield Center(Label("HANG UP?", id="dialog"))


class CallApp(App[None]):
    CSS = """
    Screen { layers: base overlay; }
    #stats { layer: overlay; offset: 10 3; width: 12; height: 1; background: red; }
    #pip { layer: overlay; offset: 40 4; width: 16; height: 6; }
    """

    def __init__(self, mode: str = "halfblock") -> None:
        super().__init__()
        self.mode = mode
        self.displays = 0

    def compose(self) -> ComposeResult:
        yield VideoView(self.mode, id="main")
        yield Label("STATS 30fps", id="stats")
        yield VideoView(self.mode, id="pip")

    def post_display_hook(self) -> None:
        self.displays += 1

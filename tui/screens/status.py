"""The status line every screen shows: the relay link's state, kept in step with the App."""

from __future__ import annotations

from textual.widgets import Static

LABELS = {
    "online": "relay: online",
    "connecting": "relay: connecting…",
    "offline": "relay: offline (retrying)",
    "not set": "relay: not set (s → relay_url)",
}


class RelayStatus(Static):
    """Shows `App.relay_state`; the App owns the value, this only draws it."""

    def on_mount(self) -> None:
        self.watch(self.app, "relay_state", self._show)

    def _show(self, state: str) -> None:
        self.update(LABELS.get(state, f"relay: {state}"))
        self.set_class(state == "online", "online")

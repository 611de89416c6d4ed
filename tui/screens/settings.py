"""The settings screen: every privacy setting, plus devices, render mode and the microphone's
audio processing, saved as you change them.

Choices are Selects, saved the moment they change; free text (relay URL, servers, DND window,
retention) is saved on enter or when focus leaves the field. A bad value stays on screen with the
reason, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Select, Static

from tcall.engine.api import SCHEMA, Snapshot, list_all, printable
from tcall.tui.screens.status import RelayStatus

PRIVACY = (
    "video_calling",
    "who_can_call",
    "silence_unknown",
    "do_not_disturb",
    "auto_answer",
    "auto_answer_from",
    "answer_with_camera",
    "ask_before_video",
    "relay_only",
    "presence",
    "history_retention_days",
)
CONNECTION = ("relay_url", "stun_servers", "turn_servers")
DEVICES = ("camera", "microphone", "speaker", "render", "ring_bell", "ring_notify")
AUDIO = ("echo_cancellation", "noise_suppression", "auto_gain", "audio_bitrate", "speaker_latency")
DEVICE_DEFAULTS = {
    "camera": ["camera", "pattern"],
    "microphone": ["mic", "sine"],
    "speaker": ["default"],
}
DEVICE_KIND = {"camera": "camera", "microphone": "microphone", "speaker": "speaker"}


class ChangeSetting(Message):
    """Set `key` from `value` (its command-line text form) and save."""

    def __init__(self, screen: SettingsScreen, key: str, value: str) -> None:
        super().__init__()
        self.screen = screen
        self.key = key
        self.value = value


def as_text(value: Any) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


def choices(key: str) -> list[str] | None:
    """The values of a pick-one setting, or None for free text."""
    if key in DEVICE_DEFAULTS:
        found = [d.spec for d in list_all() if d.kind == DEVICE_KIND[key]]
        return DEVICE_DEFAULTS[key] + [spec for spec in found if spec not in DEVICE_DEFAULTS[key]]
    parts = [p.strip() for p in SCHEMA[key].allowed.split("|")]
    if len(parts) > 1 and all(p.isalnum() for p in parts):
        return parts
    return None


def label(key: str) -> str:
    return key.replace("_", " ").capitalize()


class SettingsScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="back")]
    HELP = (
        "tab and shift+tab move between settings. A choice is saved when you pick it; "
        "text is saved on enter or when you leave the field."
    )

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        super().__init__()
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        yield Static("[b]tcall[/b]  settings  [dim](saved as you change them)[/]", classes="bar")
        with VerticalScroll(id="settings"):
            for title, keys in (
                ("Privacy", PRIVACY),
                ("Connection", CONNECTION),
                ("Devices and ringing", DEVICES),
                ("Audio (from the next call)", AUDIO),
            ):
                yield Static(f"[b]{title}[/b]", classes="section")
                for key in keys:
                    yield self._row(key)
        yield RelayStatus(classes="status")
        yield Footer()

    def _row(self, key: str) -> Vertical:
        current = as_text(self.snapshot().setting(key))
        options = choices(key)
        widget: Select[str] | Input
        if options is None:
            widget = Input(current, placeholder=SCHEMA[key].allowed, id=f"set-{key}", compact=True)
        else:
            options = options if current in options else [current, *options]
            widget = Select(
                [(o, o) for o in options],
                value=current,
                allow_blank=False,
                id=f"set-{key}",
                compact=True,
            )
        return Vertical(
            Horizontal(Label(label(key), classes="key"), widget),
            Label("", id=f"note-{key}", classes="note"),
            classes="setting",
        )

    def _change(self, key: str, value: str) -> None:
        if value != as_text(self.snapshot().setting(key)):
            self.post_message(ChangeSetting(self, key, value))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id and isinstance(event.value, str):
            self._change(event.select.id.removeprefix("set-"), event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id:
            self._change(event.input.id.removeprefix("set-"), event.value)

    def on_descendant_blur(self, event: Any) -> None:
        widget = event.widget
        if isinstance(widget, Input) and widget.id:
            self._change(widget.id.removeprefix("set-"), widget.value)

    def saved(self, key: str) -> None:
        note = self.query_one(f"#note-{key}", Label)
        note.update("saved")
        note.set_classes("note saved")

    def show_error(self, key: str, message: str) -> None:
        note = self.query_one(f"#note-{key}", Label)
        note.update(Content(printable(message)))  # the text is the user's value: never markup
        note.set_classes("note error")

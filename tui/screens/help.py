"""`?` (or F1) on any screen: every key that works there and what it does, hidden ones included."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Label, Static

# Where a key is bound, in the order the dialog lists them.
GROUPS = ("This screen", "Everywhere")


def keys_of(screen: Screen[object]) -> list[tuple[str, str, str]]:
    """(group, keys, what it does) for every key tcall binds on `screen` and on the app, keys that
    do the same merged. Textual's own keys (focus, copy, scrolling) are left out: they work as in
    any terminal app, and a list's `enter` would hide the screen's."""
    merged: dict[tuple[str, str, str], list[str]] = {}
    for group, node in zip(GROUPS, (screen, screen.app), strict=True):
        for binding in Binding.make_bindings(type(node).BINDINGS):
            if not binding.description or node.check_action(binding.action, ()) is False:
                continue
            keys = merged.setdefault((group, binding.action, binding.description), [])
            shown = screen.app.get_key_display(binding)
            if shown not in keys:
                keys.append(shown)
    return [(group, " ".join(keys), what) for (group, _, what), keys in merged.items()]


class HelpDialog(ModalScreen[None]):
    """The keys of the screen it was opened over."""

    BINDINGS = [Binding("escape,question_mark,f1,q", "dismiss", "Close", id="close")]

    def __init__(self, over: Screen[object]) -> None:
        super().__init__()
        self.rows = keys_of(over)
        self.about = str(getattr(over, "HELP", ""))  # a screen's keys that are not bindings

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Keys", classes="title")
            if self.about:
                yield Static(self.about, id="about-keys", markup=False)
            with VerticalScroll(id="keys"):
                group = ""
                lines: list[Content] = []
                for row_group, keys, what in self.rows:
                    if row_group != group:
                        group = row_group
                        lines.append(Content.from_markup("[b]$group[/b]", group=group))
                    lines.append(Content(f"  {keys:<16} {what}"))
                yield Static(Content("\n").join(lines), id="key-list")
        yield Footer()

"""The group call screen: a grid of members' tiles, the group's state and a timer, the mic meter.

It keeps the 1:1 call screen's keys and messages (`CallScreen.BINDINGS`, `HangUp`, `Control`), and
adds `i`: a picker of contacts to invite, which posts `Invite` for the App to carry out. The App
hands it the engine's events through `engine_event`, as it does the 1:1 call screen; on
`GroupChanged` (and a member joining or leaving) the screen reads the group handle's newest view.
Frames and the microphone's level are pulled at the 1:1 screen's rates, never pushed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Label, OptionList, SelectionList, Static
from textual.widgets.option_list import Option

from tcall.engine.api import (
    MAX_MEMBERS,
    ContactView,
    GroupHandle,
    GroupView,
    MemberState,
    Snapshot,
    printable,
)
from tcall.engine.events import Event, GroupChanged, MemberJoined, MemberLeft, Stats, Summary
from tcall.tui.screens.call import FPS, LEVEL_HZ, STATE_TEXT, CallScreen, Control, HangUp
from tcall.tui.screens.status import RelayStatus
from tcall.tui.widgets import GroupGrid, MicMeter

# How the call stands for us, from the other members' states: the best of them wins.
PHASES = (
    (MemberState.CONNECTED, "connected"),
    (MemberState.RECONNECTING, "reconnecting"),
    (MemberState.CONNECTING, "connecting"),
    (MemberState.INVITED, "ringing"),
)
WAITING = "Nobody else is in the call: press i to invite"


class Invite(Message):
    """Ask the contact `name` into the group call `call_id`."""

    def __init__(self, call_id: str, name: str) -> None:
        super().__init__()
        self.call_id = call_id
        self.name = name


def phase(view: GroupView) -> str:
    """The group's state as a call state word (STATE_TEXT's), or "alone"."""
    states = {m.state for m in view.present() if not m.you}
    return next((word for state, word in PHASES if state in states), "alone")


def member_figures(stats: dict[str, Any]) -> str:
    """One member's figures on one line (a Stats event's JSON form)."""

    def figure(key: str, unit: str) -> str:
        value = stats.get(key)
        return "–" if value is None else f"{value:g} {unit}"

    return (
        f"{stats.get('fps_received', 0):g} fps · "
        f"{stats.get('kbps_received', 0):g}/{stats.get('kbps_sent', 0):g} kbps · "
        f"RTT {figure('rtt_ms', 'ms')} · loss {stats.get('packets_lost', 0)}"
    )


def invitable(snapshot: Snapshot, view: GroupView) -> list[ContactView]:
    """Contacts who may be asked in: not blocked, and not in the call already."""
    inside = {m.key for m in view.present()}
    return [c for c in snapshot.contacts if not c.blocked and c.public_key not in inside]


def contact_label(contact: ContactView) -> Content:
    """A contact in a picker: the name (as text, never markup), the badge, presence."""
    badge = ("✔ verified", "green") if contact.verified else ("unverified", "yellow")
    presence = ("● online", "green") if contact.online else ("○ offline", "dim")
    return Content.assemble(printable(contact.name), "  ", badge, "  ", presence)


class InvitePicker(ModalScreen[str | None]):
    """A list of contacts; enter picks one, escape picks none."""

    DEFAULT_CSS = """
    InvitePicker #invitees {
        height: auto;
        max-height: 12;
        border: none;
    }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, contacts: list[ContactView]) -> None:
        super().__init__()
        self.contacts = contacts

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Invite a contact into the call", classes="title")
            yield OptionList(*(self._option(c) for c in self.contacts), id="invitees")
        yield Footer()

    @staticmethod
    def _option(contact: ContactView) -> Option:
        return Option(contact_label(contact), id=contact.name)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class GroupPicker(ModalScreen[list[str] | None]):
    """Contacts to call together: space marks one, enter calls those marked, escape cancels."""

    DEFAULT_CSS = """
    GroupPicker #members {
        height: auto;
        max-height: 14;
        border: none;
    }
    """
    BINDINGS = [
        Binding("enter", "call", "Call them", id="call", priority=True),
        Binding("escape", "cancel", "Cancel", id="cancel"),
    ]

    def __init__(self, contacts: list[ContactView]) -> None:
        super().__init__()
        self.contacts = contacts

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(
                f"Call together: space marks up to {MAX_MEMBERS - 1} contacts, enter calls",
                classes="title",
            )
            yield SelectionList[str](
                *((contact_label(c), c.name) for c in self.contacts), id="members"
            )
        yield Footer()

    def action_call(self) -> None:
        names = list(self.query_one(SelectionList).selected)
        if len(names) < 2:
            self.notify("Mark at least two contacts (space), or call one from the list")
            return
        if len(names) > MAX_MEMBERS - 1:
            self.notify(f"A group call has at most {MAX_MEMBERS} people, you included")
            return
        self.dismiss(names)

    def action_cancel(self) -> None:
        self.dismiss(None)


class GroupCallScreen(Screen[None]):
    """A group call: up to MAX_MEMBERS tiles, the 1:1 call's keys, and `i` to invite."""

    DEFAULT_CSS = """
    GroupCallScreen {
        layers: base overlay;
    }
    GroupCallScreen #group-stats {
        layer: overlay;
        dock: left;
        width: 70;
        max-width: 100%;
        height: auto;
        margin: 1 0 0 1;
        padding: 0 1;
        background: $background 80%;
        border: round $accent;
    }
    """
    BINDINGS = [*CallScreen.BINDINGS, Binding("i", "invite", "Invite", id="invite")]

    muted: reactive[bool] = reactive(False, repaint=False)
    """Whether our microphone is muted."""
    camera_on: reactive[bool] = reactive(True, repaint=False)
    """Whether our camera is sending (off sends black)."""

    def __init__(
        self,
        group: GroupHandle,
        snapshot: Callable[[], Snapshot],
        render_modes: list[str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.group = group
        self.call_id = group.call_id
        self.snapshot = snapshot
        self.modes = render_modes
        self.clock = clock
        self.ended = False
        self.connected_at: float | None = None
        self.figures: dict[str, dict[str, Any]] = {}  # a member's name -> their latest Stats
        own = next((m for m in group.view.members if m.you), None)
        self.set_reactive(GroupCallScreen.muted, own is not None and own.muted)
        self.set_reactive(GroupCallScreen.camera_on, group.camera_on)

    def compose(self) -> ComposeResult:
        yield Static("", id="topbar", classes="bar")
        yield GroupGrid(self.group.view, self.modes[0], id="grid")
        yield Static("", id="group-stats")
        yield MicMeter(id="mic")
        yield RelayStatus(classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#group-stats").display = False
        self.set_interval(1 / FPS, self.pull_frames)
        self.set_interval(1 / LEVEL_HZ, self.pull_level)
        self.set_interval(1.0, self._draw_bar)
        self._view_changed()

    @property
    def grid(self) -> GroupGrid:
        return self.query_one(GroupGrid)

    @property
    def view(self) -> GroupView:
        return self.group.view

    # --- engine events ---------------------------------------------------------------------

    def engine_event(self, event: Event) -> None:
        """One of the group call's events, as the App routes them by call id."""
        if isinstance(event, GroupChanged | MemberJoined | MemberLeft):
            self._view_changed()
        if isinstance(event, MemberJoined):
            self.notify(f"{printable(event.member)} joined", markup=False)
        elif isinstance(event, MemberLeft):
            self.figures.pop(event.member, None)
            self.notify(f"{printable(event.member)} left ({event.reason})", markup=False)
        elif isinstance(event, Stats):
            # A Stats event for one member's pair carries `member`; one for the call as a whole not.
            self.figures[getattr(event, "member", None) or ""] = event.to_json()
            self._draw_stats()
        elif isinstance(event, Summary):
            self.ended = True
            self._draw_bar()

    def _view_changed(self) -> None:
        if not self.is_mounted:
            return
        view = self.view
        self.grid.show_view(view)
        if self.connected_at is None and phase(view) == "connected":
            self.connected_at = self.clock()
        self._draw_bar()
        self._draw_stats()

    def watch_muted(self) -> None:
        self._draw_bar()

    def watch_camera_on(self) -> None:
        self._draw_bar()

    def _draw_bar(self) -> None:
        if not self.is_mounted:
            return
        present = self.view.present()
        parts = [f"[b]Group call[/b]  {len(present)} of {MAX_MEMBERS}"]
        if self.connected_at is not None:
            minutes, seconds = divmod(int(self.clock() - self.connected_at), 60)
            parts.append(f"⏱ {minutes:02d}:{seconds:02d}")
        state = "closed" if self.ended else phase(self.view)
        text = WAITING if state == "alone" else STATE_TEXT.get(state, state)
        if text:
            parts.append(text)
        if self.muted:
            parts.append("[red]muted[/]")
        if not self.camera_on:
            parts.append("[red]camera off[/] (press c)")
        self.query_one("#topbar", Static).update("   ".join(parts))

    def _draw_stats(self) -> None:
        """The stats box: the group code to read out, then each member's figures."""
        if not self.is_mounted:
            return
        view = self.view
        lines: list[str | Content] = [
            Content.assemble(("group code  ", "bold"), view.code),
            "the same on every member's screen: read it out to check",
        ]
        whole = self.figures.get("")
        if whole is not None:
            lines.append(f"{'all':<12} {member_figures(whole)}")
        for member in view.present():
            if member.you:
                continue
            figures = self.figures.get(member.name)
            shown = member_figures(figures) if figures is not None else "–"
            lines.append(Content.assemble(f"{printable(member.name):<12} ", shown))
        box = Content("\n").join(lines)
        self.query_one("#group-stats", Static).update(box)

    # --- video and level -------------------------------------------------------------------

    def pull_frames(self) -> None:
        self.grid.pull_frames()

    def pull_level(self) -> None:
        """Show the microphone's newest level, and warn when we speak while muted."""
        self.query_one("#mic", MicMeter).show(self.group.mic.reading, self.muted, self.clock())

    # --- keys ------------------------------------------------------------------------------

    def action_mute(self) -> None:
        self.muted = not self.muted
        self.post_message(Control(self.call_id, "microphone", not self.muted))

    def action_camera(self) -> None:
        self.camera_on = not self.camera_on
        self.post_message(Control(self.call_id, "camera", self.camera_on))

    def action_stats(self) -> None:
        stats = self.query_one("#group-stats")
        stats.display = not stats.display

    def action_self_view(self) -> None:
        grid = self.grid
        grid.self_view = not grid.self_view
        grid.show_view(self.view)

    async def action_renderer(self) -> None:
        self.modes = self.modes[1:] + self.modes[:1]
        await self.grid.set_mode(self.modes[0])
        self.notify(f"Renderer: {self.modes[0]}")

    def action_hang_up(self) -> None:
        if not self.ended:
            self.ended = True
            self.post_message(HangUp(self.call_id))

    def action_invite(self) -> None:
        view = self.view
        if not view.can_invite:
            self.notify("The one who started this call lets nobody else invite", severity="warning")
            return
        if len(view.present()) >= MAX_MEMBERS:
            self.notify(f"A group call holds at most {MAX_MEMBERS}", severity="warning")
            return
        contacts = invitable(self.snapshot(), view)
        if not contacts:
            self.notify("Every contact you can invite is in the call already")
            return

        def picked(name: str | None) -> None:
            if name is not None and not self.ended:
                self.post_message(Invite(self.call_id, name))

        self.app.push_screen(InvitePicker(contacts), picked)

"""The call screen: remote video filling the space, a self-view, the peer, the state and a timer.

Frames are pulled, never pushed: a 30 Hz timer takes the newest frame the engine's sink holds and
skips the tick when nothing new arrived, so a slow terminal drops frames instead of queueing them
and key presses never wait behind video. The microphone's level is pulled the same way, ten times
a second, for the meter and the "you are muted" warning.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static

from tcall.engine.api import MicLevel, VideoHandle
from tcall.engine.events import CallState, Event, Stats, Summary
from tcall.tui.screens.status import RelayStatus
from tcall.tui.widgets import MicMeter, VideoView

FPS = 30
LEVEL_HZ = 10
STATE_TEXT = {
    "dialing": "Calling…",
    "calling": "Calling…",
    "ringing": "Ringing…",
    "connecting": "Connecting…",
    "reconnecting": "Reconnecting…",
    "connected": "",
    "closed": "Call ended",
    "failed": "Call failed",
}


class HangUp(Message):
    """End the call (`call_id` is None while the engine is still placing it)."""

    def __init__(self, call_id: str | None) -> None:
        super().__init__()
        self.call_id = call_id


class Control(Message):
    """Mute the microphone or turn the camera off (`on` False), on the engine's side."""

    def __init__(self, call_id: str | None, what: str, on: bool) -> None:
        super().__init__()
        self.call_id = call_id
        self.what = what
        self.on = on


def stats_text(stats: dict[str, Any]) -> str:
    def figure(key: str, unit: str) -> str:
        value = stats.get(key)
        return "–" if value is None else f"{value:g} {unit}"

    return "\n".join(
        [
            f"fps      {stats.get('fps_received', 0):g} in / {stats.get('fps_sent', 0):g} out",
            f"size     {stats.get('resolution', '–')}",
            f"bitrate  {stats.get('kbps_received', 0):g} in / {stats.get('kbps_sent', 0):g} out kbps",
            f"RTT      {figure('rtt_ms', 'ms')}",
            f"loss     {stats.get('packets_lost', 0)} packets",
            f"latency  {figure('latency_ms', 'ms')}",
            f"route    {stats.get('route') or '–'}",
        ]
    )


class CallScreen(Screen[None]):
    BINDINGS = [
        Binding("m", "mute", "Mute", id="mute"),
        Binding("c", "camera", "Camera", id="camera"),
        Binding("s", "stats", "Stats", id="stats"),
        Binding("r", "renderer", "Renderer", id="renderer"),
        Binding("p", "self_view", "Self-view", id="self_view"),
        Binding("h,escape", "hang_up", "Hang up", id="hang_up"),
    ]

    state: reactive[str] = reactive("calling", repaint=False)
    """The call's state as the engine reports it (calling, ringing, connecting, connected, …)."""
    muted: reactive[bool] = reactive(False, repaint=False)
    """Whether the microphone is muted."""
    camera_on: reactive[bool] = reactive(True, repaint=False)
    """Whether the camera is sending (off sends black)."""

    def __init__(
        self,
        peer: str,
        verified: bool,
        video: bool,
        render_modes: list[str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.peer = peer
        self.verified = verified
        self.video = video
        self.modes = render_modes
        self.clock = clock
        self.call_id: str | None = None
        self.video_handle: VideoHandle | None = None
        self.mic: MicLevel | None = None
        self.ended = False
        self.connected_at: float | None = None
        self._shown = -1
        self._self_shown: object = None

    def compose(self) -> ComposeResult:
        yield Static("", id="topbar", classes="bar")
        yield VideoView(self.modes[0], id="remote")
        yield VideoView(self.modes[0], id="pip")
        yield Static("", id="banner")
        yield Static("", id="stats")
        yield MicMeter(id="mic")
        yield RelayStatus(classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#pip").display = self.video
        self.query_one("#stats").display = False
        self.set_interval(1 / FPS, self.pull_frames)
        self.set_interval(1 / LEVEL_HZ, self.pull_level)
        self.set_interval(1.0, self._draw_bar)
        self._draw_bar()

    def attach(
        self, handle: VideoHandle, camera_on: bool = True, mic: MicLevel | None = None
    ) -> None:
        """The call's frames (from now on the engine converts each received frame for us),
        whether our camera really sends (answering may leave it off: answer_with_camera), and
        our microphone's level."""
        handle.watching = True
        self.video_handle = handle
        self.camera_on = camera_on and self.video
        self.mic = mic

    @property
    def remote(self) -> VideoView:
        return self.query_one("#remote", VideoView)

    # --- engine events ---------------------------------------------------------------------

    def engine_event(self, event: Event) -> None:
        if isinstance(event, CallState):
            if event.state == "connected" and self.connected_at is None:
                self.connected_at = self.clock()
            self.state = str(event.state)
        elif isinstance(event, Stats):
            self.query_one("#stats", Static).update(stats_text(event.to_json()))
        elif isinstance(event, Summary):
            self.ended = True
            self.state = "closed" if event.outcome in ("answered", "cancelled") else "failed"

    def watch_state(self) -> None:
        self._draw_bar()

    def watch_muted(self) -> None:
        self._draw_bar()

    def watch_camera_on(self) -> None:
        self._draw_bar()

    def _draw_bar(self) -> None:
        if not self.is_mounted:
            return
        badge = "[green]✔ verified[/]" if self.verified else "[yellow]unverified[/]"
        kind = "video" if self.video else "audio"
        parts = [f"[b]{self.peer}[/b]  {badge}  {kind}"]
        if self.connected_at is not None:
            minutes, seconds = divmod(int(self.clock() - self.connected_at), 60)
            parts.append(f"⏱ {minutes:02d}:{seconds:02d}")
        text = STATE_TEXT.get(self.state, self.state)
        if text:
            parts.append(text)
        if self.muted:
            parts.append("[red]muted[/]")
        if self.video and not self.camera_on:
            parts.append("[red]camera off[/] (press c)")
        self.query_one("#topbar", Static).update("   ".join(parts))
        banner = self.query_one("#banner", Static)
        banner.update(text)
        banner.display = bool(text)

    # --- video -----------------------------------------------------------------------------

    def pull_frames(self) -> None:
        """Show the newest remote frame and self-view frame, if there are new ones."""
        handle = self.video_handle
        if handle is None:
            return
        remote = next(iter(self.query("#remote").results(VideoView)), None)
        if remote is None:  # between the old view's removal and the new one's mount
            self._shown = -1  # (action_renderer): the new view shows the newest frame at once
            return
        if not remote.size.area:  # mounted, not laid out yet: it could not draw the frame, and
            return  # marked shown, it would wait for a newer one (none comes with the camera off)
        handle.fit = remote.pixel_box()  # the engine scales each frame down to it
        count, frame = handle.remote()
        if count != self._shown and frame is not None:
            self._shown = count
            remote.show_frame(frame)
        pip = self.query_one("#pip", VideoView)
        if pip.display:
            own = handle.self_view()
            if own is not None and own is not self._self_shown:
                self._self_shown = own
                pip.show_frame(own)

    def pull_level(self) -> None:
        """Show the microphone's newest level, and warn when we speak while muted."""
        if self.mic is not None:
            self.query_one("#mic", MicMeter).show(self.mic.reading, self.muted, self.clock())

    # --- keys ------------------------------------------------------------------------------

    def action_mute(self) -> None:
        if self.call_id is None:
            self.notify("No microphone in this call yet")
            return
        self.muted = not self.muted
        self.post_message(Control(self.call_id, "microphone", not self.muted))

    def action_camera(self) -> None:
        if self.call_id is None or not self.video:
            self.notify("No camera in this call")
            return
        self.camera_on = not self.camera_on
        self.post_message(Control(self.call_id, "camera", self.camera_on))

    def action_stats(self) -> None:
        stats = self.query_one("#stats")
        stats.display = not stats.display

    def action_self_view(self) -> None:
        pip = self.query_one("#pip")
        pip.display = not pip.display

    async def action_renderer(self) -> None:
        self.modes = self.modes[1:] + self.modes[:1]
        await self.remote.remove()
        await self.mount(VideoView(self.modes[0], id="remote"), before="#pip")
        self._shown = -1
        self.notify(f"Renderer: {self.modes[0]}")

    def action_hang_up(self) -> None:
        if not self.ended:
            self.ended = True
            self.post_message(HangUp(self.call_id))

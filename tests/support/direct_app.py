"""A call-like Textual app for the tmux test of VideoView's direct frames.

`python -m tests.support.direct_app STATE` shows a moving picture in a VideoView under a stats box
and a self-view, then holds a still frame. Keys: `s` toggles the stats box, `m` opens a dialog,
`escape` closes it, `n` shows the next still frame. After each still frame is on its way to the
terminal, STATE gets what every video cell should show (an .npz written atomically, with a
sequence number, the stats box's region and how many frames went straight to the terminal), so the test can compare it with tmux's `capture-pane`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Label

from tcall.tui.widgets import VideoView
from tests.support.call_app import Dialog

MOVING_FRAMES = 30


def picture(step: int, cols: int, rows: int) -> np.ndarray:
    """cols x 2*rows pixels (one per half-cell, so no scaling): a gradient that shifts at each
    step, so every cell changes, with a white square moving right."""
    y, x = np.mgrid[0 : rows * 2, 0:cols]
    image = np.stack([x * 2 + step * 7, y * 4 + step * 5, 220 - x * 2], axis=2) % 256
    image = image.astype(np.uint8)
    image[6:20, 2 + 2 * step % cols : 12 + 2 * step % cols] = 255
    return image


class DirectApp(App[None]):
    CSS = """
    Screen { layers: base overlay; }
    #pip { layer: overlay; dock: right; width: 26; height: 8; margin: 1 1 0 0; }
    #stats { layer: overlay; dock: left; width: 30; height: 5; margin: 1 0 0 1;
             border: round green; }
    """
    BINDINGS = [
        Binding("s", "stats", "Stats"),
        Binding("m", "dialog", "Dialog"),
        Binding("n", "next", "Next"),
    ]

    def __init__(self, state: Path) -> None:
        super().__init__()
        self.state = state
        self.step = 0
        self.sequence = 0

    def compose(self) -> ComposeResult:
        yield VideoView(id="main")
        yield Label("STATS 30 fps", id="stats")
        yield VideoView(id="pip")

    def on_mount(self) -> None:
        self.ticker = self.set_interval(1 / 30, self.tick)

    def show(self) -> None:
        for view in self.query(VideoView):
            view.show_frame(picture(self.step, *view.size))

    def tick(self) -> None:
        self.step += 1
        self.show()
        if self.step == MOVING_FRAMES:
            self.ticker.stop()
            self.call_after_refresh(self.dump)

    def dump(self) -> None:
        """Write what the video cells should show, once every frame is out (Textual's paint
        and the direct frames, including one that waited for the terminal)."""
        writers = [view.writer for view in self.query(VideoView) if view.writer is not None]
        if any(writer.busy or writer.waiting for writer in writers):
            self.set_timer(0.02, self.dump)
            return
        self.sequence += 1
        arrays: dict[str, np.ndarray] = {"sequence": np.array(self.sequence)}
        stats = self.query_one("#stats")
        arrays["stats_region"] = np.array(tuple(stats.region) if stats.display else (0, 0, 0, 0))
        main = self.query_one("#main", VideoView)
        arrays["direct_frames"] = np.array(main.writer.written if main.writer else 0)
        for view in self.query(VideoView):
            grid = view.grid
            assert grid is not None and grid.fg is not None and grid.bg is not None
            name = view.id or ""
            arrays[f"{name}_region"] = np.array(tuple(view.region))
            arrays[f"{name}_fg"] = grid.fg
            arrays[f"{name}_bg"] = grid.bg
        tmp = self.state.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, self.state)

    def still(self) -> None:
        self.step += 1
        self.show()
        self.call_after_refresh(self.dump)

    def action_stats(self) -> None:
        stats = self.query_one("#stats")
        stats.display = not stats.display
        self.call_after_refresh(self.still)

    def action_dialog(self) -> None:
        self.push_screen(Dialog(), lambda _: self.call_after_refresh(self.still))

    def action_next(self) -> None:
        self.still()

    def on_resize(self) -> None:
        if self.step >= MOVING_FRAMES:
            self.call_after_refresh(self.still)


if __name__ == "__main__":
    DirectApp(Path(sys.argv[1])).run()

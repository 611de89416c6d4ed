"""VideoView's direct frames in a real terminal (tmux): the video and its overlays, as tmux holds
them, after a stats box, a self-view, a dialog and a resize."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyte
import pytest

from tcall.tui.render.delta import NOISE_TOLERANCE
from tests.support.decoders import rgb, screen_of
from tests.support.tmux import Tmux, tmux_server

COLS, ROWS = 100, 30
ROOT = Path(__file__).resolve().parents[2]


class Pane:
    def __init__(self, tmux: Tmux, state: Path) -> None:
        self.tmux, self.state = tmux, state
        self.sequence = 0

    def screen(self) -> pyte.Screen:
        size = self.tmux("display", "-p", "#{pane_width} #{pane_height}").split()
        raw = self.tmux("capture-pane", "-p", "-e").rstrip("\n").replace("\n", "\r\n")
        return screen_of(raw.encode(), int(size[0]), int(size[1]))

    def next_state(self, timeout: float = 20.0) -> dict[str, np.ndarray]:
        """Wait for the app's next still frame; what its video cells should show."""
        deadline = time.monotonic() + timeout
        while True:
            if self.state.exists():
                with np.load(self.state) as data:
                    state = {key: data[key] for key in data.files}
                if int(state["sequence"]) > self.sequence:
                    self.sequence = int(state["sequence"])
                    return state
            assert time.monotonic() < deadline, "the app never showed its still frame"
            time.sleep(0.1)


def mismatches(screen: pyte.Screen, state: dict[str, np.ndarray]) -> list[tuple[int, int]]:
    """Video cells (outside the stats box and, for the main view, the self-view) that don't
    show their frame's colours to within the delta tolerance."""
    stats = state["stats_region"]
    pip = state["pip_region"]

    def inside(region: np.ndarray, x: int, y: int) -> bool:
        rx, ry, w, h = region.tolist()
        return rx <= x < rx + w and ry <= y < ry + h

    wrong = []
    for name in ("main", "pip"):
        rx, ry, w, h = state[f"{name}_region"].tolist()
        fg, bg = state[f"{name}_fg"], state[f"{name}_bg"]
        for y in range(ry, ry + h):
            for x in range(rx, rx + w):
                if inside(stats, x, y) or (name == "main" and inside(pip, x, y)):
                    continue
                cell = screen.buffer[y][x]
                ok = cell.data == "▀" and cell.fg != "default" and cell.bg != "default"
                if ok:
                    seen = np.array(rgb(cell.fg) + rgb(cell.bg))
                    wanted = np.concatenate([fg[y - ry, x - rx], bg[y - ry, x - rx]])
                    ok = int(np.abs(seen - wanted.astype(int)).max()) <= NOISE_TOLERANCE
                if not ok:
                    wrong.append((x, y))
    return wrong


def settled(pane: Pane, state: dict[str, np.ndarray], timeout: float = 5.0) -> pyte.Screen:
    """The pane once it shows `state` (tmux may still be reading the last frame)."""
    deadline = time.monotonic() + timeout
    while True:
        screen = pane.screen()
        wrong = mismatches(screen, state)
        if not wrong:
            return screen
        assert time.monotonic() < deadline, f"{len(wrong)} video cells wrong, first {wrong[:5]}"
        time.sleep(0.2)


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[Pane]:
    state = tmp_path / "state.npz"
    command = [sys.executable, "-m", "tests.support.direct_app", str(state)]
    with tmux_server() as tmux:
        tmux.new_session(*command, size=(COLS, ROWS), cwd=ROOT, env={"COLORTERM": "truecolor"})
        yield Pane(tmux, state)


def test_direct_frames_under_overlays_a_dialog_and_a_resize(pane: Pane) -> None:
    state = pane.next_state()
    assert int(state["direct_frames"]) >= 10  # the moving frames went straight to the terminal
    screen = settled(pane, state)
    stats = state["stats_region"].tolist()
    assert "STATS 30 fps" in screen.display[stats[1] + 1]
    assert "╭" in screen.display[stats[1]]
    # The stats box goes: the video under it comes back, and stays right on the next frame.
    pane.tmux("send-keys", "s")
    state = pane.next_state()
    assert state["stats_region"].tolist() == [0, 0, 0, 0]
    screen = settled(pane, state)
    assert "STATS" not in "".join(screen.display)
    pane.tmux("send-keys", "n")
    settled(pane, pane.next_state())
    # A dialog covers the video; once closed, the video is whole again.
    pane.tmux("send-keys", "m")
    deadline = time.monotonic() + 10
    while "HANG UP?" not in "".join(pane.screen().display):
        assert time.monotonic() < deadline, "the dialog never showed"
        time.sleep(0.1)
    pane.tmux("send-keys", "Escape")
    screen = settled(pane, pane.next_state())
    assert "HANG UP?" not in "".join(screen.display)
    # A smaller terminal: the video is redrawn at the new size, the stats box comes back on top.
    pane.tmux("send-keys", "s")
    pane.next_state()
    pane.tmux("resize-window", "-x", "80", "-y", "24")
    state = pane.next_state()
    assert state["main_region"].tolist()[2:] == [80, 24]
    screen = settled(pane, state)
    assert "STATS 30 fps" in screen.display[state["stats_region"].tolist()[1] + 1]

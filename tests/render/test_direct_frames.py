"""VideoView's direct frames, checked on an emulated terminal fed everything the app writes.

Textual's own updates and the frames written straight to the terminal go through one recording
driver, in order, into pyte; every visible video cell must then match the widget's newest frame,
and the overlays (stats box, self-view, modal dialog) must stay on top, through resizes too.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyte
import pytest
from textual.app import App
from textual.drivers import headless_driver
from textual.geometry import Region

from tcall.tui.render.delta import NOISE_TOLERANCE, SYNC_BEGIN, SYNC_END, cup
from tcall.tui.render.textmode import grid_bytes
from tcall.tui.widgets import VideoView
from tests.support.call_app import CallApp, Dialog
from tests.support.decoders import rgb, screen_of

W, H = 60, 20


class Terminal(headless_driver.HeadlessDriver):
    """A headless driver that keeps what Textual writes, as a real terminal would receive it."""

    output: list[str]

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        self.output.append(data)


@pytest.fixture(autouse=True)
def recording_terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(Terminal, "output", [], raising=False)
    # run_test looks the headless driver up when it starts.
    monkeypatch.setattr(headless_driver, "HeadlessDriver", Terminal)
    yield


def frame(step: int, width: int = W, height: int = H * 2) -> np.ndarray:
    """A gradient that brightens at each `step` (so every cell changes), with a white square
    that moves right through the stats box's row."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 3 + step * 9, y * 5 + step * 9, 200 - x * 3], axis=2).astype(np.uint8)
    image[4:16, 2 + 3 * step : 10 + 3 * step] = 255
    return image


def terminal(cols: int = W, rows: int = H) -> pyte.Screen:
    return screen_of("".join(Terminal.output).encode(), cols, rows)


def cell(screen: pyte.Screen, x: int, y: int) -> tuple[str, str, str]:
    c = screen.buffer[y][x]
    return c.data, c.fg, c.bg


def same(seen: tuple[str, str, str], wanted: tuple[str, str, str]) -> bool:
    """The same glyph, and colours within the tolerance of delta updates (direct frames round
    truecolor colours)."""
    if seen[0] != wanted[0]:
        return False
    for a, b in zip(seen[1:], wanted[1:], strict=True):
        if len(a) == len(b) == 6 and a != b:
            if max(abs(p - q) for p, q in zip(rgb(a), rgb(b), strict=True)) > NOISE_TOLERANCE:
                return False
        elif a != b:
            return False
    return True


def assert_video_shown(screen: pyte.Screen, view: VideoView, skip: list[Region]) -> int:
    """Every cell of `view` outside `skip` shows the view's newest frame; returns cells checked."""
    grid = view.grid
    assert grid is not None
    region = view.region
    cols, rows = screen.columns, screen.lines
    wanted = screen_of(cup(region.y, region.x) + grid_bytes(grid), cols, rows)
    checked = 0
    for y in range(region.y, region.bottom):
        for x in range(region.x, region.right):
            if any(r.contains(x, y) for r in skip):
                continue
            assert same(cell(screen, x, y), cell(wanted, x, y)), (x, y)
            checked += 1
    return checked


def overlays(app: App[None]) -> list[Region]:
    return [app.query_one("#stats").region, app.query_one("#pip").region]


@pytest.mark.parametrize("mode", ["halfblock", "256", "ascii"])
async def test_direct_frames_bypass_textual_and_leave_overlays_alone(mode: str) -> None:
    app = CallApp(mode)
    async with app.run_test(size=(W, H)) as pilot:
        main = app.query_one("#main", VideoView)
        pip = app.query_one("#pip", VideoView)
        main.show_frame(frame(0))
        pip.show_frame(frame(0, 32, 24))
        await pilot.pause()
        assert main.writer is not None
        displays, sent, written = app.displays, len(Terminal.output), main.writer.written
        for step in range(1, 6):
            main.show_frame(frame(step))
            pip.show_frame(frame(step, 32, 24))
            await pilot.pause()
        # Textual painted nothing more: every frame went out directly, each in one whole write.
        assert app.displays == displays
        assert main.writer.written == written + 5
        direct = [w for w in Terminal.output[sent:] if w]
        assert len(direct) == 10
        for write in direct:
            assert write.startswith((SYNC_BEGIN + b"\x1b7").decode())
            assert write.endswith("\x1b8" + SYNC_END.decode())
        # Alone on a blank terminal, the direct frames touch no cell under an overlay.
        stats = app.query_one("#stats").region
        alone = screen_of("".join(Terminal.output[sent:]).encode(), W, H)
        for y in range(stats.y, stats.bottom):
            for x in range(stats.x, stats.right):
                assert cell(alone, x, y) == (" ", "default", "default")
        screen = terminal()
        assert screen.display[stats.y][stats.x : stats.right] == "STATS 30fps "
        assert assert_video_shown(screen, main, overlays(app)) > W * H - 150
        assert assert_video_shown(screen, pip, []) == 16 * 6


async def test_video_uncovered_by_an_overlay_is_repainted_and_kept_in_step() -> None:
    app = CallApp()
    async with app.run_test(size=(W, H)) as pilot:
        main = app.query_one("#main", VideoView)
        main.show_frame(frame(0))
        await pilot.pause()
        stats = app.query_one("#stats")
        # The square passes under the stats box while it is up, then the box goes away...
        main.show_frame(frame(3))
        await pilot.pause()
        stats.display = False
        await pilot.pause()
        pip = [app.query_one("#pip").region]  # blank: it gets no frames here
        assert_video_shown(terminal(), main, pip)
        # ... and the frame goes back to the first one: the cells Textual repainted from frame 3
        # must be rewritten, though the first frame had already been written there before.
        main.show_frame(frame(0))
        await pilot.pause()
        assert_video_shown(terminal(), main, pip)
        stats.display = True
        await pilot.pause()
        main.show_frame(frame(5))
        await pilot.pause()
        screen = terminal()
        assert "STATS 30fps" in screen.display[stats.region.y]
        assert_video_shown(screen, main, overlays(app))


async def test_modal_dialog_stops_direct_frames_and_closing_it_resyncs() -> None:
    app = CallApp()
    async with app.run_test(size=(W, H)) as pilot:
        main = app.query_one("#main", VideoView)
        main.show_frame(frame(0))
        await pilot.pause()
        await app.push_screen(Dialog())
        await pilot.pause()
        assert main.writer is not None
        written = main.writer.written
        for step in (1, 2, 3):
            main.show_frame(frame(step))
            await pilot.pause()
        assert main.writer.written == written  # under the modal, Textual draws the video
        screen = terminal()
        dialog = app.screen.query_one("#dialog").region
        assert "HANG UP?" in screen.display[dialog.y]
        # Tinted behind the dialog: not the frame's own colours.
        corner = cell(screen, W - 1, H - 1)
        wanted = screen_of(grid_bytes(main.grid), W, H) if main.grid else None
        assert wanted is not None and corner != cell(wanted, W - 1, H - 1)
        app.pop_screen()
        await pilot.pause()
        main.show_frame(frame(4))
        await pilot.pause()
        screen = terminal()
        assert "HANG UP?" not in "".join(screen.display)
        assert main.writer.written == written + 1
        assert_video_shown(screen, main, overlays(app))


async def test_resize_redraws_the_video_at_the_new_size() -> None:
    app = CallApp()
    async with app.run_test(size=(W, H)) as pilot:
        main = app.query_one("#main", VideoView)
        main.show_frame(frame(0))
        await pilot.pause()
        await pilot.resize_terminal(W - 12, H - 5)
        await pilot.pause()
        main.show_frame(frame(1))
        await pilot.pause()
        main.show_frame(frame(2))
        await pilot.pause()
        assert main.size == (W - 12, H - 5)
        screen = terminal(W - 12, H - 5)
        assert assert_video_shown(screen, main, overlays(app)) > 0
        stats = app.query_one("#stats").region
        assert screen.display[stats.y][stats.x : stats.right] == "STATS 30fps "

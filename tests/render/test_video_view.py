"""VideoView under a stats overlay, a self-view picture-in-picture and a modal dialog."""

from __future__ import annotations

import numpy as np
import pytest
from textual.app import App, ComposeResult

from tcall.tui.widgets import VideoView
from tests.support.call_app import CallApp, Dialog
from tests.support.decoders import app_screen, rgb

W, H = 60, 20


def gradient() -> np.ndarray:
    y, x = np.mgrid[0 : H * 2, 0:W]
    return np.stack([x * 4, y * 6, 255 - x * 4], axis=2).astype(np.uint8)


def expected(view: VideoView, row: int, col: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    grid = view.grid
    assert grid is not None and grid.fg is not None and grid.bg is not None
    return tuple(grid.fg[row, col].tolist()), tuple(grid.bg[row, col].tolist())


async def test_overlays_draw_over_the_video_and_the_video_around_them() -> None:
    app = CallApp()
    async with app.run_test(size=(W, H)) as pilot:
        main = app.query_one("#main", VideoView)
        pip = app.query_one("#pip", VideoView)
        main.show_frame(gradient())
        pip.show_frame(np.full((60, 80, 3), [12, 200, 32], dtype=np.uint8))
        await pilot.pause()
        screen = app_screen(app)
        stats = app.query_one("#stats").region
        assert screen.display[stats.y][stats.x : stats.x + 11] == "STATS 30fps"
        # The video on both sides of the overlay, on the same row, keeps its own colours.
        for col in (stats.x - 1, stats.right, stats.right + 5):
            cell = screen.buffer[stats.y][col]
            assert cell.data == "▀"
            assert (rgb(cell.fg), rgb(cell.bg)) == expected(main, stats.y, col)
        region = pip.region
        inner = screen.buffer[region.y + 2][region.x + 8]
        assert (rgb(inner.fg), rgb(inner.bg)) == expected(pip, 2, 8)
        assert rgb(inner.bg) == (12, 200, 32)  # multiples of 4 survive live rounding
        right_of_pip = screen.buffer[region.y + 2][region.right]
        assert (rgb(right_of_pip.fg), rgb(right_of_pip.bg)) == expected(
            main, region.y + 2, region.right
        )
        # Nothing of the escape codes leaks into the picture as text.
        text = "".join(screen.display)
        assert "[" not in text and ";" not in text


async def test_modal_dialog_is_drawn_over_tinted_video() -> None:
    app = CallApp()
    async with app.run_test(size=(W, H)) as pilot:
        main = app.query_one("#main", VideoView)
        main.show_frame(gradient())
        await pilot.pause()
        await app.push_screen(Dialog())
        await pilot.pause()
        assert not main.unobstructed()
        screen = app_screen(app)
        dialog = app.screen.query_one("#dialog").region
        assert "HANG UP?" in screen.display[dialog.y]
        corner = screen.buffer[H - 1][W - 1]
        assert corner.data == "▀"
        fg, bg = expected(main, H - 1, W - 1)
        # Dimmed behind the modal: Textual re-styled the video's cells rather than dropping them.
        assert (corner.fg, corner.bg) != (bytes(fg).hex(), bytes(bg).hex())
        assert corner.bg != "default"
        assert "[" not in "".join(screen.display)


async def test_only_changed_rows_are_repainted() -> None:
    app = CallApp()
    async with app.run_test(size=(W, H)) as pilot:
        main = app.query_one("#main", VideoView)
        frame = gradient()
        main.show_frame(frame)
        await pilot.pause()
        repainted: list[object] = []
        original_refresh = main.refresh

        def spy(*regions, **kwargs):  # type: ignore[no-untyped-def]
            repainted.extend(regions)
            return original_refresh(*regions, **kwargs)

        main.refresh = spy  # type: ignore[method-assign]
        changed = frame.copy()
        changed[10:12, 5:9] = 255  # one cell row
        main.show_frame(changed)
        assert len(repainted) == 1 and repainted[0].y == 5 and repainted[0].height == 1
        await pilot.pause()
        screen = app_screen(app)
        assert (rgb(screen.buffer[5][6].fg), rgb(screen.buffer[5][6].bg)) == expected(main, 5, 6)


class ImageApp(App[None]):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def compose(self) -> ComposeResult:
        yield VideoView(self.mode, id="main")


def capture_writes(view: VideoView) -> list[bytes]:
    written: list[bytes] = []
    view._write = written.append  # type: ignore[method-assign,assignment]
    return written


@pytest.mark.parametrize("mode", ["sixel", "kitty"])
async def test_graphics_modes_draw_the_image_over_blank_cells(mode: str) -> None:
    app = ImageApp(mode)
    async with app.run_test(size=(W, H)) as pilot:
        main = app.query_one("#main", VideoView)
        written = capture_writes(main)
        main.show_frame(gradient())
        await pilot.pause()
        # One image, and no half-blocks painted under it (that would double the output).
        assert len(written) == 1
        assert (b"\x1bP" if mode == "sixel" else b"\x1b_G") in written[0]
        assert "▀" not in "".join(app_screen(app).display)
        # A modal covers it: half-blocks come back under the dialog, and a kitty image is deleted.
        await app.push_screen(Dialog())
        main.show_frame(gradient())
        await pilot.pause()
        assert "▀" in "".join(app_screen(app).display)
        assert len(written) == (2 if mode == "kitty" else 1)
        if mode == "kitty":
            assert b"a=d" in written[1]
        app.pop_screen()
        await pilot.pause()
        main.show_frame(gradient())
        await pilot.pause()
        assert "▀" not in "".join(app_screen(app).display)
        count = len(written)
        # A resize drops the image (kitty deletes it) and draws the next one at the new size.
        await pilot.resize_terminal(W - 10, H - 4)
        await pilot.pause()
        main.show_frame(gradient())
        await pilot.pause()
        new = written[count:]
        if mode == "kitty":
            assert b"a=d" in new[0]
            assert b"c=%d,r=%d" % (W - 10, H - 4) in new[-1]
        else:
            assert b'"1;1;%d;' % ((W - 10) * 10) in new[-1]

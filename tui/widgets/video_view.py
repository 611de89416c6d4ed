"""`VideoView`: a Textual widget that shows video frames at 30 fps and still clips correctly.

Per-cell Segments are too slow at 240x80, so each row is handed to Textual as a `RowStrip`: a Strip
that renders to the row's pre-encoded ANSI bytes in one go. Textual cuts strips when another widget
(a dialog, a stats overlay, a self-view) covers part of a row; `RowStrip` answers those cuts by
re-slicing the encoded row at cell boundaries, starting each piece with its own full colour state,
so whatever is drawn over the video, and the video on either side of it, stays right. Anything else
Textual asks of a strip (tinting under a modal, screenshots) gets ordinary styled Segments, built
only when asked.

In sixel and kitty modes the picture is drawn as an image over the widget's region, but only while
nothing covers the widget, and Textual then draws only blank cells under it. Otherwise (a modal, an
overlay, a scrolled-out part) it falls back to half-blocks, which overwrite a sixel image, and a
kitty image is deleted, so an image never hides a dialog. A resize drops the image the same way
and draws the next frame at the new size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
from rich.color import Color
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from tui.render import TEXT_MODES, make_encoder, make_text_encoder
from tui.render.cells import RESET, CellGrid
from tui.render.delta import NOISE_TOLERANCE, changed_cells, cup, mark_shown, spans, synchronized
from tui.render.fit import Frame
from tui.render.kitty import KittyEncoder


def _run_segments(grid: CellGrid, r: int, c0: int, c1: int) -> list[Segment]:
    """Cells c0..c1-1 of row r as styled Segments, one per run of identical cells."""
    cells = grid.cells[r, c0:c1]
    change = np.ones(cells.shape[0], dtype=bool)
    change[1:] = np.any(cells[1:] != cells[:-1], axis=1)
    starts = np.flatnonzero(change).tolist() + [cells.shape[0]]
    glyph_len = int(grid.end[r, 0] - grid.glyph[r, 0])
    segments = []
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        c = c0 + a
        text = grid.data[int(grid.glyph[r, c]) : int(grid.glyph[r, c]) + glyph_len].decode()
        segments.append(Segment(text * (b - a), _style(grid, r, c)))
    return segments


def _colour(values: np.ndarray) -> Color:
    if values.size == 1:
        return Color.from_ansi(int(values[0]))
    return Color.from_rgb(int(values[0]), int(values[1]), int(values[2]))


def _style(grid: CellGrid, r: int, c: int) -> Style | None:
    if grid.fg is None and grid.bg is None:
        return None
    return Style(
        color=_colour(grid.fg[r, c]) if grid.fg is not None else None,
        bgcolor=_colour(grid.bg[r, c]) if grid.bg is not None else None,
    )


class RowStrip(Strip):
    """Cells c0..c1-1 of one row of an encoded frame."""

    __slots__ = ("_grid", "_row", "_c0", "_c1", "_styled")

    def __init__(self, grid: CellGrid, row: int, c0: int, c1: int) -> None:
        self._grid = grid
        self._row = row
        self._c0 = c0
        self._c1 = c1
        self._styled: list[Segment] | None = None
        super().__init__((), c1 - c0)

    @property
    def _segments(self) -> list[Segment]:
        # Textual's own strip operations read this; build it only when one of them runs.
        if self._styled is None:
            self._styled = _run_segments(self._grid, self._row, self._c0, self._c1)
        return self._styled

    @_segments.setter
    def _segments(self, segments: list[Segment]) -> None:
        """Strip.__init__ assigns the (empty) segment list; the real ones come from the grid."""

    @property
    def cell_count(self) -> int:
        return self._c1 - self._c0

    def render(self, console: Console) -> str:
        if self._render_cache is None:
            encoded = self._grid.span(self._row, self._c0, self._c1) + RESET
            self._render_cache = encoded.decode()
        return self._render_cache

    def crop(self, start: int, end: int | None = None) -> Strip:
        length = self._c1 - self._c0
        start = max(0, start)
        end = length if end is None else min(length, end)
        if start == 0 and end == length:
            return self
        if end <= start:
            return Strip([], 0)
        return RowStrip(self._grid, self._row, self._c0 + start, self._c0 + end)

    def divide(self, cuts: Iterable[int]) -> Sequence[Strip]:
        pieces: list[Strip] = []
        pos = 0
        for cut in cuts:
            if cut > self._c1 - self._c0:
                break
            pieces.append(self.crop(pos, cut))
            pos = cut
        return pieces

    def adjust_cell_length(self, cell_length: int, style: Style | None = None) -> Strip:
        if cell_length == self._c1 - self._c0:
            return self
        return super().adjust_cell_length(cell_length, style)


class VideoView(Widget):
    """Shows the latest frame given to `show_frame`, letterboxed to the widget's size."""

    DEFAULT_CSS = """
    VideoView {
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(
        self,
        mode: str = "halfblock",
        *,
        cell_px: tuple[int, int] = (10, 20),
        tolerance: int = NOISE_TOLERANCE,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.mode = mode
        self.tolerance = tolerance
        self._text = make_text_encoder(mode)
        self._graphics = None if mode in TEXT_MODES else make_encoder(mode, cell_px)
        self._grid: CellGrid | None = None
        self._shown: npt.NDArray[np.uint8] | None = None  # the cells as last sent to the screen
        self._frame: Frame | None = None
        self._image_shown = False
        self._image_mode = False  # an image covers the widget, so its cells are left blank

    @property
    def grid(self) -> CellGrid | None:
        """The last frame as encoded cells (None before the first frame)."""
        return self._grid

    def show_frame(self, frame: Frame) -> None:
        """Encode `frame` for the current size and repaint only the cells that changed.

        In each row the span from the first to the last changed cell is repainted; a cell whose
        colours moved no more than `tolerance` (camera noise, codec ripples) is not a change.
        """
        width, height = self.size
        if not width or not height:
            return
        self._frame = frame
        if self._graphics is not None and self.unobstructed():
            # The image covers the whole widget: under it Textual needs blank cells, drawn once.
            if not self._image_mode:
                self._image_mode = True
                self._shown = None
                self.refresh()
            self.app.call_after_refresh(self._draw_image)
            return
        if self._image_mode:
            self._image_mode = False
            self._hide_image()
        grid = self._grid = self._text.grid(frame, width, height)
        shown = self._shown
        if shown is None or shown.shape != grid.cells.shape:
            self._shown = grid.cells.copy()
            self.refresh()
        else:
            row, first, end = spans(changed_cells(grid, shown, self.tolerance), merge_gap=width)
            mark_shown(shown, grid, row, first, end)
            for r, c0, c1 in zip(row.tolist(), first.tolist(), end.tolist(), strict=True):
                self.refresh(Region(c0, r, c1 - c0, 1))

    def on_resize(self) -> None:
        self._grid = None
        self._shown = None
        self._image_mode = False
        self._hide_image()
        if self._frame is not None:
            self.show_frame(self._frame)

    def on_unmount(self) -> None:
        self._hide_image()

    def render_lines(self, crop: Region) -> list[Strip]:
        grid = self._grid
        x1, x2 = crop.column_span
        if self._image_mode or grid is None or (grid.cols, grid.rows) != tuple(self.size):
            blank = Strip.blank(crop.width, self.rich_style)
            return [blank] * crop.height
        return [RowStrip(grid, y, x1, x2) for y in crop.line_range]

    def unobstructed(self) -> bool:
        """True when the whole widget is on screen and no other widget is drawn over any of it."""
        screen = self.screen
        if self.app.screen is not screen:
            return False
        # Textual has no public "what covers me"; its compositor lists widgets topmost first.
        visible = screen._compositor.visible_widgets
        if self not in visible:
            return False
        region, clip = visible[self]
        if clip.intersection(region) != region:
            return False
        ancestors = set(self.ancestors)
        for widget, (other, other_clip) in visible.items():
            if widget is self:
                return True
            if widget not in ancestors and other.intersection(other_clip).overlaps(region):
                return False
        return True

    def _write(self, data: bytes) -> None:
        driver = self.app._driver  # images must bypass the compositor, which only knows cells
        if driver is not None:
            driver.write(data.decode("latin-1"))
            driver.flush()

    def _draw_image(self) -> None:
        if self._graphics is None or self._frame is None:
            return
        if not self.unobstructed():
            self._hide_image()
            return
        x, y, w, h = self.region
        image = self._graphics.encode(self._frame, w, h)
        self._write(synchronized(b"\x1b7" + cup(y, x) + image + b"\x1b8"))
        self._image_shown = True

    def _hide_image(self) -> None:
        if self._image_shown and isinstance(self._graphics, KittyEncoder):
            self._write(self._graphics.clear())
        self._image_shown = False

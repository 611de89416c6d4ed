"""`VideoView`: a Textual widget that shows video frames at 30 fps and still clips correctly.

Pushing 30 frames a second of 240x80 cells through Textual's compositor costs more than a core,
so while the widget's screen is showing, each frame goes straight to the terminal: only the cells
that changed, cursor-addressed, inside synchronized output, written through the app's driver (the
thread that writes all of Textual's output, so a frame never splits one of Textual's updates or is
split by one). Cells under another widget (a self-view, a stats overlay, a toast) are skipped, and
a frame is dropped, never queued, while the previous one is still on its way to the terminal.

On a real terminal each direct frame ends with a query, and is on its way until the terminal
answers (see tui/render/writer.py): all the app's views share one `LinkPace` per terminal, which
learns from the answers how fast the link is and gives each frame a byte budget (50 ms of the
link). A frame whose changes cost more is cut, in reading order, at a cell boundary: the cells
before the cut are written (each run of them whole, with its own cursor move and colours), and the
next frame carries on from there, with the newest picture. On a thin link the picture is then
refreshed in bands, but a key's answer never waits behind more than 50 ms of video.

Textual still renders the widget whenever it repaints its region (a resize, an overlay that goes
away, a modal that covers it): each row is a `RowStrip`, a Strip that renders to the row's
pre-encoded ANSI bytes in one go and tells the widget which cells it drew, so the next direct
frame starts from what the terminal really shows. Textual cuts strips where another widget covers
part of a row; `RowStrip` answers those cuts by re-slicing the encoded row at cell boundaries,
starting each piece with its own full colour state. Anything else Textual asks of a strip
(tinting under a modal, screenshots) gets ordinary styled Segments, built only when asked. Under a
modal, or with no real terminal (tests), frames go through Textual's compositor instead.

In sixel and kitty modes the picture is drawn as an image over the widget's region, but only while
nothing covers the widget, and Textual then draws only blank cells under it. Otherwise (a modal, an
overlay, a scrolled-out part) it falls back to half-blocks, which overwrite a sixel image, and a
kitty image is deleted, so an image never hides a dialog. A resize drops the image the same way
and draws the next frame at the new size.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt
from rich.color import Color
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from textual.driver import Driver
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from tcall.tui.compat import textual as textual_compat
from tcall.tui.render import TEXT_MODES, make_encoder, make_text_encoder
from tcall.tui.render.cells import RESET, CellGrid
from tcall.tui.render.delta import (
    NOISE_TOLERANCE,
    RESTORE_CURSOR,
    SAVE_CURSOR,
    TextScreen,
    cup,
    synchronized,
)
from tcall.tui.render.fit import Frame
from tcall.tui.render.kitty import KittyEncoder
from tcall.tui.render.writer import SMOOTHING, LinkPace, QueueWriter

Painted = Callable[[CellGrid, int, int, int], None]
# What a changed cell costs at most in a direct frame (truecolor half-blocks: both colours in full
# and the glyph), assumed until frames have shown what this picture costs.
CELL_BYTES = 40
MIN_CELLS = 16  # a frame cut to its budget still rewrites this many cells, so the picture moves
# One pace per terminal, shared by every view that writes to it: answers come back in order.
_paces: weakref.WeakKeyDictionary[Driver, LinkPace] = weakref.WeakKeyDictionary()


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


class RowStrip(textual_compat.LazyStrip):
    """Cells c0..c1-1 of one row of an encoded frame."""

    __slots__ = ("_grid", "_row", "_c0", "_c1", "_painted")

    def __init__(
        self, grid: CellGrid, row: int, c0: int, c1: int, painted: Painted | None = None
    ) -> None:
        self._grid = grid
        self._row = row
        self._c0 = c0
        self._c1 = c1
        self._painted = painted  # told when the strip is rendered for the terminal
        super().__init__(c1 - c0)

    def segments(self) -> list[Segment]:
        # Textual's own strip operations read these; built only when one of them runs.
        return _run_segments(self._grid, self._row, self._c0, self._c1)

    @property
    def cell_count(self) -> int:
        return self._c1 - self._c0

    def render(self, console: Console) -> str:
        if self._painted is not None:
            self._painted(self._grid, self._row, self._c0, self._c1)
        text = self.rendered
        if text is None:
            text = self.rendered = (self._grid.span(self._row, self._c0, self._c1) + RESET).decode()
        return text

    def crop(self, start: int, end: int | None = None) -> Strip:
        length = self._c1 - self._c0
        start = max(0, start)
        end = length if end is None else min(length, end)
        if start == 0 and end == length:
            return self
        if end <= start:
            return Strip([], 0)
        return RowStrip(self._grid, self._row, self._c0 + start, self._c0 + end, self._painted)

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


class BlankStrip(textual_compat.LazyStrip):
    """`cells` blank cells in `background`, drawn as an erase (ECH) and a cursor move: about 25
    bytes where spaces would cost one a cell. For a thin link, where every byte waits its turn."""

    __slots__ = ("_background", "_cells")

    def __init__(self, cells: int, background: Color | None) -> None:
        self._background = background
        self._cells = cells
        super().__init__(cells)

    def segments(self) -> list[Segment]:
        return [Segment(" " * self._cells, Style(bgcolor=self._background))]

    def render(self, console: Console) -> str:
        background = self._background
        if background is None:
            colour = "\x1b[49m"
        else:
            r, g, b = background.get_truecolor()
            colour = f"\x1b[48;2;{r};{g};{b}m"
        return f"{colour}\x1b[{self._cells}X\x1b[{self._cells}C{RESET.decode()}"

    def crop(self, start: int, end: int | None = None) -> Strip:
        start = max(0, start)
        end = self._cells if end is None else min(self._cells, end)
        if start == 0 and end == self._cells:
            return self
        return BlankStrip(max(0, end - start), self._background)

    def divide(self, cuts: Iterable[int]) -> Sequence[Strip]:
        pieces: list[Strip] = []
        pos = 0
        for cut in cuts:
            if cut > self._cells:
                break
            pieces.append(self.crop(pos, cut))
            pos = cut
        return pieces

    def adjust_cell_length(self, cell_length: int, style: Style | None = None) -> Strip:
        if cell_length == self._cells:
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
        direct: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.mode = mode
        self.tolerance = tolerance
        self.direct = direct
        self._text = make_text_encoder(mode)
        self._graphics = None if mode in TEXT_MODES else make_encoder(mode, cell_px)
        self._grid: CellGrid | None = None
        self._screen = TextScreen(tolerance=tolerance)  # what the terminal shows of the widget
        self._writer: QueueWriter | None = None
        self._frame: Frame | None = None
        self._image_shown = False
        self._image_mode = False  # an image covers the widget, so its cells are left blank
        self._cut_at = 0  # where (a cell, in reading order) the next frame cut to a budget starts
        self._cell_bytes = float(CELL_BYTES)  # what a cell of this picture has cost, on average

    @property
    def grid(self) -> CellGrid | None:
        """The last frame as encoded cells (None before the first frame)."""
        return self._grid

    @property
    def writer(self) -> QueueWriter | None:
        """Counts the frames written straight to the terminal and those dropped meanwhile."""
        return self._writer

    def pixel_box(self) -> tuple[int, int] | None:
        """The largest picture (width, height in pixels) the widget draws at its size: a frame
        scaled to fit this box looks the same as a bigger one. None in sixel and kitty modes,
        whose images use the terminal's real pixels, and before the widget has a size."""
        width, height = self.size
        if self._graphics is not None or not width or not height:
            return None
        return width, height * 2  # two pixels a cell in every text mode

    def show_frame(self, frame: Frame) -> None:
        """Encode `frame` for the current size and redraw only the cells that changed.

        A cell whose colours moved no more than `tolerance` (camera noise, codec ripples) is not a
        change. The changed cells go straight to the terminal when they can (see the module's
        docstring); otherwise each row is repainted by Textual from its first to its last change.
        """
        width, height = self.size
        if not width or not height:
            return
        self._frame = frame
        visible = self.visible_cells()
        if self._graphics is not None and visible is not None and visible.all():
            # The image covers the whole widget: under it Textual needs blank cells, drawn once.
            if not self._image_mode:
                self._image_mode = True
                self._screen.invalidate()
                self.refresh()
            self.app.call_after_refresh(self._draw_image)
            return
        if self._image_mode:
            self._image_mode = False
            self._hide_image()
        writer = self._direct_writer() if visible is not None else None
        if writer is not None and not writer.offer(self._offer_again):
            return
        grid = self._grid = self._text.grid(frame, width, height)
        if writer is not None and visible is not None:
            self._screen.top, self._screen.left = self.content_region.y, self.content_region.x
            budget = writer.budget()
            cut = False
            if budget is not None:
                visible, cells, cut = self._cut(grid, visible, budget)
            data = self._screen.update(grid, visible)
            if budget is not None and data:
                self._cell_bytes += SMOOTHING * (len(data) / cells - self._cell_bytes)
            if data:
                writer.submit(data, cut=cut)
            if cut:
                writer.after(self._offer_again)
            return
        row, first, end = self._screen.changes(grid, merge_gap=width)
        for r, c0, c1 in zip(row.tolist(), first.tolist(), end.tolist(), strict=True):
            self.refresh(Region(c0, r, c1 - c0, 1))

    def on_resize(self) -> None:
        self._grid = None
        self._screen.invalidate()
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
        if self._costly(crop):
            # On a thin link, repainting these cells would hold the terminal for longer than a
            # frame may: Textual repaints the whole screen when an overlay comes or goes (160 KB
            # of video at 160x48, 5 s at 256 kbit/s), and the key that caused it would wait that
            # long to show. Blank them instead; the next direct frames draw them again, cut to
            # the link's budget like any frame.
            for y in crop.line_range:
                self._screen.forget(y, x1, x2)
            if self._writer is not None:
                self._writer.after(self._offer_again)  # even if no new frame comes
            return [BlankStrip(crop.width, self.rich_style.bgcolor)] * crop.height
        painted = self._screen.painted
        return [RowStrip(grid, y, x1, x2, painted) for y in crop.line_range]

    def _costly(self, crop: Region) -> bool:
        """Would drawing `crop` take longer than one direct frame may, while frames go direct?"""
        budget = None if self._writer is None else self._writer.budget()
        if budget is None or crop.area * self._cell_bytes <= budget:
            return False
        return self.visible_cells() is not None  # under a modal Textual draws every frame

    def visible_cells(self) -> npt.NDArray[np.bool_] | None:
        """rows x cols: which of the widget's cells are on screen with no other widget over them.

        None when its screen is not the one showing (a modal or another screen is on top), or
        while Textual's layout and the widget's size disagree (a resize on its way).
        """
        screen = self.screen
        if self.app.screen is not screen:
            return None
        # Textual has no public "what covers me"; its compositor lists widgets topmost first.
        visible = textual_compat.visible_widgets(screen)
        if self not in visible:
            return None
        region, clip = visible[self]
        content = region.shrink(self.styles.gutter)
        if content.size != self.size:
            return None
        mask = np.zeros((content.height, content.width), dtype=bool)

        def paint(area: Region, value: bool) -> None:
            x, y, w, h = area.intersection(content).translate((-content.x, -content.y))
            mask[y : y + h, x : x + w] = value

        paint(clip, True)
        ancestors = set(self.ancestors)
        for widget, (other, other_clip) in visible.items():
            if widget is self:
                break
            if widget not in ancestors:
                paint(other.intersection(other_clip), False)
        return mask

    def unobstructed(self) -> bool:
        """True when the whole widget is on screen and no other widget is drawn over any of it."""
        visible = self.visible_cells()
        return visible is not None and bool(visible.all())

    def _cut(
        self, grid: CellGrid, visible: npt.NDArray[np.bool_], budget: int
    ) -> tuple[npt.NDArray[np.bool_], int, bool]:
        """The cells a frame of about `budget` bytes may rewrite: the changed cells from where the
        last cut frame stopped, in reading order (wrapping round), as many as the picture's cost
        per changed cell allows; how many changed cells that is; and whether any were left out."""
        changed = np.flatnonzero(self._screen.pending(grid, visible))
        allowed = max(MIN_CELLS, int(budget / self._cell_bytes))
        if changed.size <= allowed:
            return visible, changed.size, False
        first = int(np.searchsorted(changed, self._cut_at)) % changed.size
        last = int(changed[(first + allowed - 1) % changed.size])
        start = int(changed[first])
        self._cut_at = last + 1
        # A range in reading order, so runs of changed cells still merge across unchanged ones.
        order = np.zeros(visible.size, dtype=bool)
        if start <= last:
            order[start : last + 1] = True
        else:
            order[start:] = True
            order[: last + 1] = True
        return visible & order.reshape(visible.shape), allowed, True

    def _offer_again(self) -> None:
        if self.is_mounted and self._frame is not None:
            self.show_frame(self._frame)

    def _direct_writer(self) -> QueueWriter | None:
        """The writer for direct frames, or None when there is no terminal to write to."""
        driver = textual_compat.app_driver(self.app)
        # An inline app does not own the whole screen, so its cells have no fixed address.
        if not self.direct or driver is None or self.app.is_headless or driver.is_inline:
            return None
        if self._writer is None:
            backlog = textual_compat.writer_backlog(driver)
            loop = asyncio.get_running_loop()
            self._writer = QueueWriter(
                driver.write, backlog, loop.call_later, pace=self._pace(driver, loop)
            )
        return self._writer

    @staticmethod
    def _pace(driver: Driver, loop: asyncio.AbstractEventLoop) -> LinkPace | None:
        """The terminal's pace, shared by its views; None when no answers can come back."""
        if not textual_compat.answers_queries(driver):
            return None
        pace = _paces.get(driver)
        if pace is None:
            pace = _paces[driver] = LinkPace()
            answered = pace.answered
            # Heard on the driver's input thread; the pace lives on the app's loop.
            textual_compat.on_position_reports(
                driver, lambda when: loop.call_soon_threadsafe(answered, when)
            )
        return pace

    def _write(self, data: bytes) -> None:
        # Images must bypass the compositor, which only knows cells.
        driver = textual_compat.app_driver(self.app)
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
        self._write(synchronized(SAVE_CURSOR + cup(y, x) + image + RESTORE_CURSOR))
        self._image_shown = True

    def _hide_image(self) -> None:
        if self._image_shown and isinstance(self._graphics, KittyEncoder):
            self._write(self._graphics.clear())
        self._image_shown = False

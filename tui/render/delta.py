"""Delta updates for the text modes: rewrite only the cells that changed since the last frame."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from tcall.tui.render.cells import RESET, CellGrid, pack, row_words, uniform_glyph

SYNC_BEGIN = b"\x1b[?2026h"
SYNC_END = b"\x1b[?2026l"
# DECSC / DECRC: what is drawn around another program's output (Textual's) puts its cursor back.
SAVE_CURSOR = b"\x1b7"
RESTORE_CURSOR = b"\x1b8"
# Two changed runs in a row are sent as one span when fewer cells than this lie between them: a new
# span costs a cursor move and a full colour state (about 45 bytes), an unchanged cell about 25.
MERGE_GAP = 2
# Colour steps (of 255) a truecolor cell may drift before it is redrawn: below what anyone sees,
# above a camera's noise and a video codec's ripples, which would otherwise redraw most cells.
NOISE_TOLERANCE = 4

Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


def cup(row: int, col: int) -> bytes:
    """Move the cursor to a zero-based (row, col)."""
    return b"\x1b[%d;%dH" % (row + 1, col + 1)


def synchronized(body: bytes) -> bytes:
    """Wrap one frame so that the terminal shows it all at once (no tearing)."""
    return SYNC_BEGIN + body + SYNC_END


def spans(
    changed: Bools, merge_gap: int = MERGE_GAP, barrier: Bools | None = None
) -> tuple[Ints, Ints, Ints]:
    """Rows, first columns and end columns (exclusive) of the runs of changed cells, with runs
    closer than `merge_gap` cells in the same row joined, unless a `barrier` cell lies between."""
    rows, cols = changed.shape
    edges = np.zeros((rows, cols + 2), dtype=np.int8)
    edges[:, 1:-1] = changed
    step = np.diff(edges, axis=1)
    row, first = np.nonzero(step == 1)
    end = np.nonzero(step == -1)[1]
    if row.size == 0:
        return row, first, end
    opens = np.ones(row.size, dtype=bool)
    opens[1:] = (row[1:] != row[:-1]) | (first[1:] - end[:-1] >= merge_gap)
    if barrier is not None:
        # Barrier cells before each column of a row; across rows the run opens anyway.
        before = np.zeros((rows, cols + 1), dtype=np.int32)
        np.cumsum(barrier, axis=1, out=before[:, 1:])
        opens[1:] |= before[row[1:], first[1:]] > before[row[:-1], end[:-1]]
    closes = np.append(opens[1:], True)
    return row[opens], first[opens], end[closes]


Shown = list[npt.NDArray[np.uint8]]


def changed_cells(grid: CellGrid, shown: Shown, tolerance: int = 0) -> Bools:
    """Which cells of `grid` differ from `shown` (a former grid's `looks`): by glyph, or (in
    truecolor) by more than `tolerance` in any colour channel."""
    changed = np.zeros((grid.rows, grid.cols), dtype=bool)
    for (look, tolerant), was in zip(grid.looks, shown, strict=True):
        diff = np.asarray(cv2.absdiff(look, was), dtype=np.uint8)
        changed |= _channel_max(diff.reshape(look.shape)) > (tolerance if tolerant else 0)
    return changed


def _channel_max(values: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    # One channel at a time: numpy's reductions over a short last axis are slow.
    top = values[..., 0].copy()
    for i in range(1, values.shape[2]):
        np.maximum(top, values[..., i], out=top)
    return top


def _shows(shown: Shown | None, grid: CellGrid) -> bool:
    """Whether `shown` is a record of a grid like `grid` (same encoder, same size)."""
    looks = grid.looks
    return (
        shown is not None
        and len(shown) == len(looks)
        and all(was.shape == look.shape for was, (look, _) in zip(shown, looks, strict=True))
    )


def span_cells(row: Ints, first: Ints, end: Ints, cols: int) -> tuple[Ints, Ints]:
    """The cells of the spans, as flat (row-major) indices in span order, and where each span
    starts among them."""
    length = end - first
    starts = np.cumsum(length) - length
    # Each cell: its span's first cell, plus its place among all the cells less the span's start.
    flat = np.repeat(row * cols + first - starts, length) + np.arange(int(length.sum()))
    return flat, starts


def take_cells(values: npt.NDArray[np.uint8], flat: Ints) -> npt.NDArray[np.uint8]:
    """The cells at `flat` indices of a rows x cols x ... array, as n x ..."""
    cells = np.ascontiguousarray(values).reshape(-1, *values.shape[2:])
    return cells.take(flat, axis=0)


def mark_shown(shown: Shown, grid: CellGrid, flat: Ints) -> None:
    """The cells at `flat` indices were rewritten: the screen shows the new grid there."""
    for was, (look, _) in zip(shown, grid.looks, strict=True):
        was.reshape(-1, was.shape[2])[flat] = take_cells(look, flat)


class TextScreen:
    """Remembers what the screen shows at (`top`, `left`) and writes only what changed.

    A cell counts as changed when its glyph differs, or (in truecolor) when one of its colour
    channels moved by more than `tolerance` from what the screen shows: a camera's noise and a
    codec's ripples then cost nothing, and the error on screen stays under `tolerance` levels.
    """

    def __init__(
        self, top: int = 0, left: int = 0, tolerance: int = 0, merge_gap: int = MERGE_GAP
    ) -> None:
        self.top = top
        self.left = left
        self.tolerance = tolerance
        self.merge_gap = merge_gap
        self._shown: Shown | None = None
        # Cells whose content on screen is not known (never drawn since a clear, or blanked by
        # someone else): rewritten whatever they are meant to show. An update that may rewrite
        # only some cells (`visible`) leaves the others unknown, so a later one still draws them.
        self._unknown: Bools | None = None

    def invalidate(self) -> None:
        """Forget what the screen shows (after a resize or a clear): the next frame is whole."""
        self._shown = None
        self._unknown = None

    def forget(self, row: int, c0: int, c1: int) -> None:
        """Cells `c0` to `c1 - 1` of `row` no longer show what was drawn there: draw them again."""
        if self._unknown is not None:
            self._unknown[row, c0:c1] = True

    def painted(self, grid: CellGrid, row: int, c0: int, c1: int) -> None:
        """Someone else drew cells `c0` to `c1 - 1` of `row` of `grid` on the screen."""
        shown = self._shown
        if shown is not None and _shows(shown, grid):
            for was, (look, _) in zip(shown, grid.looks, strict=True):
                was[row, c0:c1] = look[row, c0:c1]
            if self._unknown is not None:
                self._unknown[row, c0:c1] = False

    def changes(
        self, grid: CellGrid, visible: Bools | None = None, merge_gap: int | None = None
    ) -> tuple[Ints, Ints, Ints]:
        """The spans to rewrite to bring the screen to `grid`, counted as shown from now on.

        Only `visible` cells (rows x cols, default all) are rewritten, and no span crosses a hidden
        one: what is hidden is drawn by whoever uncovers it (see `painted`).
        """
        row, first, end, _ = self._changes(grid, visible, merge_gap)
        return row, first, end

    def _changes(
        self, grid: CellGrid, visible: Bools | None, merge_gap: int | None
    ) -> tuple[Ints, Ints, Ints, tuple[Ints, Ints]]:
        """`changes`, and the spans' cells (see `span_cells`)."""
        shown = self._shown
        if shown is None or not _shows(shown, grid):
            shown = self._shown = [look.copy() for look, _ in grid.looks]
            self._unknown = np.ones((grid.rows, grid.cols), dtype=bool)
        changed = self.pending(grid)
        barrier = None
        if visible is not None:
            changed &= visible
            barrier = ~visible
        row, first, end = spans(
            changed, self.merge_gap if merge_gap is None else merge_gap, barrier
        )
        cells = span_cells(row, first, end, grid.cols)
        if row.size:
            mark_shown(shown, grid, cells[0])
            if self._unknown is not None:
                self._unknown.reshape(-1)[cells[0]] = False
        return row, first, end, cells

    def pending(self, grid: CellGrid, visible: Bools | None = None) -> Bools:
        """Which cells (rows x cols) `changes` and `update` would rewrite now; nothing is
        counted as shown (a caller with a byte budget picks which of them to send)."""
        shown = self._shown
        if shown is None or not _shows(shown, grid):
            changed = np.ones((grid.rows, grid.cols), dtype=bool)
        else:
            changed = changed_cells(grid, shown, self.tolerance)
            if self._unknown is not None:
                changed |= self._unknown
        return changed if visible is None else changed & visible

    def update(self, grid: CellGrid, visible: Bools | None = None) -> bytes:
        """Bytes that bring the screen to `grid`, inside synchronized output; the cursor is left
        where it was."""
        row, first, end, cells = self._changes(grid, visible, None)
        if row.size == 0:
            return b""
        body = span_bytes(grid, row, first, end, self.top, self.left, cells)
        return synchronized(SAVE_CURSOR + body + RESET + RESTORE_CURSOR)


def cursor_moves(row: Ints, col: Ints) -> npt.NDArray[np.uint32]:
    """`cup(row, col)` for each pair (zero-based, below 9999), as n x 3 zero-padded words."""
    n = row.size
    text = np.zeros((n, 12), dtype=np.uint8)
    text[:, 0:2] = np.frombuffer(b"\x1b[", dtype=np.uint8)
    text[:, 6] = ord(";")
    text[:, 11] = ord("H")
    for at, values in ((2, row + 1), (7, col + 1)):
        for i, power in enumerate((1000, 100, 10, 1)):
            # No leading zeros: a zero byte is dropped when the words are packed.
            text[:, at + i] = (48 + values // power % 10) * (values >= power)
    return text.view(np.uint32)


def span_bytes(
    grid: CellGrid,
    row: Ints,
    first: Ints,
    end: Ints,
    top: int,
    left: int,
    cells: tuple[Ints, Ints] | None = None,
) -> bytes:
    """Each span: a cursor move, then its cells, the first of them with its full colour state.

    Only the cells inside spans are encoded: they are gathered into one strip, with each span's
    first cell marked fresh so it sets both colours whatever came before it, and led by its
    cursor move, so the whole update comes out of one vectorised pass. `cells` is the spans'
    `span_cells`, when the caller has them already.
    """
    flat, starts = cells if cells is not None else span_cells(row, first, end, grid.cols)
    total = flat.size
    fresh = np.zeros((1, total), dtype=bool)
    fresh[0, starts] = True
    lead = np.zeros((1, total, 3), dtype=np.uint32)
    lead[0, starts] = cursor_moves(row + top, first + left)

    def pick(values: npt.NDArray[np.uint8] | None) -> npt.NDArray[np.uint8] | None:
        return None if values is None else take_cells(values, flat)[None]

    g = grid.glyphs
    # The same glyph in every cell stays a broadcast view, which encodes as a constant.
    glyphs = np.broadcast_to(g[0, 0], (1, total, g.shape[2])) if uniform_glyph(g) else pick(g)
    assert glyphs is not None
    return pack(row_words(glyphs, pick(grid.colours), grid.codes, fresh=fresh, lead=lead))

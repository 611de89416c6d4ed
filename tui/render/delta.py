"""Delta updates for the text modes: rewrite only the cells that changed since the last frame."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from tui.render.cells import RESET, CellGrid, encode

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


def changed_cells(grid: CellGrid, shown: npt.NDArray[np.uint8], tolerance: int = 0) -> Bools:
    """Which cells of `grid` differ from `shown` (a former grid's `cells`): by glyph, or (in
    truecolor) by more than `tolerance` in any colour channel."""
    new = grid.cells
    rows, cols, depth = new.shape
    # One column of bytes at a time: numpy's reductions over a short last axis are slow.
    diff = np.asarray(cv2.absdiff(new, shown), dtype=np.uint8).reshape(rows * cols, depth)
    glyph = grid.glyphs.shape[2]
    if not tolerance or grid.fg is None or grid.fg.shape[2] != 3:
        glyph = depth
    moved = _column_max(diff, 0, glyph) > 0
    if glyph < depth:
        moved |= _column_max(diff, glyph, depth) > tolerance
    return moved.reshape(rows, cols)


def _column_max(values: npt.NDArray[np.uint8], start: int, stop: int) -> npt.NDArray[np.uint8]:
    top = values[:, start].copy()
    for i in range(start + 1, stop):
        np.maximum(top, values[:, i], out=top)
    return top


def mark_shown(
    shown: npt.NDArray[np.uint8], grid: CellGrid, row: Ints, first: Ints, end: Ints
) -> None:
    """Every cell of the spans was rewritten: the screen shows the new grid there."""
    edges = np.zeros((grid.rows, grid.cols + 1), dtype=np.int8)
    edges[row, first] = 1  # spans in a row never share a first column, nor an end column
    edges[row, end] -= 1
    inside = np.cumsum(edges, axis=1, dtype=np.int8)[:, :-1].view(bool)
    np.copyto(shown, grid.cells, where=inside[..., None])


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
        self._shown: npt.NDArray[np.uint8] | None = None

    def invalidate(self) -> None:
        """Forget what the screen shows (after a resize or a clear): the next frame is whole."""
        self._shown = None

    def painted(self, grid: CellGrid, row: int, c0: int, c1: int) -> None:
        """Someone else drew cells `c0` to `c1 - 1` of `row` of `grid` on the screen."""
        shown = self._shown
        if shown is not None and shown.shape == grid.cells.shape:
            shown[row, c0:c1] = grid.cells[row, c0:c1]

    def changes(
        self, grid: CellGrid, visible: Bools | None = None, merge_gap: int | None = None
    ) -> tuple[Ints, Ints, Ints]:
        """The spans to rewrite to bring the screen to `grid`, counted as shown from now on.

        Only `visible` cells (rows x cols, default all) are rewritten, and no span crosses a hidden
        one: what is hidden is drawn by whoever uncovers it (see `painted`).
        """
        shown = self._shown
        if shown is None or shown.shape != grid.cells.shape:
            shown = self._shown = grid.cells.copy()
            changed = np.ones(grid.cells.shape[:2], dtype=bool)
        else:
            changed = changed_cells(grid, shown, self.tolerance)
        barrier = None
        if visible is not None:
            changed &= visible
            barrier = ~visible
        row, first, end = spans(
            changed, self.merge_gap if merge_gap is None else merge_gap, barrier
        )
        if row.size:
            mark_shown(shown, grid, row, first, end)
        return row, first, end

    def update(self, grid: CellGrid, visible: Bools | None = None) -> bytes:
        """Bytes that bring the screen to `grid`, inside synchronized output; the cursor is left
        where it was."""
        row, first, end = self.changes(grid, visible)
        if row.size == 0:
            return b""
        body = span_bytes(grid, row, first, end, self.top, self.left)
        return synchronized(SAVE_CURSOR + body + RESET + RESTORE_CURSOR)


def cursor_moves(row: Ints, col: Ints) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """`cup(row, col)` for each pair (zero-based, below 9999), as n x 12 bytes and keep-flags."""
    n = row.size
    text = np.empty((n, 12), dtype=np.uint8)
    keep = np.ones((n, 12), dtype=np.uint8)
    text[:, 0:2] = np.frombuffer(b"\x1b[", dtype=np.uint8)
    text[:, 6] = ord(";")
    text[:, 11] = ord("H")
    for at, values in ((2, row + 1), (7, col + 1)):
        for i, power in enumerate((1000, 100, 10, 1)):
            text[:, at + i] = 48 + values // power % 10
            keep[:, at + i] = values >= power  # no leading zeros
    return text, keep


def span_bytes(grid: CellGrid, row: Ints, first: Ints, end: Ints, top: int, left: int) -> bytes:
    """Each span: a cursor move, then its cells, the first of them with its full colour state.

    Only the cells inside spans are encoded: they are gathered into one strip, with each span's
    first cell marked fresh so it sets both colours whatever came before it, and led by its
    cursor move, so the whole update comes out of one vectorised pass.
    """
    length = end - first
    total = int(length.sum())
    starts = np.cumsum(length) - length
    # For each gathered cell: its row, and its column (the span's first plus the offset within).
    cell_row = np.repeat(row, length)
    cell_col = np.repeat(first - starts, length) + np.arange(total)
    fresh = np.zeros((1, total), dtype=bool)
    fresh[0, starts] = True
    moves, move_keep = cursor_moves(row + top, first + left)
    lead = np.zeros((total, 12), dtype=np.uint8)
    lead_keep = np.zeros((total, 12), dtype=np.uint8)
    lead[starts] = moves
    lead_keep[starts] = move_keep

    def pick(values: npt.NDArray[np.uint8] | None) -> npt.NDArray[np.uint8] | None:
        return None if values is None else values[cell_row, cell_col][None]

    glyphs = pick(grid.glyphs)
    assert glyphs is not None
    data, _ = encode(
        glyphs,
        pick(grid.fg),
        pick(grid.bg),
        grid.fg_code,
        grid.bg_code,
        fresh=fresh,
        lead=(lead, lead_keep),
    )
    return data

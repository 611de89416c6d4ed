"""Delta updates for the text modes: rewrite only the cells that changed since the last frame."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tui.render.cells import RESET, CellGrid, encode

SYNC_BEGIN = b"\x1b[?2026h"
SYNC_END = b"\x1b[?2026l"
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


def spans(changed: Bools, merge_gap: int = MERGE_GAP) -> tuple[Ints, Ints, Ints]:
    """Rows, first columns and end columns (exclusive) of the runs of changed cells, with runs
    closer than `merge_gap` cells in the same row joined."""
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
    closes = np.append(opens[1:], True)
    return row[opens], first[opens], end[closes]


def changed_cells(grid: CellGrid, shown: npt.NDArray[np.uint8], tolerance: int = 0) -> Bools:
    """Which cells of `grid` differ from `shown` (a former grid's `cells`): by glyph, or (in
    truecolor) by more than `tolerance` in any colour channel."""
    new = grid.cells
    if not tolerance or grid.fg is None or grid.fg.shape[2] != 3:
        return np.any(new != shown, axis=2)
    glyph = new.shape[2] - 6  # glyph bytes, then fg RGB, then bg RGB
    moved = np.abs(new[..., glyph:].astype(np.int16) - shown[..., glyph:]).max(axis=2)
    return (moved > tolerance) | np.any(new[..., :glyph] != shown[..., :glyph], axis=2)


def mark_shown(
    shown: npt.NDArray[np.uint8], grid: CellGrid, row: Ints, first: Ints, end: Ints
) -> None:
    """Every cell of the spans was rewritten: the screen shows the new grid there."""
    edges = np.zeros((grid.rows, grid.cols + 1), dtype=np.int8)
    np.add.at(edges, (row, first), 1)
    np.add.at(edges, (row, end), -1)
    inside = np.cumsum(edges, axis=1)[:, :-1].astype(bool)
    shown[inside] = grid.cells[inside]


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

    def update(self, grid: CellGrid) -> bytes:
        """Bytes that bring the screen to `grid`, inside synchronized output."""
        shown = self._shown
        if shown is None or shown.shape != grid.cells.shape:
            shown = self._shown = grid.cells.copy()
            changed = np.ones(grid.cells.shape[:2], dtype=bool)
        else:
            changed = changed_cells(grid, shown, self.tolerance)
        row, first, end = spans(changed, self.merge_gap)
        if row.size == 0:
            return b""
        mark_shown(shown, grid, row, first, end)
        return synchronized(_span_bytes(grid, row, first, end, self.top, self.left) + RESET)


def _span_bytes(grid: CellGrid, row: Ints, first: Ints, end: Ints, top: int, left: int) -> bytes:
    """Each span: a cursor move, then its cells, the first of them with its full colour state.

    Only the cells inside spans are encoded: they are gathered into one strip, with each span's
    first cell marked fresh so it sets both colours whatever came before it.
    """
    length = end - first
    total = int(length.sum())
    starts = np.cumsum(length) - length
    # For each gathered cell: its row, and its column (the span's first plus the offset within).
    cell_row = np.repeat(row, length)
    cell_col = np.repeat(first - starts, length) + np.arange(total)
    fresh = np.zeros((1, total), dtype=bool)
    fresh[0, starts] = True

    def pick(values: npt.NDArray[np.uint8] | None) -> npt.NDArray[np.uint8] | None:
        return None if values is None else values[cell_row, cell_col][None]

    glyphs = pick(grid.glyphs)
    assert glyphs is not None
    data, lengths = encode(
        glyphs, pick(grid.fg), pick(grid.bg), grid.fg_code, grid.bg_code, fresh=fresh
    )
    cuts = np.cumsum(lengths[0])[np.cumsum(length) - 1]
    moves = [cup(r + top, c + left) for r, c in zip(row.tolist(), first.tolist(), strict=True)]
    out: list[bytes] = []
    begin = 0
    for move, stop in zip(moves, cuts.tolist(), strict=True):
        out += (move, data[begin:stop])
        begin = stop
    return b"".join(out)

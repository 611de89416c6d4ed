"""Delta updates for the text modes: rewrite only the cells that changed since the last frame."""

from __future__ import annotations

import numpy as np

from tui.render.cells import RESET, CellGrid

SYNC_BEGIN = b"\x1b[?2026h"
SYNC_END = b"\x1b[?2026l"


def cup(row: int, col: int) -> bytes:
    """Move the cursor to a zero-based (row, col)."""
    return b"\x1b[%d;%dH" % (row + 1, col + 1)


def synchronized(body: bytes) -> bytes:
    """Wrap one frame so that the terminal shows it all at once (no tearing)."""
    return SYNC_BEGIN + body + SYNC_END


class TextScreen:
    """Remembers the grid last written at (`top`, `left`) of the screen and writes only changes.

    In each changed row it rewrites the span from the first to the last changed cell, so a still
    background costs nothing and a moving object costs about its own width.
    """

    def __init__(self, top: int = 0, left: int = 0) -> None:
        self.top = top
        self.left = left
        self._shown: CellGrid | None = None

    def invalidate(self) -> None:
        """Forget what the screen shows (after a resize or a clear): the next frame is whole."""
        self._shown = None

    def update(self, grid: CellGrid) -> bytes:
        """Bytes that turn the last grid into `grid`, inside synchronized output."""
        shown, self._shown = self._shown, grid
        if shown is None or shown.cells.shape != grid.cells.shape:
            spans = [(r, 0, grid.cols) for r in range(grid.rows)]
        else:
            changed = np.any(grid.cells != shown.cells, axis=2)
            rows = np.flatnonzero(changed.any(axis=1))
            first = np.argmax(changed[rows], axis=1)
            last = grid.cols - np.argmax(changed[rows, ::-1], axis=1)
            spans = list(zip(rows.tolist(), first.tolist(), last.tolist(), strict=True))
        if not spans:
            return b""
        body = b"".join(
            cup(self.top + r, self.left + c0) + grid.span(r, c0, c1) + RESET for r, c0, c1 in spans
        )
        return synchronized(body)

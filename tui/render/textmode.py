"""What every text-mode encoder shares: a frame becomes a `CellGrid`, and a grid becomes bytes."""

from __future__ import annotations

from abc import ABC, abstractmethod

from tui.render.cells import RESET, CellGrid
from tui.render.fit import Frame


class TextEncoder(ABC):
    """An encoder whose output is characters in cells, so it can be diffed and clipped."""

    mode: str

    @abstractmethod
    def grid(self, frame: Frame, cols: int, rows: int) -> CellGrid:
        """Encode `frame` letterboxed into `cols` x `rows` cells."""

    def encode(self, frame: Frame, cols: int, rows: int) -> bytes:
        """The bytes that draw the frame from the cursor's position, leaving the cursor there.

        Rows are joined with cursor movements rather than newlines, so drawing on the last line of
        the screen never scrolls it.
        """
        return grid_bytes(self.grid(frame, cols, rows))


def grid_bytes(grid: CellGrid) -> bytes:
    """A whole grid, drawn relative to the cursor (which ends where it started)."""
    back = b"\x1b[%dD" % grid.cols
    body = (RESET + back + b"\x1b[B").join(grid.row(r) for r in range(grid.rows))
    # CSI 0 A would still move one line up, so a single row needs no movement at all.
    up = b"\x1b[%dA" % (grid.rows - 1) if grid.rows > 1 else b""
    return body + RESET + back + up

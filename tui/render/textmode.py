"""What every text-mode encoder shares: a frame becomes a `CellGrid`, and a grid becomes bytes."""

from __future__ import annotations

from abc import ABC, abstractmethod

from tcall.tui.render.cells import RESET, CellGrid, pack, words_of
from tcall.tui.render.fit import Frame


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
    """A whole grid, drawn relative to the cursor (which ends where it started).

    Each row ends with a reset and a move back to the first column and one line down (the last
    row: back up to the first line), added as words after the row's cells so the whole frame is
    packed in one pass.
    """
    rows, cols = grid.rows, grid.cols
    back = RESET + b"\x1b[%dD" % cols
    # CSI 0 A would still move one line up, so a single row needs no movement at all.
    up = b"\x1b[%dA" % (rows - 1) if rows > 1 else b""
    down, last = words_of(back + b"\x1b[B"), words_of(back + up)
    spare = max(down.size, last.size)
    out = grid.row_words(spare)
    out[:, -spare:] = 0
    out[:-1, -spare : out.shape[1] - spare + down.size] = down
    out[-1, -spare : out.shape[1] - spare + last.size] = last
    return pack(out)

"""Truecolor half-block encoder: `▀` with the top pixel as foreground and the bottom as background."""

from __future__ import annotations

import numpy as np

from tui.render.cells import CellGrid, build
from tui.render.fit import Frame, letterbox
from tui.render.textmode import TextEncoder

UPPER_HALF = "▀".encode()


def glyph_grid(rows: int, cols: int, glyph: bytes) -> np.ndarray:
    """A rows x cols x len(glyph) array holding the same glyph in every cell (a read-only view)."""
    one = np.frombuffer(glyph, dtype=np.uint8)
    return np.broadcast_to(one, (rows, cols, one.size))


class HalfBlockEncoder(TextEncoder):
    """Two square pixels per cell in 24-bit colour."""

    mode = "halfblock"

    def grid(self, frame: Frame, cols: int, rows: int) -> CellGrid:
        # Contiguous rows, so the cells a delta update needs are one flat take away.
        pixels = letterbox(frame, cols, rows * 2).reshape(rows, 2, cols, 3)
        fg, bg = np.ascontiguousarray(pixels[:, 0]), np.ascontiguousarray(pixels[:, 1])
        return build(glyph_grid(rows, cols, UPPER_HALF), fg=fg, bg=bg)

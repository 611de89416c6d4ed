"""ASCII greyscale encoder: one character per cell from a brightness ramp, no colour at all."""

from __future__ import annotations

import numpy as np

from tcall.tui.render.cells import CellGrid, build
from tcall.tui.render.fit import Frame, letterbox
from tcall.tui.render.textmode import TextEncoder

RAMP = np.frombuffer(b" .:-=+*#%@", dtype=np.uint8)


class AsciiEncoder(TextEncoder):
    """Works in any terminal, down to a serial console."""

    mode = "ascii"

    def grid(self, frame: Frame, cols: int, rows: int) -> CellGrid:
        # Fit as half-blocks do (a cell is two square pixels tall), then average each pair.
        canvas = letterbox(frame, cols, rows * 2).astype(np.uint16)
        pixels = (canvas[0::2] + canvas[1::2]) // 2
        # Rec. 601 luma in integers: 0.299, 0.587, 0.114 scaled by 256.
        luma = (77 * pixels[..., 0] + 150 * pixels[..., 1] + 29 * pixels[..., 2]) >> 8
        glyphs = RAMP[(luma * RAMP.size) >> 8]
        return build(glyphs[..., None])

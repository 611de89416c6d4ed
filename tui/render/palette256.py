"""256-colour half-block encoder, for terminals without truecolor: xterm's 6x6x6 cube and grey ramp."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tcall.tui.render.cells import PALETTE, CellGrid, build
from tcall.tui.render.fit import Frame, letterbox
from tcall.tui.render.halfblock import UPPER_HALF, glyph_grid
from tcall.tui.render.textmode import TextEncoder

CUBE_LEVELS = np.array([0, 95, 135, 175, 215, 255], dtype=np.int32)


def xterm_index(rgb: Frame) -> npt.NDArray[np.uint8]:
    """The nearest xterm-256 colour (16-255) of every pixel of an H x W x 3 array."""
    v = rgb.astype(np.int32)
    # The cube's levels are 0, 95, then every 40: the midpoints are 48 and 115, then 40 apart.
    level = np.where(v < 48, 0, np.where(v < 115, 1, (v - 35) // 40))
    cube_rgb = CUBE_LEVELS[level]
    cube = 16 + 36 * level[..., 0] + 6 * level[..., 1] + level[..., 2]
    grey_step = np.clip((v.sum(axis=2) // 3 - 3) // 10, 0, 23)
    grey_val = (8 + 10 * grey_step)[..., None]
    cube_err = ((v - cube_rgb) ** 2).sum(axis=2)
    grey_err = ((v - grey_val) ** 2).sum(axis=2)
    return np.where(grey_err < cube_err, 232 + grey_step, cube).astype(np.uint8)


class Palette256Encoder(TextEncoder):
    """Half-blocks coloured from xterm's 256-colour palette."""

    mode = "256"

    def grid(self, frame: Frame, cols: int, rows: int) -> CellGrid:
        index = xterm_index(letterbox(frame, cols, rows * 2)).reshape(rows, 2, cols, 1)
        colours = np.ascontiguousarray(index.transpose(0, 2, 1, 3))  # each cell's top and bottom
        return build(glyph_grid(rows, cols, UPPER_HALF), colours, PALETTE)

"""Turn per-cell colours and glyphs into terminal bytes in one vectorised pass.

Every cell is laid out in a fixed-width template (`ESC [ 38;2;RRR;GGG;BBB ; 48;2;... m glyph`) and a
mask then drops what the terminal doesn't need: leading zeros, and the colour that equals the
previous cell's. `template[mask]` compacts the whole frame at once, and the per-cell lengths give the
offsets that let a caller cut any span of cells out of the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
Offsets = npt.NDArray[np.int64]

RESET = b"\x1b[0m"


@dataclass(frozen=True)
class CellGrid:
    """One encoded text frame: `rows` x `cols` cells, each row starting from a known SGR state."""

    data: bytes
    glyph: Offsets  # rows x cols: where each cell's glyph starts in `data`
    end: Offsets  # rows x cols: where each cell ends in `data`
    row_start: Offsets  # rows: where each row starts in `data`
    cells: U8  # rows x cols x K: everything that makes a cell look the way it does
    fg: U8 | None
    bg: U8 | None
    fg_code: bytes
    bg_code: bytes

    @property
    def rows(self) -> int:
        return int(self.cells.shape[0])

    @property
    def cols(self) -> int:
        return int(self.cells.shape[1])

    def row(self, r: int) -> bytes:
        """Row `r` as written from its first column; ends without a reset."""
        return self.data[int(self.row_start[r]) : int(self.end[r, -1])]

    def span(self, r: int, c0: int, c1: int) -> bytes:
        """Cells `c0` to `c1 - 1` of row `r`, starting with the full colour state of cell `c0`."""
        return self.head(r, c0) + self.data[int(self.glyph[r, c0]) : int(self.end[r, c1 - 1])]

    def head(self, r: int, c: int) -> bytes:
        """The SGR sequence that sets both colours of cell (`r`, `c`) from any state."""
        params = []
        if self.fg is not None:
            params.append(self.fg_code + b"".join(b";%d" % v for v in self.fg[r, c]))
        if self.bg is not None:
            params.append(self.bg_code + b"".join(b";%d" % v for v in self.bg[r, c]))
        return b"\x1b[" + b";".join(params) + b"m" if params else b""


def _changed(values: U8) -> npt.NDArray[np.bool_]:
    """True where a cell's colour differs from its left neighbour; every row's first cell is True."""
    out = np.ones(values.shape[:2], dtype=bool)
    out[:, 1:] = np.any(values[:, 1:] != values[:, :-1], axis=2)
    return out


def _section(
    code: bytes, values: U8, keep: npt.NDArray[np.bool_]
) -> tuple[list[npt.NDArray[np.uint8]], list[npt.NDArray[np.bool_]]]:
    """Template columns and mask columns for `code;v1;v2;...` with leading zeros dropped."""
    n = keep.shape[0]
    cols: list[npt.NDArray[np.uint8]] = []
    masks: list[npt.NDArray[np.bool_]] = []
    for ch in code:
        cols.append(np.full(n, ch, dtype=np.uint8))
        masks.append(keep)
    for i in range(values.shape[1]):
        v = values[:, i]
        cols += [
            np.full(n, ord(";"), dtype=np.uint8),
            (v // 100 + 48).astype(np.uint8),
            (v // 10 % 10 + 48).astype(np.uint8),
            (v % 10 + 48).astype(np.uint8),
        ]
        masks += [keep, keep & (v >= 100), keep & (v >= 10), keep]
    return cols, masks


def build(
    glyphs: U8,
    fg: U8 | None = None,
    bg: U8 | None = None,
    fg_code: bytes = b"38;2",
    bg_code: bytes = b"48;2",
) -> CellGrid:
    """Encode a grid of cells.

    `glyphs` is rows x cols x G (the UTF-8 bytes of each cell's character, all G long); `fg` and `bg`
    are rows x cols x K colour parameters (K=3 for RGB, 1 for a palette index), or None to leave
    that colour alone.
    """
    rows, cols_n, g = glyphs.shape
    n = rows * cols_n
    tcols: list[npt.NDArray[np.uint8]] = []
    tmask: list[npt.NDArray[np.bool_]] = []
    fgc = _changed(fg).reshape(n) if fg is not None else np.zeros(n, dtype=bool)
    bgc = _changed(bg).reshape(n) if bg is not None else np.zeros(n, dtype=bool)
    anyc = fgc | bgc
    if fg is not None or bg is not None:
        tcols += [np.full(n, 0x1B, dtype=np.uint8), np.full(n, ord("["), dtype=np.uint8)]
        tmask += [anyc, anyc]
        if fg is not None:
            c, m = _section(fg_code, fg.reshape(n, -1), fgc)
            tcols += c
            tmask += m
        if fg is not None and bg is not None:
            tcols.append(np.full(n, ord(";"), dtype=np.uint8))
            tmask.append(fgc & bgc)
        if bg is not None:
            c, m = _section(bg_code, bg.reshape(n, -1), bgc)
            tcols += c
            tmask += m
        tcols.append(np.full(n, ord("m"), dtype=np.uint8))
        tmask.append(anyc)
    flat_glyphs = glyphs.reshape(n, g)
    always = np.ones(n, dtype=bool)
    for i in range(g):
        tcols.append(flat_glyphs[:, i])
        tmask.append(always)
    template = np.stack(tcols, axis=1)
    mask = np.stack(tmask, axis=1)
    end = np.cumsum(mask.sum(axis=1, dtype=np.int64)).reshape(rows, cols_n)
    lengths = mask.sum(axis=1, dtype=np.int64).reshape(rows, cols_n)
    parts = [glyphs]
    if fg is not None:
        parts.append(fg)
    if bg is not None:
        parts.append(bg)
    return CellGrid(
        data=template[mask].tobytes(),
        glyph=end - g,
        end=end,
        row_start=end[:, 0] - lengths[:, 0],
        cells=np.concatenate(parts, axis=2),
        fg=fg,
        bg=bg,
        fg_code=fg_code,
        bg_code=bg_code,
    )

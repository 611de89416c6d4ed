"""Turn per-cell colours and glyphs into terminal bytes in one vectorised pass.

Every cell is laid out as a row of 4-byte words (`ESC [`, `38;2`, `;R`, `;G`, `;B`, `;`, `48;2`, ...,
`m` and the glyph), each number's word looked up in a 256-entry table, and a keep-flag per byte
drops what the terminal doesn't need: padding, and a colour equal to the previous cell's. One
`np.compress` then packs the whole frame, and the per-cell lengths give the offsets that let a
caller cut any span of cells out of the result.
"""

from __future__ import annotations

from functools import cache, cached_property

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
Offsets = npt.NDArray[np.int64]

RESET = b"\x1b[0m"


class CellGrid:
    """One text frame: `rows` x `cols` cells. Its bytes are encoded on first use, so a caller that
    only needs some cells (a delta update) never pays for the rest.

    In `data` every row starts from a known SGR state: its first cell sets both colours.
    """

    def __init__(
        self,
        glyphs: U8,
        fg: U8 | None = None,
        bg: U8 | None = None,
        fg_code: bytes = b"38;2",
        bg_code: bytes = b"48;2",
    ) -> None:
        self.glyphs = glyphs  # rows x cols x G: the UTF-8 bytes of each cell's glyph
        self.fg = fg  # rows x cols x K colour parameters, or None
        self.bg = bg
        self.fg_code = fg_code
        self.bg_code = bg_code
        layers = [glyphs] + [v for v in (fg, bg) if v is not None]
        # Everything that makes a cell look the way it does, for comparing frames.
        self.cells: U8 = np.concatenate(layers, axis=2)

    @property
    def rows(self) -> int:
        return int(self.cells.shape[0])

    @property
    def cols(self) -> int:
        return int(self.cells.shape[1])

    @cached_property
    def _encoded(self) -> tuple[bytes, Offsets]:
        data, lengths = encode(self.glyphs, self.fg, self.bg, self.fg_code, self.bg_code)
        return data, np.cumsum(lengths).reshape(self.rows, self.cols)

    @property
    def data(self) -> bytes:
        return self._encoded[0]

    @property
    def end(self) -> Offsets:
        """rows x cols: where each cell ends in `data`."""
        return self._encoded[1]

    @property
    def glyph(self) -> Offsets:
        """rows x cols: where each cell's glyph starts in `data`."""
        return self.end - self.glyphs.shape[2]

    def row(self, r: int) -> bytes:
        """Row `r` as written from its first column; ends without a reset."""
        start = int(self.end[r - 1, -1]) if r else 0
        return self.data[start : int(self.end[r, -1])]

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


def _decimal_tables() -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], Offsets]:
    """For each byte value: `;` and its decimal digits, and the keep-mask of those bytes, each
    packed left-aligned into one 4-byte word, and how many bytes they take."""
    text = np.zeros((256, 4), dtype=np.uint8)
    keep = np.zeros((256, 4), dtype=np.uint8)
    lengths = np.zeros(256, dtype=np.int64)
    for v in range(256):
        b = b";%d" % v
        text[v, : len(b)] = np.frombuffer(b, dtype=np.uint8)
        keep[v, : len(b)] = 1
        lengths[v] = len(b)
    return text.view(np.uint32).ravel(), keep.view(np.uint32).ravel(), lengths


DECIMAL, DECIMAL_KEEP, DECIMAL_LEN = _decimal_tables()


def _changed(values: U8) -> npt.NDArray[np.bool_]:
    """True where a cell's colour differs from its left neighbour; every row's first cell is True."""
    # One integer per cell, so a single comparison covers every channel.
    packed = values[..., 0].astype(np.uint32)
    for i in range(1, values.shape[2]):
        packed = (packed << np.uint32(8)) | values[..., i].astype(np.uint32)
    out = np.ones(values.shape[:2], dtype=bool)
    np.not_equal(packed[:, 1:], packed[:, :-1], out=out[:, 1:])
    return out


Words = npt.NDArray[np.uint32]


def _words(chunk: npt.NDArray[np.uint8], keep: npt.NDArray[np.uint8]) -> tuple[Words, Words]:
    """n x B bytes and their keep-flags (0/1), zero-padded to whole 4-byte words."""
    pad = -chunk.shape[1] % 4
    if pad:
        chunk = np.pad(chunk, ((0, 0), (0, pad)))
        keep = np.pad(keep, ((0, 0), (0, pad)))
    return np.ascontiguousarray(chunk).view(np.uint32), np.ascontiguousarray(keep).view(np.uint32)


@cache
def _constant_words(chunk: bytes) -> tuple[Words, Words]:
    return _words(
        np.frombuffer(chunk, dtype=np.uint8)[None, :], np.ones((1, len(chunk)), dtype=np.uint8)
    )


def _constant(chunk: bytes, keep: npt.NDArray[np.bool_]) -> tuple[Words, Words]:
    """`chunk` in every cell, kept in the cells where `keep` is True."""
    text, flags = _constant_words(chunk)
    return np.broadcast_to(text, (keep.size, text.shape[1])), flags * keep[:, None]


def _digits_length(values: U8) -> Offsets:
    """Bytes that `_numbers` keeps for each cell."""
    total = DECIMAL_LEN[values[:, 0]]
    for i in range(1, values.shape[1]):
        total = total + DECIMAL_LEN[values[:, i]]
    return total


def _numbers(values: U8, keep: npt.NDArray[np.bool_]) -> tuple[Words, Words]:
    """`;v1;v2;...` from an n x K array: each value is one word, looked up in a table."""
    return DECIMAL[values], DECIMAL_KEEP[values] * keep[:, None]


def build(
    glyphs: U8,
    fg: U8 | None = None,
    bg: U8 | None = None,
    fg_code: bytes = b"38;2",
    bg_code: bytes = b"48;2",
) -> CellGrid:
    """A grid of cells (see `encode` for the arguments); its bytes are made when first needed."""
    return CellGrid(glyphs, fg, bg, fg_code, bg_code)


def encode(
    glyphs: U8,
    fg: U8 | None = None,
    bg: U8 | None = None,
    fg_code: bytes = b"38;2",
    bg_code: bytes = b"48;2",
    fresh: npt.NDArray[np.bool_] | None = None,
    lead: tuple[U8, U8] | None = None,
) -> tuple[bytes, Offsets]:
    """The bytes of a grid of cells, and the length of each cell in them (rows x cols).

    `glyphs` is rows x cols x G (the UTF-8 bytes of each cell's character, all G long); `fg` and `bg`
    are rows x cols x K colour parameters (K=3 for RGB, 1 for a palette index), or None to leave
    that colour alone. A colour equal to the previous cell's is left out, except in the first cell
    of each row and in the cells where `fresh` (rows x cols) is True. `lead` (bytes and 0/1
    keep-flags, each rows*cols x L) goes before each cell, where kept: cursor moves, say.
    """
    rows, cols_n, g = glyphs.shape
    n = rows * cols_n
    flat_glyphs = glyphs.reshape(n, g)
    lengths = np.full(n, g, dtype=np.int64)
    if fg is None and bg is None and lead is None:
        data = np.ascontiguousarray(flat_glyphs).tobytes()
    else:
        forced = fresh.reshape(n) if fresh is not None else np.zeros(n, dtype=bool)
        fgc = _changed(fg).reshape(n) | forced if fg is not None else np.zeros(n, dtype=bool)
        bgc = _changed(bg).reshape(n) | forced if bg is not None else np.zeros(n, dtype=bool)
        anyc = fgc | bgc
        # Each cell is a row of 4-byte words; a keep-flag per byte drops what this cell doesn't need.
        parts = []
        if lead is not None:
            parts.append(_words(*lead))
            lengths += lead[1].sum(axis=1, dtype=np.int64)
        parts.append(_constant(b"\x1b[", anyc))
        lengths += 3 * anyc  # ESC [ ... m
        if fg is not None:
            flat_fg = fg.reshape(n, -1)
            parts += [_constant(fg_code, fgc), _numbers(flat_fg, fgc)]
            lengths += fgc * (len(fg_code) + _digits_length(flat_fg))
        if fg is not None and bg is not None:
            parts.append(_constant(b";", fgc & bgc))
            lengths += fgc & bgc
        if bg is not None:
            flat_bg = bg.reshape(n, -1)
            parts += [_constant(bg_code, bgc), _numbers(flat_bg, bgc)]
            lengths += bgc * (len(bg_code) + _digits_length(flat_bg))
        tail_keep = np.ones((n, 1 + g), dtype=np.uint8)
        tail_keep[:, 0] = anyc
        tail = np.concatenate([np.full((n, 1), ord("m"), np.uint8), flat_glyphs], axis=1)
        parts.append(_words(tail, tail_keep))
        text = np.concatenate([t for t, _ in parts], axis=1)
        keep = np.concatenate([k for _, k in parts], axis=1)
        # np.compress on flat arrays is several times faster than 2-D boolean indexing.
        data = np.compress(keep.view(bool).ravel(), text.view(np.uint8).ravel()).tobytes()
    return data, lengths.reshape(rows, cols_n)

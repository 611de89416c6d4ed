"""Turn per-cell colours and glyphs into terminal bytes in one vectorised pass.

Every cell is laid out as a row of 4-byte words: `ESC [`, `38;2`, `;R`, `;G`, `;B`, `;`, `48;2`,
..., `m` and the glyph. Each number's word comes from a 256-entry table, and a part the terminal
doesn't need (a colour equal to the previous cell's) is a zero word. Padding is zero bytes too,
and terminal output never contains a zero byte, so deleting the zero bytes in one pass packs the
whole frame: no keep-masks, no per-part concatenation. The per-cell byte counts, when a
caller wants to cut spans of cells out of the result, are counted from the same words.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
Words = npt.NDArray[np.uint32]
Offsets = npt.NDArray[np.int64]

RESET = b"\x1b[0m"


def word(chunk: bytes) -> np.uint32:
    """Up to four bytes as one little-endian word, zero-padded."""
    if len(chunk) > 4:
        raise ValueError(f"{chunk!r} does not fit in one word")
    return np.frombuffer(chunk.ljust(4, b"\0"), dtype=np.uint32)[0]


def words_of(data: bytes) -> Words:
    """`data` as zero-padded words, for parts that are the same in every cell or row."""
    return np.frombuffer(data.ljust(-(-len(data) // 4) * 4, b"\0"), dtype=np.uint32)


ESC = word(b"\x1b[")
SEMICOLON = word(b";")
SGR_END = word(b"m")


def _decimal_table() -> Words:
    """For each byte value: `;` and its decimal digits as one word."""
    return np.array([word(b";%d" % v) for v in range(256)], dtype=np.uint32)


DECIMAL = _decimal_table()


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

    @cached_property
    def cells(self) -> U8:
        """Everything that makes a cell look the way it does, in one array per cell."""
        layers = [self.glyphs] + [v for v in (self.fg, self.bg) if v is not None]
        return np.concatenate(layers, axis=2)

    @cached_property
    def looks(self) -> list[tuple[U8, bool]]:
        """The arrays (rows x cols x k) that together say how each cell looks, each with whether
        it is a truecolor colour (which may drift a little unseen): for comparing frames without
        first copying them into one array. A glyph that is the same in every cell is left out."""
        looks = [] if uniform_glyph(self.glyphs) else [(self.glyphs, False)]
        looks += [(v, v.shape[2] == 3) for v in (self.fg, self.bg) if v is not None]
        return looks

    @property
    def rows(self) -> int:
        return int(self.glyphs.shape[0])

    @property
    def cols(self) -> int:
        return int(self.glyphs.shape[1])

    def row_words(self, spare: int) -> Words:
        """rows x (cols x W + spare): see `row_words`."""
        return row_words(self.glyphs, self.fg, self.bg, self.fg_code, self.bg_code, spare=spare)

    @cached_property
    def _encoded(self) -> tuple[bytes, Offsets]:
        words = self.row_words(0)
        # Every byte a cell sends is non-zero: counting them gives where each cell ends.
        counts = np.count_nonzero(words.view(np.uint8).reshape(self.rows, self.cols, -1), axis=2)
        return pack(words), np.cumsum(counts, dtype=np.int64).reshape(self.rows, self.cols)

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


def build(
    glyphs: U8,
    fg: U8 | None = None,
    bg: U8 | None = None,
    fg_code: bytes = b"38;2",
    bg_code: bytes = b"48;2",
) -> CellGrid:
    """A grid of cells (see `row_words` for the arguments); its bytes are made when first needed."""
    return CellGrid(glyphs, fg, bg, fg_code, bg_code)


def _changed(values: U8, fresh: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.bool_]:
    """True where a cell's colour differs from its left neighbour, and in every row's first cell
    and every `fresh` one."""
    # One integer per cell, so a single comparison covers every channel.
    packed = values[..., 0].astype(np.uint32)
    for i in range(1, values.shape[2]):
        packed = (packed << np.uint32(8)) | values[..., i].astype(np.uint32)
    out = np.ones(values.shape[:2], dtype=bool)
    np.not_equal(packed[:, 1:], packed[:, :-1], out=out[:, 1:])
    if fresh is not None:
        out |= fresh
    return out


def uniform_glyph(glyphs: U8) -> bool:
    """True when every cell holds the same glyph, as a broadcast view."""
    return glyphs.strides[:2] == (0, 0)


def _glyph_words(glyphs: U8) -> Words:
    """rows x cols x ceil(G/4): each cell's glyph bytes as words."""
    rows, cols, g = glyphs.shape
    if uniform_glyph(glyphs) and glyphs.size:
        return np.broadcast_to(words_of(glyphs[0, 0].tobytes()), (rows, cols, -(-g // 4)))
    padded = np.zeros((rows, cols, -(-g // 4) * 4), dtype=np.uint8)
    padded[..., :g] = glyphs
    return padded.view(np.uint32)


def row_words(
    glyphs: U8,
    fg: U8 | None = None,
    bg: U8 | None = None,
    fg_code: bytes = b"38;2",
    bg_code: bytes = b"48;2",
    fresh: npt.NDArray[np.bool_] | None = None,
    lead: Words | None = None,
    spare: int = 0,
) -> Words:
    """rows x (cols x W + spare) words: each row's cells, W words a cell holding its bytes (zero
    where a part is left out), then `spare` words left unset for the caller (so a row's ending
    joins the frame without another copy).

    `glyphs` is rows x cols x G (the UTF-8 bytes of each cell's character, all G long); `fg` and
    `bg` are rows x cols x K colour parameters (K=3 for RGB, 1 for a palette index), or None to
    leave that colour alone. A colour equal to the previous cell's is left out, except in the first
    cell of each row and in the cells where `fresh` (rows x cols) is True. `lead` (rows x cols x L
    words) goes before each cell: cursor moves, say.
    """
    rows, cols, g = glyphs.shape
    glyph = _glyph_words(glyphs)
    shape = (rows, cols)
    fgc = _changed(fg, fresh) if fg is not None else np.zeros(shape, dtype=bool)
    bgc = _changed(bg, fresh) if bg is not None else np.zeros(shape, dtype=bool)
    anyc = fgc | bgc
    n_lead = lead.shape[2] if lead is not None else 0
    n_fg = 1 + fg.shape[2] if fg is not None else 0
    n_bg = 1 + bg.shape[2] if bg is not None else 0
    n_semicolon = int(fg is not None and bg is not None)
    n_sgr = 1 + n_fg + n_semicolon + n_bg if n_fg or n_bg else 0
    # A glyph of up to three bytes shares its word with the `m` that ends the colours.
    n_glyph = glyph.shape[2] + (n_sgr > 0 and g > 3)
    width = n_lead + n_sgr + n_glyph
    buf = np.empty((rows, cols * width + spare), dtype=np.uint32)
    out = buf[:, : cols * width].reshape(rows, cols, width)
    at = 0
    if lead is not None:
        out[..., :n_lead] = lead
        at = n_lead
    if n_sgr:
        np.multiply(anyc, ESC, out=out[..., at])
        at += 1
    if fg is not None:
        at = _colour(out, at, fg, fg_code, fgc)
    if n_semicolon:
        np.multiply(fgc & bgc, SEMICOLON, out=out[..., at])
        at += 1
    if bg is not None:
        at = _colour(out, at, bg, bg_code, bgc)
    if not n_sgr:
        out[..., at:] = glyph
    elif g > 3:
        np.multiply(anyc, SGR_END, out=out[..., at])
        out[..., at + 1 :] = glyph
    else:
        # The `m` where colours were set, then the glyph in the three bytes after it.
        out[..., at] = (glyph[..., 0] << np.uint32(8)) | anyc * SGR_END
    return buf


def _colour(out: Words, at: int, values: U8, code: bytes, keep: npt.NDArray[np.bool_]) -> int:
    """Write `code;v1;v2;...` into words `at`... of the cells where `keep`; returns the next word."""
    k = values.shape[2]
    np.multiply(keep, word(code), out=out[..., at])
    # Each cell's numbers are copied as one k-word item: word by word, the copy into every
    # cell's row of words costs three times as much.
    item = np.dtype(f"V{4 * k}")
    numbers = out[..., at + 1 : at + 1 + k].view(item)[..., 0]
    numbers[...] = DECIMAL.take(values).view(item)[..., 0]
    numbers[~keep] = np.zeros((), dtype=item)
    return at + 1 + k


def pack(words: Words) -> bytes:
    """The non-zero bytes of `words`, in order: the bytes for the terminal."""
    # bytes.translate deletes the zeros in one pass over the bytes, which beats np.compress (a
    # pass for the non-zero indices, then a gather through them) by a quarter.
    return np.ascontiguousarray(words).tobytes().translate(None, b"\0")

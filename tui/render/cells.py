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


TRUECOLOR = (b"38;2", b"48;2")  # the SGR codes that set the foreground and background colours
PALETTE = (b"38;5", b"48;5")


class CellGrid:
    """One text frame: `rows` x `cols` cells. Its bytes are encoded on first use, so a caller that
    only needs some cells (a delta update) never pays for the rest.

    In `data` every row starts from a known SGR state: its first cell sets both colours.
    """

    def __init__(
        self, glyphs: U8, colours: U8 | None = None, codes: tuple[bytes, bytes] = TRUECOLOR
    ) -> None:
        self.glyphs = glyphs  # rows x cols x G: the UTF-8 bytes of each cell's glyph
        # rows x cols x 2 x K: each cell's foreground then background colour parameters, or None.
        # A cell's colours sit together, so comparing, gathering and encoding them is one
        # operation for both.
        self.colours = colours
        self.codes = codes

    @property
    def fg(self) -> U8 | None:
        """rows x cols x K foreground colours (a view), or None."""
        return None if self.colours is None else self.colours[:, :, 0]

    @property
    def bg(self) -> U8 | None:
        return None if self.colours is None else self.colours[:, :, 1]

    @cached_property
    def cells(self) -> U8:
        """Everything that makes a cell look the way it does, in one array per cell."""
        if self.colours is None:
            return self.glyphs
        colours = self.colours.reshape(self.rows, self.cols, -1)
        return np.concatenate([self.glyphs, colours], axis=2)

    @cached_property
    def looks(self) -> list[tuple[U8, bool]]:
        """The arrays (rows x cols x k) that together say how each cell looks, each with whether
        it is truecolor (which may drift a little unseen): for comparing frames without first
        copying them into one array. A glyph that is the same in every cell is left out."""
        looks = [] if uniform_glyph(self.glyphs) else [(self.glyphs, False)]
        if self.colours is not None:
            truecolor = self.colours.shape[3] == 3
            looks.append((self.colours.reshape(self.rows, self.cols, -1), truecolor))
        return looks

    @property
    def rows(self) -> int:
        return int(self.glyphs.shape[0])

    @property
    def cols(self) -> int:
        return int(self.glyphs.shape[1])

    def row_words(self, spare: int) -> Words:
        """rows x (cols x W + spare): see `row_words`."""
        return row_words(self.glyphs, self.colours, self.codes, spare=spare)

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
        if self.colours is None:
            return b""
        params = [
            code + b"".join(b";%d" % v for v in values)
            for code, values in zip(self.codes, self.colours[r, c], strict=True)
        ]
        return b"\x1b[" + b";".join(params) + b"m"


def build(
    glyphs: U8, colours: U8 | None = None, codes: tuple[bytes, bytes] = TRUECOLOR
) -> CellGrid:
    """A grid of cells (see `row_words` for the arguments); its bytes are made when first needed."""
    return CellGrid(glyphs, colours, codes)


def _changed(colours: U8, fresh: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.bool_]:
    """rows x cols x 2: True where a cell's foreground (0) or background (1) differs from its left
    neighbour's, and in every row's first cell and every `fresh` one."""
    rows, cols, layers, k = colours.shape
    # Each cell's bytes against its left neighbour's, in one comparison for every channel.
    flat = np.ascontiguousarray(colours).reshape(rows, cols * layers * k)
    step = layers * k
    differs = (flat[:, step:] != flat[:, :-step]).reshape(rows, cols - 1, layers, k)
    out = np.ones((rows, cols, layers), dtype=bool)
    np.copyto(out[:, 1:], differs[..., 0])
    for i in range(1, k):
        out[:, 1:] |= differs[..., i]
    if fresh is not None:
        out |= fresh[..., None]
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
    colours: U8 | None = None,
    codes: tuple[bytes, bytes] = TRUECOLOR,
    fresh: npt.NDArray[np.bool_] | None = None,
    lead: Words | None = None,
    spare: int = 0,
) -> Words:
    """rows x (cols x W + spare) words: each row's cells, W words a cell holding its bytes (zero
    where a part is left out), then `spare` words left unset for the caller (so a row's ending
    joins the frame without another copy).

    `glyphs` is rows x cols x G (the UTF-8 bytes of each cell's character, all G long);
    `colours` is rows x cols x 2 x K: each cell's foreground and background parameters (K=3 for
    RGB, 1 for a palette index), set by the SGR `codes`, or None to leave the colours alone. A
    colour equal to the previous cell's is left out, except in the first cell of each row and in
    the cells where `fresh` (rows x cols) is True. `lead` (rows x cols x L words) goes before each
    cell: cursor moves, say.
    """
    rows, cols, g = glyphs.shape
    glyph = _glyph_words(glyphs)
    n_lead = lead.shape[2] if lead is not None else 0
    k = colours.shape[3] if colours is not None else 0
    # Two blocks of k + 2 words: `ESC [`, fg code, k numbers; then `;`, bg code, k numbers.
    n_sgr = 2 * (k + 2) if colours is not None else 0
    # A glyph of up to three bytes shares its word with the `m` that ends the colours.
    n_glyph = glyph.shape[2] + (n_sgr > 0 and g > 3)
    width = n_lead + n_sgr + n_glyph
    buf = np.empty((rows, cols * width + spare), dtype=np.uint32)
    out = buf[:, : cols * width].reshape(rows, cols, width)
    if lead is not None:
        out[..., :n_lead] = lead
    if colours is None:
        out[..., n_lead:] = glyph
        return buf
    changed = _changed(colours, fresh)
    fg, bg = changed[..., 0], changed[..., 1]
    anyc = fg | bg
    blocks = out[..., n_lead : n_lead + n_sgr].reshape(rows, cols, 2, k + 2)
    np.multiply(anyc, ESC, out=blocks[..., 0, 0])
    np.multiply(fg & bg, SEMICOLON, out=blocks[..., 1, 0])
    np.multiply(fg, word(codes[0]), out=blocks[..., 0, 1])
    np.multiply(bg, word(codes[1]), out=blocks[..., 1, 1])
    # Each colour's numbers are copied as one k-word item: word by word, the copy into every
    # cell's row of words costs three times as much.
    item = np.dtype(f"V{4 * k}")
    numbers = DECIMAL.take(colours).view(item)[..., 0]
    numbers[~changed] = np.zeros((), dtype=item)
    blocks[..., 2:].view(item)[..., 0] = numbers
    at = n_lead + n_sgr
    if g > 3:
        np.multiply(anyc, SGR_END, out=out[..., at])
        out[..., at + 1 :] = glyph
    else:
        # The `m` where colours were set, then the glyph in the three bytes after it (a glyph
        # that is the same everywhere is shifted once, not once a cell).
        first = glyph[:1, :1, 0] if uniform_glyph(glyphs) else glyph[..., 0]
        np.multiply(anyc, SGR_END, out=out[..., at])
        out[..., at] |= first << np.uint32(8)
    return buf


def pack(words: Words) -> bytes:
    """The non-zero bytes of `words`, in order: the bytes for the terminal."""
    # bytes.translate deletes the zeros in one pass over the bytes, which beats np.compress (a
    # pass for the non-zero indices, then a gather through them) by a quarter.
    return np.ascontiguousarray(words).tobytes().translate(None, b"\0")

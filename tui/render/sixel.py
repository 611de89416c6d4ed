"""Sixel encoder: a fixed 6x6x6 palette with ordered dithering, then run-length coded sixel bands.

A fixed palette needs no per-frame search (median cut or k-means would dominate the encode time),
and ordered dithering is a table look-up, so every step is one numpy operation on the whole frame.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tui.render.fit import Frame, letterbox

LEVELS = 6
PALETTE_SIZE = LEVELS**3
# Bayer 4x4 thresholds, centred on zero, in units of one palette step.
BAYER = (np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) + 0.5) / 16 - 0.5
# Bands are handled a few at a time so the band x colour x column table stays small.
BANDS_PER_CHUNK = 32


def palette_rgb() -> npt.NDArray[np.uint8]:
    """The PALETTE_SIZE x 3 colours that `quantise` indexes into."""
    lv = np.round(np.arange(LEVELS) * 255 / (LEVELS - 1)).astype(np.uint8)
    r, g, b = np.meshgrid(lv, lv, lv, indexing="ij")
    return np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)


def _palette_header() -> bytes:
    pct = np.round(palette_rgb().astype(np.float64) * 100 / 255).astype(int)
    return b"".join(b"#%d;2;%d;%d;%d" % (i, *rgb) for i, rgb in enumerate(pct))


PALETTE_HEADER = _palette_header()


def _level_tables() -> npt.NDArray[np.uint8]:
    """For each of the 16 dither thresholds, channel value -> that channel's share of the index."""
    v = np.arange(256, dtype=np.float64)[None, :] * ((LEVELS - 1) / 255) + BAYER.reshape(16, 1)
    level = np.clip(np.rint(v), 0, LEVELS - 1).astype(np.uint8)
    return np.stack([level * LEVELS * LEVELS, level * LEVELS, level])  # 3 x 16 x 256


LEVEL_TABLES = _level_tables()


def quantise(canvas: Frame) -> npt.NDArray[np.uint8]:
    """Palette index of every pixel, with a 4x4 ordered dither: three table look-ups."""
    h, w = canvas.shape[:2]
    cell = np.arange(16, dtype=np.intp).reshape(4, 4) * 256
    threshold = np.tile(cell, (h // 4 + 1, w // 4 + 1))[:h, :w]
    # Flat look-ups (threshold * 256 + value) are much faster than 2-D fancy indexing.
    r, g, b = (LEVEL_TABLES[i].ravel().take(threshold + canvas[..., i]) for i in range(3))
    return r + g + b


Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def _digits(
    tmpl: npt.NDArray[np.uint8], mask: Bools, at: int, value: Ints, keep: Bools, width: int
) -> None:
    """Write `value` in decimal into columns at..at+width-1, leading zeros masked out."""
    for i in range(width):
        div = 10 ** (width - 1 - i)
        tmpl[:, at + i] = value // div % 10 + 48
        mask[:, at + i] = keep & (value >= div) if div > 1 else keep


def _repeat(
    tmpl: npt.NDArray[np.uint8], mask: Bools, at: int, ch: npt.NDArray[np.uint8], length: Ints
) -> None:
    """A run of `length` copies of `ch` in columns at..at+7: `!N c` when longer than 3, else the
    characters themselves (a zero length writes nothing)."""
    long = length > 3
    tmpl[:, at] = ord("!")
    mask[:, at] = long
    _digits(tmpl, mask, at + 1, length, long, 4)
    for i in range(3):
        tmpl[:, at + 5 + i] = ch
        mask[:, at + 5 + i] = (long & (i == 0)) | (~long & (length > i))


def _encode_rows(
    colour: Ints, row: Ints, x: Ints, value: npt.NDArray[np.uint8], band_end: Bools
) -> bytes:
    """Sixel commands from the non-empty sixels, sorted by (band, colour, x).

    `row` numbers each (band, colour) pair; `band_end[row]` says whether that pair is its band's
    last. Equal neighbouring sixels become one run, and the gap before a run a run of `?`.
    """
    n = x.size
    first = np.ones(n, dtype=bool)
    first[1:] = row[1:] != row[:-1]
    prev_x = np.empty_like(x)
    prev_x[1:] = x[:-1]
    prev_x[first] = -1
    gap = x - prev_x - 1
    prev_v = np.empty_like(value)
    prev_v[1:] = value[:-1]
    run_ix = np.flatnonzero(first | (gap > 0) | (value != prev_v))
    length = np.diff(np.append(run_ix, n))
    last = np.ones(run_ix.size, dtype=bool)
    last[:-1] = first[run_ix[1:]]
    opens = first[run_ix]
    tmpl = np.empty((run_ix.size, 21), dtype=np.uint8)
    mask = np.empty((run_ix.size, 21), dtype=bool)
    tmpl[:, 0] = ord("#")
    mask[:, 0] = opens
    _digits(tmpl, mask, 1, colour[row[run_ix]], opens, 3)
    _repeat(tmpl, mask, 4, np.full(run_ix.size, ord("?"), dtype=np.uint8), gap[run_ix])
    _repeat(tmpl, mask, 12, (value[run_ix] + 63).astype(np.uint8), length)
    tmpl[:, 20] = np.where(band_end[row[run_ix]], ord("-"), ord("$"))
    mask[:, 20] = last
    return tmpl[mask].tobytes()


def sixel_body(index: npt.NDArray[np.uint8]) -> bytes:
    """The sixel data (after the palette) for an H x W index image, H a multiple of 6."""
    h, w = index.shape
    bands = index.reshape(h // 6, 6, w)
    out: list[bytes] = []
    cols = np.arange(w)[None, :]
    padded = -(-w // 8) * 8
    for first in range(0, bands.shape[0], BANDS_PER_CHUNK):
        chunk = bands[first : first + BANDS_PER_CHUNK]
        nb = chunk.shape[0]
        band_ix = np.arange(nb)[:, None]
        # Only the colours present in a band get a row of the table: number them per band, in
        # palette order, so the output is the same as with a row for every palette colour.
        present = np.zeros((nb, PALETTE_SIZE), dtype=bool)
        for r in range(6):
            present[band_ix, chunk[:, r, :]] = True
        rank = np.cumsum(present, axis=1, dtype=np.int64) - 1
        depth = int(rank[:, -1].max()) + 1
        table = np.zeros((nb, depth, padded), dtype=np.uint8)
        # Within one pixel row each (band, column) holds one colour, so no index repeats here.
        for r in range(6):
            table[band_ix, rank[band_ix, chunk[:, r, :]], cols] |= np.uint8(1 << r)
        # The table is mostly zeros: find the non-zero 8-byte words first, then bytes in them.
        words = np.flatnonzero(table.view(np.uint64))
        octets = table.reshape(-1, 8)[words]
        word_of, byte_of = np.nonzero(octets)
        flat = words[word_of] * 8 + byte_of
        pair, x = np.divmod(flat, padded)
        # `pair` is already sorted (the table was scanned in order), so no np.unique sort.
        opens = np.ones(pair.size, dtype=bool)
        opens[1:] = pair[1:] != pair[:-1]
        row = np.cumsum(opens) - 1
        pairs = pair[opens]
        band_of = pairs // depth
        colour_of = np.flatnonzero(present.ravel()) % PALETTE_SIZE
        band_start = np.concatenate([[0], np.cumsum(present.sum(axis=1))[:-1]])
        colour = colour_of[band_start[band_of] + pairs % depth]
        band_end = np.ones(pairs.size, dtype=bool)
        band_end[:-1] = band_of[1:] != band_of[:-1]
        out.append(_encode_rows(colour, row, x, octets[word_of, byte_of], band_end))
    # The last band needs no "-": that would only move the cursor a band further down.
    return b"".join(out)[:-1] + b"$"


class SixelEncoder:
    """Draws a frame as one sixel image covering `cols` x `rows` cells of `cell_w` x `cell_h` px."""

    mode = "sixel"

    def __init__(self, cell_w: int = 10, cell_h: int = 20) -> None:
        self.cell_w = cell_w
        self.cell_h = cell_h

    def pixel_size(self, cols: int, rows: int) -> tuple[int, int]:
        """Image size in pixels; the height is rounded down to whole sixel bands so it never
        spills into the row below the box."""
        return cols * self.cell_w, max(6, rows * self.cell_h // 6 * 6)

    def encode(self, frame: Frame, cols: int, rows: int) -> bytes:
        w, h = self.pixel_size(cols, rows)
        index = quantise(letterbox(frame, w, h))
        # P2=1: pixels we don't paint keep their colour; we paint every pixel anyway.
        header = b'\x1bP0;1;0q"1;1;%d;%d' % (w, h)
        return header + PALETTE_HEADER + sixel_body(index) + b"\x1b\\"

"""Sixel encoder: a fixed 6x6x6 palette with ordered dithering, then run-length coded sixel bands.

A fixed palette needs no per-frame search (median cut or k-means would dominate the encode time),
and ordered dithering is an add and a divide, so every step is a few numpy operations on the whole
frame. The sixel runs are found, sorted and spelled out with whole-array operations too.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from tcall.tui.render.fit import Frame, letterbox

LEVELS = 6
PALETTE_SIZE = LEVELS**3
STEP = 255 // (LEVELS - 1)  # channel values per palette level
# Bayer 4x4 matrix: the order in which the pixels of a 4x4 tile round up.
BAYER = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]])
# The level of channel value v at Bayer rank k is v / STEP + (k + 0.5) / 16 - 0.5 rounded, which is
# (v + offset) // STEP with offset = STEP * (2k + 1) // 32, as v and STEP are whole (and no ties).
DITHER = (STEP * (2 * BAYER + 1) // 32).astype(np.uint8)
# Bands are encoded a few at a time, so the temporaries stay in the CPU cache.
CHUNK_PIXELS = 1 << 16


def palette_rgb() -> npt.NDArray[np.uint8]:
    """The PALETTE_SIZE x 3 colours that `quantise` indexes into."""
    lv = np.round(np.arange(LEVELS) * 255 / (LEVELS - 1)).astype(np.uint8)
    r, g, b = np.meshgrid(lv, lv, lv, indexing="ij")
    return np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)


def _palette_header() -> bytes:
    pct = np.round(palette_rgb().astype(np.float64) * 100 / 255).astype(int)
    return b"".join(b"#%d;2;%d;%d;%d" % (i, *rgb) for i, rgb in enumerate(pct))


PALETTE_HEADER = _palette_header()


@lru_cache(maxsize=4)
def _dither_plane(h: int, w: int) -> npt.NDArray[np.uint8]:
    """The DITHER offsets tiled over an h x w x 3 frame (kept, as a frame size rarely changes)."""
    plane = np.tile(DITHER[:, :, None], (h // 4 + 1, w // 4 + 1, 3))[:h, :w]
    plane = np.ascontiguousarray(plane)
    plane.flags.writeable = False
    return plane


def quantise(canvas: Frame) -> npt.NDArray[np.uint8]:
    """Palette index of every pixel, with a 4x4 ordered dither, all in uint8."""
    h, w = canvas.shape[:2]
    # A saturating add is exact here: from 255 up, the level is the top one either way.
    level = cv2.add(np.ascontiguousarray(canvas), _dither_plane(h, w)) // np.uint8(STEP)
    r, g, b = (np.asarray(c, dtype=np.uint8) for c in cv2.split(level))
    r *= np.uint8(LEVELS * LEVELS)
    g *= np.uint8(LEVELS)
    r += g
    r += b
    return r


def _word(text: bytes) -> int:
    """`text` as a little-endian integer: stored in memory, the word spells `text` then NULs."""
    return int.from_bytes(text, "little")


# "#N" selects colour N; the low byte is left free for the "$" or "-" that ends the row before.
COLOUR_WORDS = np.array([_word(b"#%d" % c) << 8 for c in range(PALETTE_SIZE)], dtype=np.uint64)
# Row q of a band is bit q of a sixel; the rows above row q are these bits.
ROWS_ABOVE = np.array([(1 << q) - 1 for q in range(6)], dtype=np.uint8)[:, None]


@lru_cache(maxsize=4)
def _repeat_words(w: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Words that draw a character n = 0..w times: the character n times up to 3, else "!n" and
    the character once (which fits a word for n below a million).

    Returns the words for n empty sixels ("?"), and for n sixels of value v at [n * 64 + v].
    """
    n = range(w + 1)
    prefix = np.array([0 if k <= 3 else _word(b"!%d" % k) for k in n], dtype=np.uint64)
    # What to multiply the character by to put it after the prefix, once or k times.
    times = [_word(b"\1" * k) if k <= 3 else 1 << 8 * len(b"!%d" % k) for k in n]
    once = np.array(times, dtype=np.uint64)
    gaps = prefix + ord("?") * once
    runs = prefix[:, None] + np.arange(63, 63 + 64, dtype=np.uint64) * once[:, None]
    return gaps, runs.ravel()


def _bands(index: npt.NDArray[np.uint8], after_band: bool) -> bytes:
    """Sixel commands for the bands of `index`: a row "#colour" + runs for each colour in a band,
    each row but the first preceded by "$" (same band) or "-" (next band), and the first by "-"
    too if `after_band`."""
    h, w = index.shape
    nb = h // 6
    colour = index.reshape(nb, 6, w)
    # sixel[b, r, x]: the rows of column x in band b that have row r's colour.
    sixel = (colour == colour[:, :1]).view(np.uint8)
    for q in range(1, 6):
        # (Multiplying is twice as fast as << on uint8 arrays.)
        sixel |= (colour == colour[:, q : q + 1]).view(np.uint8) * np.uint8(1 << q)
    # Each colour of a column is drawn once, in its top row; a run of equal sixels goes on while
    # the next column has the same colour in the same rows.
    top = (sixel & ROWS_ABOVE) == 0
    differs = (colour[..., 1:] != colour[..., :-1]) | (sixel[..., 1:] != sixel[..., :-1])
    start = top.copy()
    start[..., 1:] &= differs
    end = top
    end[..., :-1] &= differs
    at = np.flatnonzero(start)
    length = np.flatnonzero(end) - at + 1
    x = at - at // w * w  # (faster than at % w)
    row = at // (6 * w) * PALETTE_SIZE + index.ravel()[at]  # band * PALETTE_SIZE + colour
    present = np.zeros(nb * PALETTE_SIZE, dtype=bool)
    present[row] = True
    rows = np.flatnonzero(present)
    # The output is in (band, colour, x) order: sort each run as one int64 key. Each row also gets
    # a key of its own, its "head", which sorts before its runs and will carry the "#colour".
    xb = w.bit_length()
    run = length << 6 | sixel.ravel()[at]
    key = np.concatenate([((row << xb | x) << xb + 6) | run, rows << 2 * xb + 6])
    key.sort()
    run = key & ((1 << xb + 6) - 1)  # length * 64 + sixel value, 0 for a head
    x = (key >> xb + 6) & ((1 << xb) - 1)
    heads = np.flatnonzero(run == 0)
    # Before each run, a gap of empty sixels ("?") from the end of the one before in its row.
    gap = np.empty_like(x)
    gap[1:] = x[1:] - (x + (run >> 6))[:-1]
    gap[heads] = 0
    band = rows // PALETTE_SIZE
    sep = np.full(rows.size, ord("$"), dtype=np.uint64)
    sep[1:][band[1:] != band[:-1]] = ord("-")
    sep[0] = ord("-") if after_band else 0
    # Each key becomes two NUL-padded words: the gap's and the run's, or the head's separator and
    # colour. Sixel data has no NUL bytes, so dropping all the padding is one compress.
    gap_words, run_words = _repeat_words(w)
    words = np.empty((key.size, 2), dtype=np.uint64)
    words[:, 0] = gap_words[gap]
    words[:, 1] = run_words[run]
    words[heads, 0] = COLOUR_WORDS[rows % PALETTE_SIZE] | sep
    flat = words.view(np.uint8).ravel()
    return np.compress(flat != 0, flat).tobytes()


def sixel_body(index: npt.NDArray[np.uint8]) -> bytes:
    """The sixel data (after the palette) for an H x W index image, H a multiple of 6."""
    h, w = index.shape
    per_chunk = max(1, CHUNK_PIXELS // (6 * w))
    parts = [
        _bands(index[6 * first : 6 * (first + per_chunk)], first > 0)
        for first in range(0, h // 6, per_chunk)
    ]
    # The last row ends in "$": a "-" would only move the cursor a band further down.
    return b"".join(parts) + b"$"


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

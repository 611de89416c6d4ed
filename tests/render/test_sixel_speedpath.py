"""The vectorised sixel encoder against a plain, slow one written straight from the format."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tcall.tui.render import sixel
from tcall.tui.render.sixel import BAYER, quantise, sixel_body


def slow_quantise(canvas: np.ndarray) -> np.ndarray:
    h, w = canvas.shape[:2]
    threshold = (BAYER[np.arange(h)[:, None] % 4, np.arange(w) % 4] + 0.5) / 16 - 0.5
    level = np.clip(np.rint(canvas * (5 / 255) + threshold[..., None]), 0, 5).astype(int)
    return (level[..., 0] * 36 + level[..., 1] * 6 + level[..., 2]).astype(np.uint8)


def repeat(char: bytes, n: int) -> bytes:
    return char * n if n <= 3 else b"!%d" % n + char


def slow_body(index: np.ndarray) -> bytes:
    bands = []
    for b in range(index.shape[0] // 6):
        band = index[6 * b : 6 * b + 6]
        rows = []
        for c in sorted(set(band.ravel().tolist())):
            sixels = [
                sum(1 << r for r in range(6) if band[r, x] == c) for x in range(band.shape[1])
            ]
            while sixels[-1] == 0:
                sixels.pop()
            runs = (repeat(bytes([63 + v]), len(list(g))) for v, g in itertools.groupby(sixels))
            rows.append(b"#%d" % c + b"".join(runs))
        bands.append(b"$".join(rows))
    return b"-".join(bands) + b"$"


def test_quantise_matches_the_rounding_for_every_value_and_threshold() -> None:
    v = np.repeat(np.arange(256, dtype=np.uint8), 4)[None, :].repeat(8, axis=0)
    canvas = np.stack([v, 255 - v, v * 7], axis=-1)  # every value at all 16 Bayer positions
    assert (quantise(canvas) == slow_quantise(canvas)).all()
    rng = np.random.default_rng(5)
    odd = rng.integers(0, 256, (13, 7, 3), dtype=np.uint8)
    assert (quantise(odd) == slow_quantise(odd)).all()
    assert (quantise(odd[:, ::2]) == slow_quantise(odd[:, ::2])).all()  # not contiguous


@pytest.mark.parametrize(
    ("h", "w", "colours"),
    [(6, 1, 216), (6, 40, 2), (12, 17, 216), (36, 64, 3), (18, 1200, 2), (6, 5, 1)],
)
def test_body_matches_the_slow_encoder(h: int, w: int, colours: int) -> None:
    rng = np.random.default_rng(h * w + colours)
    index = rng.integers(0, colours, (h, w)).astype(np.uint8)
    assert sixel_body(index) == slow_body(index)
    # Long runs and long gaps: repeat counts of several digits.
    stretched = np.repeat(index[:, : max(1, w // 100)], 100, axis=1)[:, :w]
    assert sixel_body(stretched) == slow_body(stretched)


def test_body_is_the_same_in_chunks_of_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    index = rng.integers(0, 4, (42, 30)).astype(np.uint8)
    whole = sixel_body(index)
    assert whole == slow_body(index)
    for bands in (1, 2, 3):
        monkeypatch.setattr(sixel, "CHUNK_PIXELS", 6 * 30 * bands)
        assert sixel_body(index) == whole


def test_black_and_one_column() -> None:
    assert sixel_body(np.zeros((12, 50), dtype=np.uint8)) == b"#0!50~-#0!50~$"
    column = quantise(np.full((30, 1, 3), 200, dtype=np.uint8))
    assert sixel_body(column) == slow_body(column)

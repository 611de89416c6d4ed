"""A block code that carries a frame's creation time through a lossy video codec.

The pattern source paints 40 bits (32 bits of wall-clock milliseconds and an 8-bit check) as large black
and white blocks along the top of the frame. Blocks this large survive VP8 and H.264 at any sane bitrate,
so a receiver on the same host can read the time back and measure glass-to-glass latency.
"""

from __future__ import annotations

import time

import numpy as np

BITS = 40
COLUMNS = 20
ROWS = BITS // COLUMNS


def block_size(width: int) -> int:
    return max(4, width // COLUMNS)


def code_height(width: int) -> int:
    return block_size(width) * ROWS


def now_ms() -> int:
    return int(time.time() * 1000) & 0xFFFFFFFF


def _check(value: int) -> int:
    # Sum of the four bytes plus a constant: any single flipped block changes it.
    return (sum(value.to_bytes(4, "big")) + 0x5A) & 0xFF


def _bits(value: int) -> np.ndarray:
    word = (value << 8) | _check(value)
    return np.array([(word >> (BITS - 1 - i)) & 1 for i in range(BITS)], dtype=np.uint8)


def stamp(frame: np.ndarray, value: int) -> None:
    """Paint `value` into the top rows of an RGB frame, in place."""
    size = block_size(frame.shape[1])
    grid = (_bits(value).reshape(ROWS, COLUMNS) * 255).astype(np.uint8)
    blocks = np.kron(grid, np.ones((size, size), dtype=np.uint8))
    frame[: blocks.shape[0], : blocks.shape[1], :] = blocks[:, :, None]


def read(luma: np.ndarray) -> int | None:
    """Read the value back from a luma plane (H×W uint8); None when the code is absent or damaged."""
    height, width = luma.shape
    size = block_size(width)
    if height < size * ROWS or size < 4:
        return None
    quarter = size // 4
    region = luma[: size * ROWS, : size * COLUMNS].astype(np.float32)
    cells = region.reshape(ROWS, size, COLUMNS, size)[:, quarter:-quarter, :, quarter:-quarter]
    means = cells.mean(axis=(1, 3)).reshape(-1)
    bits = means > 128
    word = 0
    for bit in bits:
        word = (word << 1) | int(bit)
    value, check = word >> 8, word & 0xFF
    return value if _check(value) == check else None


def age_ms(value: int) -> float:
    """Milliseconds since `value` was stamped, allowing for the 32-bit wrap."""
    return float((now_ms() - value) & 0xFFFFFFFF)

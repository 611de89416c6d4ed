"""Scale a frame into a box, keeping its aspect ratio, and letterbox the rest in black."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Placement:
    """Where the scaled picture sits inside a canvas of `width` x `height` pixels."""

    width: int
    height: int
    x: int
    y: int
    w: int
    h: int


def place(src_w: int, src_h: int, width: int, height: int) -> Placement:
    """Fit a `src_w` x `src_h` picture of square pixels into a `width` x `height` canvas."""
    scale = min(width / src_w, height / src_h)
    w = max(1, min(width, round(src_w * scale)))
    h = max(1, min(height, round(src_h * scale)))
    return Placement(width, height, (width - w) // 2, (height - h) // 2, w, h)


def letterbox(frame: Frame, width: int, height: int) -> Frame:
    """Return a `height` x `width` x 3 canvas holding `frame` scaled to fit, black elsewhere."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 frame, got {frame.shape} {frame.dtype}")
    src_h, src_w = frame.shape[:2]
    p = place(src_w, src_h, width, height)
    scaled = frame if (p.w, p.h) == (src_w, src_h) else shrink(frame, p.w, p.h)
    if (p.w, p.h) == (width, height):
        return np.ascontiguousarray(scaled)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[p.y : p.y + p.h, p.x : p.x + p.w] = scaled
    return canvas


def shrink(frame: Frame, w: int, h: int) -> Frame:
    """`frame` resized to `w` x `h`, every source pixel counting when it gets smaller.

    INTER_AREA averages every source pixel, so thin lines don't flicker, but at a fractional ratio
    it is ten times slower than at a whole one. So the frame is first shrunk by the largest whole
    factor that divides both sides, then bilinear takes it the rest (less than 2x) of the way,
    where its taps still reach every pixel.
    """
    src_h, src_w = frame.shape[:2]
    ratio = min(src_w / w, src_h / h)
    factor = next((k for k in range(int(ratio), 1, -1) if src_w % k == 0 and src_h % k == 0), 1)
    if factor > 1:
        smaller = cv2.resize(
            frame, (src_w // factor, src_h // factor), interpolation=cv2.INTER_AREA
        )
        frame = np.asarray(smaller, dtype=np.uint8)
        ratio /= factor
    interp = cv2.INTER_AREA if ratio >= 2 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(frame, (w, h), interpolation=interp), dtype=np.uint8)

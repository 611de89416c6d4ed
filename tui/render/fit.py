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
    if (p.w, p.h) == (src_w, src_h):
        scaled = frame
    else:
        # INTER_AREA averages every source pixel when shrinking, so thin lines don't flicker.
        shrinking = p.w < src_w or p.h < src_h
        interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        scaled = np.asarray(cv2.resize(frame, (p.w, p.h), interpolation=interp), dtype=np.uint8)
    if (p.w, p.h) == (width, height):
        return np.ascontiguousarray(scaled)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[p.y : p.y + p.h, p.x : p.x + p.w] = scaled
    return canvas

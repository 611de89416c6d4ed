"""Frames of one call for a UI on another thread: the peer's newest picture and our self-view.

The engine's sink converts each frame it keeps to RGB on the engine's thread, only while a viewer
watches, scaled down to the size the viewer draws it at (`fit`), and publishes it here; the UI takes the newest one at its own rate. Nothing from aiortc
crosses over: only numpy arrays that the engine never writes to again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

Frame = np.ndarray


class VideoHandle:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._remote: Frame | None = None
        self._count = 0
        self._self_view: Callable[[], Frame | None] = lambda: None
        self.watching = False  # set by a UI: only then is each received frame converted
        # Set by a UI: the largest picture (width, height in pixels) it draws the peer's video at;
        # the engine then publishes frames already scaled to fit it. None: full size.
        self.fit: tuple[int, int] | None = None

    def publish(self, rgb: Frame) -> None:
        """Called on the engine's thread with a new RGB frame that nobody will modify."""
        with self._lock:
            self._remote = rgb
            self._count += 1

    def remote(self) -> tuple[int, Frame | None]:
        """How many frames were published so far, and the newest one."""
        with self._lock:
            return self._count, self._remote

    def attach_self_view(self, latest: Callable[[], Frame | None]) -> None:
        self._self_view = latest

    def self_view(self) -> Frame | None:
        """The newest frame our camera sent (RGB), or None."""
        return self._self_view()
